package affinity

import (
	"errors"
	"maps"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/internal/testaddr"
)

func sec(s float64) int64 { return int64(s * 1e9) }

func newTable(t testing.TB, cfg Config) *Table {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = 0x5eed
	}
	tb, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v, want nil error", cfg, err)
	}
	return tb
}

func TestValidateTimeoutSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   int32
		want error
	}{
		{-1, ErrInvalidTimeout},
		{0, ErrInvalidTimeout},
		{1, nil},
		{DefaultTimeoutSeconds, nil},
		{86399, nil},
		{86400, nil}, // accepted by the API server despite its message
		{86401, ErrInvalidTimeout},
		{1 << 30, ErrInvalidTimeout},
	} {
		if got := ValidateTimeoutSeconds(tc.in); !errors.Is(got, tc.want) {
			t.Errorf("ValidateTimeoutSeconds(%d) = %v, want %v", tc.in, got, tc.want)
		}
	}
	err := ValidateTimeoutSeconds(0)
	if got, want := err.Error(), "timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400"; got != want {
		t.Errorf("ValidateTimeoutSeconds(0).Error() = %q, want %q", got, want)
	}
}

func TestNewConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want error
	}{
		{"zero value", Config{}, nil},
		{"negative capacity", Config{Capacity: -1}, ErrCapacity},
		{"huge capacity", Config{Capacity: MaxCapacity + 1}, ErrCapacity},
		{"shards not power of two", Config{Capacity: 1000, Shards: 3}, ErrShards},
		{"too many shards", Config{Capacity: 1000, Shards: MaxShards * 2}, ErrShards},
		{"negative window", Config{Capacity: 1000, ProbeWindow: -1}, ErrProbeWindow},
		{"huge window", Config{Capacity: 1000, ProbeWindow: MaxProbeWindow + 1}, ErrProbeWindow},
		{"one slot", Config{Capacity: 1, Shards: 1}, nil},
		{"more shards than slots", Config{Capacity: 1, Shards: 64}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if !errors.Is(err, tc.want) {
				t.Errorf("New(%+v) = %v, want %v", tc.cfg, err, tc.want)
			}
		})
	}
	tb := newTable(t, Config{Capacity: 1000})
	cfg := tb.Config()
	if cfg.ProbeWindow != DefaultProbeWindow || cfg.Shards < 1 || cfg.Shards > DefaultShards {
		t.Errorf("Config() = %+v, want defaults applied", cfg)
	}
	if st := tb.Stats(); st.Slots < 1500 || st.Bytes != st.Slots*slotBytes {
		t.Errorf("Stats() = %+v, want >= 1500 slots of %d bytes", st, slotBytes)
	}
}

func TestSlotLayout(t *testing.T) {
	if got := reflect.TypeFor[slot]().Size(); got != slotBytes {
		t.Errorf("sizeof(slot) = %d, want %d", got, slotBytes)
	}
	if got := reflect.TypeFor[shard]().Size(); got%64 != 0 {
		t.Errorf("sizeof(shard) = %d, want a multiple of 64", got)
	}
	if hasPointers(reflect.TypeFor[slot]()) {
		t.Errorf("slot holds a pointer, want a pointer-free type the GC never scans")
	}
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.String, reflect.Interface,
		reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// step is one operation of a semantics test.
type step struct {
	op      string // pin, lookup, sweep, delsvc, delep
	svc     uint32
	client  netip.Addr
	ep      uint32
	timeout uint32
	at      int64
	want    PinResult // pin
	wantEP  uint32    // lookup; 0 means a miss
	wantN   int       // sweep, delsvc, delep
}

var (
	c1   = netip.MustParseAddr("198.18.0.1")
	c2   = netip.MustParseAddr("198.18.0.2")
	c1m  = netip.MustParseAddr("::ffff:198.18.0.1")
	c6   = netip.MustParseAddr("2001:2::1")
	c6z  = netip.MustParseAddr("2001:2::1%eth0")
	none netip.Addr
)

func TestSemantics(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
		stats Stats // compared field by field where non-zero
	}{
		{
			name: "timer runs from the last new connection",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: 0, want: PinInserted},
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: sec(5), want: PinRefreshed},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(14.9), wantEP: 7},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(15)},
			},
			// the expired lookup removed the entry
			stats: Stats{Inserts: 1, Refreshes: 1, Hits: 1, Misses: 1, Expiries: 1, Entries: 0},
		},
		{
			name: "lookup does not refresh",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: 0, want: PinInserted},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(3), wantEP: 7},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(6), wantEP: 7},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(9), wantEP: 7},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(10)},
			},
			stats: Stats{Hits: 3, Misses: 1, Expiries: 1, Entries: 0},
		},
		{
			name: "expiry exactly at the timeout",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10800, at: sec(100), want: PinInserted},
				{op: "lookup", svc: 1, client: c1, timeout: 10800, at: sec(100+10800) - 1, wantEP: 7},
				{op: "sweep", at: sec(100+10800) - 1, wantN: 0},
				{op: "sweep", at: sec(100 + 10800), wantN: 1},
				{op: "lookup", svc: 1, client: c1, timeout: 10800, at: sec(100)},
			},
			stats: Stats{Expiries: 1, Entries: 0},
		},
		{
			name: "an expired lookup removes the entry",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: 0, want: PinInserted},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(10)},
				{op: "sweep", at: sec(10), wantN: 0},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(9)},
				{op: "pin", svc: 1, client: c1, ep: 8, timeout: 10, at: sec(11), want: PinInserted},
			},
			stats: Stats{Expiries: 1, Inserts: 2, Misses: 2, Entries: 1},
		},
		{
			name: "re-pin to another endpoint is counted",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: 0, want: PinInserted},
				{op: "pin", svc: 1, client: c1, ep: 8, timeout: 10, at: sec(1), want: PinRepinned},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(2), wantEP: 8},
				{op: "pin", svc: 1, client: c1, ep: 8, timeout: 10, at: sec(2), want: PinRefreshed},
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: sec(3), want: PinRepinned},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(12.9), wantEP: 7},
			},
			stats: Stats{Inserts: 1, Repins: 2, Refreshes: 1, Entries: 1},
		},
		{
			name: "pin over an expired entry starts anew, not a re-pin",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: 0, want: PinInserted},
				{op: "pin", svc: 1, client: c1, ep: 8, timeout: 10, at: sec(10), want: PinInserted},
				{op: "pin", svc: 1, client: c1, ep: 8, timeout: 10, at: sec(25), want: PinInserted},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(34), wantEP: 8},
			},
			stats: Stats{Inserts: 3, Expiries: 2, Repins: 0, Entries: 1},
		},
		{
			name: "per service port",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: 0, want: PinInserted},
				{op: "lookup", svc: 2, client: c1, timeout: 10, at: 0},
				{op: "pin", svc: 2, client: c1, ep: 9, timeout: 10, at: 0, want: PinInserted},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: 0, wantEP: 7},
				{op: "lookup", svc: 2, client: c1, timeout: 10, at: 0, wantEP: 9},
			},
			stats: Stats{Entries: 2},
		},
		{
			name: "key is the whole address: v4, mapped v6 and neighbours differ; zones do not",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: 0, want: PinInserted},
				{op: "lookup", svc: 1, client: c1m, timeout: 10, at: 0},
				{op: "lookup", svc: 1, client: c2, timeout: 10, at: 0},
				{op: "pin", svc: 1, client: c6z, ep: 8, timeout: 10, at: 0, want: PinInserted},
				{op: "lookup", svc: 1, client: c6, timeout: 10, at: 0, wantEP: 8},
			},
		},
		{
			name: "a changed timeout applies to lookups at once",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 100, at: 0, want: PinInserted},
				{op: "lookup", svc: 1, client: c1, timeout: 100, at: sec(20), wantEP: 7},
				// timeoutSeconds lowered to 10: expired, and removed
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(20)},
				{op: "lookup", svc: 1, client: c1, timeout: 100, at: sec(20)},
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: sec(30), want: PinInserted},
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 100, at: sec(31), want: PinRefreshed},
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: sec(32), want: PinRefreshed},
				{op: "sweep", at: sec(41.9), wantN: 0},
				{op: "sweep", at: sec(42), wantN: 1}, // swept under the recorded 10 s
			},
		},
		{
			name: "invalid pins store nothing",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 0, at: 0, want: PinInvalid},
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: MaxTimeoutSeconds + 1, at: 0, want: PinInvalid},
				{op: "pin", svc: 1, client: none, ep: 7, timeout: 10, at: 0, want: PinInvalid},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: 0},
				{op: "lookup", svc: 1, client: none, timeout: 10, at: 0},
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: MaxTimeoutSeconds, at: 0, want: PinInserted},
				{op: "lookup", svc: 1, client: c1, timeout: MaxTimeoutSeconds, at: sec(MaxTimeoutSeconds) - 1, wantEP: 7},
			},
			stats: Stats{Entries: 1, Misses: 2, Hits: 1},
		},
		{
			name: "a lookup with an invalid timeout misses and removes nothing",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: 0, want: PinInserted},
				{op: "lookup", svc: 1, client: c1, timeout: 0, at: 0},
				{op: "lookup", svc: 1, client: c1, timeout: MaxTimeoutSeconds + 1, at: 0},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(9), wantEP: 7},
			},
			stats: Stats{Entries: 1, Misses: 2, Hits: 1},
		},
		{
			name: "clocks of other pollers slightly behind",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: sec(100), want: PinInserted},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(99), wantEP: 7},
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: sec(98), want: PinRefreshed},
				// the timer did not move back to 98
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: sec(109), wantEP: 7},
			},
		},
		{
			name: "delete service port resets its state only",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: 0, want: PinInserted},
				{op: "pin", svc: 1, client: c2, ep: 8, timeout: 10, at: 0, want: PinInserted},
				{op: "pin", svc: 2, client: c1, ep: 9, timeout: 10, at: 0, want: PinInserted},
				{op: "delsvc", svc: 1, wantN: 2},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: 0},
				{op: "lookup", svc: 1, client: c2, timeout: 10, at: 0},
				{op: "lookup", svc: 2, client: c1, timeout: 10, at: 0, wantEP: 9},
				{op: "pin", svc: 1, client: c1, ep: 8, timeout: 10, at: 0, want: PinInserted},
			},
			stats: Stats{Deletes: 2, Entries: 2},
		},
		{
			name: "delete endpoint",
			steps: []step{
				{op: "pin", svc: 1, client: c1, ep: 7, timeout: 10, at: 0, want: PinInserted},
				{op: "pin", svc: 1, client: c2, ep: 8, timeout: 10, at: 0, want: PinInserted},
				{op: "delep", ep: 7, wantN: 1},
				{op: "lookup", svc: 1, client: c1, timeout: 10, at: 0},
				{op: "lookup", svc: 1, client: c2, timeout: 10, at: 0, wantEP: 8},
			},
			stats: Stats{Deletes: 1, Entries: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, Config{Capacity: 64})
			for i, s := range tc.steps {
				runStep(t, tb, i, s)
			}
			checkStats(t, tb.Stats(), tc.stats)
		})
	}
}

func runStep(t *testing.T, tb *Table, i int, s step) {
	t.Helper()
	switch s.op {
	case "pin":
		if got := tb.Pin(s.svc, s.client, s.ep, s.timeout, s.at); got != s.want {
			t.Errorf("step %d: Pin(%d, %v, %d, %d, %v) = %v, want %v", i, s.svc, s.client, s.ep, s.timeout, time.Duration(s.at), got, s.want)
		}
	case "lookup":
		ep, ok := tb.Lookup(s.svc, s.client, s.timeout, s.at)
		if ep != s.wantEP || ok != (s.wantEP != 0) {
			t.Errorf("step %d: Lookup(%d, %v, %d, %v) = %d, %v, want %d, %v", i, s.svc, s.client, s.timeout, time.Duration(s.at), ep, ok, s.wantEP, s.wantEP != 0)
		}
	case "sweep":
		if got := tb.Sweep(s.at, int(tb.Stats().Slots)); got != s.wantN {
			t.Errorf("step %d: Sweep(%v, all) = %d, want %d", i, time.Duration(s.at), got, s.wantN)
		}
	case "delsvc":
		if got := tb.DeleteServicePort(s.svc); got != s.wantN {
			t.Errorf("step %d: DeleteServicePort(%d) = %d, want %d", i, s.svc, got, s.wantN)
		}
	case "delep":
		if got := tb.DeleteEndpoint(s.ep); got != s.wantN {
			t.Errorf("step %d: DeleteEndpoint(%d) = %d, want %d", i, s.ep, got, s.wantN)
		}
	default:
		t.Fatalf("step %d: unknown op %q", i, s.op)
	}
}

// checkStats compares the non-zero counters of want; Entries is always
// compared when any counter is given.
func checkStats(t *testing.T, got, want Stats) {
	t.Helper()
	if want == (Stats{}) {
		return
	}
	for _, f := range []struct {
		name      string
		got, want uint64
		always    bool
	}{
		{"Entries", got.Entries, want.Entries, true},
		{"Hits", got.Hits, want.Hits, false},
		{"Misses", got.Misses, want.Misses, false},
		{"Inserts", got.Inserts, want.Inserts, false},
		{"Refreshes", got.Refreshes, want.Refreshes, false},
		{"Repins", got.Repins, want.Repins, true},
		{"Expiries", got.Expiries, want.Expiries, false},
		{"Evictions", got.Evictions, want.Evictions, true},
		{"Deletes", got.Deletes, want.Deletes, false},
	} {
		if (f.always || f.want != 0) && f.got != f.want {
			t.Errorf("Stats().%s = %d, want %d", f.name, f.got, f.want)
		}
	}
}

func TestPinResultString(t *testing.T) {
	for r, want := range map[PinResult]string{
		PinInvalid: "invalid", PinInserted: "inserted", PinRefreshed: "refreshed",
		PinRepinned: "repinned", PinEvicted: "evicted", PinResult(99): "PinResult(99)",
	} {
		if got := r.String(); got != want {
			t.Errorf("PinResult(%d).String() = %q, want %q", uint8(r), got, want)
		}
	}
}

func TestRange(t *testing.T) {
	tb := newTable(t, Config{Capacity: 100})
	tb.Pin(1, c1, 7, 10, sec(1))
	tb.Pin(2, c6, 8, 20, sec(2))
	tb.Pin(3, c2, 9, 1, sec(0)) // expired at 5 s
	got := map[uint32]Entry{}
	tb.Range(sec(5), func(e Entry) bool { got[e.ServicePort] = e; return true })
	want := map[uint32]Entry{
		1: {ServicePort: 1, Client: c1, Endpoint: 7, LastPin: sec(1), TimeoutSeconds: 10},
		2: {ServicePort: 2, Client: c6, Endpoint: 8, LastPin: sec(2), TimeoutSeconds: 20},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Range(5s) = %v, want %v", got, want)
	}
	if got, want := got[1].Remaining(sec(5)), 6*time.Second; got != want {
		t.Errorf("Entry.Remaining(5s) = %v, want %v", got, want)
	}
	n := 0
	tb.Range(sec(5), func(Entry) bool { n++; return false })
	if n != 1 {
		t.Errorf("Range stopped after %d calls, want 1", n)
	}
}

// TestOnChangeExpiries: the hook is told of every expiry, whether the
// sweep, a lookup or a pin over the stale entry removes it, with the
// endpoint it named.
func TestOnChangeExpiries(t *testing.T) {
	tb := newTable(t, Config{Capacity: 64, Seed: 1})
	got := map[Change]int{}
	tb.OnChange(func(c Change) {
		if c.Cause == CauseExpired {
			got[c]++
		}
	})
	c1, c2, c3 := testaddr.V4(1), testaddr.V4(2), testaddr.V4(3)
	tb.Pin(1, c1, 11, 1, 0)
	tb.Pin(2, c2, 21, 1, 0)
	tb.Pin(2, c3, 22, 1, 0)
	later := sec(5)
	if _, ok := tb.Lookup(1, c1, 1, later); ok {
		t.Fatalf("Lookup after the timeout hit")
	}
	tb.Pin(2, c2, 23, 1, later) // over its own stale entry
	tb.Sweep(later, 1<<10)      // c3's
	want := map[Change]int{
		{ServicePort: 1, From: 11, Cause: CauseExpired}:         1,
		{ServicePort: 2, From: 21, To: 23, Cause: CauseExpired}: 1,
		{ServicePort: 2, From: 22, Cause: CauseExpired}:         1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("expiries = %v, want %v", got, want)
	}
	if st := tb.Stats(); st.Expiries != 3 {
		t.Errorf("Stats().Expiries = %d, want 3", st.Expiries)
	}
	tb.OnChange(nil)
	tb.Pin(1, c1, 11, 1, later)
	tb.Sweep(sec(10), 1<<10)
	if len(got) != 3 {
		t.Errorf("the hook ran after OnChange(nil)")
	}
}

// TestOnChangeCounts: summing the changes per endpoint gives the live
// entries per endpoint, through inserts, refreshes, repins, evictions
// (a tiny probe window), expiries and deletes (oracle: a walk of the table
// once every expired entry is swept).
func TestOnChangeCounts(t *testing.T) {
	tb := newTable(t, Config{Capacity: 64, Shards: 1, ProbeWindow: 4, Seed: 3})
	sum := map[uint32]int{}
	causes := map[ChangeCause]int{}
	tb.OnChange(func(c Change) {
		if c.From != 0 {
			sum[c.From]--
		}
		if c.To != 0 {
			sum[c.To]++
		}
		causes[c.Cause]++
	})
	rnd := uint64(7)
	next := func(n uint64) uint64 {
		rnd = rnd*6364136223846793005 + 1442695040888963407
		return (rnd >> 33) % n
	}
	now := int64(0)
	for i := range 5000 {
		now += sec(0.01)
		svc := uint32(1 + next(3))
		client := testaddr.V4(uint32(next(120)))
		ep := svc*100 + uint32(next(4))
		switch op := next(100); {
		case op < 70:
			tb.Pin(svc, client, ep, uint32(1+next(3)), now)
		case op < 90:
			tb.Lookup(svc, client, 1, now)
		case op < 97:
			tb.Sweep(now, 16)
		case op < 98:
			tb.DeleteEndpoint(ep)
		default:
			tb.DeleteServicePort(svc)
		}
		if i%1000 == 999 {
			live := map[uint32]int{}
			tb.Range(now-sec(1000), func(e Entry) bool { live[e.Endpoint]++; return true }) // every live slot
			maps.DeleteFunc(sum, func(_ uint32, n int) bool { return n == 0 })
			if !maps.Equal(sum, live) {
				t.Fatalf("after %d operations: summed changes = %v, live entries = %v", i+1, sum, live)
			}
		}
	}
	for _, c := range []ChangeCause{CausePinned, CauseRepinned, CauseExpired, CauseEvicted, CauseDeleted} {
		if causes[c] == 0 {
			t.Errorf("no change with cause %d: the test does not cover it", c)
		}
	}
}

// TestUnpin: Unpin removes a client's entry only while it names the given
// endpoint, and reports the change.
func TestUnpin(t *testing.T) {
	tb := newTable(t, Config{Capacity: 64, Seed: 1})
	var got []Change
	tb.OnChange(func(c Change) { got = append(got, c) })
	c1 := testaddr.V4(1)
	tb.Pin(1, c1, 11, 60, 0)
	if tb.Unpin(1, c1, 12) || tb.Unpin(2, c1, 11) || tb.Unpin(1, testaddr.V4(2), 11) {
		t.Fatalf("Unpin of another endpoint, service port or client removed the entry")
	}
	if !tb.Unpin(1, c1, 11) {
		t.Fatalf("Unpin(1, c1, 11) = false, want true")
	}
	if _, ok := tb.Lookup(1, c1, 60, 1); ok {
		t.Errorf("Lookup after Unpin hit")
	}
	want := []Change{{ServicePort: 1, To: 11, Cause: CausePinned}, {ServicePort: 1, From: 11, Cause: CauseDeleted}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes = %+v, want %+v", got, want)
	}
	if st := tb.Stats(); st.Deletes != 1 || st.Entries != 0 {
		t.Errorf("Stats = %+v, want 1 delete, 0 entries", st)
	}
}
