package nat

import (
	"bytes"
	"net/netip"
	"testing"
)

// TestICMPErrorTranslation: an ICMP error about a packet that left the NAT
// (gateway G:61000 -> endpoint B:8080, from client C:40000 to VIP V:80)
// arrives from a router R (or from B itself) addressed to G. Translating it
// must give exactly the error R would have sent about the client's original
// packet to the client: inner C:40000 -> V:80, outer destination C (and
// outer source V when B sent it). The expected frame is built by gopacket,
// which computes every checksum from scratch.
func TestICMPErrorTranslation(t *testing.T) {
	pl := []byte("0123456789abcdefghij")
	type flow struct{ cli, vip, be, gw, rtr netip.Addr }
	f4 := flow{cli4, vip4, be4, gw4, rtr4}
	f6 := flow{cli6, vip6, be6, gw6, rtr6}
	tests := []struct {
		name      string
		f         flow
		typ, code uint8
		mtu       uint32
		proto     Proto
		quote     int // 0: whole inner packet
		fromBE    bool
		vlans     []uint16
	}{
		{"v4 frag needed tcp 28-byte quote", f4, 3, 4, 1400, ProtoTCP, 28, false, nil},
		{"v4 frag needed tcp full quote", f4, 3, 4, 1400, ProtoTCP, 0, false, nil},
		{"v4 port unreachable udp from endpoint", f4, 3, 3, 0, ProtoUDP, 0, true, nil},
		{"v4 port unreachable udp vlan", f4, 3, 3, 0, ProtoUDP, 0, true, []uint16{9, 10}},
		{"v4 time exceeded sctp", f4, 11, 0, 0, ProtoSCTP, 0, false, nil},
		{"v4 time exceeded icmp echo", f4, 11, 0, 0, ProtoICMP, 0, false, nil},
		{"v4 host unreachable tcp 38-byte quote", f4, 3, 1, 0, ProtoTCP, 38, false, nil},
		{"v6 packet too big tcp", f6, 2, 0, 1280, ProtoTCP, 0, false, nil},
		{"v6 packet too big udp", f6, 2, 0, 1280, ProtoUDP, 0, false, []uint16{77}},
		{"v6 port unreachable udp from endpoint", f6, 1, 4, 0, ProtoUDP, 0, true, nil},
		{"v6 time exceeded icmpv6 echo", f6, 3, 0, 0, ProtoICMPv6, 0, false, nil},
		{"v6 packet too big tcp 48-byte quote", f6, 2, 0, 1280, ProtoTCP, 48, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			echo := tc.proto == ProtoICMP || tc.proto == ProtoICMPv6
			cport, vport, gport, bport := uint16(40000), uint16(80), uint16(61000), uint16(8080)
			if echo { // the identifier is both ports
				vport, bport = cport, gport
			}
			icmpProto := ProtoICMP
			if f.cli.Is6() {
				icmpProto = ProtoICMPv6
			}
			mk := func(osrc, odst, isrc, idst netip.Addr, isp, idp uint16) []byte {
				return buildFrame(t, frameSpec{vlans: tc.vlans, src: osrc, dst: odst, proto: Proto(icmpProto), icmpErr: &errSpec{
					typ: tc.typ, code: tc.code, mtu: tc.mtu, quote: tc.quote,
					inner: frameSpec{src: isrc, dst: idst, proto: tc.proto, sport: isp, dport: idp, payload: pl}}})
			}
			reporter, wantReporter := f.rtr, f.rtr
			if tc.fromBE {
				reporter, wantReporter = f.be, f.vip
			}
			orig := mk(reporter, f.gw, f.gw, f.be, gport, bport)
			want := mk(wantReporter, f.cli, f.cli, f.vip, cport, vport)
			b := append([]byte(nil), orig...)
			var p Packet
			if r := Parse(b, &p); r != DropNone {
				t.Fatalf("Parse() = %v, want none", r)
			}
			if !p.ICMPError || p.InnerSrc != f.gw || p.InnerDst != f.be || p.InnerSrcPort != gport || p.InnerDstPort != bport {
				t.Fatalf("Parse() inner = %v %v:%d -> %v:%d, want ICMP error %v:%d -> %v:%d", p.ICMPError, p.InnerSrc, p.InnerSrcPort, p.InnerDst, p.InnerDstPort, f.gw, gport, f.be, bport)
			}
			before := refRegions(b, &p)
			steps := []func() DropReason{
				func() DropReason { return RewriteICMPErrorInnerSrc(b, &p, f.cli, cport) },
				func() DropReason { return RewriteICMPErrorInnerDst(b, &p, f.vip, vport) },
				func() DropReason { return SetDstAddr(b, &p, f.cli) },
			}
			if tc.fromBE {
				steps = append(steps, func() DropReason { return SetSrcAddr(b, &p, f.vip) })
			}
			for i, s := range steps {
				if r := s(); r != DropNone {
					t.Fatalf("step %d = %v, want none", i, r)
				}
			}
			if !bytes.Equal(b, want) {
				t.Errorf("translated = \n%x, want (gopacket)\n%x", b, want)
			}
			checkValid(t, "translated", b)
			var q Packet
			Parse(b, &q)
			if q != p {
				t.Errorf("Packet after rewrite = %+v, want reparse %+v", p, q)
			}
			// Pseudo-header addresses changed, so only the regions whose
			// coverage did not change are comparable; the IPv4 header
			// checksums always are.
			after := refRegions(b, &p)
			for i := range before {
				if before[i].name == "ipv4" || before[i].name == "inner-ipv4" || before[i].name == "icmp" {
					if !sameResidue(before[i].sum, after[i].sum) {
						t.Errorf("%s sum = %#x, want %#x", after[i].name, after[i].sum, before[i].sum)
					}
				}
			}

			// And back again.
			RewriteICMPErrorInnerSrc(b, &p, f.gw, gport)
			RewriteICMPErrorInnerDst(b, &p, f.be, bport)
			SetDstAddr(b, &p, f.gw)
			if tc.fromBE {
				SetSrcAddr(b, &p, f.be)
			}
			if !bytes.Equal(b, orig) {
				t.Errorf("translated and back = \n%x, want original\n%x", b, orig)
			}
		})
	}
}

func TestBuildICMPErrors(t *testing.T) {
	big := make([]byte, 1400)
	for i := range big {
		big[i] = byte(i)
	}
	tests := []struct {
		name      string
		spec      frameSpec
		build     func(buf, frame []byte, p *Packet, src netip.Addr) (int, error)
		from      netip.Addr
		typ, code uint8
		quote     int // bytes of the offending IP packet quoted; 0: all
		mtu       int // the next-hop MTU a too-big error carries
	}{
		{"v4 port unreachable tcp", frameSpec{src: cli4, dst: vip4, proto: ProtoTCP, sport: 40000, dport: 80}, BuildICMPPortUnreachable, vip4, 3, 3, 0, 0},
		{"v4 port unreachable udp vlan", frameSpec{vlans: []uint16{4, 5}, src: cli4, dst: vip4, proto: ProtoUDP, sport: 40000, dport: 80, payload: []byte("x")}, BuildICMPPortUnreachable, vip4, 3, 3, 0, 0},
		{"v4 port unreachable big", frameSpec{src: cli4, dst: vip4, proto: ProtoUDP, sport: 40000, dport: 80, payload: big}, BuildICMPPortUnreachable, vip4, 3, 3, MaxICMPv4Quote, 0},
		{"v4 time exceeded", frameSpec{src: cli4, dst: vip4, proto: ProtoTCP, sport: 40000, dport: 80, ttl: 1}, BuildICMPTimeExceeded, gw4, 11, 0, 0, 0},
		{"v6 port unreachable udp", frameSpec{src: cli6, dst: vip6, proto: ProtoUDP, sport: 40000, dport: 80}, BuildICMPPortUnreachable, vip6, 1, 4, 0, 0},
		{"v6 port unreachable big", frameSpec{src: cli6, dst: vip6, proto: ProtoTCP, sport: 40000, dport: 80, payload: big}, BuildICMPPortUnreachable, vip6, 1, 4, MaxICMPv6Quote, 0},
		{"v6 time exceeded ext", frameSpec{vlans: []uint16{8}, src: cli6, dst: vip6, proto: ProtoTCP, sport: 40000, dport: 80, ttl: 1, ext: []Proto{ProtoDstOpts}}, BuildICMPTimeExceeded, gw6, 3, 0, 0, 0},
		{"v4 fragmentation needed", frameSpec{src: cli4, dst: vip4, proto: ProtoTCP, sport: 40000, dport: 80, payload: big}, tooBig(1450), gw4, 3, 4, MaxICMPv4Quote, 1450},
		{"v6 packet too big", frameSpec{src: cli6, dst: vip6, proto: ProtoUDP, sport: 40000, dport: 80, payload: big}, tooBig(1280), gw6, 2, 0, MaxICMPv6Quote, 1280},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame := buildFrame(t, tc.spec)
			var p Packet
			if r := Parse(frame, &p); r != DropNone {
				t.Fatalf("Parse() = %v", r)
			}
			buf := make([]byte, 2048)
			n, err := tc.build(buf, frame, &p, tc.from)
			if err != nil {
				t.Fatalf("build = %v, want nil", err)
			}
			icmpProto := ProtoICMP
			if tc.from.Is6() {
				icmpProto = ProtoICMPv6
			}
			// gopacket's version: swapped MACs, IP header 64 TTL.
			want := buildFrame(t, frameSpec{vlans: tc.spec.vlans, src: tc.from, dst: tc.spec.src, proto: Proto(icmpProto),
				icmpErr: &errSpec{typ: tc.typ, code: tc.code, inner: tc.spec, quote: tc.quote, mtu: uint32(tc.mtu)}})
			SwapEthernet(want)
			var wp Packet
			if r := Parse(want, &wp); r != DropNone {
				t.Fatalf("Parse(want) = %v", r)
			}
			want = want[:wp.End] // no Ethernet padding: the reply is long enough
			if tc.from.Is4() {
				// This package sends DSCP CS6 and ID 0 with DF; gopacket
				// built TOS 0 and ID 0x1234.
				l3 := int(wp.L3Off)
				want[l3+ipv4TOS] = replyTOSv4
				put16(want[l3+ipv4ID:], 0)
				put16(want[l3+IPv4ChecksumOff:], 0)
				put16(want[l3+IPv4ChecksumOff:], ^refSum(want[l3:l3+20], 0))
			}
			if got := buf[:n]; !bytes.Equal(got, want) {
				t.Errorf("build = \n%x, want\n%x", got, want)
			}
			checkValid(t, "reply", buf[:n])
		})
	}
}

// tooBig is BuildICMPTooBig for one next-hop MTU, in the shape of the
// other builders.
func tooBig(mtu int) func(buf, frame []byte, p *Packet, src netip.Addr) (int, error) {
	return func(buf, frame []byte, p *Packet, src netip.Addr) (int, error) {
		return BuildICMPTooBig(buf, frame, p, src, mtu)
	}
}

func TestBuildICMPErrorsRefused(t *testing.T) {
	tcp := buildFrame(t, tcp4())
	mcast := buildFrame(t, frameSpec{src: cli4, dst: netip.MustParseAddr("239.1.1.1"), proto: ProtoUDP})
	bcast := buildFrame(t, frameSpec{src: cli4, dst: netip.MustParseAddr("255.255.255.255"), proto: ProtoUDP})
	classE := buildFrame(t, frameSpec{src: netip.MustParseAddr("240.0.0.1"), dst: vip4, proto: ProtoUDP})
	unspec6 := buildFrame(t, frameSpec{src: netip.IPv6Unspecified(), dst: vip6, proto: ProtoUDP})
	l2bcast := append([]byte(nil), tcp...)
	copy(l2bcast, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	later := append([]byte(nil), tcp...)
	put16(later[20:], 0x0003)
	icmpErr := buildFrame(t, frameSpec{src: rtr4, dst: gw4, proto: ProtoICMP, icmpErr: &errSpec{typ: 3, code: 3, inner: tcp4()}})
	tests := []struct {
		name  string
		frame []byte
		src   netip.Addr
		buf   int
		want  error
	}{
		{"ok", tcp, vip4, 200, nil},
		{"family", tcp, vip6, 200, ErrFamilyMismatch},
		{"short buffer", tcp, vip4, 14 + 20 + 8 + 20 + 8 - 1, ErrShortBuffer},
		{"just enough buffer", tcp, vip4, 14 + 20 + 8 + 20 + 8, nil},
		{"icmp error", icmpErr, gw4, 200, ErrICMPNotAllowed},
		{"multicast", mcast, vip4, 200, ErrICMPNotAllowed},
		{"broadcast", bcast, vip4, 200, ErrICMPNotAllowed},
		{"class e source", classE, vip4, 200, ErrICMPNotAllowed},
		{"unspecified v6 source", unspec6, vip6, 200, ErrICMPNotAllowed},
		{"link-layer broadcast", l2bcast, vip4, 200, ErrICMPNotAllowed},
		{"non-first fragment", later, vip4, 200, ErrICMPNotAllowed},
		{"not parsed", nil, vip4, 200, ErrNotIP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			if tc.frame != nil {
				if r := Parse(tc.frame, &p); r != DropNone {
					t.Fatalf("Parse() = %v", r)
				}
			}
			_, err := BuildICMPPortUnreachable(make([]byte, tc.buf), tc.frame, &p, tc.src)
			if err != tc.want {
				t.Errorf("BuildICMPPortUnreachable() = %v, want %v", err, tc.want)
			}
		})
	}
}
