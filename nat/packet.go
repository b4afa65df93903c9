package nat

import (
	"encoding/binary"
	"net/netip"
)

// Packet is the parse of one frame: offsets into the frame and the fields the
// dataplane keys on, filled in place by Parse. It holds no reference to the
// frame; its offsets are valid for the frame it was parsed from, for as long
// as that frame's bytes are not changed other than through this package's
// rewrite functions (which keep Packet and frame in step).
//
// Offsets are byte offsets from the start of the frame. A zero Packet is not
// a parse of anything (Version is 0).
type Packet struct {
	// L3Off is the offset of the IP header (after Ethernet and VLAN tags).
	L3Off uint16
	// L4Off is the offset of the transport header: after IPv4 options or
	// after the last IPv6 extension header Parse walked. For a non-first
	// fragment it is where the fragment's payload starts.
	L4Off uint16
	// End is the offset just past the IP packet (L3Off + IPv4 total length,
	// or L3Off + 40 + IPv6 payload length). Bytes from End to the end of the
	// frame are Ethernet padding and are never read or written.
	End uint16
	// InnerL3Off is the offset of the IP header quoted by an ICMP error
	// (valid when ICMPError is true).
	InnerL3Off uint16
	// InnerL4Off is the offset of the quoted transport header (valid when
	// ICMPError is true; the quote may end before it).
	InnerL4Off uint16

	// VLANTCI holds the tag control information of the VLAN tags, outer
	// first; VLANTags says how many are valid.
	VLANTCI [MaxVLANTags]uint16
	// VLANTags is the number of 802.1Q/802.1ad tags (0 to MaxVLANTags).
	VLANTags uint8
	// EtherType is the ethertype after the VLAN tags.
	EtherType uint16

	// Version is 4 or 6 for a parsed IP packet, 0 otherwise.
	Version uint8
	// Proto is the transport protocol: the IPv4 protocol field, or the
	// IPv6 next header after the extension headers.
	Proto Proto
	// TTL is the IPv4 time to live or IPv6 hop limit.
	TTL uint8
	// DontFragment is the IPv4 DF flag (always false for IPv6).
	DontFragment bool
	// Fragment is true for any fragment: more-fragments set or a non-zero
	// offset. An IPv6 atomic fragment (fragment header with offset 0 and M
	// clear, RFC 6946) is not a fragment.
	Fragment bool
	// MoreFragments is the IPv4 MF flag or the IPv6 fragment header M flag.
	MoreFragments bool
	// FragHeader is true when an IPv6 fragment header is present.
	FragHeader bool
	// FragOffset is the fragment offset in bytes (the header field times 8).
	// A fragment with a non-zero offset carries no transport header: HasL4
	// is false and L4Off points at fragment payload.
	FragOffset uint16
	// FragID is the IPv4 identification (always filled) or the IPv6
	// fragment header identification (when FragHeader).
	FragID uint32

	// HasL4 is true when the transport header of Proto was parsed: the
	// packet is not a non-first fragment and Proto is TCP, UDP, SCTP,
	// ICMP (IPv4) or ICMPv6 (IPv6).
	HasL4 bool
	// HasPorts is true when SrcPort and DstPort are meaningful: TCP, UDP
	// and SCTP with HasL4, and ICMP/ICMPv6 echo request and reply, whose
	// identifier is both SrcPort and DstPort.
	HasPorts bool
	// SrcPort and DstPort are the transport ports (see HasPorts).
	SrcPort, DstPort uint16
	// TCPFlags is byte 13 of the TCP header (CWR ECE URG ACK PSH RST SYN FIN).
	TCPFlags uint8
	// ICMPType and ICMPCode are the ICMP/ICMPv6 type and code (HasL4).
	ICMPType, ICMPCode uint8

	// ICMPError is true for an ICMP/ICMPv6 error (IPv4 destination
	// unreachable, source quench, redirect, time exceeded, parameter problem;
	// IPv6 destination unreachable, packet too big, time exceeded, parameter
	// problem) whose quoted packet was parsed into the Inner fields.
	ICMPError bool
	// InnerProto is the transport protocol of the quoted packet.
	InnerProto Proto
	// InnerFragment is true when the quoted packet is a non-first fragment
	// (it then has no transport header).
	InnerFragment bool
	// InnerHasPorts is true when InnerSrcPort and InnerDstPort are
	// meaningful (quoted TCP, UDP, SCTP or ICMP echo, with at least 8 bytes
	// of its header quoted).
	InnerHasPorts bool
	// InnerL4Checksum is true when the quote includes the quoted packet's
	// transport checksum field and this package keeps it up to date (TCP with 18 bytes quoted, UDP, ICMP echo,
	// SCTP with 12 bytes quoted when the quoted IP header gives its length
	// and it is not a fragment).
	// A quote that ends between the two bytes of the TCP checksum leaves
	// that byte as it was: its new value depends on the missing one.
	InnerL4Checksum bool
	// InnerSrcPort and InnerDstPort are the quoted packet's ports.
	InnerSrcPort, InnerDstPort uint16

	// Src and Dst are the IP source and destination.
	Src, Dst netip.Addr
	// InnerSrc and InnerDst are the quoted packet's source and destination.
	InnerSrc, InnerDst netip.Addr
}

// Is4 reports whether the packet is IPv4.
func (p *Packet) Is4() bool { return p.Version == 4 }

// Is6 reports whether the packet is IPv6.
func (p *Packet) Is6() bool { return p.Version == 6 }

// Parse parses frame, an Ethernet II frame, into p. It never panics and never
// allocates; it does not verify checksums (the rewrites preserve a wrong
// checksum as wrong, see the package documentation).
//
// It returns DropNone for an IPv4 or IPv6 packet, NotIP for another
// ethertype, and otherwise the reason the frame is malformed; p is then only
// partly filled and must not be used for a rewrite.
func Parse(frame []byte, p *Packet) DropReason {
	*p = Packet{}
	if len(frame) > 0xffff {
		return DropFrameTooLong
	}
	if len(frame) < EthHdrLen {
		return DropEthernetTruncated
	}
	et := binary.BigEndian.Uint16(frame[EthTypeOff:])
	off := EthHdrLen
	for et == EtherTypeVLAN || et == EtherTypeQinQ {
		if p.VLANTags == MaxVLANTags {
			return DropVLANTooMany
		}
		if len(frame) < off+VLANTagLen {
			return DropVLANTruncated
		}
		p.VLANTCI[p.VLANTags] = binary.BigEndian.Uint16(frame[off:])
		p.VLANTags++
		et = binary.BigEndian.Uint16(frame[off+2:])
		off += VLANTagLen
	}
	p.EtherType = et
	p.L3Off = uint16(off)
	switch et {
	case EtherTypeIPv4:
		return parseIPv4(frame, off, p)
	case EtherTypeIPv6:
		return parseIPv6(frame, off, p)
	}
	return NotIP
}

func parseIPv4(frame []byte, off int, p *Packet) DropReason {
	if len(frame)-off < IPv4MinLen {
		return DropIPv4Truncated
	}
	ip := ipv4Hdr(frame[off:])
	if ip[IPv4VerIHLOff]>>4 != 4 {
		return DropIPv4Version
	}
	hl := ip.headerLen()
	if hl < IPv4MinLen {
		return DropIPv4HeaderLength
	}
	if hl > len(ip) {
		return DropIPv4Truncated
	}
	tot := ip.totalLen()
	if tot < hl || tot > len(ip) {
		return DropIPv4TotalLength
	}
	ip = ip[:tot]
	if hl > IPv4MinLen && !validIPv4Options(ip[IPv4MinLen:hl]) {
		return DropIPv4Options
	}
	ff := ip.flagsFrag()
	fragOff := int(ff&ipv4FragOffMask) * 8
	if fragOff+tot-hl > 0xffff {
		return DropFragmentTooLong
	}
	p.Version = 4
	p.End = uint16(off + tot)
	p.L4Off = uint16(off + hl)
	p.TTL = ip[ipv4TTL]
	p.Proto = Proto(ip[IPv4ProtoOff])
	p.FragID = uint32(ip.id())
	p.DontFragment = ff&ipv4FlagDF != 0
	p.MoreFragments = ff&ipv4FlagMF != 0
	p.FragOffset = uint16(fragOff)
	p.Fragment = p.MoreFragments || fragOff != 0
	p.Src = netip.AddrFrom4(ip.src())
	p.Dst = netip.AddrFrom4(ip.dst())
	if fragOff != 0 {
		return DropNone
	}
	if p.Proto == ProtoTCP { // the common case, without the call to parseL4
		return parseTCP(ip[hl:], p)
	}
	return parseL4(frame[:off+tot], off+hl, p)
}

// validIPv4Options walks the option TLVs (RFC 791 section 3.1): end of list
// and no-operation are one byte, every other option has a length byte that
// counts the type and length bytes and must fit.
func validIPv4Options(opts []byte) bool {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0: // end of option list
			return true
		case 1: // no operation
			i++
			continue
		}
		if i+1 >= len(opts) {
			return false
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return false
		}
		i += l
	}
	return true
}

func parseIPv6(frame []byte, off int, p *Packet) DropReason {
	if len(frame)-off < IPv6HdrLen {
		return DropIPv6Truncated
	}
	ip := ipv6Hdr(frame[off:])
	if ip[0]>>4 != 6 {
		return DropIPv6Version
	}
	end := off + IPv6HdrLen + ip.payloadLen()
	if end > len(frame) {
		return DropIPv6PayloadLength
	}
	frame = frame[:end]
	p.Version = 6
	p.End = uint16(end)
	p.TTL = ip[IPv6HopLimitOff]
	p.Src = netip.AddrFrom16(ip.src())
	p.Dst = netip.AddrFrom16(ip.dst())
	var x extWalk
	if r := x.walk(frame, off, Proto(ip[IPv6NextHeaderOff])); r != DropNone {
		return r
	}
	p.Proto = x.proto
	p.L4Off = uint16(x.l4)
	if x.fragHdr {
		p.FragHeader = true
		p.FragID = x.fragID
		p.FragOffset = x.fragOff
		p.MoreFragments = x.more
		p.Fragment = x.more || x.fragOff != 0
		if int(x.fragOff)+end-x.fragEnd > 0xffff {
			return DropFragmentTooLong
		}
		if x.fragOff != 0 {
			return DropNone
		}
	}
	return parseL4(frame, x.l4, p)
}

// extWalk is the result of walking IPv6 extension headers.
type extWalk struct {
	proto   Proto
	more    bool
	fragHdr bool
	fragOff uint16
	l4      int
	fragEnd int // offset just past the fragment header
	fragID  uint32
}

// walk follows the next-header chain from the IPv6 header at off through
// b[:len(b)], stopping at the first upper-layer protocol, at a fragment
// header with a non-zero offset (the rest is not a header), or at an error.
func (x *extWalk) walk(b []byte, off int, nh Proto) DropReason {
	h := off + IPv6HdrLen
	for n := 0; ; n++ {
		var l int
		switch nh {
		case ProtoHopByHop, ProtoRouting, ProtoDstOpts, 135, 139, 140, 253, 254:
			// Hop-by-hop, routing, destination options, mobility (RFC
			// 6275), HIP (RFC 7401), shim6 (RFC 5533), experimental (RFC
			// 3692): all share the generic format.
			if nh == ProtoHopByHop && n != 0 {
				return DropIPv6HopByHopOrder
			}
			if len(b)-h < 8 {
				return DropIPv6ExtTruncated
			}
			l = (int(b[h+1]) + 1) * 8
		case ProtoAH:
			if len(b)-h < 8 {
				return DropIPv6ExtTruncated
			}
			l = (int(b[h+1]) + 2) * 4
		case ProtoFragment:
			if len(b)-h < ipv6FragHdrLen {
				return DropIPv6ExtTruncated
			}
			l = ipv6FragHdrLen
			fo := binary.BigEndian.Uint16(b[h+2:])
			x.fragHdr = true
			x.fragOff = fo &^ 7
			x.more = fo&1 != 0
			x.fragID = binary.BigEndian.Uint32(b[h+4:])
			x.fragEnd = h + l
		default:
			x.proto = nh
			x.l4 = h
			return DropNone
		}
		if n >= MaxIPv6ExtHeaders {
			return DropIPv6ExtTooMany
		}
		if l > len(b)-h {
			return DropIPv6ExtTruncated
		}
		cur := nh
		nh = Proto(b[h])
		h += l
		if cur == ProtoFragment && x.fragOff != 0 {
			// The rest of a non-first fragment is payload.
			x.proto = nh
			x.l4 = h
			return DropNone
		}
	}
}

// parseL4 parses the transport header at off in b, where b ends with the IP
// packet.
func parseL4(b []byte, off int, p *Packet) DropReason {
	l4 := b[off:]
	switch p.Proto {
	case ProtoTCP:
		return parseTCP(l4, p)
	case ProtoUDP:
		if len(l4) < UDPHdrLen {
			return DropUDPTruncated
		}
		ul := int(binary.BigEndian.Uint16(l4[udpLength:]))
		if ul < UDPHdrLen || (!p.Fragment && ul > len(l4)) {
			return DropUDPLength
		}
	case ProtoSCTP:
		if len(l4) < sctpHdrLen {
			return DropSCTPTruncated
		}
	case ProtoICMP, ProtoICMPv6:
		return parseICMP(b, off, p)
	default:
		return DropNone
	}
	p.HasL4 = true
	p.HasPorts = true
	p.SrcPort = binary.BigEndian.Uint16(l4[l4SrcPort:])
	p.DstPort = binary.BigEndian.Uint16(l4[l4DstPort:])
	return DropNone
}

// parseTCP parses the TCP header at the start of l4, which ends with the IP
// packet.
func parseTCP(l4 []byte, p *Packet) DropReason {
	if len(l4) < TCPMinLen {
		return DropTCPTruncated
	}
	doff := int(l4[tcpDataOff]>>4) * 4
	if doff < TCPMinLen || doff > len(l4) {
		return DropTCPDataOffset
	}
	p.TCPFlags = l4[tcpFlags]
	p.HasL4 = true
	p.HasPorts = true
	p.SrcPort = binary.BigEndian.Uint16(l4[l4SrcPort:])
	p.DstPort = binary.BigEndian.Uint16(l4[l4DstPort:])
	return DropNone
}

// icmpKind classifies an ICMP type of the given IP version.
func icmpKind(version, typ uint8) (echo, isErr bool) {
	if version == 4 {
		switch typ {
		case ICMPv4Echo, ICMPv4EchoReply:
			return true, false
		case ICMPv4DestUnreach, ICMPv4SourceQuench, ICMPv4Redirect, ICMPv4TimeExceeded, ICMPv4ParamProblem:
			return false, true
		}
		return false, false
	}
	switch typ {
	case ICMPv6EchoRequest, ICMPv6EchoReply:
		return true, false
	case ICMPv6DestUnreach, ICMPv6PacketTooBig, ICMPv6TimeExceeded, ICMPv6ParamProblem:
		return false, true
	}
	return false, false
}

func parseICMP(b []byte, off int, p *Packet) DropReason {
	if (p.Proto == ProtoICMP) != (p.Version == 4) {
		// ICMPv4 in IPv6 or ICMPv6 in IPv4: not ours to understand.
		return DropNone
	}
	l4 := b[off:]
	if len(l4) < 4 {
		return DropICMPTruncated
	}
	typ := l4[icmpType]
	echo, isErr := icmpKind(p.Version, typ)
	if (echo || isErr || p.Version == 4) && len(l4) < icmpHdrLen {
		return DropICMPTruncated
	}
	p.HasL4 = true
	p.ICMPType = typ
	p.ICMPCode = l4[icmpCode]
	switch {
	case echo:
		id := binary.BigEndian.Uint16(l4[icmpID:])
		p.HasPorts = true
		p.SrcPort, p.DstPort = id, id
	case isErr:
		return parseInner(b, off+icmpHdrLen, p)
	}
	return DropNone
}

// parseInner parses the IP packet quoted by an ICMP error, starting at off in
// b (which ends with the outer IP packet). The quote is usually truncated, so
// lengths in the quoted header are not checked against it.
func parseInner(b []byte, off int, p *Packet) DropReason {
	p.InnerL3Off = uint16(off)
	q := b[off:]
	var l4, n int // n: the quoted packet's transport length per its header
	innerMF := false
	if p.Version == 4 {
		if len(q) < IPv4MinLen {
			return DropICMPInnerTruncated
		}
		ip := ipv4Hdr(q)
		if ip[IPv4VerIHLOff]>>4 != 4 {
			return DropICMPInnerVersion
		}
		hl := ip.headerLen()
		if hl < IPv4MinLen {
			return DropICMPInnerHeaderLength
		}
		if hl > len(q) {
			return DropICMPInnerTruncated
		}
		p.InnerProto = Proto(ip[IPv4ProtoOff])
		p.InnerFragment = ip.flagsFrag()&ipv4FragOffMask != 0
		innerMF = ip.flagsFrag()&ipv4FlagMF != 0
		n = ip.totalLen() - hl
		p.InnerSrc = netip.AddrFrom4(ip.src())
		p.InnerDst = netip.AddrFrom4(ip.dst())
		l4 = off + hl
	} else {
		if len(q) < IPv6HdrLen {
			return DropICMPInnerTruncated
		}
		ip := ipv6Hdr(q)
		if ip[0]>>4 != 6 {
			return DropICMPInnerVersion
		}
		p.InnerSrc = netip.AddrFrom16(ip.src())
		p.InnerDst = netip.AddrFrom16(ip.dst())
		var x extWalk
		if r := x.walk(b, off, Proto(ip[IPv6NextHeaderOff])); r != DropNone {
			if r == DropIPv6ExtTruncated {
				return DropICMPInnerTruncated
			}
			return r
		}
		p.InnerProto = x.proto
		p.InnerFragment = x.fragOff != 0
		innerMF = x.more
		l4 = x.l4
		n = IPv6HdrLen + ip.payloadLen() - (l4 - off)
	}
	p.InnerL4Off = uint16(l4)
	p.ICMPError = true
	if p.InnerFragment {
		return DropNone
	}
	il4 := b[l4:]
	switch p.InnerProto {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
		if len(il4) < 8 {
			return DropICMPInnerL4Truncated
		}
		p.InnerHasPorts = true
		p.InnerSrcPort = binary.BigEndian.Uint16(il4[l4SrcPort:])
		p.InnerDstPort = binary.BigEndian.Uint16(il4[l4DstPort:])
		switch p.InnerProto {
		case ProtoTCP:
			p.InnerL4Checksum = len(il4) >= TCPChecksumOff+2
		case ProtoUDP:
			p.InnerL4Checksum = true
		case ProtoSCTP:
			// The CRC32c can be updated without the rest of the packet
			// if its length is known: not a fragment, a sane length.
			p.InnerL4Checksum = len(il4) >= sctpHdrLen && !innerMF && n >= sctpHdrLen
		}
	case ProtoICMP, ProtoICMPv6:
		if (p.InnerProto == ProtoICMP) != (p.Version == 4) {
			return DropNone
		}
		if len(il4) < 4 {
			return DropICMPInnerL4Truncated
		}
		echo, isErr := icmpKind(p.Version, il4[icmpType])
		if (echo || isErr || p.Version == 4) && len(il4) < icmpHdrLen {
			// As for the outer header: an ICMPv6 message of another
			// type may be 4 bytes long.
			return DropICMPInnerL4Truncated
		}
		if isErr {
			return DropICMPErrorInError
		}
		if echo {
			id := binary.BigEndian.Uint16(il4[icmpID:])
			p.InnerHasPorts = true
			p.InnerSrcPort, p.InnerDstPort = id, id
			p.InnerL4Checksum = true
		}
	}
	return DropNone
}
