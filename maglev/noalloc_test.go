package maglev

import (
	"net/netip"
	"testing"
)

func TestNoAllocs(t *testing.T) {
	m := mustBuild(t, []Backend{{ID: 1, Weight: 1}, {ID: 2, Weight: 2}}, 251)
	ap := netip.MustParseAddrPort("[2001:2::1]:8080")
	var sink uint64
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"HashClientIP", func() { sink += HashClientIP(c6) }},
		{"HashFlow", func() { sink += HashFlow(c1, c2, 40000, 80, 6) }},
		{"BackendID", func() { sink += BackendID(ap) }},
		{"Maglev Pick", func() { sink += uint64(m.Pick(sink)) }},
	} {
		if got := testing.AllocsPerRun(200, tc.f); got != 0 {
			t.Errorf("%s: AllocsPerRun = %v, want 0", tc.name, got)
		}
	}
	_ = sink
}
