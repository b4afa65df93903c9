package nat

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func tcp4() frameSpec {
	return frameSpec{src: cli4, dst: vip4, proto: ProtoTCP, sport: 40000, dport: 80, payload: []byte("hello")}
}

func TestParse(t *testing.T) {
	routerAlert := []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
	tests := []struct {
		name string
		spec frameSpec
		want Packet // compared on the fields set below
	}{
		{"v4 tcp", tcp4(), Packet{L3Off: 14, L4Off: 34, Version: 4, Proto: 6, TTL: 64, HasL4: true, HasPorts: true, SrcPort: 40000, DstPort: 80, TCPFlags: 0x12, DontFragment: true, FragID: 0x1234, Src: cli4, Dst: vip4}},
		{"v4 udp one vlan", frameSpec{vlans: []uint16{100}, src: cli4, dst: vip4, proto: ProtoUDP, sport: 5353, dport: 53},
			Packet{L3Off: 18, L4Off: 38, VLANTags: 1, VLANTCI: [2]uint16{100, 0}, Version: 4, Proto: 17, TTL: 64, HasL4: true, HasPorts: true, SrcPort: 5353, DstPort: 53, DontFragment: true, FragID: 0x1234, Src: cli4, Dst: vip4}},
		{"v4 sctp qinq options", frameSpec{vlans: []uint16{7, 100}, src: cli4, dst: vip4, proto: ProtoSCTP, sport: 3868, dport: 3868, v4opts: routerAlert},
			Packet{L3Off: 22, L4Off: 46, VLANTags: 2, VLANTCI: [2]uint16{7, 100}, Version: 4, Proto: 132, TTL: 64, HasL4: true, HasPorts: true, SrcPort: 3868, DstPort: 3868, DontFragment: true, FragID: 0x1234, Src: cli4, Dst: vip4}},
		{"v4 icmp echo", frameSpec{src: cli4, dst: vip4, proto: ProtoICMP, sport: 77},
			Packet{L3Off: 14, L4Off: 34, Version: 4, Proto: 1, TTL: 64, HasL4: true, HasPorts: true, SrcPort: 77, DstPort: 77, ICMPType: 8, DontFragment: true, FragID: 0x1234, Src: cli4, Dst: vip4}},
		{"v6 udp", frameSpec{src: cli6, dst: vip6, proto: ProtoUDP, sport: 1000, dport: 53, ttl: 9},
			Packet{L3Off: 14, L4Off: 54, Version: 6, Proto: 17, TTL: 9, HasL4: true, HasPorts: true, SrcPort: 1000, DstPort: 53, Src: cli6, Dst: vip6}},
		{"v6 tcp ext headers", frameSpec{src: cli6, dst: vip6, proto: ProtoTCP, sport: 1000, dport: 443, ext: []Proto{ProtoHopByHop, ProtoDstOpts, ProtoRouting, ProtoFragment, ProtoDstOpts}},
			Packet{L3Off: 14, L4Off: 94, Version: 6, Proto: 6, TTL: 64, HasL4: true, HasPorts: true, SrcPort: 1000, DstPort: 443, TCPFlags: 0x12, FragHeader: true, FragID: 0xabcd0123, Src: cli6, Dst: vip6}},
		{"v6 icmp echo", frameSpec{src: cli6, dst: vip6, proto: ProtoICMPv6, sport: 99},
			Packet{L3Off: 14, L4Off: 54, Version: 6, Proto: 58, TTL: 64, HasL4: true, HasPorts: true, SrcPort: 99, DstPort: 99, ICMPType: 128, Src: cli6, Dst: vip6}},
		{"v4 frag needed about tcp", frameSpec{src: rtr4, dst: gw4, proto: ProtoICMP, icmpErr: &errSpec{typ: 3, code: 4, mtu: 1400,
			inner: frameSpec{src: gw4, dst: be4, proto: ProtoTCP, sport: 2000, dport: 8080}, quote: 28}},
			Packet{L3Off: 14, L4Off: 34, InnerL3Off: 42, InnerL4Off: 62, Version: 4, Proto: 1, TTL: 64, HasL4: true, ICMPType: 3, ICMPCode: 4, DontFragment: true, FragID: 0x1234,
				ICMPError: true, InnerProto: 6, InnerHasPorts: true, InnerSrcPort: 2000, InnerDstPort: 8080, Src: rtr4, Dst: gw4, InnerSrc: gw4, InnerDst: be4}},
		{"v6 packet too big about udp", frameSpec{src: rtr6, dst: gw6, proto: ProtoICMPv6, icmpErr: &errSpec{typ: 2, mtu: 1280,
			inner: frameSpec{src: gw6, dst: be6, proto: ProtoUDP, sport: 2000, dport: 53}}},
			Packet{L3Off: 14, L4Off: 54, InnerL3Off: 62, InnerL4Off: 102, Version: 6, Proto: 58, TTL: 64, HasL4: true, ICMPType: 2,
				ICMPError: true, InnerProto: 17, InnerHasPorts: true, InnerL4Checksum: true, InnerSrcPort: 2000, InnerDstPort: 53, Src: rtr6, Dst: gw6, InnerSrc: gw6, InnerDst: be6}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := buildFrame(t, tc.spec)
			var p Packet
			if r := Parse(f, &p); r != DropNone {
				t.Fatalf("Parse() = %v, want none", r)
			}
			got := p
			got.End, got.EtherType = 0, 0
			if got != tc.want {
				t.Errorf("Parse() = %+v\nwant %+v", got, tc.want)
			}
			crossCheckGopacket(t, f, &p)
		})
	}
}

// crossCheckGopacket decodes f with gopacket and compares what both found.
func crossCheckGopacket(t *testing.T, f []byte, p *Packet) {
	t.Helper()
	pk := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := pk.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	nl := pk.NetworkLayer()
	if nl == nil {
		t.Fatalf("gopacket found no network layer")
	}
	src, _ := netip.AddrFromSlice(nl.NetworkFlow().Src().Raw())
	dst, _ := netip.AddrFromSlice(nl.NetworkFlow().Dst().Raw())
	if src != p.Src || dst != p.Dst {
		t.Errorf("addresses = %v -> %v, gopacket %v -> %v", p.Src, p.Dst, src, dst)
	}
	if ip, ok := nl.(*layers.IPv4); ok && int(p.End-p.L3Off) != int(ip.Length) {
		t.Errorf("IPv4 length = %d, gopacket %d", p.End-p.L3Off, ip.Length)
	}
	if tl := pk.TransportLayer(); tl != nil && p.HasPorts {
		fl := tl.TransportFlow()
		if s, d := binary.BigEndian.Uint16(fl.Src().Raw()), binary.BigEndian.Uint16(fl.Dst().Raw()); s != p.SrcPort || d != p.DstPort {
			t.Errorf("ports = %d -> %d, gopacket %d -> %d", p.SrcPort, p.DstPort, s, d)
		}
		if off := len(f) - len(tl.LayerContents()) - len(tl.LayerPayload()); p.Proto != ProtoSCTP && int(p.L4Off) != off-(len(f)-int(p.End)) {
			t.Errorf("L4Off = %d, gopacket %d", p.L4Off, off-(len(f)-int(p.End)))
		}
	}
}

func TestParseMalformed(t *testing.T) {
	base4 := buildFrame(t, tcp4())
	base6 := buildFrame(t, frameSpec{src: cli6, dst: vip6, proto: ProtoUDP, sport: 1, dport: 2, payload: []byte("abcdefgh")})
	icmp4 := buildFrame(t, frameSpec{src: rtr4, dst: gw4, proto: ProtoICMP, icmpErr: &errSpec{typ: 3, code: 3,
		inner: frameSpec{src: gw4, dst: be4, proto: ProtoUDP, sport: 2000, dport: 53}}})
	icmp6 := buildFrame(t, frameSpec{src: rtr6, dst: gw6, proto: ProtoICMPv6, icmpErr: &errSpec{typ: 1, code: 4,
		inner: frameSpec{src: gw6, dst: be6, proto: ProtoTCP, sport: 2000, dport: 53}}})
	mut := func(b []byte, f func(b []byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	set16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[off:], v); return b }
	}
	set8 := func(off int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[off] = v; return b }
	}
	vlans := func(n int) func([]byte) []byte {
		return func(b []byte) []byte {
			var out []byte
			out = append(out, b[:12]...)
			for i := 0; i < n; i++ {
				out = append(out, 0x81, 0x00, 0, byte(i))
			}
			return append(out, b[12:]...)
		}
	}
	tests := []struct {
		name  string
		frame []byte
		want  DropReason
	}{
		{"arp", mut(base4, set16(12, 0x0806)), NotIP},
		{"empty", nil, DropEthernetTruncated},
		{"13 bytes", base4[:13], DropEthernetTruncated},
		{"too long", make([]byte, 70000), DropFrameTooLong},
		{"vlan cut", mut(base4, func(b []byte) []byte { b[12], b[13] = 0x81, 0; return b[:16] }), DropVLANTruncated},
		{"three vlans", mut(base4, vlans(3)), DropVLANTooMany},
		{"two vlans ok", mut(base4, vlans(2)), DropNone},
		{"ipv4 cut", base4[:33], DropIPv4Truncated},
		{"ipv4 version", mut(base4, set8(14, 0x65)), DropIPv4Version},
		{"ipv4 ihl 4", mut(base4, set8(14, 0x44)), DropIPv4HeaderLength},
		{"ipv4 ihl beyond frame", mut(base4, func(b []byte) []byte { b[14] = 0x4f; return b[:50] }), DropIPv4Truncated},
		{"ipv4 total < ihl", mut(base4, set16(16, 19)), DropIPv4TotalLength},
		{"ipv4 total > frame", mut(base4, set16(16, 2000)), DropIPv4TotalLength},
		{"ipv4 bad option", mut(buildFrame(t, frameSpec{src: cli4, dst: vip4, proto: ProtoUDP, v4opts: []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}}), set8(35, 9)), DropIPv4Options},
		{"ipv4 option len 1", mut(buildFrame(t, frameSpec{src: cli4, dst: vip4, proto: ProtoUDP, v4opts: []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}}), set8(35, 1)), DropIPv4Options},
		{"ipv4 fragment too long", mut(base4, set16(20, 0x1fff)), DropFragmentTooLong},
		{"ipv4 non-first fragment", mut(base4, set16(20, 0x0010)), DropNone},
		{"tcp cut", mut(base4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:], 20+19); return b }), DropTCPTruncated},
		{"tcp doff 4", mut(base4, set8(46, 0x40)), DropTCPDataOffset},
		{"tcp doff beyond", mut(base4, set8(46, 0xf0)), DropTCPDataOffset},
		{"ipv6 cut", base6[:53], DropIPv6Truncated},
		{"ipv6 version", mut(base6, set8(14, 0x45)), DropIPv6Version},
		{"ipv6 payload > frame", mut(base6, set16(18, 500)), DropIPv6PayloadLength},
		{"udp cut", mut(base6, set16(18, 7)), DropUDPTruncated},
		{"udp length 7", mut(base6, set16(58, 7)), DropUDPLength},
		{"udp length beyond", mut(base6, set16(58, 17)), DropUDPLength},
		{"ipv6 ext cut", mut(base6, func(b []byte) []byte { b[20] = byte(ProtoDstOpts); b[55] = 200; return b }), DropIPv6ExtTruncated},
		{"ipv6 hop-by-hop second", mut(buildFrame(t, frameSpec{src: cli6, dst: vip6, proto: ProtoUDP, ext: []Proto{ProtoDstOpts, ProtoHopByHop}}), func(b []byte) []byte { return b }), DropIPv6HopByHopOrder},
		{"ipv6 too many ext", buildFrame(t, frameSpec{src: cli6, dst: vip6, proto: ProtoUDP, ext: []Proto{60, 60, 60, 60, 60, 60, 60, 60, 60}}), DropIPv6ExtTooMany},
		{"ipv6 eight ext ok", buildFrame(t, frameSpec{src: cli6, dst: vip6, proto: ProtoUDP, ext: []Proto{60, 60, 60, 60, 60, 60, 60, 60}}), DropNone},
		{"sctp cut", mut(buildFrame(t, frameSpec{src: cli4, dst: vip4, proto: ProtoSCTP}), set16(16, 20+11)), DropSCTPTruncated},
		{"icmp cut", mut(icmp4, set16(16, 20+7)), DropICMPTruncated},
		{"icmp inner cut", mut(icmp4, set16(16, 20+8+19)), DropICMPInnerTruncated},
		{"icmp inner version", mut(icmp4, set8(42, 0x65)), DropICMPInnerVersion},
		{"icmp inner ihl", mut(icmp4, set8(42, 0x43)), DropICMPInnerHeaderLength},
		{"icmp inner ihl beyond quote", mut(icmp4, func(b []byte) []byte { b[42] = 0x4f; return b }), DropICMPInnerTruncated},
		{"icmp inner l4 cut", mut(icmp4, set16(16, 20+8+20+7)), DropICMPInnerL4Truncated},
		{"icmp inner non-first fragment ok", mut(icmp4, set16(48, 0x0001)), DropNone},
		{"icmpv6 inner version", mut(icmp6, set8(62, 0x45)), DropICMPInnerVersion},
		{"icmpv6 inner cut", mut(icmp6, set16(18, 8+39)), DropICMPInnerTruncated},
		{"icmpv6 inner l4 cut", mut(icmp6, set16(18, 8+40+7)), DropICMPInnerL4Truncated},
		{"icmp error in error", buildFrame(t, frameSpec{src: rtr4, dst: gw4, proto: ProtoICMP, icmpErr: &errSpec{typ: 11,
			inner: frameSpec{src: gw4, dst: be4, proto: ProtoICMP, icmpErr: &errSpec{typ: 3, code: 3, inner: tcp4()}}}}), DropICMPErrorInError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			if got := Parse(tc.frame, &p); got != tc.want {
				t.Errorf("Parse() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParsePadding(t *testing.T) {
	// A 60-byte minimum frame: gopacket pads, End stops at the IP length.
	f := buildFrame(t, frameSpec{src: cli4, dst: vip4, proto: ProtoUDP, sport: 1, dport: 2})
	var p Packet
	if r := Parse(f, &p); r != DropNone {
		t.Fatalf("Parse() = %v, want none", r)
	}
	if len(f) != 60 || p.End != 14+28 {
		t.Errorf("len, End = %d, %d, want 60, 42", len(f), p.End)
	}
}

func TestParseFragments(t *testing.T) {
	f := buildFrame(t, frameSpec{src: cli4, dst: vip4, proto: ProtoUDP, sport: 1, dport: 2, payload: make([]byte, 40)})
	first := append([]byte(nil), f...)
	binary.BigEndian.PutUint16(first[20:], 0x2000) // MF, offset 0
	binary.BigEndian.PutUint16(first[38:], 200)    // UDP length of the whole datagram
	later := append([]byte(nil), f...)
	binary.BigEndian.PutUint16(later[20:], 0x0003) // offset 24, last
	f6 := buildFrame(t, frameSpec{src: cli6, dst: vip6, proto: ProtoTCP, sport: 1, dport: 2, ext: []Proto{ProtoFragment}, payload: make([]byte, 40)})
	first6 := append([]byte(nil), f6...)
	put16(first6[14+40+2:], 0x0001) // offset 0, M
	later6 := append([]byte(nil), f6...)
	put16(later6[14+40+2:], 0x0018) // offset 24, last
	for _, tc := range []struct {
		name         string
		frame        []byte
		frag, mf, l4 bool
		off          uint16
	}{
		{"v4 first", first, true, true, true, 0},
		{"v4 later", later, true, false, false, 24},
		{"v6 atomic", f6, false, false, true, 0},
		{"v6 first", first6, true, true, true, 0},
		{"v6 later", later6, true, false, false, 24},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			if r := Parse(tc.frame, &p); r != DropNone {
				t.Fatalf("Parse() = %v, want none", r)
			}
			got := fmt.Sprint(p.Fragment, p.MoreFragments, p.HasL4, p.FragOffset)
			want := fmt.Sprint(tc.frag, tc.mf, tc.l4, tc.off)
			if got != want {
				t.Errorf("Parse() fragment, more, hasL4, offset = %s, want %s", got, want)
			}
			if p.Is6() && (!p.FragHeader || p.FragID != 0xabcd0123 || p.Proto != ProtoTCP) {
				t.Errorf("Parse() frag header, id, proto = %v, %#x, %d, want true, 0xabcd0123, 6", p.FragHeader, p.FragID, p.Proto)
			}
			if p.Is4() && p.FragID != 0x1234 {
				t.Errorf("Parse() FragID = %#x, want 0x1234", p.FragID)
			}
		})
	}
}

func TestDropReasonString(t *testing.T) {
	seen := map[string]bool{}
	for r := DropReason(0); r < NumDropReasons; r++ {
		s := r.String()
		if s == "" || seen[s] {
			t.Errorf("DropReason(%d).String() = %q, want unique non-empty", r, s)
		}
		seen[s] = true
	}
	if got, want := NumDropReasons.String(), fmt.Sprintf("drop-reason(%d)", NumDropReasons); got != want {
		t.Errorf("NumDropReasons.String() = %q, want %q", got, want)
	}
}
