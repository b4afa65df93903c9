package dataplane

import "net/netip"

// Hop is where a packet to a destination leaves: the interface, its MAC and
// address, and the next hop's MAC.
type Hop struct {
	// Ifindex is the egress interface.
	Ifindex int
	// SrcMAC is the egress interface's MAC, DstMAC the next hop's.
	SrcMAC [6]byte
	DstMAC [6]byte
	// Src is the route's preferred source, else an address of the egress
	// interface of the destination's family (invalid when it has none).
	Src netip.Addr
	// Gateway is the next-hop router, or invalid for a directly connected
	// destination.
	Gateway netip.Addr
	// MTU is the egress interface's MTU.
	MTU int
}

// LookupStatus is the outcome of a next-hop lookup.
type LookupStatus uint8

// Lookup outcomes.
const (
	// LookupOK: Hop is complete.
	LookupOK LookupStatus = iota
	// LookupNoRoute: no route, or an unreachable/blackhole/prohibit route.
	LookupNoRoute
	// LookupUnresolved: the route is known but the next hop's MAC is not;
	// kernel resolution has been triggered. Hop has everything but DstMAC.
	LookupUnresolved
)

// NextHopper resolves next hops; *Egress implements it.
type NextHopper interface {
	Lookup(dst netip.Addr) (Hop, LookupStatus)
}
