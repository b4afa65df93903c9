package topk

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/xdpgate/xdpgate/internal/benchcpu"
	"github.com/xdpgate/xdpgate/internal/testaddr"
)

// zipf returns n draws of client indices 0..clients-1 with Zipf exponent
// s (index 0 the most frequent), from a fixed seed.
func zipf(n, clients int, s float64, seed uint64) []uint32 {
	r := rand.New(rand.NewPCG(seed, 1))
	z := rand.NewZipf(r, s, 1, uint64(clients-1))
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(z.Uint64())
	}
	return out
}

// client maps an index to an address: both families, so that 1.2.3.4 and
// its IPv6 neighbours share buckets.
func client(i uint32) netip.Addr { return testaddr.Mixed(i) }

// TestZipfTopK: on skewed traffic the sketch's top 20 is the true top 20,
// every estimate brackets the true count, and every client heavier than
// its bucket's bound N_b/Ways holds a counter (the guarantee).
func TestZipfTopK(t *testing.T) {
	for _, tc := range []struct {
		name    string
		s       float64
		clients int
	}{{"zipf1.1", 1.1, 100_000}, {"zipf1.5", 1.5, 10_000}, {"zipf2", 2, 1_000}} {
		t.Run(tc.name, func(t *testing.T) {
			sk := New(1e12, 42)
			truth := map[netip.Addr]uint64{}
			perBucket := [Buckets]uint64{}
			for _, i := range zipf(500_000, tc.clients, tc.s, 7) {
				a := client(i)
				w := uint64(1 + i%3) // weights other than 1, as sampled packets have
				truth[a] += w
				sk.Update(a, w, 0)
				perBucket[sk.bucketOf(a)] += w
			}
			rd := sk.Read(0)
			all := rd.Top(0)
			if len(all) > Buckets*Ways {
				t.Fatalf("Read holds %d counters, more than %d", len(all), Buckets*Ways)
			}
			held := map[netip.Addr]bool{}
			for _, e := range all {
				held[e.Client] = true
				if tr := truth[e.Client]; tr > e.Count || tr+e.Err < e.Count {
					t.Errorf("%v: true %d outside [Count-Err, Count] = [%d, %d]", e.Client, tr, e.Count-e.Err, e.Count)
				}
				if b := perBucket[sk.bucketOf(e.Client)]; e.Err > b/Ways {
					t.Errorf("%v: Err %d above its bucket's bound %d", e.Client, e.Err, b/Ways)
				}
			}
			for a, n := range truth {
				if b := perBucket[sk.bucketOf(a)]; n > b/Ways && !held[a] {
					t.Errorf("%v: true %d > bound %d but no counter", a, n, b/Ways)
				}
			}
			// A true top-20 client that beats the 21st by more than the
			// largest bound is in Top(20): nothing outside the true top 20
			// can be over-counted past it.
			top := map[netip.Addr]bool{}
			for _, e := range rd.Top(20) {
				top[e.Client] = true
			}
			var maxBound uint64
			for _, n := range perBucket {
				maxBound = max(maxBound, n/Ways)
			}
			order := trueTop(truth, 21)
			covered := 0
			for i, a := range order[:20] {
				if truth[a] <= truth[order[20]]+maxBound {
					break
				}
				covered++
				if !top[a] {
					t.Errorf("true #%d %v (%d) is not in Top(20)", i+1, a, truth[a])
				}
			}
			if covered < 3 {
				t.Errorf("the bound separates only %d of the true top 20: the case proves too little", covered)
			}
			t.Logf("%d of the true top 20 separated by the bound %d; N = %d", covered, maxBound, sum(perBucket[:]))
		})
	}
}

func trueTop(truth map[netip.Addr]uint64, k int) []netip.Addr {
	var as []netip.Addr
	for a := range truth {
		as = append(as, a)
	}
	slices.SortFunc(as, func(a, b netip.Addr) int {
		if truth[a] != truth[b] {
			if truth[a] > truth[b] {
				return -1
			}
			return 1
		}
		return a.Compare(b)
	})
	return as[:min(k, len(as))]
}

// TestMerge: per-queue sketches merged bracket the true totals
// ([Count-Err, Count+Spill]) and rank the heavy clients first.
func TestMerge(t *testing.T) {
	const queues = 4
	sks := make([]*Sketch, queues)
	for q := range sks {
		sks[q] = New(1e12, 9)
	}
	truth := map[netip.Addr]uint64{}
	for n, i := range zipf(200_000, 5_000, 1.3, 3) {
		a := client(i)
		truth[a]++
		sks[n*7%queues].Update(a, 1, 0) // a client's flows spread over queues
	}
	var rd Reading
	for _, s := range sks {
		rd.Merge(s.Read(0))
	}
	for _, e := range rd.Top(0) {
		if tr := truth[e.Client]; tr+e.Err < e.Count || tr > e.Count+e.Spill {
			t.Errorf("%v: true %d outside [%d, %d]", e.Client, tr, e.Count-e.Err, e.Count+e.Spill)
		}
	}
	want := trueTop(truth, 10)
	for i, e := range rd.Top(10) {
		if e.Client != want[i] {
			t.Errorf("merged Top(10)[%d] = %v, want %v", i, e.Client, want[i])
		}
	}
}

// TestWindows: a generation ends after the window; Read covers at most
// the last two, so a client that stopped disappears and one that started
// shows at once.
func TestWindows(t *testing.T) {
	const w = 100
	sk := New(w, 1)
	old, fresh := client(1), client(2)
	sk.Update(old, 50, 0)
	sk.Update(fresh, 1, 150) // second generation
	if got := counts(sk.Read(160)); got[old] != 50 || got[fresh] != 1 {
		t.Errorf("Read(160) = %v, want old 50, fresh 1", got)
	}
	sk.Update(fresh, 1, 260) // third: clears the first
	if got := counts(sk.Read(270)); got[old] != 0 || got[fresh] != 2 {
		t.Errorf("Read(270) = %v, want old gone, fresh 2", got)
	}
	if got := counts(sk.Read(600)); len(got) != 0 {
		t.Errorf("Read(600), long after the last update = %v, want nothing", got)
	}
}

func counts(r Reading) map[netip.Addr]uint64 {
	m := map[netip.Addr]uint64{}
	for _, e := range r.Top(0) {
		m[e.Client] = e.Count
	}
	return m
}

func TestNoAllocs(t *testing.T) {
	sk := New(1e9, 1)
	a := client(3)
	now := int64(0)
	if n := testing.AllocsPerRun(1000, func() { now += 1e6; sk.Update(a, 1, now) }); n != 0 {
		t.Errorf("Update allocates %v times, want 0", n)
	}
}

func BenchmarkUpdate(b *testing.B) {
	sk := New(1e12, 1)
	cs := zipf(1<<16, 10_000, 1.1, 1)
	as := make([]netip.Addr, len(cs))
	for i, c := range cs {
		as[i] = client(c)
	}
	b.ReportAllocs()
	stop := benchcpu.Thread(b)
	for i := 0; b.Loop(); i++ {
		sk.Update(as[i&(1<<16-1)], 1, 0)
	}
	stop()
}

func sum(xs []uint64) (n uint64) {
	for _, x := range xs {
		n += x
	}
	return n
}
