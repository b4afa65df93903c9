package affinity

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/internal/testaddr"
)

// The model is the obviously-correct reference for Table: a plain Go map
// with the same semantics, no concurrency, no capacity limit.

type modelKey struct {
	svc    uint32
	client netip.Addr
}

type modelEntry struct {
	ep      uint32
	seen    int64
	timeout uint32
}

type model map[modelKey]modelEntry

func (m model) pin(svc uint32, c netip.Addr, ep, timeout uint32, now int64) PinResult {
	if !c.IsValid() || !validTimeout(timeout) {
		return PinInvalid
	}
	k := modelKey{svc, c.WithZone("")}
	e, ok := m[k]
	switch {
	case !ok || now-e.seen >= int64(timeout)*int64(time.Second):
		m[k] = modelEntry{ep: ep, seen: now, timeout: timeout}
		return PinInserted
	case e.ep != ep:
		m[k] = modelEntry{ep: ep, seen: now, timeout: timeout}
		return PinRepinned
	default:
		m[k] = modelEntry{ep: ep, seen: max(e.seen, now), timeout: timeout}
		return PinRefreshed
	}
}

// lookup removes an entry it finds expired, as Table.Lookup does when the
// shard lock is free (always, single-threaded).
func (m model) lookup(svc uint32, c netip.Addr, timeout uint32, now int64) (uint32, bool) {
	k := modelKey{svc, c.WithZone("")}
	e, ok := m[k]
	if !ok || !c.IsValid() || !validTimeout(timeout) {
		return 0, false
	}
	if now-e.seen >= int64(timeout)*int64(time.Second) {
		delete(m, k)
		return 0, false
	}
	return e.ep, true
}

func (m model) sweepAll(now int64) int {
	n := 0
	for k, e := range m {
		if now-e.seen >= int64(e.timeout)*int64(time.Second) {
			delete(m, k)
			n++
		}
	}
	return n
}

func (m model) deleteWhere(match func(modelKey, modelEntry) bool) int {
	n := 0
	for k, e := range m {
		if match(k, e) {
			delete(m, k)
			n++
		}
	}
	return n
}

// modelClients are the addresses model tests draw from: v4, v6, a
// v4-mapped twin of a v4 client, a zoned twin of a v6 client, and the
// invalid zero Addr.
var modelClients = func() []netip.Addr {
	var cs []netip.Addr
	for i := range uint32(28) {
		cs = append(cs, testaddr.Mixed(i))
	}
	return append(cs,
		netip.AddrFrom16(testaddr.V4(0).As16()),
		testaddr.V6(0).WithZone("eth0"),
		testaddr.V6(1<<31),
		netip.Addr{},
	)
}()

var modelTimeouts = [...]uint32{1, 2, 5, 10, MaxTimeoutSeconds, 0, MaxTimeoutSeconds + 1}

// runModel decodes ops from data (4 bytes each) and applies them to a
// fresh table and to the model, failing on the first difference.
func runModel(t *testing.T, data []byte) {
	tb := newTable(t, Config{Capacity: 1024, ProbeWindow: 32})
	m := model{}
	now := int64(0)
	for len(data) >= 4 {
		op, a, b, c := data[0], data[1], data[2], data[3]
		data = data[4:]
		svc := uint32(a%3) + 1
		cl := modelClients[int(b)%len(modelClients)]
		// Time moves by -0.5..+3.25 s in steps of 250 ms.
		now += int64(int(c%16)-2) * int64(250*time.Millisecond)
		switch op % 8 {
		case 0, 1, 2:
			ep := uint32(a/3%4) + 1
			timeout := modelTimeouts[int(b/32)%len(modelTimeouts)]
			got, want := tb.Pin(svc, cl, ep, timeout, now), m.pin(svc, cl, ep, timeout, now)
			if got != want {
				t.Fatalf("Pin(%d, %v, %d, %d, %v) = %v, want %v", svc, cl, ep, timeout, time.Duration(now), got, want)
			}
		case 3, 4, 5:
			timeout := modelTimeouts[int(b/32)%len(modelTimeouts)]
			ep, ok := tb.Lookup(svc, cl, timeout, now)
			wantEP, wantOK := m.lookup(svc, cl, timeout, now)
			if ep != wantEP || ok != wantOK {
				t.Fatalf("Lookup(%d, %v, %d, %v) = %d, %v, want %d, %v", svc, cl, timeout, time.Duration(now), ep, ok, wantEP, wantOK)
			}
		case 6:
			switch a % 4 {
			case 0:
				if got, want := tb.DeleteServicePort(svc), m.deleteWhere(func(k modelKey, _ modelEntry) bool { return k.svc == svc }); got != want {
					t.Fatalf("DeleteServicePort(%d) = %d, want %d", svc, got, want)
				}
			case 1:
				ep := uint32(b%4) + 1
				if got, want := tb.DeleteEndpoint(ep), m.deleteWhere(func(_ modelKey, e modelEntry) bool { return e.ep == ep }); got != want {
					t.Fatalf("DeleteEndpoint(%d) = %d, want %d", ep, got, want)
				}
			default:
				other := uint32(b%3) + 1
				ids := []uint32{svc, other}
				got := tb.DeleteServicePorts(ids)
				want := m.deleteWhere(func(k modelKey, _ modelEntry) bool { return k.svc == svc || k.svc == other })
				if got != want {
					t.Fatalf("DeleteServicePorts(%v) = %d, want %d", ids, got, want)
				}
			}
		case 7:
			if got, want := tb.Sweep(now, int(tb.Stats().Slots)), m.sweepAll(now); got != want {
				t.Fatalf("Sweep(%v, all) = %d, want %d", time.Duration(now), got, want)
			}
		}
		if got, want := tb.Stats().Entries, uint64(len(m)); got != want {
			t.Fatalf("Stats().Entries = %d, want %d", got, want)
		}
	}
	compareRange(t, tb, m, now)
	if ev := tb.Stats().Evictions; ev != 0 {
		t.Fatalf("Stats().Evictions = %d, want 0 at this load", ev)
	}
}

func compareRange(t *testing.T, tb *Table, m model, now int64) {
	t.Helper()
	got := map[modelKey]modelEntry{}
	tb.Range(now, func(e Entry) bool {
		k := modelKey{e.ServicePort, e.Client}
		if _, dup := got[k]; dup {
			t.Errorf("Range reported %v twice", k)
		}
		got[k] = modelEntry{ep: e.Endpoint, seen: e.LastPin, timeout: e.TimeoutSeconds}
		return true
	})
	want := map[modelKey]modelEntry{}
	for k, e := range m {
		if now-e.seen < int64(e.timeout)*int64(time.Second) {
			want[k] = e
		}
	}
	if len(got) != len(want) {
		t.Errorf("Range(%v) reported %d entries, want %d", time.Duration(now), len(got), len(want))
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("Range(%v)[%v] = %+v, %v, want %+v", time.Duration(now), k, g, ok, w)
		}
	}
}

func TestModelRandom(t *testing.T) {
	seeds := 200
	if testing.Short() {
		seeds = 20
	}
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 0xaff))
		data := make([]byte, 4*2000)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		runModel(t, data)
		if t.Failed() {
			t.Fatalf("seed %d failed", seed)
		}
	}
}

func FuzzTableModel(f *testing.F) {
	f.Add([]byte{0, 0, 0, 4, 3, 0, 0, 4})
	f.Add([]byte{0, 1, 2, 3, 0, 4, 2, 3, 7, 0, 0, 15, 3, 1, 2, 0, 6, 0, 0, 0})
	r := rand.New(rand.NewPCG(1, 2))
	seed := make([]byte, 400)
	for i := range seed {
		seed[i] = byte(r.Uint32())
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		runModel(t, data)
	})
}
