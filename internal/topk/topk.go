// Package topk finds the heaviest client addresses of a stream in bounded
// memory: a bucketed space-saving sketch (Metwally, Agrawal and El Abbadi,
// "Efficient Computation of Frequent and Top-k Elements in Data Streams",
// ICDT 2005), with one writer and any number of concurrent readers.
//
// # The sketch
//
// A Sketch has Buckets buckets of Ways counters each. An address hashes to
// one bucket; an update adds its weight to the address's counter there or,
// when the address has none, takes over the bucket's smallest counter c
// (an empty one first): the new counter starts at c+weight with error c.
// This is space-saving run independently in each bucket, so its guarantees
// hold per bucket, with N_b the total weight hashed to the bucket:
//
//   - a counter never under-counts, and over-counts by at most its Err:
//     Count-Err <= true weight <= Count;
//   - Err <= N_b/Ways, and every address whose true weight exceeds N_b/Ways
//     holds a counter.
//
// With a balanced hash N_b is about N/Buckets, so the error bound is about
// N/(Buckets*Ways) = N/128. Space-saving's classic single list needs a
// heap or linked buckets to find the smallest counter; here a bucket of
// four is scanned, so an update is one hash and at most four compares on
// one cache line (fingerprints and counts; the addresses are stored apart
// and written only when a counter changes hands), with no pointers and no
// allocation.
//
// # Windows
//
// Counts cover a recent window, so that a client that starts hammering a
// service stands out at once instead of disappearing under days of
// history: a Sketch holds two generations, the current one and the one
// before; an Update at least Window after the current generation started
// clears the older one and makes it current. Read sums the generations
// that started less than two windows before its now, so it covers between
// one and two windows of traffic.
//
// # Concurrency
//
// A Sketch is plain memory and not safe for concurrent use: its owner
// serialises Update and Read (package pipeline gives each queue its own
// sketches and hands them between the poller and readers with an ownership
// word, see pipeline/heavy.go). Readings of several sketches with the same
// seed merge (Reading.Merge).
package topk

import (
	"encoding/binary"
	"math"
	"net/netip"
	"slices"
)

// Sketch geometry: Buckets buckets of Ways counters per generation.
const (
	Buckets = 32
	Ways    = 4
)

// bucket is one bucket's hot part, one 64-byte cache line: per counter
// the address's 64-bit fingerprint (0: free), its count and its error. The
// addresses themselves, needed only to report, are in generation.addrs.
// Counts are 32-bit: a client would need 4 billion connections or sampled
// packets within one window to saturate (they saturate, never wrap).
type bucket struct {
	fp    [Ways]uint64
	count [Ways]uint32
	err   [Ways]uint32
}

// addr is a counter's address: its 16 bytes and family (4: IPv4, so that
// 1.2.3.4 and ::ffff:1.2.3.4 differ).
type addr struct {
	a0, a1 uint64
	fam    uint64
}

type generation struct {
	buckets [Buckets]bucket
	addrs   [Buckets][Ways]addr
	start   int64
}

// Sketch is a windowed top-k sketch of client addresses (see the package
// comment). The zero value is not usable: call New.
type Sketch struct {
	gen    [2]generation
	window int64
	seed   uint64
	cur    int // the current generation
}

// New returns a sketch whose generations last window (nanoseconds of the
// caller's clock), with hash seed seed. It is pointer-free: 9 KiB.
func New(window int64, seed uint64) *Sketch {
	s := &Sketch{window: max(window, 1), seed: seed}
	s.gen[0].start, s.gen[1].start = -1<<62, -1<<62
	return s
}

func words(a netip.Addr) addr {
	b := a.As16()
	fam := uint64(6)
	if a.Is4() {
		fam = 4
	}
	return addr{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), fam}
}

// hash is an address's 64-bit fingerprint, never 0: a multiply-xorshift
// mix of the seeded words (not a contract between processes, unlike
// maglev's hashes). Its low bits choose the bucket; counters match by the
// whole fingerprint (two addresses sharing one, odds 2^-64 per compare,
// would share a counter).
func (s *Sketch) hash(a addr) uint64 {
	h := (a.a0 ^ s.seed) * 0x9e3779b97f4a7c15
	h ^= a.a1 + a.fam + h>>29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	h *= 0x94d049bb133111eb
	h ^= h >> 29
	return h | 1<<63
}

// bucketOf returns the bucket of client.
func (s *Sketch) bucketOf(client netip.Addr) int { return int(s.hash(words(client)) % Buckets) }

// Update adds weight to client's count at now. It does not allocate.
func (s *Sketch) Update(client netip.Addr, weight uint64, now int64) {
	if !client.IsValid() || weight == 0 {
		return
	}
	g := &s.gen[s.cur]
	if now-g.start >= s.window {
		s.cur = 1 - s.cur
		g = &s.gen[s.cur]
		*g = generation{start: now}
	}
	a := words(client)
	fp := s.hash(a)
	bi := int(fp % Buckets)
	b := &g.buckets[bi]
	w := uint32(min(weight, math.MaxUint32))
	low := 0
	for i := range b.fp {
		if b.fp[i] == fp {
			b.count[i] = satAdd(b.count[i], w)
			return
		}
		if b.count[i] < b.count[low] {
			low = i
		}
	}
	base := b.count[low]
	b.fp[low], b.err[low], b.count[low] = fp, base, satAdd(base, w)
	g.addrs[bi][low] = a
}

func satAdd(a, b uint32) uint32 {
	if a > math.MaxUint32-b {
		return math.MaxUint32
	}
	return a + b
}

// Entry is one address's estimate: its true weight lies in
// [Count-Err, Count+Spill], where Err is space-saving's over-count and
// Spill bounds what sketches that hold no counter for it may have seen
// (Merge).
type Entry struct {
	Client netip.Addr
	Count  uint64
	Err    uint64
	Spill  uint64
}

// view is one bucket's counters as read, with the smallest count of a
// full bucket (the most an absent address can have had).
type view struct {
	e    []Entry
	full uint64
}

// readBucket appends bucket bi's counters to out and returns the most an
// address without a counter can have had: the smallest count if the bucket
// is full, else 0 (nothing was ever replaced).
func (g *generation) readBucket(bi int, out []Entry) ([]Entry, uint64) {
	b := &g.buckets[bi]
	minCount := uint64(math.MaxUint64)
	for i := range b.fp {
		if b.fp[i] == 0 {
			minCount = 0
			continue
		}
		minCount = min(minCount, uint64(b.count[i]))
		a := g.addrs[bi][i]
		out = append(out, Entry{Client: addrOf(a.a0, a.a1, a.fam), Count: uint64(b.count[i]), Err: uint64(b.err[i])})
	}
	return out, minCount
}

func addrOf(a0, a1, fam uint64) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a0)
	binary.BigEndian.PutUint64(b[8:], a1)
	a := netip.AddrFrom16(b)
	if fam == 4 {
		return a.Unmap()
	}
	return a
}

// Read returns the sketch's view at now: per bucket, the counters summed
// over the generations that started less than two windows before now,
// and the most an address without a counter can have had. It allocates.
func (s *Sketch) Read(now int64) Reading {
	var r Reading
	var scratch []Entry
	for gi := range s.gen {
		g := &s.gen[gi]
		if now-g.start >= 2*s.window {
			continue
		}
		for bi := range g.buckets {
			var spill uint64
			scratch, spill = g.readBucket(bi, scratch[:0])
			r.add(bi, scratch, spill)
		}
	}
	return r
}

// Reading is a sketch's content per bucket (Read), to be merged with other
// sketches' readings of the same seed (Merge).
type Reading struct {
	buckets [Buckets]view
}

// add merges one bucket's counters (of one generation or one sketch) into
// r: counts and errors of the same address add up; an address missing
// from one of the merged parts may have had up to that part's spill there.
func (r *Reading) add(bi int, es []Entry, spill uint64) {
	v := &r.buckets[bi]
	seen := make([]bool, len(v.e))
	for _, e := range es {
		i := slices.IndexFunc(v.e, func(x Entry) bool { return x.Client == e.Client })
		if i < 0 {
			e.Spill += v.full // absent from everything merged so far
			v.e = append(v.e, e)
			continue
		}
		v.e[i].Count += e.Count
		v.e[i].Err += e.Err
		v.e[i].Spill += e.Spill
		seen[i] = true
	}
	for i := range seen {
		if !seen[i] {
			v.e[i].Spill += spill
		}
	}
	v.full += spill
}

// Merge adds o, a reading of another sketch with the same seed (another
// queue's), to r. Space-saving summaries are mergeable this way (Agarwal et
// al., "Mergeable Summaries", PODS 2012): the bounds add up.
func (r *Reading) Merge(o Reading) {
	for bi := range o.buckets {
		r.add(bi, o.buckets[bi].e, o.buckets[bi].full)
	}
}

// Top returns the k entries with the largest counts, largest first (ties:
// by address), k <= 0 meaning all.
func (r Reading) Top(k int) []Entry {
	var out []Entry
	for bi := range r.buckets {
		out = append(out, r.buckets[bi].e...)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return a.Client.Compare(b.Client)
	})
	if k > 0 && len(out) > k {
		out = out[:k]
	}
	return out
}
