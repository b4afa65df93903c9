package affinity

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/internal/testaddr"
)

// heapState is the live heap and the part of it the GC must scan, after
// a full collection.
type heapState struct {
	alloc, scannable uint64
}

func readHeap() heapState {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}}
	metrics.Read(s)
	var scan uint64
	if s[0].Value.Kind() == metrics.KindUint64 {
		scan = s[0].Value.Uint64()
	}
	return heapState{alloc: ms.HeapAlloc, scannable: scan}
}

// fillKey returns the i-th distinct key of a big fill: 64 service ports,
// clients alternating between 198.18.0.0/15 and 2001:2::/48.
func fillKey(i uint32) (uint32, uint32) { return i%64 + 1, i / 64 }

// fill pins n distinct clients at time 0 with a 3 h timeout.
func fill(tb *Table, n int) {
	for i := range uint32(n) {
		svc, c := fillKey(i)
		tb.Pin(svc, testaddr.Mixed(c), i+1, DefaultTimeoutSeconds, 0)
	}
}

// measureFill builds a table of capacity n, fills it with n clients and
// returns the heap it added, per client, in total and scannable bytes.
func measureFill(t testing.TB, n int) (tb *Table, perEntry, scannable float64) {
	before := readHeap()
	tb = newTable(t, Config{Capacity: n})
	fill(tb, n)
	after := readHeap()
	runtime.KeepAlive(tb)
	return tb, float64(after.alloc-before.alloc) / float64(n), float64(after.scannable) - float64(before.scannable)
}

// TestMemoryPerEntry checks the table's footprint, empty slots included,
// with runtime.MemStats, and that the garbage collector has (almost)
// nothing to scan in it: the slot arrays are pointer-free.
func TestMemoryPerEntry(t *testing.T) {
	// Large enough that the runtime's own allocations (about 0.5 MB more
	// under -race) are noise in the per-client figure.
	n := 1 << 20
	if testing.Short() {
		n = 1 << 19
	}
	tb, perEntry, scannable := measureFill(t, n)
	t.Logf("%d clients: %.1f heap bytes per client, scannable heap grew by %.0f bytes", n, perEntry, scannable)
	if perEntry > 64 {
		t.Errorf("heap per client at capacity %d = %.1f bytes, want <= 64", n, perEntry)
	}
	// The table adds tens of megabytes; only shard headers hold pointers.
	if scannable > 1<<20 {
		t.Errorf("scannable heap grew by %.0f bytes for a %d-byte table, want < 1 MiB", scannable, tb.Stats().Bytes)
	}
	if st := tb.Stats(); st.Entries != uint64(n)-st.Evictions || st.Evictions > uint64(n)/100000 {
		t.Errorf("after %d pins Stats() = %+v, want Entries = pins - Evictions and Evictions <= 10 per million", n, st)
	}
}

// TestTenMillionClients holds 10,000,000 clients within 64 bytes each and
// finds them again. It needs about 600 MB and a few seconds, so -short
// skips it. Run: go test -run TestTenMillionClients -count=1 ./affinity/
func TestTenMillionClients(t *testing.T) {
	if testing.Short() {
		t.Skip("10M clients need ~600 MB and seconds; run without -short")
	}
	const n = 10_000_000
	tb, perEntry, scannable := measureFill(t, n)
	st := tb.Stats()
	t.Logf("%d clients: %.1f heap bytes per client, scannable heap grew by %.0f bytes, %+v", n, perEntry, scannable, st)
	if perEntry > 64 {
		t.Errorf("heap per client at 10M = %.1f bytes, want <= 64", perEntry)
	}
	if scannable > 1<<20 {
		t.Errorf("scannable heap grew by %.0f bytes, want < 1 MiB", scannable)
	}
	if st.Entries != n-st.Evictions || st.Evictions > n/100000 {
		t.Errorf("Stats() = %+v, want Entries = %d - Evictions and Evictions <= 10 per million", st, n)
	}
	missing := 0
	for i := uint32(0); i < n; i += 97 {
		svc, c := fillKey(i)
		if ep, ok := tb.Lookup(svc, testaddr.Mixed(c), DefaultTimeoutSeconds, 1); !ok || ep != i+1 {
			missing++
		}
	}
	if limit := n / 97 / 10000; missing > limit+int(st.Evictions) {
		t.Errorf("%d of %d sampled clients missing, want <= %d", missing, n/97, limit+int(st.Evictions))
	}
	// Control-plane operations on the full table (durations logged, not
	// asserted).
	start := time.Now()
	removed := tb.DeleteServicePort(1)
	t.Logf("DeleteServicePort on %d clients: removed %d in %v", n, removed, time.Since(start))
	if want := n / 64; st.Evictions == 0 && removed != want {
		t.Errorf("DeleteServicePort(1) = %d, want %d", removed, want)
	}
	start = time.Now()
	swept := tb.Sweep(sec(DefaultTimeoutSeconds), int(st.Slots))
	t.Logf("full Sweep of %d slots: removed %d in %v", st.Slots, swept, time.Since(start))
	if want := n - n/64 - int(st.Evictions); swept != want {
		t.Errorf("Sweep at the timeout removed %d, want %d", swept, want)
	}
}
