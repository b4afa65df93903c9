package affinity

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdpgate/xdpgate/internal/testaddr"
)

// windowEntries returns the live entries in the probe window of (svc, c),
// read through the package internals.
func windowEntries(tb *Table, svc uint32, c netip.Addr) []Entry {
	sh, i := tb.locate(makeKey(svc, c))
	var out []Entry
	for range tb.window {
		if e, ok := sh.read(&sh.slots[i]); ok {
			out = append(out, e)
		}
		i = sh.next(i)
	}
	return out
}

func present(tb *Table, e Entry) bool {
	ep, ok := tb.Lookup(e.ServicePort, e.Client, MaxTimeoutSeconds, e.LastPin)
	return ok && ep == e.Endpoint
}

// TestEvictionOrder checks, with random tables whose probe windows are
// full, that a new client replaces an expired entry of its window if there
// is one, and otherwise the least recently pinned one, and nothing else.
func TestEvictionOrder(t *testing.T) {
	var cases [3]int // room, expired, oldest
	defer func() {
		if !t.Failed() && (cases[0] == 0 || cases[1] == 0 || cases[2] == 0) {
			t.Errorf("cases exercised (room, expired, oldest) = %v, want all non-zero", cases)
		}
	}()
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 0xe51c))
		window := 1 + r.IntN(8)
		tb := newTable(t, Config{Capacity: 8 + r.IntN(40), Shards: 1, ProbeWindow: window, Seed: seed + 1})
		slots := int(tb.Stats().Slots)
		now := sec(1000)
		// Fill well past the slot count so that windows are full.
		next := uint32(0)
		for range 3 * slots {
			timeout := uint32(1 + r.IntN(20))
			tb.Pin(1, testaddr.Mixed(next), next+1, timeout, now-int64(r.IntN(30e9)))
			next++
		}
		for range 50 {
			c := testaddr.Mixed(next)
			before := windowEntries(tb, 1, c)
			evs, exps := tb.Stats().Evictions, tb.Stats().Expiries
			res := tb.Pin(1, c, next+1, 10, now)
			next++
			var gone []Entry
			for _, e := range before {
				if !present(tb, e) {
					gone = append(gone, e)
				}
			}
			if ep, ok := tb.Lookup(1, c, 10, now); !ok || ep != next {
				t.Fatalf("seed %d: Lookup after Pin = %d, %v, want %d, true", seed, ep, ok, next)
			}
			var expired, oldest []Entry
			for _, e := range before {
				if e.Remaining(now) <= 0 {
					expired = append(expired, e)
				}
				if len(oldest) == 0 || e.LastPin < oldest[0].LastPin {
					oldest = []Entry{e}
				}
			}
			switch {
			case len(before) < tb.window:
				cases[0]++
				// A free slot in the window: nothing may go.
				if res != PinInserted || len(gone) != 0 {
					t.Fatalf("seed %d: Pin into a window with room = %v removing %v, want %v removing nothing", seed, res, gone, PinInserted)
				}
			case len(expired) > 0:
				cases[1]++
				if res != PinInserted || len(gone) != 1 || gone[0].Remaining(now) > 0 || tb.Stats().Expiries != exps+1 {
					t.Fatalf("seed %d: Pin into a full window with expired %v = %v removing %v, want %v removing one expired entry", seed, expired, res, gone, PinInserted)
				}
			default:
				cases[2]++
				if res != PinEvicted || len(gone) != 1 || gone[0].LastPin != oldest[0].LastPin || tb.Stats().Evictions != evs+1 {
					t.Fatalf("seed %d: Pin into a full window = %v removing %v, want %v removing the oldest %v", seed, res, gone, PinEvicted, oldest)
				}
			}
			now += int64(r.IntN(3e9))
		}
	}
}

// TestExpiryProperty checks on random entries, with lookups in time
// order, that Lookup hits exactly while now - lastPin < timeout and that a
// miss on expiry removes the entry; and that a Sweep in small budgets
// removes exactly the entries expired under their recorded timeout.
func TestExpiryProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	tb := newTable(t, Config{Capacity: 4096})
	type pinned struct {
		c       netip.Addr
		at      int64
		timeout uint32
		gone    bool
	}
	var all []*pinned
	for i := range uint32(1000) {
		p := &pinned{c: testaddr.Mixed(i), at: int64(r.IntN(100e9)), timeout: uint32(1 + r.IntN(100))}
		tb.Pin(9, p.c, i+1, p.timeout, p.at)
		all = append(all, p)
	}
	now := int64(0)
	for range 20000 {
		now += int64(r.IntN(10e6))
		i := r.IntN(len(all))
		p := all[i]
		ep, ok := tb.Lookup(9, p.c, p.timeout, now)
		want := !p.gone && now-p.at < int64(p.timeout)*1e9
		if ok != want || (ok && ep != uint32(i+1)) {
			t.Fatalf("Lookup(9, %v, %d, %d) = %d, %v, want %d, %v (pinned at %d)", p.c, p.timeout, now, ep, ok, i+1, want, p.at)
		}
		if !ok {
			p.gone = true
		}
	}
	// Boundaries exactly, for the entries still there.
	kept := 0
	for _, p := range all {
		if p.gone {
			continue
		}
		deadline := p.at + int64(p.timeout)*1e9
		if deadline-1 < now {
			continue // time runs forwards only
		}
		if _, ok := tb.Lookup(9, p.c, p.timeout, deadline-1); !ok {
			t.Fatalf("Lookup(%v) 1ns before its deadline = miss, want hit", p.c)
		}
		kept++
	}
	if kept == 0 {
		t.Fatalf("no entry left to test the deadline boundary")
	}
	sweepAt := now + 30e9
	wantGone := 0
	left := 0
	for _, p := range all {
		if p.gone {
			continue
		}
		left++
		if sweepAt-p.at >= int64(p.timeout)*1e9 {
			wantGone++
		}
	}
	// A sweep in small budgets covers the table exactly once.
	slots := int(tb.Stats().Slots)
	gone := 0
	for done := 0; done < slots; done += 7 {
		gone += tb.Sweep(sweepAt, min(7, slots-done))
	}
	if gone != wantGone || wantGone == 0 {
		t.Errorf("Sweep in budgets of 7 removed %d, want %d (> 0)", gone, wantGone)
	}
	if got, want := tb.Stats().Entries, uint64(left-wantGone); got != want {
		t.Errorf("Stats().Entries = %d, want %d", got, want)
	}
	if got := tb.Sweep(sweepAt, slots); got != 0 {
		t.Errorf("second Sweep removed %d, want 0", got)
	}
	if got := tb.Sweep(sweepAt, 0) + tb.Sweep(sweepAt, -5); got != 0 {
		t.Errorf("Sweep with no budget removed %d, want 0", got)
	}
	// At the deadline the lookup misses and removes.
	for _, p := range all {
		if p.gone || sweepAt-p.at >= int64(p.timeout)*1e9 {
			continue
		}
		deadline := p.at + int64(p.timeout)*1e9
		if _, ok := tb.Lookup(9, p.c, p.timeout, deadline); ok {
			t.Fatalf("Lookup(%v) at its deadline = hit, want miss", p.c)
		}
	}
	if got := tb.Stats().Entries; got != 0 {
		t.Errorf("Stats().Entries after expiring lookups = %d, want 0", got)
	}
}

// TestTombstoneReclaim checks that deleting everything returns every slot
// to empty (so lookups stop early again) and that keys behind tombstones
// stay reachable.
func TestTombstoneReclaim(t *testing.T) {
	tb := newTable(t, Config{Capacity: 300, Shards: 1, ProbeWindow: 64})
	for i := range uint32(300) {
		tb.Pin(1+i%2, testaddr.Mixed(i), i+1, 100, 0)
	}
	if ev := tb.Stats().Evictions; ev != 0 {
		t.Fatalf("Stats().Evictions = %d after 300 pins at capacity 300, want 0", ev)
	}
	// Remove service port 1, keep 2: keys of 2 behind tombstones must stay.
	tb.DeleteServicePort(1)
	for i := uint32(1); i < 300; i += 2 {
		if _, ok := tb.Lookup(2, testaddr.Mixed(i), 100, 0); !ok {
			t.Fatalf("Lookup(2, %v) after deleting port 1 = miss, want hit", testaddr.Mixed(i))
		}
	}
	tb.DeleteServicePort(2)
	sh := &tb.shards[0]
	for i := range sh.slots {
		if st := ctlState(sh.slots[i].ctl.Load()); st != stEmpty {
			t.Fatalf("slot %d state after deleting everything = %d, want empty (%d)", i, st, stEmpty)
		}
	}
	if got := tb.Stats().Entries; got != 0 {
		t.Errorf("Stats().Entries = %d, want 0", got)
	}
}
