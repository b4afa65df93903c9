package affinity

import (
	"testing"

	"github.com/xdpgate/xdpgate/internal/testaddr"
)

func TestNoAllocs(t *testing.T) {
	tb := newTable(t, Config{Capacity: 1 << 16})
	full := newTable(t, Config{Capacity: 4, Shards: 1, ProbeWindow: 2})
	tb.Pin(1, c1, 7, 10, 0)
	tb.Pin(1, c6, 7, 10, 0)
	var n uint32
	var sink uint64
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Lookup hit v4", func() { ep, _ := tb.Lookup(1, c1, 10, 1); sink += uint64(ep) }},
		{"Lookup hit v6", func() { ep, _ := tb.Lookup(1, c6, 10, 1); sink += uint64(ep) }},
		{"Lookup miss", func() { ep, _ := tb.Lookup(2, c1, 10, 1); sink += uint64(ep) }},
		{"Pin insert", func() { n++; tb.Pin(3, testaddr.Mixed(n), 1, 10, 0) }},
		{"Pin refresh", func() { tb.Pin(1, c1, 7, 10, 2) }},
		{"Pin repin", func() { n++; tb.Pin(1, c6, 8+n%2, 10, 3) }},
		{"Pin evict", func() { n++; full.Pin(1, testaddr.Mixed(n), 1, 10, int64(n)) }},
		{"Sweep", func() { tb.Sweep(5, 64) }},
	} {
		if got := testing.AllocsPerRun(200, tc.f); got != 0 {
			t.Errorf("%s: AllocsPerRun = %v, want 0", tc.name, got)
		}
	}
	if full.Stats().Evictions == 0 {
		t.Errorf("the Pin evict case evicted nothing")
	}
	_ = sink
}
