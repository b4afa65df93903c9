package nat

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"
)

// rewriteSpecs are the original-direction packets (client -> frontend) the
// rewrite tests translate: v4/v6 x TCP/UDP/SCTP/ICMP echo, with VLAN tags,
// IPv4 options and IPv6 extension headers.
func rewriteSpecs() []struct {
	name string
	spec frameSpec
} {
	opts := []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}, {OptionType: 7, OptionLength: 3, OptionData: []byte{4}}, {OptionType: 0}}
	ext := []Proto{ProtoHopByHop, ProtoRouting, ProtoFragment, ProtoDstOpts}
	pl := []byte("some payload bytes, odd length")
	return []struct {
		name string
		spec frameSpec
	}{
		{"v4 tcp", frameSpec{src: cli4, dst: vip4, proto: ProtoTCP, sport: 40000, dport: 80, payload: pl}},
		{"v4 udp", frameSpec{src: cli4, dst: vip4, proto: ProtoUDP, sport: 40001, dport: 5300, payload: pl}},
		{"v4 udp no payload", frameSpec{src: cli4, dst: vip4, proto: ProtoUDP, sport: 40001, dport: 53}},
		{"v4 sctp", frameSpec{src: cli4, dst: vip4, proto: ProtoSCTP, sport: 3868, dport: 3868, payload: pl}},
		{"v4 icmp echo", frameSpec{src: cli4, dst: vip4, proto: ProtoICMP, sport: 4242, payload: pl}},
		{"v4 tcp vlan", frameSpec{vlans: []uint16{42}, src: cli4, dst: vip4, proto: ProtoTCP, sport: 40000, dport: 80, payload: pl}},
		{"v4 udp qinq options", frameSpec{vlans: []uint16{5, 42}, src: cli4, dst: vip4, proto: ProtoUDP, sport: 1, dport: 65535, v4opts: opts, payload: pl}},
		{"v4 tcp options", frameSpec{src: cli4, dst: vip4, proto: ProtoTCP, sport: 65535, dport: 1, v4opts: opts}},
		{"v6 tcp", frameSpec{src: cli6, dst: vip6, proto: ProtoTCP, sport: 40000, dport: 443, payload: pl}},
		{"v6 udp", frameSpec{src: cli6, dst: vip6, proto: ProtoUDP, sport: 40001, dport: 5300, payload: pl}},
		{"v6 sctp", frameSpec{src: cli6, dst: vip6, proto: ProtoSCTP, sport: 5000, dport: 5001, payload: pl}},
		{"v6 icmp echo", frameSpec{src: cli6, dst: vip6, proto: ProtoICMPv6, sport: 7, payload: pl}},
		{"v6 tcp ext headers vlan", frameSpec{vlans: []uint16{3}, src: cli6, dst: vip6, proto: ProtoTCP, sport: 40000, dport: 443, ext: ext, payload: pl}},
		{"v6 udp ext headers", frameSpec{src: cli6, dst: vip6, proto: ProtoUDP, sport: 40000, dport: 443, ext: ext}},
		{"v6 icmp echo ext headers", frameSpec{src: cli6, dst: vip6, proto: ProtoICMPv6, sport: 7, ext: ext}},
	}
}

// flowAddrs returns endpoint and gateway addresses of the spec's family.
func flowAddrs(v4 bool) (backend, gateway netip.Addr) {
	if v4 {
		return be4, gw4
	}
	return be6, gw6
}

func TestRewrite(t *testing.T) {
	for _, tc := range rewriteSpecs() {
		be, gw := flowAddrs(tc.spec.src.Is4())
		echo := tc.spec.proto == ProtoICMP || tc.spec.proto == ProtoICMPv6
		ops := []struct {
			name   string
			do     func(f []byte, p *Packet) DropReason
			undo   func(f []byte, p *Packet) DropReason
			expect func(s frameSpec) frameSpec
		}{
			{"dnat",
				func(f []byte, p *Packet) DropReason { return SetDst(f, p, be, 8080) },
				func(f []byte, p *Packet) DropReason {
					if echo {
						return SetDst(f, p, tc.spec.dst, tc.spec.sport)
					}
					return SetDst(f, p, tc.spec.dst, tc.spec.dport)
				},
				func(s frameSpec) frameSpec {
					s.dst, s.dport = be, 8080
					if echo {
						s.sport = 8080
					}
					return s
				}},
			{"snat",
				func(f []byte, p *Packet) DropReason { return SetSrc(f, p, gw, 61000) },
				func(f []byte, p *Packet) DropReason { return SetSrc(f, p, tc.spec.src, tc.spec.sport) },
				func(s frameSpec) frameSpec { s.src, s.sport = gw, 61000; return s }},
			{"dst addr only",
				func(f []byte, p *Packet) DropReason { return SetDstAddr(f, p, be) },
				func(f []byte, p *Packet) DropReason { return SetDstAddr(f, p, tc.spec.dst) },
				func(s frameSpec) frameSpec { s.dst = be; return s }},
			{"src addr only",
				func(f []byte, p *Packet) DropReason { return SetSrcAddr(f, p, gw) },
				func(f []byte, p *Packet) DropReason { return SetSrcAddr(f, p, tc.spec.src) },
				func(s frameSpec) frameSpec { s.src = gw; return s }},
			{"same port",
				func(f []byte, p *Packet) DropReason { return SetDst(f, p, be, p.DstPort) },
				func(f []byte, p *Packet) DropReason { return SetDst(f, p, tc.spec.dst, p.DstPort) },
				func(s frameSpec) frameSpec { s.dst = be; return s }},
		}
		for _, op := range ops {
			t.Run(tc.name+"/"+op.name, func(t *testing.T) {
				orig := buildFrame(t, tc.spec)
				f := append([]byte(nil), orig...)
				var p Packet
				if r := Parse(f, &p); r != DropNone {
					t.Fatalf("Parse() = %v, want none", r)
				}
				if r := op.do(f, &p); r != DropNone {
					t.Fatalf("rewrite = %v, want none", r)
				}
				want := buildFrame(t, op.expect(tc.spec))
				if !bytes.Equal(f, want) {
					t.Errorf("rewrite = \n%x, want (gopacket)\n%x", f, want)
				}
				checkValid(t, "after rewrite", f)
				var q Packet
				Parse(f, &q)
				if q != p {
					t.Errorf("Packet after rewrite = %+v, want reparse %+v", p, q)
				}
				crossCheckGopacket(t, f, &q)
				if r := op.undo(f, &p); r != DropNone {
					t.Fatalf("reverse = %v, want none", r)
				}
				if !bytes.Equal(f, orig) {
					t.Errorf("rewrite+reverse = \n%x, want original\n%x", f, orig)
				}
			})
		}
	}
}

// TestRewriteReply translates a reply (endpoint -> gateway) back: reverse
// SNAT (destination to the client) and reverse DNAT (source to the VIP).
func TestRewriteReply(t *testing.T) {
	for _, v4 := range []bool{true, false} {
		for _, proto := range []Proto{ProtoTCP, ProtoUDP, ProtoSCTP} {
			be, gw := flowAddrs(v4)
			cli, vip := cli6, vip6
			if v4 {
				cli, vip = cli4, vip4
			}
			t.Run(cli.String()+"/"+layers.IPProtocol(proto).String(), func(t *testing.T) {
				f := buildFrame(t, frameSpec{src: be, dst: gw, proto: proto, sport: 8080, dport: 61000, payload: []byte("reply")})
				var p Packet
				if r := Parse(f, &p); r != DropNone {
					t.Fatalf("Parse() = %v", r)
				}
				if r := SetDst(f, &p, cli, 40000); r != DropNone {
					t.Fatalf("SetDst() = %v", r)
				}
				if r := SetSrc(f, &p, vip, 80); r != DropNone {
					t.Fatalf("SetSrc() = %v", r)
				}
				want := buildFrame(t, frameSpec{src: vip, dst: cli, proto: proto, sport: 80, dport: 40000, payload: []byte("reply")})
				if !bytes.Equal(f, want) {
					t.Errorf("reverse NAT = \n%x, want\n%x", f, want)
				}
			})
		}
	}
}

func TestRewriteRefused(t *testing.T) {
	tcp := buildFrame(t, tcp4())
	later := append([]byte(nil), tcp...)
	put16(later[20:], 0x0003) // non-first fragment
	sctpFirst := buildFrame(t, frameSpec{src: cli4, dst: vip4, proto: ProtoSCTP, sport: 1, dport: 2})
	put16(sctpFirst[20:], 0x2000)
	gre := append([]byte(nil), tcp...)
	gre[23] = 47
	icmpErr := buildFrame(t, frameSpec{src: rtr4, dst: gw4, proto: ProtoICMP, icmpErr: &errSpec{typ: 3, code: 3, inner: tcp4()}})
	tests := []struct {
		name  string
		frame []byte
		do    func(f []byte, p *Packet) DropReason
		want  DropReason
	}{
		{"v6 addr on v4", tcp, func(f []byte, p *Packet) DropReason { return SetDst(f, p, be6, 1) }, DropFamilyMismatch},
		{"4in6 addr on v4", tcp, func(f []byte, p *Packet) DropReason { return SetDstAddr(f, p, netip.AddrFrom16(be4.As16())) }, DropFamilyMismatch},
		{"port on later fragment", later, func(f []byte, p *Packet) DropReason { return SetDst(f, p, be4, 1) }, DropNoPorts},
		{"addr on later fragment", later, func(f []byte, p *Packet) DropReason { return SetDstAddr(f, p, be4) }, DropNone},
		{"sctp port on first fragment", sctpFirst, func(f []byte, p *Packet) DropReason { return SetDst(f, p, be4, 9) }, DropSCTPFragment},
		{"sctp same port on first fragment", sctpFirst, func(f []byte, p *Packet) DropReason { return SetDst(f, p, be4, 2) }, DropNone},
		{"gre", gre, func(f []byte, p *Packet) DropReason { return SetDstAddr(f, p, be4) }, DropUnsupportedProto},
		{"port on icmp error", icmpErr, func(f []byte, p *Packet) DropReason { return SetDst(f, p, be4, 1) }, DropNoPorts},
		{"inner on non-error", tcp, func(f []byte, p *Packet) DropReason { return RewriteICMPErrorInnerDst(f, p, be4, 1) }, DropNotICMPError},
		{"inner v6 on v4", icmpErr, func(f []byte, p *Packet) DropReason { return RewriteICMPErrorInnerSrc(f, p, be6, 1) }, DropFamilyMismatch},
		{"ttl on unparsed", tcp, func(f []byte, p *Packet) DropReason { *p = Packet{}; return DecrementTTL(f, p) }, NotIP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := append([]byte(nil), tc.frame...)
			var p Packet
			if r := Parse(f, &p); r != DropNone {
				t.Fatalf("Parse() = %v", r)
			}
			if got := tc.do(f, &p); got != tc.want {
				t.Errorf("rewrite = %v, want %v", got, tc.want)
			}
			if tc.want != DropNone && !bytes.Equal(f, tc.frame) {
				t.Errorf("refused rewrite changed the frame")
			}
		})
	}
}

func TestDecrementTTL(t *testing.T) {
	tests := []struct {
		name    string
		spec    frameSpec
		want    DropReason
		wantTTL uint8
	}{
		{"v4 64", frameSpec{src: cli4, dst: vip4, proto: ProtoTCP, ttl: 64}, DropNone, 63},
		{"v4 2", frameSpec{src: cli4, dst: vip4, proto: ProtoUDP, ttl: 2}, DropNone, 1},
		{"v4 1", frameSpec{src: cli4, dst: vip4, proto: ProtoUDP, ttl: 1}, DropTTLExpired, 1},
		{"v4 255 options", frameSpec{src: cli4, dst: vip4, proto: ProtoUDP, ttl: 255, v4opts: []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}}, DropNone, 254},
		{"v6 64", frameSpec{src: cli6, dst: vip6, proto: ProtoTCP, ttl: 64}, DropNone, 63},
		{"v6 1", frameSpec{src: cli6, dst: vip6, proto: ProtoTCP, ttl: 1}, DropTTLExpired, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := buildFrame(t, tc.spec)
			var p Packet
			Parse(f, &p)
			if got := DecrementTTL(f, &p); got != tc.want {
				t.Fatalf("DecrementTTL() = %v, want %v", got, tc.want)
			}
			s := tc.spec
			s.ttl = tc.wantTTL
			if want := buildFrame(t, s); !bytes.Equal(f, want) {
				t.Errorf("DecrementTTL() frame = \n%x, want\n%x", f, want)
			}
			if p.TTL != tc.wantTTL {
				t.Errorf("Packet.TTL = %d, want %d", p.TTL, tc.wantTTL)
			}
		})
	}
}

func TestEthernet(t *testing.T) {
	f := buildFrame(t, tcp4())
	SwapEthernet(f)
	if !bytes.Equal(f[0:6], macA) || !bytes.Equal(f[6:12], macB) {
		t.Errorf("SwapEthernet() = %x %x, want %x %x", f[0:6], f[6:12], macA, macB)
	}
	d, s := [6]byte{2, 1, 1, 1, 1, 1}, [6]byte{2, 2, 2, 2, 2, 2}
	SetEthernet(f, d, s)
	if [6]byte(f[0:6]) != d || [6]byte(f[6:12]) != s {
		t.Errorf("SetEthernet() = %x %x, want %x %x", f[0:6], f[6:12], d, s)
	}
	short := []byte{1, 2, 3}
	SwapEthernet(short)
	SetEthernet(short, d, s)
	if !bytes.Equal(short, []byte{1, 2, 3}) {
		t.Errorf("short frame changed: %x", short)
	}
}

// TestRewriteFirstFragment: the transport checksum covers the whole
// datagram, so DNAT of a first fragment must give the checksum of the whole
// translated datagram. Later fragments only change their IP header.
func TestRewriteFirstFragment(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto Proto
	}{{"udp", ProtoUDP}, {"tcp", ProtoTCP}} {
		t.Run(tc.name, func(t *testing.T) {
			pl := make([]byte, 200)
			for i := range pl {
				pl[i] = byte(i * 7)
			}
			s := frameSpec{src: cli4, dst: vip4, proto: tc.proto, sport: 40000, dport: 80, payload: pl}
			whole := buildFrame(t, s)
			s.dst, s.dport = be4, 8080
			wantWhole := buildFrame(t, s)

			// frag cuts an unfragmented frame into the fragment holding
			// L4 bytes [from, to).
			frag := func(f []byte, from, to int, more bool) []byte {
				out := append([]byte(nil), f[:34]...)
				out = append(out, f[34+from:34+to]...)
				put16(out[16:], uint16(20+to-from))
				ff := uint16(from / 8)
				if more {
					ff |= 0x2000
				}
				put16(out[20:], ff)
				put16(out[24:], 0)
				put16(out[24:], ^refSum(out[14:34], 0))
				return out
			}
			first, want := frag(whole, 0, 64, true), frag(wantWhole, 0, 64, true)
			var p Packet
			if r := Parse(first, &p); r != DropNone || !p.Fragment || !p.HasPorts {
				t.Fatalf("Parse(first) = %v, Fragment %v, HasPorts %v", r, p.Fragment, p.HasPorts)
			}
			if r := SetDst(first, &p, be4, 8080); r != DropNone {
				t.Fatalf("SetDst(first) = %v", r)
			}
			if !bytes.Equal(first, want) {
				t.Errorf("first fragment = \n%x, want\n%x", first, want)
			}
			later, wantLater := frag(whole, 64, 96, false), frag(wantWhole, 64, 96, false)
			if r := Parse(later, &p); r != DropNone || p.HasL4 {
				t.Fatalf("Parse(later) = %v, HasL4 %v", r, p.HasL4)
			}
			if r := SetDst(later, &p, be4, 8080); r != DropNoPorts {
				t.Errorf("SetDst(later) = %v, want %v", r, DropNoPorts)
			}
			if r := SetDstAddr(later, &p, be4); r != DropNone {
				t.Fatalf("SetDstAddr(later) = %v", r)
			}
			if !bytes.Equal(later, wantLater) {
				t.Errorf("later fragment = \n%x, want\n%x", later, wantLater)
			}
		})
	}
}
