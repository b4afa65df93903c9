package dataplane

import (
	"encoding/binary"
	"net/netip"

	"github.com/xdpgate/xdpgate/nat"
)

// Forwarder is a Processor that routes IPv4/IPv6 frames like a plain router,
// without any translation: it decrements the TTL / hop limit, takes the
// next hop's MACs from a NextHopper (Egress) and transmits on the egress
// interface (in place when it is the receiving one). It is the raw AF_XDP
// forwarding baseline of the benchmark rig and the I/O layer's end-to-end
// test processor.
//
// A frame whose next hop is not resolved yet is held (VerdictHold), as the
// pipeline's are. It generates no ICMP errors (TTL exceeded and no route
// are silent drops with a reason) and drops VLAN-tagged frames
// (DropNotIP).
type Forwarder struct {
	hops NextHopper
}

// NewForwarder returns a Forwarder resolving next hops with hops.
func NewForwarder(hops NextHopper) *Forwarder { return &Forwarder{hops: hops} }

// Process implements Processor.
func (fw *Forwarder) Process(_ *Queue, frames []Frame) {
	for i := range frames {
		fw.forward(&frames[i])
	}
}

func (fw *Forwarder) forward(f *Frame) {
	b := f.Data()
	if len(b) < nat.EthHdrLen {
		f.Drop(DropMalformed)
		return
	}
	var dst netip.Addr
	switch binary.BigEndian.Uint16(b[nat.EthTypeOff:]) {
	case nat.EtherTypeIPv4:
		ip := b[nat.EthHdrLen:]
		if len(ip) < nat.IPv4MinLen || ip[nat.IPv4VerIHLOff]>>4 != 4 || int(ip[nat.IPv4VerIHLOff]&0x0f)*4 < nat.IPv4MinLen ||
			int(ip[nat.IPv4VerIHLOff]&0x0f)*4 > len(ip) {
			f.Drop(DropMalformed)
			return
		}
		if !nat.DecrementTTL4(ip) {
			f.Drop(DropTTLExceeded)
			return
		}
		dst = netip.AddrFrom4([4]byte(ip[nat.IPv4DstOff : nat.IPv4DstOff+4]))
	case nat.EtherTypeIPv6:
		ip := b[nat.EthHdrLen:]
		if len(ip) < nat.IPv6HdrLen || ip[0]>>4 != 6 {
			f.Drop(DropMalformed)
			return
		}
		if ip[nat.IPv6HopLimitOff] <= 1 {
			f.Drop(DropTTLExceeded)
			return
		}
		ip[nat.IPv6HopLimitOff]--
		dst = netip.AddrFrom16([16]byte(ip[nat.IPv6DstOff : nat.IPv6DstOff+16]))
	default:
		f.Drop(DropNotIP)
		return
	}
	hop, st := fw.hops.Lookup(dst)
	switch st {
	case LookupOK:
	case LookupUnresolved:
		// As the kernel does: held until the neighbour resolves (the
		// dataplane writes the destination MAC then).
		copy(b[nat.EthSrcOff:], hop.SrcMAC[:])
		f.Hold(hop.Ifindex, hop.NextHop(dst))
		return
	default:
		f.Drop(DropNoRoute)
		return
	}
	copy(b[nat.EthDstOff:], hop.DstMAC[:])
	copy(b[nat.EthSrcOff:], hop.SrcMAC[:])
	f.TX(hop.Ifindex)
}
