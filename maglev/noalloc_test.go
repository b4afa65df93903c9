package maglev

import (
	"net/netip"
	"testing"
)

func TestNoAllocs(t *testing.T) {
	m := mustBuild(t, []Backend{{ID: 1, Weight: 1}, {ID: 2, Weight: 2}}, 251)
	ap := netip.MustParseAddrPort("[2001:2::1]:8080")
	var sink uint64
	ids := []uint64{1, 2, 3, 4, 5}
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"HashClientIP", func() { sink += HashClientIP(c6) }},
		{"HashFlow", func() { sink += HashFlow(c1, c2, 40000, 80, 6) }},
		{"BackendID", func() { sink += BackendID(ap) }},
		{"Maglev Pick", func() { sink += uint64(m.Pick(sink)) }},
		{"HashSession", func() { sink += HashSession(c6, Epoch(c6, 1e18, 10800)) }},
		{"Rendezvous", func() { sink += uint64(Rendezvous(ids, sink)) }},
		{"RendezvousBounded", func() {
			sink += uint64(RendezvousBounded(ids, sink, 125, func(i int) uint64 { return uint64(i) + sink&7 }))
		}},
	} {
		if got := testing.AllocsPerRun(200, tc.f); got != 0 {
			t.Errorf("%s: AllocsPerRun = %v, want 0", tc.name, got)
		}
	}
	_ = sink
}
