package dataplane

import "strconv"

// DropReason says why a frame was dropped; Stats count drops per reason.
type DropReason uint8

// Drop reasons of the I/O layer and the Forwarder. The translation pipeline
// defines its own from FirstPipelineDropReason up to NumDropReasons-1 and
// names them with RegisterDropReason.
const (
	// DropUnspecified: the Processor returned VerdictDrop without a reason.
	DropUnspecified DropReason = iota
	// DropBadFrame: the Processor left Off/Len outside the UMEM chunk.
	DropBadFrame
	// DropEgressNotManaged: VerdictTX to an interface with no socket
	// (not a managed interface, and not, or not yet, a followed device).
	DropEgressNotManaged
	// DropTxRingFull: the egress socket's TX ring had no free slot.
	DropTxRingFull
	// DropNoTxFrame: the egress socket had no free UMEM frame for the copy.
	DropNoTxFrame
	// DropTooLong: the frame does not fit the egress socket's frame size.
	DropTooLong
	// DropNotIP: the Forwarder got a frame that is not IPv4 or IPv6
	// (VLAN-tagged frames included).
	DropNotIP
	// DropMalformed: truncated or invalid IP header.
	DropMalformed
	// DropTTLExceeded: TTL or hop limit would reach zero.
	DropTTLExceeded
	// DropNoRoute: no route, or an unreachable/blackhole/prohibit route.
	DropNoRoute
	// DropNeighUnresolved: the next hop's MAC is not known yet (resolution
	// has been triggered) and the frame could not be held: holding is
	// disabled or the Dataplane has no Config.Neighbours.
	DropNeighUnresolved
	// DropNeighHoldFull: the next hop's MAC is not known yet and the frames
	// held for it (Config.NeighHoldPerNeighbour) or for the queue
	// (Config.NeighHoldFrames) are at their bound.
	DropNeighHoldFull
	// DropNeighFailed: a held frame's next hop did not resolve within
	// Config.NeighHoldTime (the kernel's probes failed), or the poller
	// stopped while the frame was held.
	DropNeighFailed
	// DropEgressUnusable: the route leads to a device an AF_XDP dataplane
	// cannot send on (no Ethernet header: IPIP, WireGuard, TUN; an MTU
	// beyond the frame size; attaching failed). Logged once per device.
	DropEgressUnusable

	// FirstPipelineDropReason is the first reason the translation pipeline
	// may define.
	FirstPipelineDropReason DropReason = 32
	// NumDropReasons bounds DropReason: Stats hold one counter per value.
	NumDropReasons = 64
)

var dropReasonNames = [NumDropReasons]string{
	DropUnspecified:      "unspecified",
	DropBadFrame:         "bad_frame",
	DropEgressNotManaged: "egress_not_managed",
	DropTxRingFull:       "tx_ring_full",
	DropNoTxFrame:        "no_tx_frame",
	DropTooLong:          "too_long",
	DropNotIP:            "not_ip",
	DropMalformed:        "malformed",
	DropTTLExceeded:      "ttl_exceeded",
	DropNoRoute:          "no_route",
	DropNeighUnresolved:  "neigh_unresolved",
	DropNeighHoldFull:    "neigh_hold_full",
	DropNeighFailed:      "neigh_failed",
	DropEgressUnusable:   "egress_unusable",
}

// RegisterDropReason names a pipeline drop reason for String (and metrics).
// It is meant for package init functions; it is not safe for concurrent use
// with String.
func RegisterDropReason(r DropReason, name string) {
	if r < FirstPipelineDropReason || r >= NumDropReasons {
		panic("dataplane: RegisterDropReason outside the pipeline range")
	}
	dropReasonNames[r] = name
}

// String returns the reason's metric label, or "reason_N" when unnamed.
func (r DropReason) String() string {
	if int(r) < len(dropReasonNames) && dropReasonNames[r] != "" {
		return dropReasonNames[r]
	}
	return "reason_" + strconv.Itoa(int(r))
}
