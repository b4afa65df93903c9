package nat

import (
	"encoding/binary"
	"net/netip"
)

// Rewrites change a parsed frame in place and keep every checksum that
// covers the changed bytes consistent, incrementally (ChecksumAdjust). They
// check every precondition before writing, so a rewrite that returns a drop
// reason has not changed the frame. They update p to match the frame.
//
// frame must be the frame p was parsed from (or a byte-for-byte copy); a
// frame shorter than p.End is a broken caller invariant and panics.

// SetDst rewrites the destination address and port: DNAT on a packet of the
// original direction, or reverse SNAT on a reply (destination back to the
// client). For ICMP echo the port is the identifier.
//
// It returns DropFamilyMismatch if addr is not of the packet's family,
// DropNoPorts if the packet has no ports (see Packet.HasPorts; use SetDstAddr),
// DropUnsupportedProto for a transport other than TCP, UDP, SCTP, ICMP and
// ICMPv6, and DropSCTPFragment for an SCTP port change on a fragment.
func SetDst(frame []byte, p *Packet, addr netip.Addr, port uint16) DropReason {
	return rewrite4(frame, p, addr, port, true)
}

// SetSrc rewrites the source address and port: SNAT on a packet of the
// original direction, or reverse DNAT on a reply (source back to the
// frontend's address and port). Results as for SetDst.
func SetSrc(frame []byte, p *Packet, addr netip.Addr, port uint16) DropReason {
	return rewrite4(frame, p, addr, port, false)
}

// rewrite4 is SetDst and SetSrc with a fast path for the common case, an
// IPv4 TCP or UDP address and port: the same arithmetic as rewrite with
// fewer branches and a small stack frame (TestRandomIncrementalVsFull covers
// both paths). Anything else goes to rewrite.
func rewrite4(frame []byte, p *Packet, addr netip.Addr, port uint16, dst bool) DropReason {
	if p.Version == 4 && p.HasPorts && (p.Proto == ProtoTCP || p.Proto == ProtoUDP) && addr.Is4() {
		l3, l4 := int(p.L3Off), int(p.L4Off)
		ao, po := l3+IPv4SrcOff, l4+l4SrcPort
		if dst {
			ao, po = l3+IPv4DstOff, l4+l4DstPort
		}
		b := frame[:p.End]
		a := addr.As4()
		n := binary.BigEndian.Uint32(a[:])
		f := b[ao : ao+4]
		d := diff32(binary.BigEndian.Uint32(f), n)
		binary.BigEndian.PutUint32(f, n)
		c := b[l3+IPv4ChecksumOff : l3+IPv4ChecksumOff+2]
		binary.BigEndian.PutUint16(c, ChecksumAdjust(binary.BigEndian.Uint16(c), d))
		if old := binary.BigEndian.Uint16(b[po:]); old != port {
			d += diff16(old, port)
			binary.BigEndian.PutUint16(b[po:], port)
		}
		if p.Proto == ProtoTCP {
			c = b[l4+TCPChecksumOff : l4+TCPChecksumOff+2]
			binary.BigEndian.PutUint16(c, ChecksumAdjust(binary.BigEndian.Uint16(c), d))
		} else {
			c = b[l4+UDPChecksumOff : l4+UDPChecksumOff+2]
			binary.BigEndian.PutUint16(c, adjustUDP(binary.BigEndian.Uint16(c), d))
		}
		if dst {
			p.Dst, p.DstPort = addr, port
		} else {
			p.Src, p.SrcPort = addr, port
		}
		return DropNone
	}
	return rewrite(frame, p, addr, port, dst, true)
}

// SetDstAddr rewrites only the destination address: the outer header of a
// translated ICMP error, a non-first fragment, or a flow whose port stays.
// Results as for SetDst, without DropNoPorts and DropSCTPFragment.
func SetDstAddr(frame []byte, p *Packet, addr netip.Addr) DropReason {
	return rewrite(frame, p, addr, 0, true, false)
}

// SetSrcAddr rewrites only the source address; see SetDstAddr.
func SetSrcAddr(frame []byte, p *Packet, addr netip.Addr) DropReason {
	return rewrite(frame, p, addr, 0, false, false)
}

func familyOK(p *Packet, addr netip.Addr) bool {
	switch p.Version {
	case 4:
		return addr.Is4()
	case 6:
		return addr.Is6()
	}
	return false
}

func rewrite(frame []byte, p *Packet, addr netip.Addr, port uint16, dst, withPort bool) DropReason {
	if !familyOK(p, addr) {
		return DropFamilyMismatch
	}
	if withPort && !p.HasPorts {
		return DropNoPorts
	}
	if p.FragOffset == 0 && !p.HasL4 {
		return DropUnsupportedProto
	}
	b := frame[:p.End]
	l4 := int(p.L4Off)
	var portOff int
	sctpPort := false
	if withPort {
		switch {
		case p.Proto == ProtoICMP || p.Proto == ProtoICMPv6:
			portOff = l4 + icmpID
		case dst:
			portOff = l4 + l4DstPort
		default:
			portOff = l4 + l4SrcPort
		}
		if p.Proto == ProtoSCTP && binary.BigEndian.Uint16(b[portOff:]) != port {
			if p.Fragment {
				return DropSCTPFragment
			}
			sctpPort = true
		}
	}

	// Preconditions checked; from here on the frame changes.
	l3 := int(p.L3Off)
	var d uint32
	if p.Version == 4 {
		a := addr.As4()
		o := l3 + IPv4SrcOff
		if dst {
			o = l3 + IPv4DstOff
		}
		f := b[o : o+4]
		d = diff4(f, a[:])
		copy(f, a[:])
		c := b[l3+IPv4ChecksumOff : l3+IPv4ChecksumOff+2]
		binary.BigEndian.PutUint16(c, ChecksumAdjust(binary.BigEndian.Uint16(c), d))
	} else {
		a := addr.As16()
		o := l3 + IPv6SrcOff
		if dst {
			o = l3 + IPv6DstOff
		}
		f := b[o : o+16]
		d = diff16B(f, a[:])
		copy(f, a[:])
	}
	if dst {
		p.Dst = addr
	} else {
		p.Src = addr
	}
	if !p.HasL4 {
		return DropNone // non-first fragment: no transport header here
	}

	if sctpPort {
		// SCTP's CRC32c covers no pseudo-header, so an address change
		// leaves it alone; a port change needs a full recompute over the
		// SCTP packet. A CRC that was wrong stays wrong by the same error
		// pattern: the stored value is XORed with the error found before.
		s := b[l4:]
		e := binary.LittleEndian.Uint32(s[sctpChecksum:]) ^ sctpCRC(s)
		binary.BigEndian.PutUint16(b[portOff:], port)
		binary.LittleEndian.PutUint32(s[sctpChecksum:], sctpCRC(s)^e)
		setPacketPort(p, port, dst)
		return DropNone
	}
	var pd uint32
	if withPort {
		if old := binary.BigEndian.Uint16(b[portOff:]); old != port {
			pd = diff16(old, port)
			binary.BigEndian.PutUint16(b[portOff:], port)
			setPacketPort(p, port, dst)
		}
	}
	switch p.Proto {
	case ProtoTCP:
		c := b[l4+TCPChecksumOff : l4+TCPChecksumOff+2]
		binary.BigEndian.PutUint16(c, ChecksumAdjust(binary.BigEndian.Uint16(c), d+pd))
	case ProtoUDP:
		c := b[l4+UDPChecksumOff : l4+UDPChecksumOff+2]
		binary.BigEndian.PutUint16(c, adjustUDP(binary.BigEndian.Uint16(c), d+pd))
	case ProtoICMPv6:
		// RFC 4443 section 2.3: the checksum covers an IPv6 pseudo-header.
		c := b[l4+icmpChecksum : l4+icmpChecksum+2]
		binary.BigEndian.PutUint16(c, ChecksumAdjust(binary.BigEndian.Uint16(c), d+pd))
	case ProtoICMP:
		// RFC 792: the checksum covers the ICMP message only.
		if pd != 0 {
			c := b[l4+icmpChecksum : l4+icmpChecksum+2]
			binary.BigEndian.PutUint16(c, ChecksumAdjust(binary.BigEndian.Uint16(c), pd))
		}
	}
	return DropNone
}

func setPacketPort(p *Packet, port uint16, dst bool) {
	switch {
	case p.Proto == ProtoICMP || p.Proto == ProtoICMPv6:
		p.SrcPort, p.DstPort = port, port
	case dst:
		p.DstPort = port
	default:
		p.SrcPort = port
	}
}

// RewriteICMPErrorInnerSrc rewrites the source address and port of the packet
// quoted by an ICMP error: its IPv4 header checksum, its transport checksum
// when quoted (Packet.InnerL4Checksum) and the ICMP checksum are updated.
// For an error about a translated flow the quote is a packet of the flow as
// it left the NAT; rewrite it back to what the far end sent (for example,
// after SNAT, the quoted source back to the client), and the outer header
// with SetDstAddr/SetSrcAddr.
//
// A quoted SCTP header's CRC32c covers the whole original packet, which the
// quote does not hold; it is updated by the linearity of CRCs from the
// length the quoted IP header gives (see Packet.InnerL4Checksum).
//
// It returns DropNotICMPError if p is not an ICMP error, DropFamilyMismatch,
// or DropNoPorts if the quote has no ports (Packet.InnerHasPorts).
func RewriteICMPErrorInnerSrc(frame []byte, p *Packet, addr netip.Addr, port uint16) DropReason {
	return rewriteInner(frame, p, addr, port, false)
}

// RewriteICMPErrorInnerDst rewrites the destination address and port of the
// packet quoted by an ICMP error; see RewriteICMPErrorInnerSrc.
func RewriteICMPErrorInnerDst(frame []byte, p *Packet, addr netip.Addr, port uint16) DropReason {
	return rewriteInner(frame, p, addr, port, true)
}

func rewriteInner(frame []byte, p *Packet, addr netip.Addr, port uint16, dst bool) DropReason {
	if !p.ICMPError {
		return DropNotICMPError
	}
	if !familyOK(p, addr) {
		return DropFamilyMismatch
	}
	if !p.InnerHasPorts {
		return DropNoPorts
	}
	b := frame[:p.End]
	il3, il4 := int(p.InnerL3Off), int(p.InnerL4Off)

	// d: change of the inner addresses (inner pseudo-header); body: change
	// of every word of the ICMP message body, for the ICMP checksum.
	var d, body uint32
	if p.Version == 4 {
		a := addr.As4()
		o := il3 + IPv4SrcOff
		if dst {
			o = il3 + IPv4DstOff
		}
		f := b[o : o+4]
		d = diff4(f, a[:])
		copy(f, a[:])
		c := b[il3+IPv4ChecksumOff : il3+IPv4ChecksumOff+2]
		old := binary.BigEndian.Uint16(c)
		n := ChecksumAdjust(old, d)
		binary.BigEndian.PutUint16(c, n)
		body = d + diff16(old, n)
	} else {
		a := addr.As16()
		o := il3 + IPv6SrcOff
		if dst {
			o = il3 + IPv6DstOff
		}
		f := b[o : o+16]
		d = diff16B(f, a[:])
		copy(f, a[:])
		body = d
	}

	echo := p.InnerProto == ProtoICMP || p.InnerProto == ProtoICMPv6
	var po int
	switch {
	case echo:
		po = il4 + icmpID
	case dst:
		po = il4 + l4DstPort
	default:
		po = il4 + l4SrcPort
	}
	var pd uint32
	var pdXor uint32 // old XOR new port, placed in the 32-bit word of both ports
	if old := binary.BigEndian.Uint16(b[po:]); old != port {
		pd = diff16(old, port)
		pdXor = uint32(old ^ port)
		if po == il4+l4SrcPort {
			pdXor <<= 16
		}
		binary.BigEndian.PutUint16(b[po:], port)
		body += pd
	}

	if p.InnerL4Checksum && p.InnerProto == ProtoSCTP {
		if pd != 0 {
			// CRC32c, by linearity (sctpCRCDelta); its two 16-bit words
			// count in the ICMP checksum.
			var n int
			if p.Version == 4 {
				n = int(binary.BigEndian.Uint16(b[il3+IPv4TotalLenOff:])) - (il4 - il3)
			} else {
				n = IPv6HdrLen + int(binary.BigEndian.Uint16(b[il3+IPv6PayloadLenOff:])) - (il4 - il3)
			}
			c := b[il4+sctpChecksum : il4+sctpChecksum+4]
			old := binary.BigEndian.Uint32(c)
			oldPorts := binary.BigEndian.Uint32(b[il4:]) ^ pdXor
			nc := binary.LittleEndian.Uint32(c) ^ sctpCRCDelta(oldPorts, binary.BigEndian.Uint32(b[il4:]), n)
			binary.LittleEndian.PutUint32(c, nc)
			body += diff32(old, binary.BigEndian.Uint32(c))
		}
	} else if p.InnerL4Checksum {
		var co int
		var n uint16
		switch p.InnerProto {
		case ProtoTCP:
			co = il4 + TCPChecksumOff
			n = ChecksumAdjust(binary.BigEndian.Uint16(b[co:]), d+pd)
		case ProtoUDP:
			co = il4 + UDPChecksumOff
			n = adjustUDP(binary.BigEndian.Uint16(b[co:]), d+pd)
		case ProtoICMPv6:
			co = il4 + icmpChecksum
			n = ChecksumAdjust(binary.BigEndian.Uint16(b[co:]), d+pd)
		default: // ICMP echo: no pseudo-header
			co = il4 + icmpChecksum
			n = ChecksumAdjust(binary.BigEndian.Uint16(b[co:]), pd)
		}
		old := binary.BigEndian.Uint16(b[co:])
		binary.BigEndian.PutUint16(b[co:], n)
		body += diff16(old, n)
	}

	c := b[int(p.L4Off)+icmpChecksum : int(p.L4Off)+icmpChecksum+2]
	binary.BigEndian.PutUint16(c, ChecksumAdjust(binary.BigEndian.Uint16(c), body))

	switch {
	case dst:
		p.InnerDst = addr
	default:
		p.InnerSrc = addr
	}
	switch {
	case echo:
		p.InnerSrcPort, p.InnerDstPort = port, port
	case dst:
		p.InnerDstPort = port
	default:
		p.InnerSrcPort = port
	}
	return DropNone
}

// DecrementTTL decrements the IPv4 TTL (updating the header checksum) or the
// IPv6 hop limit of a packet being forwarded. If the TTL or hop limit is 1 or
// 0 it changes nothing and returns DropTTLExpired: the dataplane then answers
// with BuildICMPTimeExceeded (RFC 1812 section 5.3.1, RFC 8200 section 3).
func DecrementTTL(frame []byte, p *Packet) DropReason {
	l3 := int(p.L3Off)
	switch p.Version {
	case 4:
		ip := frame[l3:p.End]
		if !DecrementTTL4(ip) {
			return DropTTLExpired
		}
		p.TTL = ip[ipv4TTL]
	case 6:
		h := &frame[l3+IPv6HopLimitOff]
		if *h <= 1 {
			return DropTTLExpired
		}
		*h--
		p.TTL = *h
	default:
		return NotIP
	}
	return DropNone
}

// DecrementTTL4 decrements the TTL of the IPv4 header at the start of ip and
// updates its header checksum incrementally (RFC 1624, through the same
// ChecksumAdjust as every other rewrite). It is for callers that have not
// parsed the frame (the raw Forwarder): ip must hold at least the 20-byte
// fixed header. It returns false, leaving ip unchanged, when the TTL is 1 or
// less: the packet must not be forwarded.
func DecrementTTL4(ip []byte) bool {
	w := ip[ipv4TTL : ipv4TTL+2] // TTL and protocol: one 16-bit word
	old := binary.BigEndian.Uint16(w)
	if old>>8 <= 1 {
		return false
	}
	n := old - 0x100
	binary.BigEndian.PutUint16(w, n)
	c := ip[IPv4ChecksumOff : IPv4ChecksumOff+2]
	binary.BigEndian.PutUint16(c, ChecksumAdjust(binary.BigEndian.Uint16(c), diff16(old, n)))
	return true
}
