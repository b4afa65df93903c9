package nat

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Addresses from the benchmarking ranges only (198.18.0.0/15, 2001:2::/48).
var (
	cli4 = netip.MustParseAddr("198.18.0.10")
	vip4 = netip.MustParseAddr("198.19.0.1")
	be4  = netip.MustParseAddr("198.18.100.7")
	gw4  = netip.MustParseAddr("198.18.255.254")
	rtr4 = netip.MustParseAddr("198.18.200.1")
	cli6 = netip.MustParseAddr("2001:2::10")
	vip6 = netip.MustParseAddr("2001:2:0:1::1")
	be6  = netip.MustParseAddr("2001:2:0:100::7")
	gw6  = netip.MustParseAddr("2001:2:0:ffff::fffe")
	rtr6 = netip.MustParseAddr("2001:2:0:200::1")

	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xbb}
)

// frameSpec describes a frame for buildFrame.
type frameSpec struct {
	vlans        []uint16 // VLAN IDs, outer first; two tags make the outer 802.1ad
	src, dst     netip.Addr
	proto        Proto  // ProtoTCP, ProtoUDP, ProtoSCTP, ProtoICMP/ProtoICMPv6 (echo, or error if icmpErr)
	sport, dport uint16 // ICMP echo: the identifier is sport
	payload      []byte
	ttl          uint8
	v4opts       []layers.IPv4Option
	ext          []Proto // IPv6 extension header types, in order (each 8 bytes; fragment header is atomic)
	icmpErr      *errSpec
}

// errSpec makes the frame an ICMP error quoting inner (from its IP header
// on, quote bytes of it; 0 means all).
type errSpec struct {
	typ, code uint8
	mtu       uint32
	inner     frameSpec
	quote     int
}

// ipPacket serialises s from the IP header on.
func ipPacket(t testing.TB, s frameSpec) []byte {
	t.Helper()
	b := buildFrame(t, s)
	var p Packet
	if r := Parse(b, &p); r != DropNone {
		t.Fatalf("Parse(built inner) = %v, want none", r)
	}
	return b[p.L3Off:p.End]
}

// buildFrame serialises s with gopacket, computing checksums and lengths.
func buildFrame(t testing.TB, s frameSpec) []byte {
	t.Helper()
	var ls []gopacket.SerializableLayer
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB}
	ls = append(ls, eth)
	et := layers.EthernetTypeIPv4
	if s.src.Is6() {
		et = layers.EthernetTypeIPv6
	}
	switch len(s.vlans) {
	case 0:
		eth.EthernetType = et
	case 1:
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: s.vlans[0], Type: et})
	case 2:
		eth.EthernetType = layers.EthernetTypeQinQ
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: s.vlans[0], Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: s.vlans[1], Type: et})
	default:
		t.Fatalf("too many vlans")
	}
	ttl := s.ttl
	if ttl == 0 {
		ttl = 64
	}
	var nl gopacket.NetworkLayer
	if s.src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: ttl, Protocol: layers.IPProtocol(s.proto), Id: 0x1234,
			Flags: layers.IPv4DontFragment, SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice(), Options: s.v4opts}
		ls = append(ls, ip)
		nl = ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: ttl, NextHeader: layers.IPProtocol(s.proto),
			SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
		ls = append(ls, ip)
		nl = ip
		if len(s.ext) > 0 {
			ip.NextHeader = layers.IPProtocol(s.ext[0])
			var raw []byte
			for i, typ := range s.ext {
				next := s.proto
				if i+1 < len(s.ext) {
					next = s.ext[i+1]
				}
				h := make([]byte, 8)
				h[0] = byte(next)
				switch typ {
				case ProtoFragment:
					binary.BigEndian.PutUint32(h[4:], 0xabcd0123) // atomic fragment
				case ProtoRouting:
					h[2] = 0 // type 0 routing, segments left 0 (harmless)
				default:
					h[2], h[3] = 1, 4 // PadN option filling the header
				}
				raw = append(raw, h...)
			}
			ls = append(ls, gopacket.Payload(raw))
		}
	}
	switch {
	case s.icmpErr != nil:
		q := ipPacket(t, s.icmpErr.inner)
		if s.icmpErr.quote > 0 && s.icmpErr.quote < len(q) {
			q = q[:s.icmpErr.quote]
		}
		if s.src.Is4() {
			ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(s.icmpErr.typ, s.icmpErr.code),
				Id: uint16(s.icmpErr.mtu >> 16), Seq: uint16(s.icmpErr.mtu)}, gopacket.Payload(q))
		} else {
			ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(s.icmpErr.typ, s.icmpErr.code)}
			ic.SetNetworkLayerForChecksum(nl)
			body := binary.BigEndian.AppendUint32(nil, s.icmpErr.mtu)
			ls = append(ls, ic, gopacket.Payload(append(body, q...)))
		}
	case s.proto == ProtoTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport), Seq: 1000, Ack: 7,
			SYN: true, ACK: true, Window: 65535,
			Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}}}}
		tcp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, tcp, gopacket.Payload(s.payload))
	case s.proto == ProtoUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(s.sport), DstPort: layers.UDPPort(s.dport)}
		udp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, udp, gopacket.Payload(s.payload))
	case s.proto == ProtoSCTP:
		// One DATA chunk, padded to 4 bytes.
		chunk := []byte{0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}
		chunk = append(chunk, s.payload...)
		binary.BigEndian.PutUint16(chunk[2:], uint16(len(chunk)))
		for len(chunk)%4 != 0 {
			chunk = append(chunk, 0)
		}
		ls = append(ls, &layers.SCTP{SrcPort: layers.SCTPPort(s.sport), DstPort: layers.SCTPPort(s.dport),
			VerificationTag: 0x01020304}, gopacket.Payload(chunk))
	case s.proto == ProtoICMP:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(ICMPv4Echo, 0), Id: s.sport, Seq: 9},
			gopacket.Payload(s.payload))
	case s.proto == ProtoICMPv6:
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(ICMPv6EchoRequest, 0)}
		ic.SetNetworkLayerForChecksum(nl)
		ls = append(ls, ic, &layers.ICMPv6Echo{Identifier: s.sport, SeqNumber: 9}, gopacket.Payload(s.payload))
	default:
		t.Fatalf("unknown proto %d", s.proto)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	if s.proto == ProtoUDP && s.icmpErr == nil {
		// gopacket writes a computed 0 as 0; RFC 768 says all ones.
		var p Packet
		if Parse(b, &p) == DropNone && p.HasL4 && be16(b[p.L4Off+6:]) == 0 {
			put16(b[p.L4Off+6:], 0xffff)
		}
	}
	return b
}

func be16(b []byte) uint16     { return binary.BigEndian.Uint16(b) }
func put16(b []byte, v uint16) { binary.BigEndian.PutUint16(b, v) }

// refSum is the slow, obviously correct one's complement sum of b (RFC 1071):
// add 16-bit big-endian words, an odd last byte padded with zero, fold
// carries back in.
func refSum(b []byte, acc uint32) uint16 {
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		acc += w
		for acc > 0xffff {
			acc = acc&0xffff + acc>>16
		}
	}
	return uint16(acc)
}

// refPseudo sums an IP pseudo-header (RFC 793/768/8200 section 8.1).
func refPseudo(src, dst netip.Addr, proto Proto, length int) uint32 {
	var acc uint32
	acc += uint32(refSum(src.AsSlice(), 0))
	acc += uint32(refSum(dst.AsSlice(), 0))
	acc += uint32(proto)
	acc += uint32(length>>16) + uint32(length&0xffff)
	return acc
}

// refCRC32c is a bitwise CRC32c (reflected polynomial 0x82F63B78), the
// obviously correct reference for SCTP (RFC 9260 appendix A).
func refCRC32c(b []byte) uint32 {
	c := ^uint32(0)
	for _, x := range b {
		c ^= uint32(x)
		for k := 0; k < 8; k++ {
			if c&1 != 0 {
				c = c>>1 ^ 0x82F63B78
			} else {
				c >>= 1
			}
		}
	}
	return ^c
}

// region is one checksum-covered region's full sum (checksum field
// included): valid is 0xFFFF. For SCTP, sum holds stored XOR computed CRC.
type region struct {
	name string
	off  int // offset of the checksum field
	sum  uint32
	udp  bool // UDP: a zero field means none
}

// refRegions computes, with the slow reference, the full sum of every
// checksum this package maintains in the parsed frame. For a first fragment
// or an ICMP quote, where the covered data is not all there, the sum covers
// what is there: a rewrite must still leave it unchanged (mod 0xFFFF).
func refRegions(frame []byte, p *Packet) []region {
	var rs []region
	b := frame[:p.End]
	l3, l4 := int(p.L3Off), int(p.L4Off)
	if p.Version == 4 {
		rs = append(rs, region{name: "ipv4", off: l3 + 10, sum: uint32(refSum(b[l3:l4], 0))})
	}
	if p.HasL4 {
		seg := b[l4:]
		switch p.Proto {
		case ProtoTCP:
			rs = append(rs, region{name: "tcp", off: l4 + 16, sum: uint32(refSum(seg, refPseudo(p.Src, p.Dst, 6, len(seg))))})
		case ProtoUDP:
			ul := int(be16(seg[4:]))
			if ul > len(seg) {
				ul = len(seg)
			}
			rs = append(rs, region{name: "udp", off: l4 + 6, udp: true, sum: uint32(refSum(seg[:ul], refPseudo(p.Src, p.Dst, 17, ul)))})
		case ProtoICMP:
			rs = append(rs, region{name: "icmp", off: l4 + 2, sum: uint32(refSum(seg, 0))})
		case ProtoICMPv6:
			rs = append(rs, region{name: "icmpv6", off: l4 + 2, sum: uint32(refSum(seg, refPseudo(p.Src, p.Dst, 58, len(seg))))})
		case ProtoSCTP:
			if !p.Fragment {
				z := append([]byte(nil), seg...)
				copy(z[8:12], []byte{0, 0, 0, 0})
				rs = append(rs, region{name: "sctp", off: -1, sum: binary.LittleEndian.Uint32(seg[8:]) ^ refCRC32c(z)})
			}
		}
	}
	if p.ICMPError {
		il3, il4 := int(p.InnerL3Off), int(p.InnerL4Off)
		if p.Version == 4 {
			rs = append(rs, region{name: "inner-ipv4", off: il3 + 10, sum: uint32(refSum(b[il3:il4], 0))})
		}
		if p.InnerL4Checksum {
			seg := b[il4:]
			switch p.InnerProto {
			case ProtoTCP:
				rs = append(rs, region{name: "inner-tcp", off: il4 + 16, sum: uint32(refSum(seg, refPseudo(p.InnerSrc, p.InnerDst, 6, 0)))})
			case ProtoUDP:
				rs = append(rs, region{name: "inner-udp", off: il4 + 6, udp: true, sum: uint32(refSum(seg, refPseudo(p.InnerSrc, p.InnerDst, 17, 0)))})
			case ProtoICMP:
				rs = append(rs, region{name: "inner-icmp", off: il4 + 2, sum: uint32(refSum(seg, 0))})
			case ProtoICMPv6:
				rs = append(rs, region{name: "inner-icmpv6", off: il4 + 2, sum: uint32(refSum(seg, refPseudo(p.InnerSrc, p.InnerDst, 58, 0)))})
			}
		}
	}
	return rs
}

// sameResidue reports whether two one's complement sums are equal mod 0xFFFF
// (0x0000 and 0xFFFF are both zero).
func sameResidue(a, b uint32) bool { return a%0xffff == b%0xffff }

// checkRegions compares the checksum regions of frame after a rewrite with
// those before: each sum must be unchanged (mod 0xFFFF), except a UDP field
// that was 0 (no checksum), which must still be 0.
func checkRegions(t testing.TB, what string, before []region, beforeFrame, frame []byte, p *Packet) {
	t.Helper()
	after := refRegions(frame, p)
	if len(after) != len(before) {
		t.Fatalf("%s: %d checksum regions after, want %d", what, len(after), len(before))
	}
	for i := range before {
		bf, af := before[i], after[i]
		if bf.udp && be16(beforeFrame[bf.off:]) == 0 {
			if got := be16(frame[af.off:]); got != 0 {
				t.Errorf("%s: %s checksum = %#04x, want 0 (was none)", what, af.name, got)
			}
			continue
		}
		if af.name == "sctp" {
			if af.sum != bf.sum {
				t.Errorf("%s: sctp CRC error = %#08x, want %#08x", what, af.sum, bf.sum)
			}
			continue
		}
		if !sameResidue(af.sum, bf.sum) {
			t.Errorf("%s: %s sum = %#04x, want %#04x (mod 0xffff)", what, af.name, af.sum, bf.sum)
		}
	}
}

// checkValid asserts every checksum region of a frame verifies.
func checkValid(t testing.TB, what string, frame []byte) {
	t.Helper()
	var p Packet
	if r := Parse(frame, &p); r != DropNone {
		t.Fatalf("%s: Parse = %v, want none", what, r)
	}
	for _, r := range refRegions(frame, &p) {
		if r.name == "sctp" {
			if r.sum != 0 {
				t.Errorf("%s: sctp CRC off by %#08x", what, r.sum)
			}
			continue
		}
		if r.udp && be16(frame[r.off:]) == 0 {
			continue
		}
		if r.name == "inner-tcp" || r.name == "inner-udp" || r.name == "inner-icmp" || r.name == "inner-icmpv6" {
			continue // partial: compared against gopacket-built frames instead
		}
		if r.sum%0xffff != 0 {
			t.Errorf("%s: %s sum = %#04x, want 0xffff", what, r.name, r.sum)
		}
	}
}

// equalModNegZero compares two frames byte for byte, allowing a checksum
// field (at the given offsets) that was 0xFFFF in want to be 0x0000 in got
// (RFC 1624 eqn. 3 maps -0 to +0; see the package documentation).
func equalModNegZero(got, want []byte, csumOffs []int) bool {
	if len(got) != len(want) {
		return false
	}
	g := append([]byte(nil), got...)
	for _, o := range csumOffs {
		if o >= 0 && o+2 <= len(g) && be16(want[o:]) == 0xffff && be16(g[o:]) == 0 {
			put16(g[o:], 0xffff)
		}
	}
	return string(g) == string(want)
}
