package nat

import "errors"

// Errors returned by the reply builders. They are preallocated, so returning
// one does not allocate.
var (
	// ErrNotIP: the packet given to a builder was not parsed as IPv4 or IPv6.
	ErrNotIP = errors.New("nat: not an IP packet")
	// ErrFamilyMismatch: the reply source address is not of the packet's family.
	ErrFamilyMismatch = errors.New("nat: address family mismatch")
	// ErrShortBuffer: the buffer cannot hold the smallest valid reply.
	ErrShortBuffer = errors.New("nat: buffer too short")
	// ErrICMPNotAllowed: RFC 1122 section 3.2.2 or RFC 4443 section 2.4(e)
	// forbids an ICMP error about this packet (an ICMP error, a non-initial
	// IPv4 fragment, a multicast or broadcast destination, a source that does
	// not name a single host).
	ErrICMPNotAllowed = errors.New("nat: ICMP error not allowed for this packet")
)
