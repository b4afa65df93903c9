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
	var wg sync.WaitGroup
	run := func(seed uint64, f func(r *rand.Rand)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 0x57))
			for range ops {
				f(r)
			}
		}()
	}
	check := func(idx, ep uint32) {
		if ep>>12 != idx {
			torn.Add(1)
		}
	}
	for g := range uint64(3) { // readers
		run(g, func(r *rand.Rand) {
			idx := uint32(r.IntN(int(keys)))
			svc, c := stressKey(idx, clientsPerSvc)
			if ep, ok := tb.Lookup(svc, c, uint32(1+r.IntN(5)), clock.Load()); ok {
				hits.Add(1)
				check(idx, ep)
			}
		})
	}
	for g := range uint64(2) { // pinners
		run(10+g, func(r *rand.Rand) {
			idx := uint32(r.IntN(int(keys)))
			svc, c := stressKey(idx, clientsPerSvc)
			now := clock.Add(int64(r.IntN(10e6)))
			tb.Pin(svc, c, idx<<12|uint32(r.IntN(3)), uint32(1+r.IntN(5)), now)
		})
	}
	run(20, func(r *rand.Rand) { // sweeper
		tb.Sweep(clock.Load(), 1+r.IntN(64))
	})
	run(21, func(r *rand.Rand) { // deleter, rarely
		switch r.IntN(200) {
		case 0:
			tb.DeleteServicePort(uint32(1 + r.IntN(int(svcs))))
		case 1:
			idx := uint32(r.IntN(int(keys)))
			tb.DeleteEndpoint(idx<<12 | uint32(r.IntN(3)))
		}
	})
	run(22, func(r *rand.Rand) { // inspector, rarely
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
		t.Errorf("no lookup hit in %d lookups, want some (the test exercises nothing)", 3*ops)
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
