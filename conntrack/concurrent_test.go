package conntrack

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/nat"
)

// checkInvariants checks a quiescent table: every live flow is found by
// both tuples, no tuple belongs to two flows, the index holds exactly two
// entries per live flow (no leaked slots), the free lists hold exactly the
// free records, and Stats agrees.
func checkInvariants(t *testing.T, tb *Table, now int64) {
	t.Helper()
	tuples := map[Tuple]Handle{}
	live, live6 := 0, 0
	tb.Range(func(e *Entry) bool {
		live++
		if e.Orig.Family == IPv6 {
			live6++
		}
		for _, k := range []Tuple{e.Orig, e.Reply} {
			if h, dup := tuples[k]; dup {
				t.Fatalf("tuple %v used by %x and %x", k, h, e.Handle)
			}
			tuples[k] = e.Handle
		}
		return true
	})
	for k, h := range tuples {
		f, ok := tb.Lookup(k, now)
		if !ok || f.Handle != h {
			t.Fatalf("Lookup(%v) = %x, %v, want %x, true", k, f.Handle, ok, h)
		}
	}
	slots := 0
	for b := range tb.nb {
		w := tb.bucket(b)
		for i := range w {
			if w[i].Load() != 0 {
				slots++
			}
		}
	}
	if slots != 2*live {
		t.Fatalf("index holds %d entries, want %d (2 per live flow)", slots, 2*live)
	}
	// Bucket headers: unlocked, overflow counts exact.
	overflow := make([]uint64, tb.nb)
	tb.Range(func(e *Entry) bool {
		for d, k := range []Tuple{e.Orig, e.Reply} {
			h := k.hash(&tb.key)
			b1, b2 := tb.buckets(h)
			want := entryKey(h, e.Handle.fam6()) | uint64(e.Handle.idx())
			if d == 1 {
				want |= dirBit
			}
			w := tb.bucket(b2)
			for i := range w {
				if w[i].Load() == want {
					overflow[b1]++
				}
			}
		}
		return true
	})
	for b := range tb.nb {
		if h := tb.header(b).Load(); h != overflow[b]<<32 {
			t.Fatalf("bucket %d header = %#x, want %#x (unlocked, %d overflowed)", b, h, overflow[b]<<32, overflow[b])
		}
	}
	if got, want := freeCount(&tb.free4), len(tb.r4)-(live-live6); got != want {
		t.Fatalf("IPv4 free records = %d, want %d", got, want)
	}
	if got, want := freeCount(&tb.free6), len(tb.r6)-live6; got != want {
		t.Fatalf("IPv6 free records = %d, want %d", got, want)
	}
	if st := tb.Stats(); st.Entries != int64(live) || st.Entries6 != int64(live6) {
		t.Fatalf("Stats().Entries = %d/%d, want %d/%d", st.Entries, st.Entries6, live, live6)
	}
	for _, n := range tb.Stats().States {
		if n < 0 {
			t.Fatalf("Stats().States = %v: negative", tb.Stats().States)
		}
	}
}

func freeCount(p *freePool) int {
	n := 0
	for s := range p.shards {
		for top := uint32(p.shards[s].head.Load()); top != 0; top = p.next[top-1].Load() {
			n++
		}
	}
	return n
}

// TestConcurrentStress runs inserters, readers, touchers, deleters and
// sweepers at once on a small universe of tuples (so they collide), for a
// bounded number of iterations, then checks the invariants. Run it with
// -race.
func TestConcurrentStress(t *testing.T) {
	iters := 20000
	if testing.Short() {
		iters = 4000
	}
	// A table much smaller than the universe forces eviction too.
	tb := newTestTable(t, Config{MaxFlows: 512, MaxFlows6: 128, TouchResolution: 1})
	var clock struct {
		sync.Mutex
		now int64
	}
	nowFn := func() int64 { clock.Lock(); defer clock.Unlock(); return clock.now }
	var wg sync.WaitGroup
	worker := func(seed uint64, fn func(r *rand.Rand, now int64)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 99))
			for range iters {
				fn(r, nowFn())
			}
		}()
	}
	src := func(r *rand.Rand) opSource { return randSource{r} }
	for g := range 3 {
		worker(uint64(g), func(r *rand.Rand, now int64) {
			orig := randTuple(src(r))
			f, res := tb.Insert(orig, randXlate(src(r), orig), 1, uint32(1+r.IntN(5)), now)
			if res == Inserted || res == Exists {
				if f.Dir != Original {
					t.Errorf("Insert(%v) dir = %v, want original", orig, f.Dir)
				}
				tb.Touch(f.Handle, Dir(r.IntN(2)), TCPSyn|TCPAck, 100, now)
			}
		})
	}
	for g := range 2 {
		worker(uint64(10+g), func(r *rand.Rand, now int64) {
			k := randTuple(src(r))
			if f, ok := tb.Lookup(k, now); ok {
				tb.Touch(f.Handle, f.Dir, TCPAck|TCPFin, 60, now)
				if r.IntN(8) == 0 {
					tb.Delete(f.Handle)
				}
			}
		})
	}
	worker(20, func(r *rand.Rand, now int64) {
		switch r.IntN(50) {
		case 0:
			tb.DeleteByEndpoint(uint32(1 + r.IntN(5)))
		case 1:
			tb.DeleteUDPByServicePort(1, func(ep uint32) bool { return ep%2 == 0 })
		default:
			tb.Sweep(now, 64)
		}
		tb.Range(func(e *Entry) bool { return r.IntN(100) != 0 })
		if r.IntN(100) == 0 {
			clock.Lock()
			clock.now += int64(r.IntN(40)) * int64(time.Second)
			clock.Unlock()
		}
	})
	worker(30, func(r *rand.Rand, now int64) {
		k := MakeFragKey(randTuple(src(r)).SrcAddr(), randTuple(src(r)).DstAddr(), nat.ProtoUDP, uint32(r.IntN(16)))
		if r.IntN(2) == 0 {
			tb.RememberFragment(k, Flow{Endpoint: k.ID}, now)
		} else if f, ok := tb.LookupFragment(k, now); ok && f.Endpoint != k.ID {
			t.Errorf("LookupFragment(%v) endpoint = %d, want %d", k, f.Endpoint, k.ID)
		}
	})
	wg.Wait()
	checkInvariants(t, tb, nowFn())
	if st := tb.Stats(); st.Inserts == 0 || st.Evictions+st.Expiries+st.Deletes == 0 {
		t.Fatalf("Stats() = %+v: stress did not exercise insert and removal", st)
	}
}

// TestRacingInsertSameTuple: goroutines inserting the same original tuple
// with different translations at the same moment must all get the same
// flow, exactly one of them Inserted.
func TestRacingInsertSameTuple(t *testing.T) {
	rounds := 2000
	if testing.Short() {
		rounds = 300
	}
	const racers = 4
	tb := newTestTable(t, Config{MaxFlows: 1024})
	orig := tup4(1, 2, 1000, 80, nat.ProtoTCP)
	for round := range rounds {
		var start, done sync.WaitGroup
		start.Add(1)
		var flows [racers]Flow
		var res [racers]InsertResult
		for g := range racers {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				flows[g], res[g] = tb.Insert(orig, xlate4(uint32(10+g), 8080), 1, uint32(10+g), int64(round))
			}()
		}
		start.Done()
		done.Wait()
		inserted := 0
		for g := range racers {
			if res[g] == Inserted {
				inserted++
			}
			if flows[g].Handle != flows[0].Handle || flows[g].Rewrite != flows[0].Rewrite || flows[g].Endpoint != flows[0].Endpoint {
				t.Fatalf("round %d: racer %d got %+v (%v), racer 0 got %+v (%v)", round, g, flows[g], res[g], flows[0], res[0])
			}
		}
		if inserted != 1 {
			t.Fatalf("round %d: %d racers got Inserted (%v), want 1", round, inserted, res)
		}
		if !tb.Delete(flows[0].Handle) {
			t.Fatalf("round %d: Delete(winner) = false", round)
		}
	}
	checkInvariants(t, tb, 0)
}

// TestNoTornReads recycles a handful of records as fast as possible while
// readers look the flows up: every hit must be internally consistent (the
// endpoint, the rewrite and the looked-up tuple belong to one flow), which
// is what the generation check guarantees.
func TestNoTornReads(t *testing.T) {
	iters := 100000
	if testing.Short() {
		iters = 5000
	}
	tb := newTestTable(t, Config{MaxFlows: 8, MaxFlows6: -1})
	const flows = 32
	key := func(i int) Tuple { return tup4(uint32(i), 500, uint16(1000+i), 80, nat.ProtoUDP) }
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range iters {
				i := r.IntN(flows)
				f, res := tb.Insert(key(i), xlate4(uint32(600+i), uint16(2000+i)), 1, uint32(i), 0)
				if (res == Inserted || res == Exists) && r.IntN(2) == 0 {
					tb.Delete(f.Handle)
				}
			}
		}()
	}
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 2))
			for range iters {
				i := r.IntN(flows)
				k := key(i)
				if r.IntN(2) == 0 {
					k = xlate4(uint32(600+i), uint16(2000+i)).Reply(k)
				}
				f, ok := tb.Lookup(k, 0)
				if !ok {
					continue
				}
				wantRw := xlate4(uint32(600+i), uint16(2000+i)).Reply(key(i)).Reverse()
				if f.Dir == Reply {
					wantRw = key(i).Reverse()
				}
				if f.Endpoint != uint32(i) || f.Rewrite != wantRw {
					t.Errorf("Lookup(%v) = endpoint %d rewrite %v, want %d %v (torn read)", k, f.Endpoint, f.Rewrite, i, wantRw)
					return
				}
				if e, ok := tb.Get(f.Handle); ok && (e.Endpoint != uint32(i) || e.Orig != key(i)) {
					t.Errorf("Get(%x) = %+v, want flow %d (torn read)", f.Handle, e, i)
					return
				}
			}
		}()
	}
	wg.Wait()
	checkInvariants(t, tb, 0)
}
