package snapshot

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdpgate/xdpgate/nat"
)

// TestKeyTableMatchesMap: the key table finds exactly what a map of the
// same keys finds, for present and absent keys of every space, both
// families and IPv4-mapped IPv6 forms of IPv4 keys.
func TestKeyTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type mk struct {
		addr netip.Addr
		meta uint64
	}
	randAddr := func() netip.Addr {
		if rng.IntN(2) == 0 {
			return netip.AddrFrom4([4]byte{198, 18, byte(rng.IntN(4)), byte(rng.IntN(256))})
		}
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 15: byte(rng.IntN(256)), 14: byte(rng.IntN(4))})
	}
	randKey := func() mk {
		switch rng.IntN(3) {
		case 0:
			return mk{randAddr(), keyMeta(spaceFrontend, false, uint16(rng.IntN(4)), nat.Proto(6+11*rng.IntN(2)))}
		case 1:
			return mk{netip.Addr{}, keyMeta(spaceNodePort, rng.IntN(2) == 0, uint16(30000+rng.IntN(64)), nat.ProtoTCP)}
		}
		return mk{randAddr(), keyMeta(spaceNodeAddr, false, 0, 0)}
	}
	for _, n := range []int{0, 1, 3, 100, 2000} {
		want := make(map[mk]int32)
		var entries []keyEntry
		for len(want) < n {
			k := randKey()
			if _, dup := want[k]; dup {
				continue
			}
			want[k] = int32(len(want))
			entries = append(entries, keyEntry{addr: k.addr, meta: k.meta, sp: want[k], kind: KindExternalIP})
		}
		tab := newKeyTable(entries)
		if got := len(tab.slots); got < 2*n {
			t.Errorf("n=%d: %d slots, want at least twice the keys", n, got)
		}
		for range 20000 {
			k := randKey()
			probe := k.addr
			if probe.Is4() && rng.IntN(2) == 0 {
				probe = netip.AddrFrom16(probe.As16()) // ::ffff:a.b.c.d finds a.b.c.d
			}
			sp, ok := want[k]
			s := tab.get(probe, k.meta)
			if ok != (s != nil) || ok && (s.sp != sp || s.kind != KindExternalIP) {
				t.Fatalf("n=%d: get(%v, %#x) = %+v, want %d/%v", n, probe, k.meta, s, sp, ok)
			}
		}
	}
}
