package conntrack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/nat"
)

// TestFragmentFlood: real datagrams (first fragment remembered, a later
// fragment following at once, the last one 5 s later) survive floods of
// spoofed first fragments that never get later fragments, with the default
// table (8,192 entries): from one source at 5,000/s, and from random sources
// at 2,500/s, each for 20 s. Before, entries lived 30 s whatever came next
// and a full bucket lost its oldest entry, so a table filled by about 270
// spoofed first fragments a second lost real entries first.
func TestFragmentFlood(t *testing.T) {
	dst := netip.MustParseAddr("198.18.100.1")
	tests := []struct {
		name     string
		perSec   int
		attacker func(i int) netip.Addr
	}{
		{"one source", 5000, func(int) netip.Addr { return netip.MustParseAddr("198.19.66.66") }},
		{"random sources", 2500, func(i int) netip.Addr {
			return netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestTable(t, Config{MaxFlows: 64})
			now := int64(time.Hour)
			const real = 200
			realKey := func(i int) FragKey {
				return MakeFragKey(netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}), dst, nat.ProtoUDP, uint32(i))
			}
			step := int64(time.Second) / int64(tc.perSec)
			lost := 0
			for i := range 20 * tc.perSec {
				now += step
				tb.RememberFragment(MakeFragKey(tc.attacker(i), dst, nat.ProtoUDP, uint32(i)), Flow{Endpoint: 1}, now)
				if i%(tc.perSec/10) == 0 { // ten real datagrams a second
					r := (i / (tc.perSec / 10)) % real
					tb.RememberFragment(realKey(r), Flow{Endpoint: 2}, now)
					if f, ok := tb.LookupFragment(realKey(r), now+int64(time.Millisecond)); !ok || f.Endpoint != 2 {
						lost++
					}
				}
				// Real datagrams still match their last fragments 5 s
				// after the first (a slow or reordering path; the kernel
				// waits 30 s for a datagram's fragments).
				if i%(tc.perSec/10) == 0 && i >= 10*tc.perSec {
					r := (i/(tc.perSec/10) - 50) % real
					if _, ok := tb.LookupFragment(realKey(r), now); !ok {
						lost++
					}
				}
			}
			if lost != 0 {
				t.Errorf("real datagrams' fragments lost during the flood = %d, want 0 (stats %+v)", lost, tb.Stats())
			}
		})
	}
}

// TestFragmentSourceShare: a source over its share of a full table
// replaces only its own entries.
func TestFragmentSourceShare(t *testing.T) {
	tb := newTestTable(t, Config{MaxFlows: 64, MaxFragments: 256})
	dst := netip.MustParseAddr("198.18.100.1")
	now := int64(time.Hour)
	// Fill the table with many sources' matched datagrams.
	var all, keys []FragKey
	for i := range 4096 {
		k := MakeFragKey(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), dst, nat.ProtoUDP, 1)
		tb.RememberFragment(k, Flow{Endpoint: 2}, now)
		all = append(all, k)
	}
	for _, k := range all {
		if _, ok := tb.LookupFragment(k, now); ok {
			keys = append(keys, k)
		}
	}
	for i := range 100000 {
		tb.RememberFragment(MakeFragKey(netip.MustParseAddr("198.19.66.66"), dst, nat.ProtoUDP, uint32(i)), Flow{Endpoint: 1}, now)
	}
	kept := 0
	for _, k := range keys {
		if _, ok := tb.LookupFragment(k, now); ok {
			kept++
		}
	}
	if share := 256 / fragSourceShareDiv; kept < len(keys)-share {
		t.Errorf("entries of other sources kept after one source's flood = %d of %d, want >= %d", kept, len(keys), len(keys)-share)
	}
}
