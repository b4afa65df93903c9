// Package nat is xdpgate's packet core: it parses an Ethernet frame once into
// a flat Packet of offsets and fields, and rewrites the frame in place for
// DNAT, SNAT and their reverses, keeping every checksum right. It is pure Go,
// makes no system calls, builds on any OS, and neither Parse nor any rewrite
// or reply builder allocates (TestNoAllocs).
//
// # Model
//
// Headers are typed byte views (ipv4Hdr, ipv6Hdr) with offset constants under
// the RFC diagrams in header.go. Parse checks each length once, walks
// Ethernet (up to MaxVLANTags 802.1Q/802.1ad tags), IPv4 (options) or IPv6
// (up to MaxIPv6ExtHeaders extension headers), the transport header (TCP,
// UDP, SCTP, ICMP, ICMPv6) and, for an ICMP error, the quoted IP header and
// the first 8 bytes of its transport header. The result is a Packet: byte
// offsets (L3Off, L4Off, End, InnerL3Off, InnerL4Off), addresses as
// netip.Addr, ports and flags. Every malformed input gives its own
// DropReason, a small integer with NumDropReasons values for per-reason
// counters; a non-IP ethertype gives NotIP, which is not a drop. A non-first
// fragment has no transport header (Packet.HasL4 false); ICMP echo uses its
// identifier as both ports.
//
// # Validity
//
// A Packet holds offsets, not slices: it is valid for the frame it was parsed
// from for as long as that frame's bytes change only through this package's
// rewrites, which keep Packet and frame in step. Once the frame buffer is
// returned to its owner (a UMEM frame given back to the fill ring), the
// Packet describes nothing. Bytes after Packet.End (Ethernet padding) are
// never read or written.
//
// # Rewrites
//
// SetDst and SetSrc set an address and port; SetDstAddr and SetSrcAddr only
// an address. On a flow client C -> frontend V translated to endpoint B (and
// optionally masqueraded to gateway address G):
//
//	original direction, DNAT         SetDst(B, Bport)
//	original direction, SNAT         SetSrc(G, Gport)
//	reply, reverse SNAT              SetDst(C, Cport)
//	reply, reverse DNAT              SetSrc(V, Vport)
//
// An ICMP error about a translated flow quotes the packet as it left the
// NAT; RewriteICMPErrorInnerSrc and RewriteICMPErrorInnerDst rewrite the
// quote back (addresses, ports, quoted IPv4 header checksum, quoted transport
// checksum when quoted, and the ICMP checksum), and SetDstAddr/SetSrcAddr
// translate the outer header. DecrementTTL forwards, and reports expiry
// (DropTTLExpired) for BuildICMPTimeExceeded. BuildICMPPortUnreachable
// answers a rejected connection. Families never mix (no NAT46).
//
// # Checksums
//
// All one's complement checksums are updated incrementally in one function,
// ChecksumAdjust, with RFC 1624's equation 3:
//
//	HC' = ~(~HC + ~m + m')
//
// where m and m' are the old and new values of each changed 16-bit word. This
// covers the IPv4 header checksum, the TCP, UDP and ICMPv6 checksums with
// their pseudo-header (an address change counts), the ICMPv4 checksum (no
// pseudo-header: only the echo identifier and quoted bytes count), and the
// quoted IPv4 header and transport checksums of ICMP errors. A UDP checksum
// of 0 means "none" (RFC 768) and stays 0, over IPv6 too (RFC 6936 tunnels);
// a computed UDP checksum of 0 is written as 0xFFFF. Parse does not verify
// checksums: an incremental update keeps a wrong checksum wrong by the same
// amount, so the receiver still drops a corrupted packet.
//
// A rewrite followed by its reverse restores the frame byte for byte, with
// one exception that no arithmetic can avoid: a checksum field holding
// 0xFFFF (one's complement -0, which a correct sender writes only as UDP's
// form of zero, or for an all-zero ICMP echo) comes back as the equivalent
// 0x0000. UDP fields are exempt (a computed 0 is written as 0xFFFF), so they
// round-trip exactly too.
//
// SCTP's CRC32c (RFC 9260 appendix A) covers no pseudo-header, so an address
// change leaves it alone; a port change recomputes it over the whole SCTP
// packet (hash/crc32, Castagnoli), twice: once to find the error of the
// stored value, which is then kept (a corrupted packet stays detectably
// corrupted). A fragmented SCTP packet cannot have its port rewritten
// (DropSCTPFragment). The CRC of an SCTP header quoted by an ICMP error
// cannot be recomputed (the quote is not the whole packet); since CRC32c is
// linear over GF(2), it is updated from the XOR of the old and new ports
// shifted through the packet length the quoted IP header gives
// (crc32cShift, zlib's crc32_combine method).
//
// # Limits
//
//   - Frames longer than 65535 bytes (DropFrameTooLong) and IPv6 jumbograms
//     (a zero payload length) are not parsed.
//   - Addresses inside IPv4 options (record route, source route, timestamp)
//     are not rewritten, as in Linux NAT.
//   - The one quoted byte of a TCP checksum, when a quote ends between its
//     two bytes, is left as it was (its new value depends on the missing
//     byte); so is the CRC32c of a quoted SCTP header that is a fragment or
//     whose quoted IP header gives a length below 12.
//   - An IPv4 UDP checksum of 0 means none; over IPv6 (where RFC 8200
//     forbids it outside RFC 6936 tunnels) it is also left 0, not dropped.
package nat
