package conntrack

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/xdpgate/xdpgate/internal/owned"
	"github.com/xdpgate/xdpgate/nat"
)

// Record sizes in bytes, for MemoryBytes (TestRecordSizes checks them
// against unsafe.Sizeof).
const (
	rec4Size      = 88
	rec6Size      = 144
	fragEntrySize = 120
)

// Index layout constants (see doc.go).
const (
	bucketWords  = 8                        // words per bucket: one 64-byte cache line
	bucketSlots  = 7                        // entry slots per bucket; word 0 is the bucket header
	hdrLock      = 1                        // bucket header: insert spin bit
	hdrOverflow  = 1 << 32                  // bucket header: one entry homed here stored in the other bucket
	hdrUnderflow = ^uint64(hdrOverflow - 1) // adding it subtracts hdrOverflow
	indexSlack   = 4                        // index slots per flow: 2 entries at load <= 1/2
	idxMask      = 1<<30 - 1                // record index bits of an entry or Handle
	dirBit       = 1 << 30                  // entry: reply direction
	fam6Bit      = 1 << 31                  // entry: IPv6 record pool
	tagMask      = 0xffffffff00000000       // entry: hash tag
	keyMask      = tagMask | fam6Bit
	freeShards   = 64 // free-list shards per family (fewer for tiny tables)
	statStripes  = 16 // striped statistics counters
)

// Table is the connection-tracking table. All methods are safe for
// concurrent use by any number of goroutines.
//
// What guards what:
//   - index slots: atomic words, written only by CAS (0 -> entry by an
//     inserter, entry -> 0 by the goroutine that claimed the flow's
//     deletion). Readers load slots without locks.
//   - index bucket headers: an insert spin bit, taken only by Insert for
//     the home buckets of the two tuples it inserts (in bucket order), so
//     that two inserters of the same tuple are serialised and a tuple has
//     at most one live flow; readers, Touch, deletion and sweeping never
//     take it. The high 32 bits count the entries homed in this bucket but
//     stored in their second bucket (atomic adds), so that lookups skip the
//     second bucket when it is 0.
//   - r4, r6: records; their fields are atomics validated by the generation
//     in recHdr.ctl (a seqlock whose writer is whoever owns the record: the
//     allocator while it is free, the deleter that won the CAS on ctl).
//   - free4, free6: lock-free Treiber stacks with versioned heads.
//   - stats: striped atomic counters.
type Table struct {
	key   hashKey
	nb    uint64          // buckets
	index []atomic.Uint64 // nb buckets of bucketWords: header, then slots

	r4    []rec4
	r6    []rec6
	free4 freePool
	free6 freePool

	timeouts [NumStates]int64
	unack    int64 // Timeouts.Unacknowledged
	embryo   int64 // Timeouts.Embryonic
	touchRes int64
	// pressureUntil: until this time (the callers' clock) the table is
	// under pressure (Pressure) and unassured half-open TCP flows time
	// out after Timeouts.Embryonic. Written rarely (at most about once a
	// second), read by every expiry check.
	pressureUntil atomic.Int64
	cfg           Config

	cursor atomic.Uint64 // Sweep position over [0, len(r4)+len(r6))
	// hand is the eviction hand's position in r4 and r6 (hand.go): records
	// examined so far, modulo the family's capacity.
	hand [2]atomic.Uint64

	stats [statStripes]statStripe
	frags fragTable
}

// New allocates a table of the configured capacity: a few large
// pointer-free arrays, sized once. Memory per IPv4 flow of capacity is
// about 129 bytes (88 record, 36.6 index, 4 free list).
func New(cfg Config) (*Table, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new conntrack table: %w", err)
	}
	return newTable(cfg, make([]rec4, cfg.MaxFlows), make([]rec6, cfg.MaxFlows6), nil)
}

// newTable builds a table over the record arrays r4 and r6 (zeroed, or
// adopted: then free4 and free6 hold only the records free says are free,
// and the index is rebuilt by the caller). cfg has its defaults applied.
func newTable(cfg Config, r4 []rec4, r6 []rec6, free func(fam6 bool, idx uint32) bool) (*Table, error) {
	t := &Table{cfg: cfg, touchRes: int64(cfg.TouchResolution)}
	if cfg.Seed != 0 {
		s := cfg.Seed
		for i := range t.key {
			s += 0x9e3779b97f4a7c15
			t.key[i] = mix(s, s^0xa0761d6478bd642f) | 1
		}
	} else {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("new conntrack table: hash seed: %w", err)
		}
		for i := range t.key {
			t.key[i] = binary.LittleEndian.Uint64(b[8*i:]) | 1
		}
	}
	flows := uint64(cfg.MaxFlows) + uint64(cfg.MaxFlows6)
	t.nb = max(2, (flows*indexSlack+bucketSlots-1)/bucketSlots)
	t.index = make([]atomic.Uint64, t.nb*bucketWords)
	t.r4, t.r6 = r4, r6
	if free == nil {
		free = func(bool, uint32) bool { return true }
	}
	t.free4.init(cfg.MaxFlows, func(i uint32) bool { return free(false, i) })
	t.free6.init(cfg.MaxFlows6, func(i uint32) bool { return free(true, i) })
	to := cfg.Timeouts
	t.timeouts = [NumStates]int64{
		StateTCPNone: int64(to.SynSent), StateSynSent: int64(to.SynSent),
		StateSynRecv: int64(to.SynRecv), StateEstablished: int64(to.Established),
		StateFinWait: int64(to.FinWait), StateCloseWait: int64(to.CloseWait),
		StateLastAck: int64(to.LastAck), StateTimeWait: int64(to.TimeWait),
		StateClose: int64(to.Close), StateUDPUnreplied: int64(to.UDPUnreplied),
		StateUDPReplied: int64(to.UDPReplied), StateICMP: int64(to.ICMP),
		StateOther: int64(to.Other),
	}
	t.unack, t.embryo = int64(to.Unacknowledged), int64(to.Embryonic)
	t.pressureUntil.Store(-1 << 62)
	t.frags.init(cfg.MaxFragments, int64(to.Fragment))
	return t, nil
}

// Capacity returns the IPv4 and IPv6 flow capacities.
func (t *Table) Capacity() (v4, v6 int) { return len(t.r4), len(t.r6) }

// MemoryBytes returns the bytes held by the table's arrays (records, index,
// including bucket headers, free lists, fragment table).
func (t *Table) MemoryBytes() int64 {
	n := int64(len(t.r4))*rec4Size + int64(len(t.r6))*rec6Size +
		int64(len(t.index))*8 +
		int64(len(t.free4.next)+len(t.free6.next))*4 +
		int64(len(t.frags.slots))*fragEntrySize
	return n
}

func (t *Table) hdr(fam6 bool, idx uint32) *recHdr {
	if fam6 {
		return &t.r6[idx].recHdr
	}
	return &t.r4[idx].recHdr
}

func (t *Table) ctr(fam6 bool, idx uint32) *recCounters {
	if fam6 {
		return &t.r6[idx].recCounters
	}
	return &t.r4[idx].recCounters
}

// hdrChecked is hdr for indices from outside (handles): nil when out of
// range.
func (t *Table) hdrChecked(fam6 bool, idx uint32) *recHdr {
	if fam6 {
		if int(idx) < len(t.r6) {
			return &t.r6[idx].recHdr
		}
		return nil
	}
	if int(idx) < len(t.r4) {
		return &t.r4[idx].recHdr
	}
	return nil
}

func (t *Table) loadTuple(fam6 bool, idx uint32, d Dir, proto nat.Proto) Tuple {
	if fam6 {
		return t.r6[idx].t[d&1].load(proto)
	}
	return t.r4[idx].t[d&1].load(proto)
}

func (t *Table) pool(fam6 bool) *freePool {
	if fam6 {
		return &t.free6
	}
	return &t.free4
}

// bucketOf maps the low 32 bits of a hash onto [0, nb) (Lemire's
// multiply-shift reduction; nb need not be a power of two).
func (t *Table) bucketOf(h uint64) uint64 { return uint64(uint32(h)) * t.nb >> 32 }

// entryKey is the tag and family part of an index entry for hash h.
func entryKey(h uint64, fam6 bool) uint64 {
	k := (h>>32 | 1) << 32
	if fam6 {
		k |= fam6Bit
	}
	return k
}

// buckets returns the two candidate buckets of hash h (two-choice
// hashing): b1 from the low 32 bits, b2 from a remix of the high ones,
// never equal to b1. b1 is also the tuple's home bucket for the insert
// spin bit.
func (t *Table) buckets(h uint64) (b1, b2 uint64) {
	b1 = uint64(uint32(h)) * t.nb >> 32
	b2 = ((h ^ h>>29) * 0x9e3779b97f4a7c15 >> 32) * t.nb >> 32
	if b2 == b1 {
		if b2++; b2 == t.nb {
			b2 = 0
		}
	}
	return b1, b2
}

// bucket returns the entry slots of bucket b.
func (t *Table) bucket(b uint64) []atomic.Uint64 {
	return t.index[b*bucketWords+1 : b*bucketWords+bucketWords : b*bucketWords+bucketWords]
}

// header returns the header word of bucket b.
func (t *Table) header(b uint64) *atomic.Uint64 { return &t.index[b*bucketWords] }

func (t *Table) lock(b uint64) {
	hd := t.header(b)
	for spins := 0; ; spins++ {
		if h := hd.Load(); h&hdrLock == 0 && hd.CompareAndSwap(h, h|hdrLock) {
			return
		}
		if spins >= 16 {
			// The holder may have been descheduled: let it run.
			runtime.Gosched()
		}
	}
}

func (t *Table) unlock(b uint64) { t.header(b).And(^uint64(hdrLock)) }

// freePool is a set of per-shard lock-free stacks of free record indices.
// Shard heads pack a version (high 32 bits, against ABA) and index+1 (low
// 32 bits, 0 = empty); next[i] is index+1 of the record below i.
type freePool struct {
	shards    []freeShard
	next      []atomic.Uint32
	shardSize uint32
}

type freeShard struct {
	head atomic.Uint64
	_    [56]byte // one cache line per shard head
}

// init makes the stacks of the records in [0, n) for which free is true.
func (p *freePool) init(n int, free func(uint32) bool) {
	if n == 0 {
		return
	}
	ns := min(freeShards, max(1, n/64))
	p.shardSize = uint32((n + ns - 1) / ns)
	ns = (n + int(p.shardSize) - 1) / int(p.shardSize)
	p.shards = make([]freeShard, ns)
	p.next = make([]atomic.Uint32, n)
	for s := range p.shards {
		lo := uint32(s) * p.shardSize
		hi := min(lo+p.shardSize, uint32(n))
		top := uint32(0) // index+1 of the stack's top, 0: empty
		for i := hi; i > lo; i-- {
			if free(i - 1) {
				p.next[i-1].Store(top)
				top = i
			}
		}
		p.shards[s].head.Store(uint64(top))
	}
}

// pop takes a free index, trying shard hint first; ok is false when every
// shard is empty.
func (p *freePool) pop(hint uint32) (uint32, bool) {
	n := uint32(len(p.shards))
	if n == 0 {
		return 0, false
	}
	s := uint32(uint64(hint) * uint64(n) >> 32)
	for range n {
		sh := &p.shards[s].head
		for {
			h := sh.Load()
			top := uint32(h)
			if top == 0 {
				break
			}
			nx := p.next[top-1].Load()
			if sh.CompareAndSwap(h, (h>>32+1)<<32|uint64(nx)) {
				return top - 1, true
			}
		}
		if s++; s == n {
			s = 0
		}
	}
	return 0, false
}

// push returns idx to its shard.
func (p *freePool) push(idx uint32) {
	sh := &p.shards[idx/p.shardSize].head
	for {
		h := sh.Load()
		owned.Set32(&p.next[idx], uint32(h)) // idx is ours until the CAS publishes it
		if sh.CompareAndSwap(h, (h>>32+1)<<32|uint64(idx+1)) {
			return
		}
	}
}
