package nat

import "strconv"

// DropReason is the outcome of Parse and of every rewrite on the data path: a
// small integer so that the dataplane can keep one counter per value in a
// [NumDropReasons]uint64 array.
//
// DropNone means success. NotIP is not a drop either: the frame is well formed
// Ethernet carrying something other than IPv4 or IPv6 (ARP, LLDP, ...), and
// belongs to the kernel. Every other value names one way a frame is malformed
// or one reason a rewrite cannot be applied.
type DropReason uint8

// Drop reasons. The order is part of no contract except that DropNone is zero
// and NumDropReasons is the count.
const (
	// DropNone: parsed, or rewritten, successfully.
	DropNone DropReason = iota
	// NotIP: a well-formed frame whose ethertype is neither IPv4 nor IPv6.
	NotIP

	// DropFrameTooLong: the frame is longer than 65535 bytes (offsets are uint16).
	DropFrameTooLong
	// DropEthernetTruncated: shorter than an Ethernet header.
	DropEthernetTruncated
	// DropVLANTruncated: an 802.1Q/802.1ad tag is cut off.
	DropVLANTruncated
	// DropVLANTooMany: more than two VLAN tags.
	DropVLANTooMany

	// DropIPv4Truncated: fewer bytes than the IPv4 header (with options) needs.
	DropIPv4Truncated
	// DropIPv4Version: ethertype IPv4 but the version field is not 4.
	DropIPv4Version
	// DropIPv4HeaderLength: IHL below 5.
	DropIPv4HeaderLength
	// DropIPv4Options: an IPv4 option whose length is malformed.
	DropIPv4Options
	// DropIPv4TotalLength: total length below the header length or beyond the frame.
	DropIPv4TotalLength

	// DropIPv6Truncated: fewer than 40 bytes for the IPv6 header.
	DropIPv6Truncated
	// DropIPv6Version: ethertype IPv6 but the version field is not 6.
	DropIPv6Version
	// DropIPv6PayloadLength: payload length beyond the frame.
	DropIPv6PayloadLength
	// DropIPv6ExtTruncated: an extension header runs past the payload.
	DropIPv6ExtTruncated
	// DropIPv6ExtTooMany: more than MaxIPv6ExtHeaders extension headers.
	DropIPv6ExtTooMany
	// DropIPv6HopByHopOrder: a hop-by-hop header that is not the first (RFC 8200 section 4.1).
	DropIPv6HopByHopOrder

	// DropFragmentTooLong: fragment offset plus length beyond 65535 bytes.
	DropFragmentTooLong

	// DropTCPTruncated: fewer than 20 bytes of TCP header.
	DropTCPTruncated
	// DropTCPDataOffset: data offset below 5 or beyond the packet.
	DropTCPDataOffset
	// DropUDPTruncated: fewer than 8 bytes of UDP header.
	DropUDPTruncated
	// DropUDPLength: UDP length below 8 or beyond the IP payload.
	DropUDPLength
	// DropSCTPTruncated: fewer than 12 bytes of SCTP common header.
	DropSCTPTruncated
	// DropICMPTruncated: an ICMP/ICMPv6 header shorter than its type needs.
	DropICMPTruncated

	// DropICMPInnerTruncated: an ICMP error quotes less than an IP header.
	DropICMPInnerTruncated
	// DropICMPInnerVersion: the quoted header's version differs from the outer family.
	DropICMPInnerVersion
	// DropICMPInnerHeaderLength: the quoted IPv4 header has IHL below 5.
	DropICMPInnerHeaderLength
	// DropICMPInnerL4Truncated: fewer than 8 quoted bytes of a TCP/UDP/SCTP/ICMP header.
	DropICMPInnerL4Truncated
	// DropICMPErrorInError: an ICMP error quoting an ICMP error (never sent, RFC 1122 3.2.2).
	DropICMPErrorInError

	// DropFamilyMismatch: a rewrite got an address of the other family (no NAT46).
	DropFamilyMismatch
	// DropNoPorts: a port rewrite on a packet without ports (non-first fragment,
	// ICMP other than echo, a protocol without ports).
	DropNoPorts
	// DropUnsupportedProto: an address rewrite on a transport this package
	// cannot keep consistent (not TCP, UDP, SCTP, ICMP or ICMPv6).
	DropUnsupportedProto
	// DropSCTPFragment: an SCTP port rewrite on a fragment (the CRC32c covers
	// the whole SCTP packet, which a fragment does not hold).
	DropSCTPFragment
	// DropNotICMPError: an inner rewrite on a packet that is not an ICMP error.
	DropNotICMPError
	// DropTTLExpired: TTL or hop limit is 1 or 0; the frame was not changed.
	DropTTLExpired

	// NumDropReasons is the number of DropReason values.
	NumDropReasons
)

var dropReasonNames = [NumDropReasons]string{
	DropNone:                  "none",
	NotIP:                     "not-ip",
	DropFrameTooLong:          "frame-too-long",
	DropEthernetTruncated:     "ethernet-truncated",
	DropVLANTruncated:         "vlan-truncated",
	DropVLANTooMany:           "vlan-too-many",
	DropIPv4Truncated:         "ipv4-truncated",
	DropIPv4Version:           "ipv4-version",
	DropIPv4HeaderLength:      "ipv4-header-length",
	DropIPv4Options:           "ipv4-options",
	DropIPv4TotalLength:       "ipv4-total-length",
	DropIPv6Truncated:         "ipv6-truncated",
	DropIPv6Version:           "ipv6-version",
	DropIPv6PayloadLength:     "ipv6-payload-length",
	DropIPv6ExtTruncated:      "ipv6-ext-truncated",
	DropIPv6ExtTooMany:        "ipv6-ext-too-many",
	DropIPv6HopByHopOrder:     "ipv6-hop-by-hop-order",
	DropFragmentTooLong:       "fragment-too-long",
	DropTCPTruncated:          "tcp-truncated",
	DropTCPDataOffset:         "tcp-data-offset",
	DropUDPTruncated:          "udp-truncated",
	DropUDPLength:             "udp-length",
	DropSCTPTruncated:         "sctp-truncated",
	DropICMPTruncated:         "icmp-truncated",
	DropICMPInnerTruncated:    "icmp-inner-truncated",
	DropICMPInnerVersion:      "icmp-inner-version",
	DropICMPInnerHeaderLength: "icmp-inner-header-length",
	DropICMPInnerL4Truncated:  "icmp-inner-l4-truncated",
	DropICMPErrorInError:      "icmp-error-in-error",
	DropFamilyMismatch:        "family-mismatch",
	DropNoPorts:               "no-ports",
	DropUnsupportedProto:      "unsupported-proto",
	DropSCTPFragment:          "sctp-fragment",
	DropNotICMPError:          "not-icmp-error",
	DropTTLExpired:            "ttl-expired",
}

// String returns a short lower-case name, suitable as a metric label value.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropReasonNames[r]
	}
	return "drop-reason(" + strconv.Itoa(int(r)) + ")"
}
