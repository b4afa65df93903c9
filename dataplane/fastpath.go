package dataplane

import (
	"net/netip"

	"github.com/xdpgate/xdpgate/nat"
)

// DefaultFastPathFlows is the XDP fast path's flow capacity when it is on
// and ClassifierConfig.FastPathFlows is not set: 128 bytes of kernel memory
// per flow for its counters (16 MiB), the rewrite entries allocated as flows
// are installed.
const DefaultFastPathFlows = 131072

// FastTuple is a direction's 5-tuple as the XDP fast path matches or writes
// it: addresses in the 16-byte form (IPv4 mapped, ::ffff:a.b.c.d), ports in
// host order. It is pointer-free so tables of them cost the garbage
// collector nothing.
type FastTuple struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
	Proto            nat.Proto
}

// MakeFastTuple builds a FastTuple.
func MakeFastTuple(src, dst netip.Addr, sport, dport uint16, proto nat.Proto) FastTuple {
	return FastTuple{Src: src.Unmap().As16(), Dst: dst.Unmap().As16(), SrcPort: sport, DstPort: dport, Proto: proto}
}

// SrcAddr and DstAddr return the addresses (IPv4 unmapped).
func (t *FastTuple) SrcAddr() netip.Addr { return netip.AddrFrom16(t.Src).Unmap() }

// DstAddr returns the destination address (IPv4 unmapped).
func (t *FastTuple) DstAddr() netip.Addr { return netip.AddrFrom16(t.Dst).Unmap() }

// FastEntry is one direction of an established flow as the XDP fast path
// forwards it: frames carrying In leave carrying Out, with TTL - 1, through
// Hop. The pipeline builds both directions of a flow (FastPath.Install).
type FastEntry struct {
	// In is the tuple as received, Out as sent (the translation).
	In, Out FastTuple
	// Ifindex is the egress device, SrcMAC its address, DstMAC the next
	// hop's; MTU the egress MTU (0: not checked).
	Ifindex        int
	SrcMAC, DstMAC [6]byte
	MTU            int
	// Dir is the conntrack direction (0 original, 1 reply) whose counters
	// the entry's frames go to.
	Dir uint8
}

// FastDirStats is what the XDP program recorded for one direction of an
// installed flow since Install.
type FastDirStats struct {
	// Packets and Bytes (IP length, as the pipeline counts) forwarded.
	Packets, Bytes uint64
	// Last is the time of the latest packet, CLOCK_MONOTONIC nanoseconds
	// (bpf_ktime_get_ns; the clock of statefile.Now); 0 before any.
	Last int64
	// SeqEnd is the end (seq + payload length) of the latest TCP segment
	// and Ack its acknowledgment number (0 until a segment with ACK).
	SeqEnd, Ack uint32
}

// FastPathCounters are the XDP fast path's per-decision counts, summed over
// CPUs and interfaces.
type FastPathCounters struct {
	// TX and Redirect count frames forwarded by XDP (back out of the
	// receiving device, or to another through the devmap).
	TX, Redirect uint64
	// SlowFlags, SlowTTL, SlowMTU, SlowStale and SlowDevice count frames of
	// installed flows handed to userspace: TCP SYN/FIN/RST, a TTL that
	// would expire, larger than the egress MTU, a slot reused before its
	// entry was removed, an egress device that cannot transmit XDP frames.
	SlowFlags, SlowTTL, SlowMTU, SlowStale, SlowDevice uint64
}

// FastPath is the XDP fast path for established flows, as the pipeline
// drives it (*FastPathMaps on Linux). Slots name flows: the caller
// allocates them in [0, Slots()) and gives each installed flow its own.
//
// Install, Remove and Refresh make system calls: call them once per flow
// or per housekeeping tick, never per packet. Stats and Installed read
// memory shared with the XDP program and make none.
type FastPath interface {
	// Slots is the flow capacity.
	Slots() int
	// CanForward reports whether XDP can transmit on device ifindex
	// (FastPathMaps.Refresh keeps the set).
	CanForward(ifindex int) bool
	// Install makes XDP forward both directions of the flow in slot with
	// generation gen (non-zero): e[0] the original direction, e[1] the
	// reply. Counters start from zero.
	Install(slot int, gen uint32, e *[2]FastEntry) error
	// Remove stops XDP forwarding the flow in slot (at once) and deletes
	// its entries.
	Remove(slot int, e *[2]FastEntry) error
	// Installed reports whether slot is installed with generation gen.
	Installed(slot int, gen uint32) bool
	// Stats reads what XDP recorded for direction dir of slot.
	Stats(slot, dir int) FastDirStats
	// Credit records that the caller has accounted for the first packets
	// and bytes of direction dir of slot, and returns the increments since
	// the previous call (concurrent callers each get a disjoint share).
	Credit(slot, dir int, packets, bytes uint64) (dp, db uint64)
	// Refresh re-checks which devices XDP can transmit on.
	Refresh() error
	// Counters sums the decision counters.
	Counters() (FastPathCounters, error)
}
