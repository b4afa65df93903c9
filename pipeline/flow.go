package pipeline

import (
	"encoding/binary"
	"net/netip"

	"github.com/xdpgate/xdpgate/dataplane"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/maglev"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// newFlowStatus is what newFlow tells frame.
type newFlowStatus uint8

const (
	// newFlowDone: the frame's verdict is set (drop or ICMP reply).
	newFlowDone newFlowStatus = iota
	// newFlowHop: forward along the flow; the returned dataplane.Hop is the resolved
	// next hop of the translated destination.
	newFlowHop
	// newFlowLookup: forward along the flow; resolve the next hop again
	// (another poller's flow won the insert, or the neighbour was not
	// resolved yet).
	newFlowLookup
)

// opensConnection reports whether a packet without a flow is kube-proxy's
// ct state NEW for the reject rule: a TCP SYN without ACK; any UDP or SCTP
// packet (no flow exists). Mid-stream TCP is not rejected, only dropped.
func opensConnection(pk *nat.Packet) bool {
	if pk.Proto == nat.ProtoTCP {
		return pk.TCPFlags&(conntrack.TCPSyn|conntrack.TCPAck) == conntrack.TCPSyn
	}
	return true
}

// reopens reports whether pk, which found flow fl, opens a new TCP
// connection on a closed flow's tuple: a SYN without ACK (or RST) from the
// original side of a flow in TIME_WAIT or CLOSE.
func reopens(pk *nat.Packet, fl *conntrack.Flow) bool {
	return pk.Proto == nat.ProtoTCP && fl.Dir == conntrack.Original &&
		pk.TCPFlags&(conntrack.TCPSyn|conntrack.TCPAck|conntrack.TCPRst) == conntrack.TCPSyn &&
		(fl.State == conntrack.StateTimeWait || fl.State == conntrack.StateClose)
}

// newFlow handles the first packet of a flow (conntrack miss): classify,
// choose the endpoint, allocate the SNAT port, insert. Any packet may start
// a flow, as with nf_conntrack_tcp_loose=1: after a restart, mid-stream TCP
// is picked up again and, the choice being a hash (Maglev of the 5-tuple, or
// the ClientIP session choice), sent where the other gateways send it.
//
// reuse, when valid, is the masquerade source of the closed flow this SYN
// reopens: a masqueraded reopen takes that port again if it is still free
// (snatInsert), so the endpoint sees the client's reuse of its tuple as the
// client made it. A fresh port could meet the endpoint's state of another
// tuple, and the old one is the port whose state the client's own RST or
// FINs just ended there: under a SYN flood whose forged flows the
// endpoint answered, the client's SYN on a reclaimed port draws an ACK for
// the forged connection, the client resets it, and its retransmitted SYN
// reopens the flow; on a new port it would likely meet another such state.
func (p *Pipeline) newFlow(b *batch, f *dataplane.Frame, pk *nat.Packet, reuse netip.AddrPort) (conntrack.Flow, dataplane.Hop, newFlowStatus) {
	var fl conntrack.Flow
	var hop dataplane.Hop
	pq, s := b.pq, b.snap
	if !pk.HasPorts {
		f.Drop(DropNotTracked)
		return fl, hop, newFlowDone
	}
	if s == nil {
		f.Drop(DropNotService)
		return fl, hop, newFlowDone
	}
	d := s.Classify(pk.Src, pk.Dst, pk.DstPort, pk.Proto)
	if d.ServicePort < 0 {
		f.Drop(DropNotService)
		return fl, hop, newFlowDone
	}
	sp := &s.ServicePorts[d.ServicePort]
	svc := b.sq.of(sp.ID) // the service port's counters, from here on
	switch d.Verdict {
	case snapshot.Forward:
	case snapshot.Reject:
		if !opensConnection(pk) {
			svc.drop(f, SvcRejectNotNew)
			return fl, hop, newFlowDone
		}
		// From the frontend address the client used (the VIP, or the
		// node address of a NodePort).
		p.reply(b, f, pk, pk.Dst, nat.BuildICMPPortUnreachable, DropRejectNotAllowed)
		if f.Verdict == dataplane.VerdictTX {
			pq.c.rejects++
			svc.add(swDrops + SvcReject)
		} else {
			svc.add(swDrops + SvcRejectNotAllowed)
		}
		return fl, hop, newFlowDone
	case snapshot.Drop:
		if d.Cause == snapshot.CauseSourceRange {
			svc.drop(f, SvcSourceRange)
		} else {
			svc.drop(f, SvcNoLocalEndpoints)
		}
		return fl, hop, newFlowDone
	default:
		f.Drop(DropNotService)
		return fl, hop, newFlowDone
	}
	if p.expired(b, f, pk) { // forwarded, but not this packet: no flow, as the kernel confirms none
		return fl, hop, newFlowDone
	}

	var ep *snapshot.Endpoint
	var pin affinity.Probe // the client's place in the affinity table, for Lookup and Pin
	if sp.AffinitySeconds > 0 {
		pin = p.aff.Probe(sp.ID, pk.Src)
		if id, ok := p.aff.LookupProbe(&pin, sp.AffinitySeconds, b.now); ok {
			if e, ok := s.Usable(d, id); ok {
				ep = e
			}
		}
		if ep != nil {
			pq.c.affinityHits++
			svc.add(swAff + svcHits)
		} else {
			// No valid pin: a fresh choice for this client's session
			// epoch, the same on every gateway in that epoch, and another
			// one once the client has been away for the timeout
			// (ARCHITECTURE.md, "ClientIP choice").
			pq.c.affinityMisses++
			svc.add(swAff + svcMisses)
			epoch := maglev.Epoch(pk.Src, p.cfg.Wall(), sp.AffinitySeconds)
			h := maglev.HashSession(pk.Src, epoch)
			if sp.AffinityMaxLoadPercent > 0 || sp.AffinityRebalanceOnScale {
				ep = p.pickBounded(b, d, h)
			} else {
				ep = s.PickSession(d, h)
			}
		}
	} else {
		ep = s.Pick(d, maglev.HashFlow(pk.Src, pk.Dst, pk.SrcPort, pk.DstPort, uint8(pk.Proto)))
	}
	if ep == nil || ep.Addr.Is4() != pk.Dst.Is4() {
		svc.drop(f, SvcNoEndpoint)
		return fl, hop, newFlowDone
	}
	hop, st := p.hops.Lookup(ep.Addr)
	if st == dataplane.LookupNoRoute {
		svc.drop(f, SvcNoRoute)
		return fl, hop, newFlowDone
	}

	orig := conntrack.MakeTuple(pk.Src, pk.Dst, pk.SrcPort, pk.DstPort, pk.Proto)
	dnat := ep.AddrPort()
	// The packet is applied by the insert itself (InsertFirst), also to the
	// flow another poller inserted first (Exists).
	first := packetOf(f.Data(), pk)
	var res conntrack.InsertResult
	// Hairpin: an endpoint reaching itself through the service must see
	// another source, or it would answer itself directly.
	if !d.Masquerade && ep.Addr != pk.Src {
		fl, res = p.ct.InsertFirst(orig, conntrack.MakeTranslation(dnat, netip.AddrPort{}), sp.ID, ep.ID, first, b.now)
	} else {
		// Masquerade to the address this node uses towards the endpoint.
		// conntrack is the port allocator: the reply tuple (endpoint ->
		// node:port) must be unique; Insert answers Conflict for a port in
		// use (snatInsert).
		if !hop.Src.IsValid() || hop.Src.Is4() != ep.Addr.Is4() {
			svc.drop(f, SvcNoSNATAddr)
			return fl, hop, newFlowDone
		}
		res = conntrack.Conflict
		if reuse.IsValid() && reuse.Addr() == hop.Src && p.inSNATRange(reuse.Port()) {
			fl, res = p.ct.InsertFirst(orig, conntrack.MakeTranslation(dnat, reuse), sp.ID, ep.ID, first, b.now)
		}
		if res == conntrack.Conflict {
			fl, res = p.snatInsert(pq, &orig, dnat, hop.Src, hop.Ifindex, sp.ID, ep.ID, &first, b.now)
		}
		if res == conntrack.Conflict {
			svc.drop(f, SvcSNATExhausted)
			return fl, hop, newFlowDone
		}
	}
	switch res {
	case conntrack.Inserted:
		pq.c.newFlows++
		svc.add(swNew)
		if sp.AffinitySeconds > 0 {
			p.load.conn(b.load, b.q.Index, ep.ID)
			b.hb.conn(b.sq.lastJ, b.q.Index, pk.Src, b.now)
			// Every new connection restarts the client's timer (recent --set).
			switch p.aff.PinProbe(&pin, ep.ID, sp.AffinitySeconds, b.now) {
			case affinity.PinInserted, affinity.PinRepinned:
				svc.add(swAff + svcNewPins)
			case affinity.PinEvicted:
				svc.add(swAff + svcNewPins)
				svc.add(swAff + svcEvictions)
			}
		}
	case conntrack.Exists:
		// Another poller (or an earlier frame of this batch) inserted the
		// flow first: apply its translation, whatever this one chose.
		pq.c.insertRaces++
		st = dataplane.LookupUnresolved // re-resolve: the winner's endpoint may differ
	case conntrack.Conflict:
		svc.drop(f, SvcConntrackConflict)
		return fl, hop, newFlowDone
	case conntrack.Full:
		svc.drop(f, SvcConntrackFull)
		return fl, hop, newFlowDone
	default:
		svc.drop(f, SvcConntrackInvalid)
		return fl, hop, newFlowDone
	}
	svc.count(conntrack.Original, first.Bytes)
	if st != dataplane.LookupOK {
		return fl, hop, newFlowLookup
	}
	return fl, hop, newFlowHop
}

// pickBounded is the session choice with bounded loads
// (snapshot.PickSessionBounded) over the endpoints' pinned clients.
func (p *Pipeline) pickBounded(b *batch, d snapshot.Decision, h uint64) *snapshot.Endpoint {
	s, l, ix := b.snap, &p.load, b.load
	sp := &s.ServicePorts[d.ServicePort]
	var slots []int32
	if ix.snap == s {
		slots = ix.bySP[d.ServicePort]
	}
	return s.PickSessionBounded(d, h, sp.AffinityMaxLoadPercent, func(k int32) uint64 {
		if slots != nil {
			return l.pins(slots[k])
		}
		return l.pins(l.slot(ix, sp.Endpoints[k].ID)) // a batch that began before Publish
	})
}

// snatReclaims bounds the ports a new flow tries to take back from idle
// unassured flows once random probing found none free.
const snatReclaims = 8

// snatInsert inserts orig DNATed to dnat and masqueraded to src, choosing
// the SNAT port. It probes Config.SNATProbes ports at random offsets over
// the whole range (not consecutive ports from a hash, which a flood fills
// into a long run that every later probe walks); when all are taken it
// probes the egress interface's other addresses of the family (when the
// next hopper knows them: dataplane.SNATAddrSource), then marks the table
// under pressure (so the flood's half-open flows time out after
// conntrack's Embryonic timeout) and tries to reclaim a port from an idle
// unassured flow (conntrack.Table.Reclaim) on a few more random ports; a
// tuple refused moments ago (a retransmission: snatretry.go) tries the
// range's reserved ports first. A flood of spoofed SYNs therefore cannot
// hold the range against real clients for 120 s, and a real client gets a
// port at its first retransmission.
func (p *Pipeline) snatInsert(pq *pipeQueue, orig *conntrack.Tuple, dnat netip.AddrPort, src netip.Addr, ifindex int, svc, ep uint32, first *conntrack.Packet, now int64) (conntrack.Flow, conntrack.InsertResult) {
	fl, res := p.snatProbe(pq, orig, dnat, src, svc, ep, first, now)
	if res != conntrack.Conflict {
		return fl, res
	}
	// The route's source address has no free port within the budget: the
	// interface's other addresses of the family are SNAT addresses too
	// (the classifier redirects replies to every node address).
	if p.snatAddrs != nil {
		for _, a := range p.snatAddrs.IfaceAddrs(ifindex, src) {
			if a == src {
				continue
			}
			if fl, res = p.snatProbe(pq, orig, dnat, a, svc, ep, first, now); res != conntrack.Conflict {
				return fl, res
			}
		}
	}
	p.ct.Pressure(now)
	reserved := p.snatReserved > 0 && p.retry.repeat(orig, now)
	tries := snatReclaims
	if reserved {
		tries = 2 * snatReclaims // the reserved ports, then the others
	}
	for i := 0; i < tries && res == conntrack.Conflict; i++ {
		var port uint16
		minIdle := conntrack.ReclaimAge
		if reserved && i < snatReclaims {
			port, minIdle = p.snatReservedPort(pq), retryReclaimAge
		} else {
			port = p.snatUnreservedPort(pq)
		}
		x := conntrack.MakeTranslation(dnat, netip.AddrPortFrom(src, port))
		if p.ct.Reclaim(x.Reply(*orig), minIdle, now) {
			fl, res = p.ct.InsertFirst(*orig, x, svc, ep, *first, now)
		}
	}
	return fl, res
}

// snatProbe tries Config.SNATProbes ports of src at random offsets over
// the range (all of it, in order, when the range is no larger).
func (p *Pipeline) snatProbe(pq *pipeQueue, orig *conntrack.Tuple, dnat netip.AddrPort, src netip.Addr, svc, ep uint32, first *conntrack.Packet, now int64) (conntrack.Flow, conntrack.InsertResult) {
	var fl conntrack.Flow
	res := conntrack.Conflict
	start := p.snatPort(pq)
	for i := 0; i < p.cfg.SNATProbes && res == conntrack.Conflict; i++ {
		port := p.snatPort(pq)
		if uint32(p.cfg.SNATProbes) >= p.snatN {
			// A range no larger than the budget: walk all of it.
			port = p.cfg.SNATPortMin + uint16((uint32(start-p.cfg.SNATPortMin)+uint32(i))%p.snatN)
		}
		x := conntrack.MakeTranslation(dnat, netip.AddrPortFrom(src, port))
		if fl, res = p.ct.InsertFirst(*orig, x, svc, ep, *first, now); res == conntrack.Conflict {
			pq.c.snatRetries++
		}
	}
	return fl, res
}

// inSNATRange reports whether port is in the SNAT range (Config).
func (p *Pipeline) inSNATRange(port uint16) bool {
	return port >= p.cfg.SNATPortMin && port <= p.cfg.SNATPortMax
}

// snatPort draws a port of the SNAT range.
func (p *Pipeline) snatPort(pq *pipeQueue) uint16 {
	return p.cfg.SNATPortMin + uint16(pq.random()%p.snatN)
}

// snatUnreservedPort draws a port of the SNAT range that first packets
// may reclaim (snatretry.go).
func (p *Pipeline) snatUnreservedPort(pq *pipeQueue) uint16 {
	off := pq.random() % p.snatN
	if p.snatReserved > 0 && off%snatReserveEvery == snatReserveEvery-1 {
		off-- // off >= snatReserveEvery-1: still in the range, not reserved
	}
	return p.cfg.SNATPortMin + uint16(off)
}

// snatReservedPort draws one of the ports only repeated tuples reclaim.
func (p *Pipeline) snatReservedPort(pq *pipeQueue) uint16 {
	k := pq.random() % p.snatReserved
	return p.cfg.SNATPortMin + uint16(k*snatReserveEvery+snatReserveEvery-1)
}

// random returns 32 random bits (splitmix64 on the queue's state).
func (pq *pipeQueue) random() uint32 {
	pq.rnd += 0x9e3779b97f4a7c15
	z := pq.rnd
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return uint32(z >> 32)
}

// touch applies the packet to its flow: TouchTCP with the segment's
// sequence numbers for TCP (so that out-of-window RST and FIN change
// nothing), Touch otherwise.
func (p *Pipeline) touch(data []byte, pk *nat.Packet, h conntrack.Handle, dir conntrack.Dir, now int64) {
	pkt := packetOf(data, pk)
	if pkt.HasSeq {
		p.ct.TouchTCP(h, dir, pkt.Seg, pkt.Bytes, now)
		return
	}
	p.ct.Touch(h, dir, pkt.Seg.Flags, pkt.Bytes, now)
}

// packetOf is what conntrack applies of a packet: its TCP flags, for TCP
// its sequence numbers (HasSeq), its length from the IP header on.
func packetOf(data []byte, pk *nat.Packet) conntrack.Packet {
	pkt := conntrack.Packet{Seg: conntrack.Segment{Flags: pk.TCPFlags}, Bytes: int(pk.End - pk.L3Off)}
	if pk.Proto == nat.ProtoTCP && pk.HasPorts && !(pk.Fragment && pk.FragOffset != 0) && int(pk.L4Off)+20 <= len(data) {
		tcp := data[pk.L4Off:]
		doff := int(tcp[12]>>4) * 4
		pkt.Seg.Seq, pkt.Seg.Ack = binary.BigEndian.Uint32(tcp[4:]), binary.BigEndian.Uint32(tcp[8:])
		pkt.Seg.Len = uint32(max(int(pk.End)-int(pk.L4Off)-doff, 0))
		pkt.HasSeq = true
	}
	return pkt
}
