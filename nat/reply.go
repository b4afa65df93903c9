package nat

import (
	"encoding/binary"
	"net/netip"
)

// Quote limits of ICMP errors, in bytes of the offending packet.
const (
	// MaxICMPv4Quote: RFC 792 asks for the IP header plus 64 bits of
	// data; RFC 1812 section 4.3.2.3 lets a router quote as much as keeps
	// the error within 576 bytes: 576 - 20 (IP) - 8 (ICMP).
	MaxICMPv4Quote = 576 - IPv4MinLen - icmpHdrLen
	// MaxICMPv6Quote: RFC 4443 section 2.4(c): as much of the invoking
	// packet as fits without the error exceeding the minimum IPv6 MTU:
	// 1280 - 40 (IPv6) - 8 (ICMPv6).
	MaxICMPv6Quote = 1280 - IPv6HdrLen - icmpHdrLen
)

// Fields of the replies this package builds.
const (
	replyTTL   = 64
	replyTOSv4 = 0xc0 // DSCP CS6, network control, as Linux sends ICMP errors
)

// BuildICMPPortUnreachable writes into buf a complete Ethernet frame
// answering the packet p (parsed from frame) with ICMP destination
// unreachable, port unreachable (type 3 code 3) for IPv4 or ICMPv6
// destination unreachable, port unreachable (type 1 code 4) for IPv6: the
// reply to a new connection that a service without endpoints rejects. It
// returns the frame length.
//
// The reply goes back where the packet came from: Ethernet addresses
// swapped, the same VLAN tags, IP destination the packet's source, IP source
// src (the caller's choice, usually the address the packet was sent to). It
// quotes the packet from its IP header on, as received (call it before any
// rewrite), up to MaxICMPv4Quote or MaxICMPv6Quote bytes and never less than
// the IP header plus 8 bytes (or the whole packet if shorter); a buf too
// short for that is ErrShortBuffer, a longer quote is cut to fit buf.
//
// It refuses with ErrICMPNotAllowed where RFC 1122 section 3.2.2 and RFC
// 4443 section 2.4(e) forbid an error: about an ICMP error, a non-initial
// IPv4 fragment, a multicast or broadcast (IP or link layer) destination, or
// a source that is unspecified, multicast, loopback, IPv4 limited broadcast
// or class E. buf must not overlap frame.
func BuildICMPPortUnreachable(buf, frame []byte, p *Packet, src netip.Addr) (int, error) {
	if p.Version == 4 {
		return buildICMPError(buf, frame, p, src, ICMPv4DestUnreach, ICMPv4CodePortUnrch, 0)
	}
	return buildICMPError(buf, frame, p, src, ICMPv6DestUnreach, ICMPv6CodePortUnrch, 0)
}

// BuildICMPTimeExceeded writes into buf an ICMP time exceeded in transit
// (IPv4 type 11 code 0, ICMPv6 type 3 code 0) answering p, for a packet whose
// TTL or hop limit expired (DecrementTTL returned DropTTLExpired). Everything
// else is as for BuildICMPPortUnreachable.
func BuildICMPTimeExceeded(buf, frame []byte, p *Packet, src netip.Addr) (int, error) {
	if p.Version == 4 {
		return buildICMPError(buf, frame, p, src, ICMPv4TimeExceeded, 0, 0)
	}
	return buildICMPError(buf, frame, p, src, ICMPv6TimeExceeded, 0, 0)
}

// BuildICMPTooBig writes into buf the answer to a packet p that does not
// fit the next hop's MTU: for IPv4 (with DF set) destination unreachable,
// fragmentation needed (type 3 code 4) with the next-hop MTU in the low 16
// bits of the second word (RFC 1191 section 4); for IPv6 packet too big
// (type 2 code 0) with the MTU in the second word (RFC 4443 section 3.2).
// Everything else is as for BuildICMPPortUnreachable.
func BuildICMPTooBig(buf, frame []byte, p *Packet, src netip.Addr, mtu int) (int, error) {
	if p.Version == 4 {
		return buildICMPError(buf, frame, p, src, ICMPv4DestUnreach, ICMPv4CodeFragNeeded, uint32(uint16(mtu)))
	}
	return buildICMPError(buf, frame, p, src, ICMPv6PacketTooBig, 0, uint32(mtu))
}

// icmpErrorAllowed applies RFC 1122 section 3.2.2 and RFC 4443 section 2.4(e).
func icmpErrorAllowed(frame []byte, p *Packet) bool {
	if p.ICMPError || frame[EthDstOff]&1 != 0 { // an ICMP error; link-layer multicast or broadcast
		return false
	}
	if p.HasL4 && p.Proto == ProtoICMPv6 && p.ICMPType < 128 {
		return false // any ICMPv6 error type, parsed or not (RFC 4443 section 2.1)
	}
	s, d := p.Src, p.Dst
	if d.IsMulticast() || s.IsMulticast() || s.IsUnspecified() || s.IsLoopback() {
		return false
	}
	if p.Version == 4 {
		if p.FragOffset != 0 {
			return false
		}
		s4, d4 := s.As4(), d.As4()
		if d4 == [4]byte{255, 255, 255, 255} || s4[0] >= 240 {
			return false // limited broadcast, class E (includes 255.255.255.255)
		}
	}
	return true
}

// buildICMPError builds the error; rest is the message's second word
// (unused, or the MTU of a too-big error).
func buildICMPError(buf, frame []byte, p *Packet, src netip.Addr, typ, code uint8, rest uint32) (int, error) {
	if p.Version != 4 && p.Version != 6 {
		return 0, ErrNotIP
	}
	if !familyOK(p, src) {
		return 0, ErrFamilyMismatch
	}
	if !icmpErrorAllowed(frame, p) {
		return 0, ErrICMPNotAllowed
	}
	l3, l4, end := int(p.L3Off), int(p.L4Off), int(p.End)
	orig := frame[l3:end]

	hdr, maxQ := IPv4MinLen, MaxICMPv4Quote
	if p.Version == 6 {
		hdr, maxQ = IPv6HdrLen, MaxICMPv6Quote
	}
	q := min(len(orig), maxQ)
	minQ := min(l4-l3+8, q)
	room := len(buf) - l3 - hdr - icmpHdrLen
	if room < minQ {
		return 0, ErrShortBuffer
	}
	q = min(q, room)
	n := l3 + hdr + icmpHdrLen + q

	// Ethernet and VLAN tags, addresses swapped.
	copy(buf[:l3], frame[:l3])
	copy(buf[EthDstOff:EthDstOff+6], frame[EthSrcOff:EthSrcOff+6])
	copy(buf[EthSrcOff:EthSrcOff+6], frame[EthDstOff:EthDstOff+6])

	ip := buf[l3 : l3+hdr]
	msg := buf[l3+hdr : n]
	msg[icmpType] = typ
	msg[icmpCode] = code
	msg[icmpChecksum], msg[icmpChecksum+1] = 0, 0
	binary.BigEndian.PutUint32(msg[4:], rest)
	copy(msg[icmpHdrLen:], orig[:q])

	if p.Version == 4 {
		ip[IPv4VerIHLOff] = 0x45
		ip[ipv4TOS] = replyTOSv4
		binary.BigEndian.PutUint16(ip[IPv4TotalLenOff:], uint16(hdr+len(msg)))
		binary.BigEndian.PutUint16(ip[ipv4ID:], 0)
		binary.BigEndian.PutUint16(ip[IPv4FlagsFragOff:], ipv4FlagDF) // RFC 6864: ID 0 with DF
		ip[ipv4TTL] = replyTTL
		ip[IPv4ProtoOff] = byte(ProtoICMP)
		ip[IPv4ChecksumOff], ip[IPv4ChecksumOff+1] = 0, 0
		s4, d4 := src.As4(), p.Src.As4()
		copy(ip[IPv4SrcOff:], s4[:])
		copy(ip[IPv4DstOff:], d4[:])
		binary.BigEndian.PutUint16(ip[IPv4ChecksumOff:], ^FoldSum(SumWords(ip, 0)))
		binary.BigEndian.PutUint16(msg[icmpChecksum:], ^FoldSum(SumWords(msg, 0)))
		return n, nil
	}
	binary.BigEndian.PutUint32(ip[0:], 6<<28) // version 6, traffic class 0, flow label 0
	binary.BigEndian.PutUint16(ip[IPv6PayloadLenOff:], uint16(len(msg)))
	ip[IPv6NextHeaderOff] = byte(ProtoICMPv6)
	ip[IPv6HopLimitOff] = replyTTL
	s16, d16 := src.As16(), p.Src.As16()
	copy(ip[IPv6SrcOff:], s16[:])
	copy(ip[IPv6DstOff:], d16[:])
	// RFC 4443 section 2.3: pseudo-header of source, destination, upper-layer
	// length and next header.
	acc := SumWords(ip[IPv6SrcOff:IPv6SrcOff+32], uint64(len(msg))+uint64(ProtoICMPv6))
	binary.BigEndian.PutUint16(msg[icmpChecksum:], ^FoldSum(SumWords(msg, acc)))
	return n, nil
}
