package nat

import (
	"net/netip"
	"testing"
)

// TestNoAllocs: the per-packet contract. Parse, every rewrite and the reply
// builders allocate nothing.
func TestNoAllocs(t *testing.T) {
	tcp := buildFrame(t, tcp4())
	udp6 := buildFrame(t, frameSpec{src: cli6, dst: vip6, proto: ProtoUDP, sport: 1, dport: 2, ext: []Proto{ProtoHopByHop, ProtoFragment}})
	sctp := buildFrame(t, frameSpec{src: cli4, dst: vip4, proto: ProtoSCTP, sport: 1, dport: 2, payload: make([]byte, 100)})
	icmp6 := buildFrame(t, frameSpec{src: rtr6, dst: gw6, proto: ProtoICMPv6, icmpErr: &errSpec{typ: 2, mtu: 1280,
		inner: frameSpec{src: gw6, dst: be6, proto: ProtoTCP, sport: 61000, dport: 8080}}})
	icmp4 := buildFrame(t, frameSpec{src: rtr4, dst: gw4, proto: ProtoICMP, icmpErr: &errSpec{typ: 3, code: 4, mtu: 1400,
		inner: frameSpec{src: gw4, dst: be4, proto: ProtoUDP, sport: 61000, dport: 8080}}})
	icmpSCTP := buildFrame(t, frameSpec{src: rtr4, dst: gw4, proto: ProtoICMP, icmpErr: &errSpec{typ: 11,
		inner: frameSpec{src: gw4, dst: be4, proto: ProtoSCTP, sport: 61000, dport: 3868}}})
	buf := make([]byte, 2048)
	var p Packet
	i := 0
	alt := func(a, b netip.Addr) netip.Addr {
		i++
		if i&1 == 0 {
			return a
		}
		return b
	}
	tests := []struct {
		name  string
		frame []byte
		fn    func(f []byte)
	}{
		{"Parse", tcp, func(f []byte) { Parse(f, &p) }},
		{"SetDst v4 tcp", tcp, func(f []byte) { Parse(f, &p); SetDst(f, &p, alt(be4, vip4), uint16(i)) }},
		{"SetSrc v6 udp", udp6, func(f []byte) { Parse(f, &p); SetSrc(f, &p, alt(gw6, cli6), uint16(i)) }},
		{"SetDstAddr", tcp, func(f []byte) { Parse(f, &p); SetDstAddr(f, &p, alt(be4, vip4)) }},
		{"SetSrcAddr", udp6, func(f []byte) { Parse(f, &p); SetSrcAddr(f, &p, alt(gw6, cli6)) }},
		{"SetDst sctp", sctp, func(f []byte) { Parse(f, &p); SetDst(f, &p, alt(be4, vip4), uint16(i)) }},
		{"RewriteICMPErrorInnerSrc v6", icmp6, func(f []byte) { Parse(f, &p); RewriteICMPErrorInnerSrc(f, &p, alt(cli6, gw6), uint16(i)) }},
		{"RewriteICMPErrorInnerDst v4", icmp4, func(f []byte) { Parse(f, &p); RewriteICMPErrorInnerDst(f, &p, alt(vip4, be4), uint16(i)) }},
		{"RewriteICMPErrorInnerSrc v4 sctp", icmpSCTP, func(f []byte) { Parse(f, &p); RewriteICMPErrorInnerSrc(f, &p, alt(cli4, gw4), uint16(i)) }},
		{"DecrementTTL", tcp, func(f []byte) { Parse(f, &p); f[22] = 64; DecrementTTL(f, &p) }},
		{"SwapEthernet", tcp, func(f []byte) { SwapEthernet(f) }},
		{"SetEthernet", tcp, func(f []byte) { SetEthernet(f, [6]byte{1}, [6]byte{2}) }},
		{"BuildICMPPortUnreachable v4", tcp, func(f []byte) { Parse(f, &p); BuildICMPPortUnreachable(buf, f, &p, vip4) }},
		{"BuildICMPPortUnreachable v6", udp6, func(f []byte) { Parse(f, &p); BuildICMPPortUnreachable(buf, f, &p, vip6) }},
		{"BuildICMPTimeExceeded v4", tcp, func(f []byte) { Parse(f, &p); BuildICMPTimeExceeded(buf, f, &p, gw4) }},
		{"BuildICMPTimeExceeded v6", udp6, func(f []byte) { Parse(f, &p); BuildICMPTimeExceeded(buf, f, &p, gw6) }},
		{"BuildICMPTooBig v4", tcp, func(f []byte) { Parse(f, &p); BuildICMPTooBig(buf, f, &p, gw4, 1400) }},
		{"BuildICMPTooBig v6", udp6, func(f []byte) { Parse(f, &p); BuildICMPTooBig(buf, f, &p, gw6, 1280) }},
		{"refused builder", icmp4, func(f []byte) { Parse(f, &p); BuildICMPTimeExceeded(buf, f, &p, gw4) }},
		{"DropReason.String", tcp, func(f []byte) { _ = DropReason(i % int(NumDropReasons)).String() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := append([]byte(nil), tc.frame...)
			if got := testing.AllocsPerRun(100, func() { tc.fn(f) }); got != 0 {
				t.Errorf("AllocsPerRun(%s) = %v, want 0", tc.name, got)
			}
		})
	}
}
