package conntrack

import "github.com/xdpgate/xdpgate/nat"

// Offloading: a flow forwarded elsewhere (the dataplane's XDP fast path)
// stays in this table, which remains the authority on its state and
// lifetime; what the other forwarder saw is credited back (Credit) so that
// timeouts, counters and sequence tracking stay what they would have been.

// RecordSlots is the number of records (IPv4 and IPv6 capacity): every
// live flow's RecordSlot is below it.
func (t *Table) RecordSlots() int { return len(t.r4) + len(t.r6) }

// RecordSlot returns the dense index of the record h names (IPv4 records,
// then IPv6), for callers that keep per-flow state in an array beside the
// table; a later flow may reuse the index, so pair it with
// Handle.Generation.
func (t *Table) RecordSlot(h Handle) int {
	if h.fam6() {
		return len(t.r4) + int(h.idx())
	}
	return int(h.idx())
}

// Generation returns the record generation h was issued for: odd, so never
// 0, and different for every incarnation of a record.
func (h Handle) Generation() uint32 { return h.gen() }

// Offloadable reports whether the flow h names is live and established in
// both directions: a TCP flow ESTABLISHED and assured (handshake seen both
// ways), or a UDP flow that had a reply. Only those may be forwarded
// elsewhere: every state change of TCP (SYN, FIN, RST) must still reach
// Touch.
func (t *Table) Offloadable(h Handle) bool {
	r := t.hdrChecked(h.fam6(), h.idx())
	if r == nil {
		return false
	}
	c := r.ctl.Load()
	if ctlGen(c) != h.gen() || !ctlLive(c) {
		return false
	}
	switch ctlProto(c) {
	case nat.ProtoTCP:
		return ctlState(c) == StateEstablished && ctlFlags(c)&flagAssured != 0
	case nat.ProtoUDP:
		return ctlState(c) == StateUDPReplied
	}
	return false
}

// Credit is what another forwarder did with one direction of a flow.
type Credit struct {
	// Packets and Bytes are added to the direction's counters.
	Packets, Bytes uint64
	// Last is the latest packet's time (the table's clock), 0 if none;
	// last-seen moves forward to it, never back.
	Last int64
	// Seq is set for TCP when SeqEnd and Ack are known: the end of the
	// latest segment from this direction and its acknowledgment number
	// (0: none), which move the sequence tracking forward as Touch would.
	Seq         bool
	SeqEnd, Ack uint32
}

// Credit applies c to direction dir of the flow h names and reports
// whether the flow is live. It changes no protocol state: the forwarder
// only carries segments that would not change it.
func (t *Table) Credit(h Handle, dir Dir, c Credit) bool {
	idx := h.idx()
	r := t.hdrChecked(h.fam6(), idx)
	if r == nil {
		return false
	}
	ctl := r.ctl.Load()
	if ctlGen(ctl) != h.gen() || !ctlLive(ctl) {
		return false
	}
	d := dir & 1
	ct := t.ctr(h.fam6(), idx)
	for {
		l := r.last.Load()
		if c.Last <= l || r.last.CompareAndSwap(l, c.Last) {
			break
		}
	}
	if c.Packets > 0 {
		ct.pkts[d].Add(c.Packets)
		ct.bytes[d].Add(c.Bytes)
	}
	if c.Seq && ctlProto(ctl) == nat.ProtoTCP {
		if n := ct.nxt[d].Load(); c.SeqEnd != 0 && (n == 0 || after(c.SeqEnd, n)) {
			ct.nxt[d].CompareAndSwap(n, nonzero(c.SeqEnd))
		}
		if n := ct.nxt[d^1].Load(); c.Ack != 0 && (n == 0 || after(c.Ack, n)) {
			ct.nxt[d^1].CompareAndSwap(n, nonzero(c.Ack))
		}
	}
	return ctlGen(r.ctl.Load()) == h.gen()
}
