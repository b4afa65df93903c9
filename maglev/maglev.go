package maglev

import (
	"cmp"
	"fmt"
	"slices"
)

// Table sizes and limits.
const (
	// DefaultSize is the table size used when Build gets 0:
	// the Maglev paper's production size, good for up to about 650
	// backends at M > 100·N.
	DefaultSize = 65537
	// MaxSize bounds the table size (2 bytes per slot).
	MaxSize = 1 << 24
	// MaxBackends is the most backends a table can index: slots are
	// uint16 and one value marks an empty slot during the build.
	MaxBackends = 1<<16 - 1
)

// Fixed seeds deriving a backend's permutation (offset, skip) from its
// ID. Like the hash seeds they are part of the contract between gateways.
const (
	seedOffset = 0x6d61_676c_6576_2d6f // "maglev-o"
	seedSkip   = 0x6d61_676c_6576_2d73 // "maglev-s"
)

// Backend is one candidate of a Table.
type Backend struct {
	// ID is the backend's stable identity, the same on every gateway:
	// BackendID of its "ip:port", not the control plane's endpoint ID.
	ID uint64
	// Weight is the backend's relative share of slots; 0 gives it none
	// (drained) without changing other backends' indices.
	Weight uint32
}

// Table is a Maglev consistent-hashing lookup table (Eisenbud et al.,
// NSDI'16, section 3.4) over a list of backends. It is immutable after
// Build and safe for concurrent use.
type Table struct {
	slots []uint16 // slot -> index into the backends given to Build
	n     int      // number of backends given to Build
}

// Build builds the lookup table of the given size (a prime; 0 means
// DefaultSize) for backends. The result maps slots to indices into
// backends. Two calls with the same set of (ID, Weight) pairs build the
// same assignment of slots to IDs whatever the order of backends, so
// gateways that agree on the endpoint set agree on every client's
// endpoint; removing one of N equal backends reassigns about 1/N of the
// slots. Choose size > 100·N for near-perfect balance.
//
// Weights follow the weighted Maglev of Envoy and Katran: in each round a
// backend takes a turn only when its share (Weight/maxWeight) has accrued
// one, so slot counts are proportional to weights, except that every
// backend of non-zero weight takes a turn in the first round and so owns at
// least one slot.
func Build(backends []Backend, size uint32) (*Table, error) {
	if size == 0 {
		size = DefaultSize
	}
	if size > MaxSize || !IsPrime(size) {
		return nil, fmt.Errorf("build maglev: size %d: %w", size, ErrSize)
	}
	n := len(backends)
	if n > MaxBackends || n > int(size) {
		return nil, fmt.Errorf("build maglev: %d backends for %d slots (max %d): %w", n, size, MaxBackends, ErrTooManyBackends)
	}
	// Fill in ID order so that the input order does not matter.
	order := make([]uint16, n)
	for i := range order {
		order[i] = uint16(i)
	}
	slices.SortFunc(order, func(a, b uint16) int { return cmp.Compare(backends[a].ID, backends[b].ID) })
	for j := 1; j < n; j++ {
		if id := backends[order[j]].ID; id == backends[order[j-1]].ID {
			return nil, fmt.Errorf("build maglev: id %#x: %w", id, ErrDuplicateBackend)
		}
	}
	var maxW uint64
	order = slices.DeleteFunc(order, func(i uint16) bool { return backends[i].Weight == 0 })
	for _, i := range order {
		maxW = max(maxW, uint64(backends[i].Weight))
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("build maglev: %d backends: %w", n, ErrNoBackends)
	}

	m := uint64(size)
	type state struct {
		pos, skip uint64 // next preferred slot and permutation stride
		w, target uint64 // weight and the turn threshold (Envoy's target_weight)
		idx       uint16
	}
	st := make([]state, len(order))
	for j, i := range order {
		offset, skip := permutation(backends[i].ID, m)
		st[j] = state{pos: offset, skip: skip, w: uint64(backends[i].Weight), idx: i}
	}

	const empty = 0xffff
	slots := make([]uint16, size)
	for i := range slots {
		slots[i] = empty
	}
	filled := uint64(0)
	// The heaviest backend takes a turn every round, so there are at most
	// m rounds and round*w stays below 2^24 * 2^32.
	for round := uint64(0); filled < m; round++ {
		for j := range st {
			b := &st[j]
			if round*b.w < b.target {
				continue
			}
			b.target += maxW
			c := b.pos
			for slots[c] != empty {
				c += b.skip
				if c >= m {
					c -= m
				}
			}
			slots[c] = b.idx
			c += b.skip
			if c >= m {
				c -= m
			}
			b.pos = c
			filled++
			if filled == m {
				break
			}
		}
	}
	return &Table{slots: slots, n: n}, nil
}

// permutation returns a backend's Maglev permutation parameters:
// permutation[j] = (offset + j·skip) mod m, with skip in 1..m-1 so that, m
// being prime, the permutation visits every slot.
func permutation(id, m uint64) (offset, skip uint64) {
	offset = mix64(id^seedOffset) % m
	skip = mix64(id^seedSkip)%(m-1) + 1
	return offset, skip
}

// mix64 is the splitmix64 finaliser, a bijection that spreads IDs that
// differ in few bits (tests use small integers).
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Pick returns the index (into the backends given to Build) of the
// backend for hash, as the package function Pick does on Slots(). It
// returns -1 for a zero Table. It does not allocate.
func (m *Table) Pick(hash uint64) int {
	if m == nil {
		return -1
	}
	return Pick(m.slots, m.n, hash)
}

// Pick returns the index, in 0..n-1, of the backend that slots (a Table's
// Slots, or the copy a snapshot carries) assigns to hash: the backend in
// slot hash mod len(slots). Without slots (a chain of one backend, or one
// too long for a table, see SlotsFor) it falls back to hash mod n. It
// returns -1 when n is 0. It does not allocate.
func Pick(slots []uint16, n int, hash uint64) int {
	if n <= 0 {
		return -1
	}
	if len(slots) > 0 {
		return int(slots[hash%uint64(len(slots))])
	}
	return int(hash % uint64(n))
}

// Size returns the number of slots.
func (m *Table) Size() int { return len(m.slots) }

// Backends returns the number of backends the table was built for,
// including those of weight 0.
func (m *Table) Backends() int { return m.n }

// Slots returns the slot -> backend index array, for the snapshot's
// ClusterMaglev/LocalMaglev. It is shared: callers must not modify it.
func (m *Table) Slots() []uint16 { return m.slots }

// IsPrime reports whether n is prime (trial division; at most 2^15
// divisions for any uint32).
func IsPrime(n uint32) bool {
	if n < 2 {
		return false
	}
	if n%2 == 0 {
		return n == 2
	}
	for d := uint64(3); d*d <= uint64(n); d += 2 {
		if uint64(n)%d == 0 {
			return false
		}
	}
	return true
}
