package conntrack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/nat"
)

func TestFragments(t *testing.T) {
	tb := newTestTable(t, Config{MaxFlows: 64, MaxFragments: 16})
	src, dst := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	f, _ := tb.Insert(MakeTuple(src, dst, 1000, 53, nat.ProtoUDP), xlate4(3, 5353), 7, 9, 0)
	k := MakeFragKey(src, dst, nat.ProtoUDP, 0x1234)

	if _, ok := tb.LookupFragment(k, 0); ok {
		t.Fatalf("LookupFragment before first fragment = hit, want miss")
	}
	tb.RememberFragment(k, f, 0)
	got, ok := tb.LookupFragment(k, int64(time.Second))
	if !ok || got != f {
		t.Fatalf("LookupFragment = %+v, %v, want %+v, true", got, ok, f)
	}
	other := k
	other.ID++
	if _, ok := tb.LookupFragment(other, 0); ok {
		t.Fatalf("LookupFragment(other id) = hit, want miss")
	}
	if _, ok := tb.LookupFragment(k, 31*int64(time.Second)); ok {
		t.Fatalf("LookupFragment after 31s = hit, want miss (expired)")
	}
	st := tb.Stats()
	if st.FragmentsRemembered != 1 || st.FragmentHits != 1 || st.FragmentMisses != 3 {
		t.Fatalf("Stats() fragments remembered/hits/misses = %d/%d/%d, want 1/1/3",
			st.FragmentsRemembered, st.FragmentHits, st.FragmentMisses)
	}
	// Overfill: the table stays bounded, recent entries win.
	for i := range 200 {
		k := MakeFragKey(src, dst, nat.ProtoUDP, uint32(i))
		f.Endpoint = uint32(i)
		tb.RememberFragment(k, f, int64(i))
		if got, ok := tb.LookupFragment(k, int64(i)); !ok || got.Endpoint != uint32(i) {
			t.Fatalf("LookupFragment(id %d) right after remember = %v, %v", i, got.Endpoint, ok)
		}
	}
	if tb.Stats().FragmentEvictions == 0 {
		t.Fatalf("Stats().FragmentEvictions = 0 after overfilling, want > 0")
	}
	// IPv6 keys use 32-bit IDs.
	k6 := MakeFragKey(netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::2"), nat.ProtoUDP, 0xdeadbeef)
	tb.RememberFragment(k6, Flow{Endpoint: 42}, 0)
	if got, ok := tb.LookupFragment(k6, 0); !ok || got.Endpoint != 42 {
		t.Fatalf("LookupFragment(v6) = %v, %v, want 42, true", got.Endpoint, ok)
	}
	if k := MakeFragKey(src, netip.MustParseAddr("2001:2::2"), nat.ProtoUDP, 1); k != (FragKey{}) {
		t.Fatalf("MakeFragKey(mixed families) = %v, want zero", k)
	}
}
