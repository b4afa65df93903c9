package conntrack

import (
	"errors"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/xdpgate/xdpgate/nat"
)

func TestMakeTuple(t *testing.T) {
	v4a, v4b := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.19.1.2")
	v6a, v6b := netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::2")
	mapped := netip.MustParseAddr("::ffff:198.18.0.1")
	tests := []struct {
		name       string
		src, dst   netip.Addr
		wantFamily Family
	}{
		{"ipv4", v4a, v4b, IPv4},
		{"ipv6", v6a, v6b, IPv6},
		{"4in6 is ipv6", mapped, v6b, IPv6},
		{"mixed", v4a, v6b, 0},
		{"invalid", netip.Addr{}, v4b, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := MakeTuple(tc.src, tc.dst, 1, 2, nat.ProtoTCP)
			if k.Family != tc.wantFamily || k.Valid() != (tc.wantFamily != 0) {
				t.Fatalf("MakeTuple(%v, %v) = %+v (valid %v), want family %d", tc.src, tc.dst, k, k.Valid(), tc.wantFamily)
			}
			if tc.wantFamily != 0 && (k.SrcAddr() != tc.src || k.DstAddr() != tc.dst) {
				t.Fatalf("MakeTuple(%v, %v) addrs = %v, %v", tc.src, tc.dst, k.SrcAddr(), k.DstAddr())
			}
		})
	}
	k := MakeTuple(v4a, v4b, 1, 2, nat.ProtoTCP)
	k.Src[7] = 1
	if k.Valid() {
		t.Errorf("Valid(IPv4 tuple with non-zero padding) = true, want false")
	}
}

func TestTranslationReply(t *testing.T) {
	client, vip := netip.MustParseAddrPort("198.18.0.1:40000"), netip.MustParseAddrPort("198.18.1.1:80")
	ep, node := netip.MustParseAddrPort("198.18.2.1:8080"), netip.MustParseAddrPort("198.18.3.1:50000")
	orig := MakeTuple(client.Addr(), vip.Addr(), client.Port(), vip.Port(), nat.ProtoTCP)
	tests := []struct {
		name    string
		x       Translation
		wantSrc netip.AddrPort
		wantDst netip.AddrPort
	}{
		{"dnat", MakeTranslation(ep, netip.AddrPort{}), ep, client},
		{"dnat+snat", MakeTranslation(ep, node), ep, node},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.x.Reply(orig)
			gotSrc := netip.AddrPortFrom(r.SrcAddr(), r.SrcPort)
			gotDst := netip.AddrPortFrom(r.DstAddr(), r.DstPort)
			if gotSrc != tc.wantSrc || gotDst != tc.wantDst || r.Proto != nat.ProtoTCP || !r.Valid() {
				t.Fatalf("Reply(%v) = %v, want %v -> %v", orig, r, tc.wantSrc, tc.wantDst)
			}
			if r.Reverse().Reverse() != r {
				t.Fatalf("Reverse(Reverse(%v)) != itself", r)
			}
		})
	}
	if r := MakeTranslation(netip.MustParseAddrPort("[2001:2::1]:80"), netip.AddrPort{}).Reply(orig); r.Valid() {
		t.Errorf("Reply(IPv4 orig, IPv6 translation) = %v, want invalid", r)
	}
	if r := MakeTranslation(ep, netip.MustParseAddrPort("[2001:2::1]:80")).Reply(orig); r.Valid() {
		t.Errorf("Reply(mixed translation) = %v, want invalid", r)
	}
	if s := orig.String(); s != "6 198.18.0.1:40000 -> 198.18.1.1:80" {
		t.Errorf("String() = %q", s)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"zero is defaults", Config{}, false},
		{"too big", Config{MaxFlows: MaxCapacity + 1}, true},
		{"negative", Config{MaxFlows: -1}, true},
		{"negative timeout", Config{MaxFlows: 8, Timeouts: Timeouts{ICMP: -1}}, true},
		{"no ipv6", Config{MaxFlows: 8, MaxFlows6: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if (err != nil) != tc.wantErr || err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New(%+v) = %v, want error %v", tc.cfg, err, tc.wantErr)
			}
		})
	}
	tb := newTestTable(t, Config{MaxFlows: 800})
	if v4, v6 := tb.Capacity(); v4 != 800 || v6 != 100 {
		t.Errorf("Capacity() = %d, %d, want 800, 100", v4, v6)
	}
	if tb.timeouts[StateEstablished] != 86400e9 || tb.cfg.Timeouts.UDPUnreplied.Seconds() != 30 {
		t.Errorf("default timeouts not applied: %+v", tb.cfg.Timeouts)
	}
}

func TestRecordSizes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"rec4", unsafe.Sizeof(rec4{}), rec4Size},
		{"rec6", unsafe.Sizeof(rec6{}), rec6Size},
		{"fragEntry", unsafe.Sizeof(fragEntry{}), fragEntrySize},
		{"Tuple", unsafe.Sizeof(Tuple{}), 38},
	} {
		if tc.got != tc.want {
			t.Errorf("Sizeof(%s) = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}
