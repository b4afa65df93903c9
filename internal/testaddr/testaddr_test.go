package testaddr

import (
	"net/netip"
	"testing"
)

func TestInRange(t *testing.T) {
	p4, p6 := netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("2001:2::/48")
	seen := map[netip.Addr]bool{}
	for _, i := range []uint32{0, 1, 255, 256, 65535, 65536, 1<<17 - 1, 1 << 20, 1<<32 - 1} {
		if a := V4(i); !p4.Contains(a) {
			t.Errorf("V4(%d) = %v, outside %v", i, a, p4)
		}
		if a := V6(i); !p6.Contains(a) || seen[a] {
			t.Errorf("V6(%d) = %v, outside %v or repeated", i, a, p6)
		}
		seen[V6(i)] = true
	}
	if Mixed(4) != V4(2) || Mixed(5) != V6(2) {
		t.Errorf("Mixed(4), Mixed(5) = %v, %v; want %v, %v", Mixed(4), Mixed(5), V4(2), V6(2))
	}
}
