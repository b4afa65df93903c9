package nat

import (
	"encoding/binary"
	"fmt"
)

// Typed byte views of the headers this package reads and writes. Each view is
// a slice that starts at its header; the parser checks the length once and
// the accessors then index without further checks (the compiler still bounds
// checks, so a broken invariant panics instead of reading foreign memory).

// Ethernet II header, optionally followed by up to two 802.1Q/802.1ad tags:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination MAC (6 bytes)                  |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+     Source MAC (6 bytes)      +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           EtherType           |  (tag: TCI, then EtherType)   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	// EthDstOff is the offset of the destination MAC address.
	EthDstOff = 0
	// EthSrcOff is the offset of the source MAC address.
	EthSrcOff = 6
	// EthTypeOff is the offset of the EtherType (of the first tag's TPID
	// in a tagged frame).
	EthTypeOff = 12
	// EthHdrLen is the length of an untagged Ethernet II header.
	EthHdrLen = 14
	// VLANTagLen is the length of one 802.1Q/802.1ad tag (TPID and TCI).
	VLANTagLen = 4

	// EtherTypeIPv4 is the Ethernet II type of IPv4.
	EtherTypeIPv4 = 0x0800
	// EtherTypeIPv6 is the Ethernet II type of IPv6.
	EtherTypeIPv6 = 0x86DD
	// EtherTypeVLAN is the 802.1Q customer VLAN tag type.
	EtherTypeVLAN = 0x8100
	// EtherTypeQinQ is the 802.1ad service VLAN tag type.
	EtherTypeQinQ = 0x88A8

	// MaxVLANTags is the number of VLAN tags Parse accepts.
	MaxVLANTags = 2
)

// IPv4 header, RFC 791 section 3.1:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	// IPv4VerIHLOff is the offset of the version (high nibble) and
	// header length in 32-bit words (low nibble).
	IPv4VerIHLOff = 0
	ipv4TOS       = 1
	// IPv4TotalLenOff is the offset of the total length.
	IPv4TotalLenOff = 2
	ipv4ID          = 4
	// IPv4FlagsFragOff is the offset of the flags and fragment offset.
	IPv4FlagsFragOff = 6
	ipv4TTL          = 8
	// IPv4ProtoOff is the offset of the protocol (a Proto).
	IPv4ProtoOff = 9
	// IPv4ChecksumOff is the offset of the header checksum.
	IPv4ChecksumOff = 10
	// IPv4SrcOff is the offset of the source address.
	IPv4SrcOff = 12
	// IPv4DstOff is the offset of the destination address.
	IPv4DstOff = 16
	// IPv4MinLen is the length of a header without options.
	IPv4MinLen = 20

	ipv4FlagDF      = 0x4000
	ipv4FlagMF      = 0x2000
	ipv4FragOffMask = 0x1fff
)

// ipv4Hdr is a view of an IPv4 header; len >= IPv4MinLen.
type ipv4Hdr []byte

func (h ipv4Hdr) headerLen() int    { return int(h[IPv4VerIHLOff]&0x0f) * 4 }
func (h ipv4Hdr) totalLen() int     { return int(binary.BigEndian.Uint16(h[IPv4TotalLenOff:])) }
func (h ipv4Hdr) flagsFrag() uint16 { return binary.BigEndian.Uint16(h[IPv4FlagsFragOff:]) }
func (h ipv4Hdr) id() uint16        { return binary.BigEndian.Uint16(h[ipv4ID:]) }
func (h ipv4Hdr) src() [4]byte      { return [4]byte(h[IPv4SrcOff : IPv4SrcOff+4]) }
func (h ipv4Hdr) dst() [4]byte      { return [4]byte(h[IPv4DstOff : IPv4DstOff+4]) }

// IPv6 header, RFC 8200 section 3:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Source Address (16 bytes)                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|              Destination Address (16 bytes)                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Extension headers (RFC 8200 section 4) are walked by next header; all but
// the fragment header (fixed 8 bytes) and AH (RFC 4302: length in 4-byte
// units minus 2) carry their length in 8-byte units not counting the first.
const (
	// IPv6PayloadLenOff is the offset of the payload length.
	IPv6PayloadLenOff = 4
	// IPv6NextHeaderOff is the offset of the next header (a Proto).
	IPv6NextHeaderOff = 6
	// IPv6HopLimitOff is the offset of the hop limit.
	IPv6HopLimitOff = 7
	// IPv6SrcOff is the offset of the source address.
	IPv6SrcOff = 8
	// IPv6DstOff is the offset of the destination address.
	IPv6DstOff = 24
	// IPv6HdrLen is the length of the fixed header.
	IPv6HdrLen = 40

	ipv6FragHdrLen = 8

	// MaxIPv6ExtHeaders is the number of IPv6 extension headers Parse walks
	// before it gives up with DropIPv6ExtTooMany.
	MaxIPv6ExtHeaders = 8
)

// ipv6Hdr is a view of an IPv6 header; len >= IPv6HdrLen.
type ipv6Hdr []byte

func (h ipv6Hdr) payloadLen() int { return int(binary.BigEndian.Uint16(h[IPv6PayloadLenOff:])) }
func (h ipv6Hdr) src() [16]byte   { return [16]byte(h[IPv6SrcOff : IPv6SrcOff+16]) }
func (h ipv6Hdr) dst() [16]byte   { return [16]byte(h[IPv6DstOff : IPv6DstOff+16]) }

// Proto is an IP protocol number (IANA "Assigned Internet Protocol
// Numbers"): the IPv4 Protocol field, the IPv6 Next Header field. It is the
// one protocol type of xdpgate: packets, conntrack tuples and service ports
// all carry it.
type Proto uint8

// IP protocol numbers this package knows.
const (
	ProtoHopByHop Proto = 0
	ProtoICMP     Proto = 1
	ProtoTCP      Proto = 6
	ProtoUDP      Proto = 17
	ProtoRouting  Proto = 43
	ProtoFragment Proto = 44
	ProtoAH       Proto = 51
	ProtoICMPv6   Proto = 58
	ProtoNoNext   Proto = 59
	ProtoDstOpts  Proto = 60
	ProtoSCTP     Proto = 132
)

// String returns the protocol's name as Kubernetes spells it for a service
// port ("TCP", "UDP", "SCTP"), "ICMP" or "ICMPv6", and "proto(N)" for any
// other number.
func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoSCTP:
		return "SCTP"
	case ProtoICMP:
		return "ICMP"
	case ProtoICMPv6:
		return "ICMPv6"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// TCP header, RFC 9293 section 3.1 (ports 0-3, sequence number 4, data
// offset 12, flags 13, checksum 16); UDP header, RFC 768 (ports 0-3, length
// 4, checksum 6); SCTP common header, RFC 9260 section 3.1 (ports 0-3,
// verification tag 4, CRC32c 8, little-endian); ICMP/ICMPv6 header, RFC
// 792/4443 (type 0, code 1, checksum 2, echo identifier 4).
const (
	l4SrcPort = 0
	l4DstPort = 2

	// TCPSeqOff is the offset of the TCP sequence number.
	TCPSeqOff  = 4
	tcpDataOff = 12
	tcpFlags   = 13
	// TCPChecksumOff is the offset of the TCP checksum.
	TCPChecksumOff = 16
	// TCPMinLen is the length of a TCP header without options.
	TCPMinLen = 20

	udpLength = 4
	// UDPChecksumOff is the offset of the UDP checksum.
	UDPChecksumOff = 6
	// UDPHdrLen is the length of the UDP header.
	UDPHdrLen = 8

	sctpChecksum = 8
	sctpHdrLen   = 12

	icmpType     = 0
	icmpCode     = 1
	icmpChecksum = 2
	icmpID       = 4
	icmpHdrLen   = 8
)

// ICMP and ICMPv6 types this package treats specially.
const (
	ICMPv4EchoReply      = 0
	ICMPv4DestUnreach    = 3
	ICMPv4SourceQuench   = 4
	ICMPv4Redirect       = 5
	ICMPv4Echo           = 8
	ICMPv4TimeExceeded   = 11
	ICMPv4ParamProblem   = 12
	ICMPv6DestUnreach    = 1
	ICMPv6PacketTooBig   = 2
	ICMPv6TimeExceeded   = 3
	ICMPv6ParamProblem   = 4
	ICMPv6EchoRequest    = 128
	ICMPv6EchoReply      = 129
	ICMPv4CodePortUnrch  = 3
	ICMPv4CodeFragNeeded = 4
	ICMPv6CodePortUnrch  = 4
)
