package maglev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/xdpgate/xdpgate/internal/testaddr"
)

// refMaglev is the slow, obviously-correct reference: the same algorithm
// with explicit permutation arrays and a per-backend turn count.
func refMaglev(backends []Backend, size uint32) []uint16 {
	m := int(size)
	var idx []int
	maxW := 0
	for i, b := range backends {
		if b.Weight > 0 {
			idx = append(idx, i)
			maxW = max(maxW, int(b.Weight))
		}
	}
	sort.Slice(idx, func(a, b int) bool { return backends[idx[a]].ID < backends[idx[b]].ID })
	perm := make([][]int, len(idx))
	for j, i := range idx {
		offset := int(mix64(backends[i].ID^seedOffset) % uint64(m))
		skip := int(mix64(backends[i].ID^seedSkip)%uint64(m-1)) + 1
		perm[j] = make([]int, m)
		for k := range m {
			perm[j][k] = (offset + k*skip) % m
		}
	}
	next := make([]int, len(idx))
	turns := make([]int, len(idx))
	table := make([]int, m)
	for i := range table {
		table[i] = -1
	}
	filled := 0
	for round := 0; filled < m; round++ {
		for j, i := range idx {
			if filled == m {
				break
			}
			// The (turns+1)-th turn comes once round·w >= turns·maxW.
			if round*int(backends[i].Weight) < turns[j]*maxW {
				continue
			}
			turns[j]++
			for table[perm[j][next[j]]] >= 0 {
				next[j]++
			}
			table[perm[j][next[j]]] = i
			next[j]++
			filled++
		}
	}
	out := make([]uint16, m)
	for i, v := range table {
		out[i] = uint16(v)
	}
	return out
}

// randBackends returns n backends with distinct IDs and weights in
// 0..maxWeight, at least one non-zero; maxWeight 0 means all weights 1.
func randBackends(r *rand.Rand, n, maxWeight int) []Backend {
	bs := make([]Backend, n)
	ids := map[uint64]bool{}
	for i := range bs {
		id := r.Uint64()
		if r.IntN(4) == 0 {
			id = uint64(r.IntN(1000)) // small IDs too: mix64 must spread them
		}
		for ids[id] {
			id++
		}
		ids[id] = true
		bs[i] = Backend{ID: id, Weight: 1}
		if maxWeight > 0 {
			bs[i].Weight = uint32(r.IntN(maxWeight + 1))
		}
	}
	if n > 0 && maxWeight > 0 {
		bs[r.IntN(n)].Weight = uint32(1 + r.IntN(maxWeight))
	}
	return bs
}

// idsOf maps a table to backend IDs, slot by slot.
func idsOf(t *Table, bs []Backend) []uint64 {
	out := make([]uint64, t.Size())
	for i, b := range t.Slots() {
		out[i] = bs[b].ID
	}
	return out
}

func mustBuild(t testing.TB, bs []Backend, size uint32) *Table {
	t.Helper()
	m, err := Build(bs, size)
	if err != nil {
		t.Fatalf("Build(%d backends, %d) = %v, want nil error", len(bs), size, err)
	}
	return m
}

func TestMaglevReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	sizes := []uint32{2, 3, 5, 13, 251, 1009, 4093}
	for range 300 {
		size := sizes[r.IntN(len(sizes))]
		n := 1 + r.IntN(min(int(size), 40))
		bs := randBackends(r, n, []int{1, 1, 3, 100}[r.IntN(4)])
		got := mustBuild(t, bs, size)
		want := refMaglev(bs, size)
		if !slices.Equal(got.Slots(), want) {
			t.Fatalf("Build(%v, %d).Slots() = %v, want %v", bs, size, got.Slots(), want)
		}
		if got.Backends() != n || got.Size() != int(size) {
			t.Fatalf("Build(%d backends, %d) has %d backends, %d slots", n, size, got.Backends(), got.Size())
		}
	}
}

func FuzzBuildMaglev(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 1, 5, 6, 7, 8, 2}, uint16(251))
	f.Add([]byte{1, 2, 3, 4, 0}, uint16(7))
	f.Add([]byte{1, 2, 3, 4, 1, 1, 2, 3, 4, 1}, uint16(13))
	f.Add([]byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, size16 uint16) {
		size := uint32(size16)
		var bs []Backend
		for ; len(data) >= 5; data = data[5:] {
			bs = append(bs, Backend{ID: uint64(binary.LittleEndian.Uint32(data)), Weight: uint32(data[4] % 5)})
		}
		m, err := Build(bs, size)
		if size == 0 {
			size = DefaultSize
		}
		if err != nil {
			if !errors.Is(err, ErrSize) && !errors.Is(err, ErrNoBackends) &&
				!errors.Is(err, ErrDuplicateBackend) && !errors.Is(err, ErrTooManyBackends) {
				t.Fatalf("Build = %v, want one of the sentinel errors", err)
			}
			return
		}
		if !IsPrime(size) {
			t.Fatalf("Build(size %d) succeeded, want ErrSize", size)
		}
		for i, b := range m.Slots() {
			if int(b) >= len(bs) || bs[b].Weight == 0 {
				t.Fatalf("slot %d names backend %d (of %d) with weight 0 or out of range", i, b, len(bs))
			}
		}
		if size <= 5000 && len(bs) <= 50 {
			if want := refMaglev(bs, size); !slices.Equal(m.Slots(), want) {
				t.Fatalf("Build(%v, %d) differs from the reference", bs, size)
			}
		}
	})
}

func TestMaglevErrors(t *testing.T) {
	one := []Backend{{ID: 1, Weight: 1}}
	many := make([]Backend, MaxBackends+1)
	for i := range many {
		many[i] = Backend{ID: uint64(i), Weight: 1}
	}
	for _, tc := range []struct {
		name string
		bs   []Backend
		size uint32
		want error
	}{
		{"default size", one, 0, nil},
		{"prime size", one, 251, nil},
		{"smallest prime", one, 2, nil},
		{"size 1", one, 1, ErrSize},
		{"not prime", one, 65536, ErrSize},
		{"odd composite", one, 65535, ErrSize},
		{"prime over the limit", one, 16777259, ErrSize},
		{"no backends", nil, 0, ErrNoBackends},
		{"all weights zero", []Backend{{ID: 1}, {ID: 2}}, 0, ErrNoBackends},
		{"duplicate id", []Backend{{ID: 1, Weight: 1}, {ID: 1, Weight: 2}}, 0, ErrDuplicateBackend},
		{"more backends than slots", []Backend{{ID: 1, Weight: 1}, {ID: 2, Weight: 1}, {ID: 3, Weight: 1}}, 2, ErrTooManyBackends},
		{"more than uint16 can index", many, 16777213, ErrTooManyBackends},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(tc.bs, tc.size)
			if !errors.Is(err, tc.want) {
				t.Errorf("Build(%d backends, %d) = %v, want %v", len(tc.bs), tc.size, err, tc.want)
			}
		})
	}
}

func TestMaglevPick(t *testing.T) {
	m := mustBuild(t, randBackends(rand.New(rand.NewPCG(1, 1)), 10, 1), 251)
	r := rand.New(rand.NewPCG(2, 2))
	for range 1000 {
		h := r.Uint64()
		// The snapshot package's arithmetic: table[hash % len(table)].
		if got, want := m.Pick(h), int(m.Slots()[h%uint64(len(m.Slots()))]); got != want {
			t.Fatalf("Pick(%#x) = %d, want %d", h, got, want)
		}
	}
	var zero *Table
	if got := zero.Pick(1); got != -1 {
		t.Errorf("(*Table)(nil).Pick(1) = %d, want -1", got)
	}
	if got := (&Table{}).Pick(1); got != -1 {
		t.Errorf("Table{}.Pick(1) = %d, want -1", got)
	}
}

func slotCounts(m *Table) []int {
	c := make([]int, m.Backends())
	for _, b := range m.Slots() {
		c[b]++
	}
	return c
}

func TestMaglevBalance(t *testing.T) {
	for _, tc := range []struct {
		n    int
		size uint32
	}{
		{100, DefaultSize},
		{1000, DefaultSize},
		{7, 251},
	} {
		t.Run(fmt.Sprintf("%d backends, %d slots", tc.n, tc.size), func(t *testing.T) {
			m := mustBuild(t, randBackends(rand.New(rand.NewPCG(5, uint64(tc.n))), tc.n, 0), tc.size)
			c := slotCounts(m)
			lo, hi := slices.Min(c), slices.Max(c)
			if lo == 0 || float64(hi)/float64(lo) > 1.05 {
				t.Errorf("max/min slots per backend = %d/%d, want <= 1.05", hi, lo)
			}
			// Maglev's guarantee: floor(M/N) or ceil(M/N) each.
			if want := int(tc.size) / tc.n; lo < want || hi > want+1 {
				t.Errorf("slots per backend in [%d, %d], want in [%d, %d]", lo, hi, want, want+1)
			}
		})
	}
}

func TestMaglevWeights(t *testing.T) {
	bs := []Backend{{ID: 10, Weight: 1}, {ID: 20, Weight: 2}, {ID: 30, Weight: 3}, {ID: 40, Weight: 4}, {ID: 50, Weight: 0}}
	m := mustBuild(t, bs, DefaultSize)
	c := slotCounts(m)
	for i, b := range bs {
		got := float64(c[i]) / DefaultSize
		want := float64(b.Weight) / 10
		if got < want-0.005 || got > want+0.005 {
			t.Errorf("share of backend %d (weight %d) = %.4f, want %.4f ± 0.005", i, b.Weight, got, want)
		}
	}
	// Many backends, two weight classes: per-backend ratio about 2.
	r := rand.New(rand.NewPCG(9, 9))
	bs = randBackends(r, 100, 0)
	for i := range bs {
		bs[i].Weight = uint32(1 + i%2)
	}
	c = slotCounts(mustBuild(t, bs, DefaultSize))
	var sum [2]int
	for i, n := range c {
		sum[i%2] += n
	}
	if ratio := float64(sum[1]) / float64(sum[0]); ratio < 1.95 || ratio > 2.05 {
		t.Errorf("slots of weight-2 / weight-1 backends = %.3f, want 2 ± 0.05", ratio)
	}
	// Extreme weights: no overflow; every backend of non-zero weight takes
	// the first round's turn, so the light one keeps exactly one slot.
	c = slotCounts(mustBuild(t, []Backend{{ID: 1, Weight: 1<<32 - 1}, {ID: 2, Weight: 1}}, DefaultSize))
	if c[0] != DefaultSize-1 || c[1] != 1 {
		t.Errorf("slots with weights 2^32-1 and 1 = %v, want [%d 1]", c, DefaultSize-1)
	}
	// Weight 0 drains: the table is the one built without the backend.
	withZero := mustBuild(t, []Backend{{ID: 1, Weight: 1}, {ID: 2, Weight: 0}, {ID: 3, Weight: 1}}, 251)
	without := mustBuild(t, []Backend{{ID: 1, Weight: 1}, {ID: 3, Weight: 1}}, 251)
	if got, want := idsOf(withZero, []Backend{{ID: 1}, {ID: 2}, {ID: 3}}), idsOf(without, []Backend{{ID: 1}, {ID: 3}}); !slices.Equal(got, want) {
		t.Errorf("table with a weight-0 backend differs from the table without it")
	}
}

// TestMaglevGatewaysAgree: two gateways that list the same endpoints in a
// different order choose the same endpoint for every client.
func TestMaglevGatewaysAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	var a []Backend
	for i := range 50 {
		ap := netip.AddrPortFrom(testaddr.V4(uint32(1000+i)), 8080)
		a = append(a, Backend{ID: BackendID(ap), Weight: uint32(1 + i%3)})
	}
	b := slices.Clone(a)
	r.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
	ma, mb := mustBuild(t, a, 0), mustBuild(t, b, 0)
	if !slices.Equal(idsOf(ma, a), idsOf(mb, b)) {
		t.Fatalf("tables of the same backends in different order assign slots differently")
	}
	for i := range uint32(10000) {
		h := HashClientIP(testaddr.Mixed(i))
		if ga, gb := a[ma.Pick(h)].ID, b[mb.Pick(h)].ID; ga != gb {
			t.Fatalf("client %v: gateway A picks %#x, gateway B %#x", testaddr.Mixed(i), ga, gb)
		}
	}
}

// TestMaglevDisruption: removing one of N backends moves about 1/N of
// the slots (the removed backend's own share) plus a little, and adding
// one moves about 1/(N+1) plus a little. Maglev is not minimally
// disruptive (NSDI'16 5.3); the extra stays under 1% of slots while
// M > 100·N (Cilium's sizing rule), which is the bound asserted here.
func TestMaglevDisruption(t *testing.T) {
	for _, n := range []int{10, 100, 500} {
		t.Run(fmt.Sprintf("%d backends", n), func(t *testing.T) {
			r := rand.New(rand.NewPCG(31, uint64(n)))
			bs := randBackends(r, n, 0)
			before := idsOf(mustBuild(t, bs, DefaultSize), bs)
			k := r.IntN(n)
			removed := slices.Delete(slices.Clone(bs), k, k+1)
			after := idsOf(mustBuild(t, removed, DefaultSize), removed)
			moved, movedOther := 0, 0
			for i := range before {
				if before[i] != after[i] {
					moved++
					if before[i] != bs[k].ID {
						movedOther++
					}
				}
			}
			frac := float64(moved) / DefaultSize
			other := float64(movedOther) / DefaultSize
			t.Logf("remove 1 of %d: %.4f of slots moved (%.4f not of the removed backend); 1/N = %.4f", n, frac, other, 1/float64(n))
			if frac > 1/float64(n)+0.01 || other > 0.01 {
				t.Errorf("removing 1 of %d moved %.4f of slots (%.4f of others'), want <= 1/N + 0.01 = %.4f (<= 0.01)", n, frac, other, 1/float64(n)+0.01)
			}
			added := append(slices.Clone(bs), Backend{ID: r.Uint64(), Weight: 1})
			after = idsOf(mustBuild(t, added, DefaultSize), added)
			moved = 0
			for i := range before {
				if before[i] != after[i] {
					moved++
				}
			}
			frac = float64(moved) / DefaultSize
			t.Logf("add 1 to %d: %.4f of slots moved; 1/(N+1) = %.4f", n, frac, 1/float64(n+1))
			if frac > 1/float64(n+1)+0.01 {
				t.Errorf("adding 1 to %d moved %.4f of slots, want <= 1/(N+1) + 0.01 = %.4f", n, frac, 1/float64(n+1)+0.01)
			}
		})
	}
}

// TestMaglevGolden pins one table: gateways running different xdpgate
// versions must build the same tables.
func TestMaglevGolden(t *testing.T) {
	var bs []Backend
	for i := range 5 {
		bs = append(bs, Backend{ID: BackendID(netip.AddrPortFrom(testaddr.V4(uint32(256+i)), 8080)), Weight: uint32(1 + i%2)})
	}
	m := mustBuild(t, bs, 251)
	b := make([]byte, 0, 2*m.Size())
	for _, s := range m.Slots() {
		b = binary.LittleEndian.AppendUint16(b, s)
	}
	if got, want := xxhash.Sum64(b), uint64(0xcb64f8819689b16f); got != want {
		t.Errorf("xxhash of the golden table = %#x, want %#x (first slots %v)", got, want, m.Slots()[:16])
	}
}

func TestIsPrime(t *testing.T) {
	const n = 200000
	composite := make([]bool, n)
	for i := 2; i*i < n; i++ {
		if !composite[i] {
			for j := i * i; j < n; j += i {
				composite[j] = true
			}
		}
	}
	for i := range uint32(n) {
		if got, want := IsPrime(i), i >= 2 && !composite[i]; got != want {
			t.Fatalf("IsPrime(%d) = %v, want %v", i, got, want)
		}
	}
	for _, tc := range []struct {
		n    uint32
		want bool
	}{
		{65537, true}, {655373, true}, {16777213, true}, {4294967291, true},
		{4294967279, true}, {4294967295, false}, {65521 * 65521, false}, {65537 * 65521, false},
	} {
		if got := IsPrime(tc.n); got != tc.want {
			t.Errorf("IsPrime(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}
