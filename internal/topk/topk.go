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
// four is scanned, so an update is one hash and at most four compares,
// with no pointers and no allocation.
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
	"net/netip"
	"slices"
)

// Sketch geometry: Buckets buckets of Ways counters per generation.
const (
	Buckets = 32
	Ways    = 4
)

// counter is one address's count. fam is 0 for a free counter, 4 for IPv4
// and 6 for IPv6 (so 1.2.3.4 and ::ffff:1.2.3.4 differ).
type counter struct {
	a0, a1, fam uint64
	count, err  uint64
}

type bucket [Ways]counter

type generation struct {
	start   int64
	buckets [Buckets]bucket
}

// Sketch is a windowed top-k sketch of client addresses (see the package
// comment). The zero value is not usable: call New.
type Sketch struct {
	window int64
	seed   uint64
	cur    int // the current generation
	gen    [2]generation
}

// New returns a sketch whose generations last window (nanoseconds of the
// caller's clock), with hash seed seed. It is pointer-free: 10 KiB.
func New(window int64, seed uint64) *Sketch {
	s := &Sketch{window: max(window, 1), seed: seed}
	s.gen[0].start, s.gen[1].start = -1<<62, -1<<62
	return s
}

func words(a netip.Addr) (a0, a1, fam uint64) {
	b := a.As16()
	fam = 6
	if a.Is4() {
		fam = 4
	}
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), fam
}

// bucketOf hashes an address to a bucket: a multiply-xorshift mix of the
// seeded words (not a contract between processes, unlike maglev's hashes).
func (s *Sketch) bucketOf(a0, a1, fam uint64) int {
	h := (a0 ^ s.seed) * 0x9e3779b97f4a7c15
	h ^= a1 + fam + h>>29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return int(h % Buckets)
}

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
	a0, a1, fam := words(client)
	b := &g.buckets[s.bucketOf(a0, a1, fam)]
	low := 0
	for i := range b {
		c := &b[i]
		if c.a0 == a0 && c.a1 == a1 && c.fam == fam {
			c.count += weight
			return
		}
		if c.count < b[low].count {
			low = i
		}
	}
	c := &b[low]
	*c = counter{a0: a0, a1: a1, fam: fam, err: c.count, count: c.count + weight}
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

// readBucket appends a bucket's counters to out and returns the most an
// address without a counter can have had: the smallest count if the bucket
// is full, else 0 (nothing was ever replaced).
func readBucket(b *bucket, out []Entry) ([]Entry, uint64) {
	minCount := ^uint64(0)
	for i := range b {
		c := &b[i]
		if c.fam == 0 {
			minCount = 0
			continue
		}
		minCount = min(minCount, c.count)
		out = append(out, Entry{Client: addrOf(c.a0, c.a1, c.fam), Count: c.count, Err: c.err})
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
			scratch, spill = readBucket(&g.buckets[bi], scratch[:0])
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
