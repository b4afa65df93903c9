package affinity

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xdpgate/xdpgate/internal/testaddr"
)

// stressKey maps a key index to (service port, client): index =
// (svc-1)*clientsPerSvc + client number.
func stressKey(idx, clientsPerSvc uint32) (uint32, netip.Addr) {
	return idx/clientsPerSvc + 1, testaddr.Mixed(idx % clientsPerSvc)
}

// TestConcurrentStress runs lookups, pins, sweeps, deletes and ranges at
// once on a small, crowded table (evictions, tombstones, re-pins of hot
// keys) for a bounded number of operations. Every endpoint ID encodes the
// key it was pinned for, so a torn read (one key's address with another's
// endpoint) is detected. Run it with -race.
func TestConcurrentStress(t *testing.T) {
	for _, tc := range []struct {
		name          string
		svcs, clients uint32
		cfg           Config
	}{
		{"crowded", 4, 256, Config{Capacity: 512, Shards: 4, ProbeWindow: 8}},
		{"hot slots", 1, 16, Config{Capacity: 2, Shards: 1, ProbeWindow: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stress(t, tc.svcs, tc.clients, tc.cfg)
		})
	}
}

func stress(t *testing.T, svcs, clientsPerSvc uint32, cfg Config) {
	tb := newTable(t, cfg)
	keys := svcs * clientsPerSvc
	ops := 20000
	if testing.Short() {
		ops = 5000
	}
	var clock atomic.Int64
	var hits, torn atomic.Int64
	// Populate first, so that readers hit even if the scheduler runs them
	// before any pinner.
	for idx := range keys {
		svc, c := stressKey(idx, clientsPerSvc)
		tb.Pin(svc, c, idx<<12, MaxTimeoutSeconds, 0)
	}
	// Readers and the deleter run for as long as the pinners do (and at
	// least ops times), so every schedule interleaves them; the pinners
	// publish the key they pinned last. Once the pinners are done nothing
	// evicts, deletes or expires that key (the clock stops with them), so
	// each reader's last lookup of it hits: the "exercises something"
	// check below holds on any schedule, however loaded the machine.
	var wg sync.WaitGroup
	var pinnersLeft atomic.Int32
	var lastPinned [2]atomic.Uint32 // per pinner
	pinnersLeft.Store(2)
	run := func(seed uint64, untilPinned bool, f func(r *rand.Rand)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 0x57))
			for i := 0; i < ops || (untilPinned && pinnersLeft.Load() > 0); i++ {
				f(r)
			}
		}()
	}
	check := func(idx, ep uint32) {
		if ep>>12 != idx {
			torn.Add(1)
		}
	}
	lookup := func(idx uint32, timeout uint32) {
		svc, c := stressKey(idx, clientsPerSvc)
		if ep, ok := tb.Lookup(svc, c, timeout, clock.Load()); ok {
			hits.Add(1)
			check(idx, ep)
		}
	}
	for g := range uint64(3) { // readers
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(g, 0x57))
			for i := 0; i < ops || pinnersLeft.Load() > 0; i++ {
				if i%2 == 0 {
					lookup(uint32(r.IntN(int(keys))), uint32(1+r.IntN(5)))
				} else {
					lookup(lastPinned[i/2%2].Load(), uint32(1+r.IntN(5)))
				}
			}
			lookup(lastPinned[0].Load(), 1)
			lookup(lastPinned[1].Load(), 1)
		}()
	}
	// pinMu orders each pinner's last pin with the deleter: once the last
	// pinner is done, no delete follows its last pin.
	var pinMu sync.Mutex
	for g := range uint64(2) { // pinners
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(10+g, 0x57))
			for i := range ops {
				idx := uint32(r.IntN(int(keys)))
				svc, c := stressKey(idx, clientsPerSvc)
				last := i == ops-1
				if last {
					pinMu.Lock()
				}
				now := clock.Add(int64(r.IntN(10e6)))
				tb.Pin(svc, c, idx<<12|uint32(r.IntN(3)), uint32(1+r.IntN(5)), now)
				lastPinned[g].Store(idx)
				if last {
					pinnersLeft.Add(-1)
					pinMu.Unlock()
				}
			}
		}()
	}
	run(20, false, func(r *rand.Rand) { // sweeper
		tb.Sweep(clock.Load(), 1+r.IntN(64))
	})
	run(21, false, func(r *rand.Rand) { // deleter, rarely, only while pinners run
		pinMu.Lock()
		defer pinMu.Unlock()
		if pinnersLeft.Load() == 0 {
			return
		}
		switch r.IntN(200) {
		case 0:
			tb.DeleteServicePort(uint32(1 + r.IntN(int(svcs))))
		case 1:
			idx := uint32(r.IntN(int(keys)))
			tb.DeleteEndpoint(idx<<12 | uint32(r.IntN(3)))
		}
	})
	run(22, false, func(r *rand.Rand) { // inspector, rarely
		if r.IntN(100) != 0 {
			return
		}
		tb.Range(clock.Load(), func(e Entry) bool {
			idx := (e.ServicePort-1)*clientsPerSvc + clientIndex(e.Client)
			check(idx, e.Endpoint)
			return true
		})
		_ = tb.Stats()
	})
	wg.Wait()

	if n := torn.Load(); n != 0 {
		t.Errorf("%d lookups or range entries returned an endpoint pinned for another key, want 0", n)
	}
	if hits.Load() == 0 {
		t.Errorf("no lookup hit, want some (the test exercises nothing)")
	}
	// Quiescent: the entry count matches the live slots.
	live := uint64(0)
	for i := range tb.shards {
		for j := range tb.shards[i].slots {
			if ctlState(tb.shards[i].slots[j].ctl.Load()) == stLive {
				live++
			}
		}
	}
	if got := tb.Stats().Entries; got != live {
		t.Errorf("Stats().Entries = %d, want %d live slots", got, live)
	}
}

// clientIndex inverts testaddr.Mixed().
func clientIndex(a netip.Addr) uint32 {
	b := a.As16()
	if a.Is4() {
		return (uint32(b[13]-18)<<16 | uint32(b[14])<<8 | uint32(b[15])) * 2
	}
	return (uint32(b[12])<<24|uint32(b[13])<<16|uint32(b[14])<<8|uint32(b[15]))*2 + 1
}

func TestClientIndex(t *testing.T) {
	for _, i := range []uint32{0, 1, 2, 3, 511, 512, 70000, 70001} {
		if got := clientIndex(testaddr.Mixed(i)); got != i {
			t.Errorf("clientIndex(testaddr.Mixed(%d) = %v) = %d, want %d", i, testaddr.Mixed(i), got, i)
		}
	}
}
