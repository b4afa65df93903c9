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
// It generates no ICMP errors (TTL exceeded and no route are silent drops
// with a reason) and drops VLAN-tagged frames (DropNotIP).
type Forwarder struct {
	hops NextHopper
}

// NewForwarder returns a Forwarder resolving next hops with hops.
func NewForwarder(hops NextHopper) *Forwarder { return &Forwarder{hops: hops} }

// Ethernet and IP header offsets (RFC 894, RFC 791, RFC 8200).
const (
	ethHdrLen   = 14
	ethTypeOff  = 12
	etherIPv4   = 0x0800
	etherIPv6   = 0x86DD
	ipv4Dst     = 16
	ipv6HopLim  = 7
	ipv6Dst     = 24
	ipv6HdrLen  = 40
	ipv4MinHdr  = 20
	ipv4VerIHL  = 0
	ipv6VerByte = 0
)

// Process implements Processor.
func (fw *Forwarder) Process(_ *Queue, frames []Frame) {
	for i := range frames {
		fw.forward(&frames[i])
	}
}

func (fw *Forwarder) forward(f *Frame) {
	b := f.Data()
	if len(b) < ethHdrLen {
		f.Drop(DropMalformed)
		return
	}
	var dst netip.Addr
	switch binary.BigEndian.Uint16(b[ethTypeOff:]) {
	case etherIPv4:
		ip := b[ethHdrLen:]
		if len(ip) < ipv4MinHdr || ip[ipv4VerIHL]>>4 != 4 || int(ip[ipv4VerIHL]&0x0f)*4 < ipv4MinHdr ||
			int(ip[ipv4VerIHL]&0x0f)*4 > len(ip) {
			f.Drop(DropMalformed)
			return
		}
		if !nat.DecrementTTL4(ip) {
			f.Drop(DropTTLExceeded)
			return
		}
		dst = netip.AddrFrom4([4]byte(ip[ipv4Dst : ipv4Dst+4]))
	case etherIPv6:
		ip := b[ethHdrLen:]
		if len(ip) < ipv6HdrLen || ip[ipv6VerByte]>>4 != 6 {
			f.Drop(DropMalformed)
			return
		}
		if ip[ipv6HopLim] <= 1 {
			f.Drop(DropTTLExceeded)
			return
		}
		ip[ipv6HopLim]--
		dst = netip.AddrFrom16([16]byte(ip[ipv6Dst : ipv6Dst+16]))
	default:
		f.Drop(DropNotIP)
		return
	}
	hop, st := fw.hops.Lookup(dst)
	switch st {
	case LookupOK:
	case LookupUnresolved:
		f.Drop(DropNeighUnresolved)
		return
	default:
		f.Drop(DropNoRoute)
		return
	}
	copy(b[0:6], hop.DstMAC[:])
	copy(b[6:12], hop.SrcMAC[:])
	f.TX(hop.Ifindex)
}
