package conntrack

// Minimal TCP sequence tracking, in the spirit of nf_conntrack's
// tcp_in_window: enough that a segment changing a flow's state (RST, FIN,
// the handshake's last ACK) must carry sequence numbers an off-path sender
// has to guess, not enough to validate every segment (the endpoints do
// that). Per direction d the record keeps nxt[d], the sequence number the
// next segment from d should carry: the end (seq + length) of the latest
// in-window segment from d, or the acknowledgment number of the latest one
// from the other side if further. 0 means unknown (a 0 is stored as 1, well
// inside the window).
//
// A segment from d is in the window when its seq is within SeqWindow of
// nxt[d] and, if it has ACK, its ack within SeqWindow of nxt[other side];
// an unknown nxt accepts anything. A blind off-path RST is then accepted
// with probability about 2*SeqWindow/2^32 = 1/2048 per guess (a host's own
// RFC 5961 check is stricter still).
//
// Limits, written down: window scaling is not parsed, so the window is a
// constant, not the peer's; a flow whose segments partly go through another
// gateway (per-packet multipath) lags by what that gateway saw, and once
// the lag exceeds SeqWindow its FIN and RST no longer apply here (the flow
// then ends by its idle timeout). The first reply of a flow resynchronises
// the tracking unconditionally, so a mid-stream pickup whose first segment
// was spoofed is corrected by the real endpoint's answer. The words are
// updated with plain loads and stores or one CAS, so two pollers racing on
// one flow can lose an update: the next segment repairs it.

// SeqWindow is how far (in sequence space, either way) a state-changing
// segment's seq and ack may be from what the flow's tracking expects.
const SeqWindow = 1 << 20

// Segment is what TouchTCP needs of a TCP segment.
type Segment struct {
	// Flags is byte 13 of the TCP header.
	Flags uint8
	// Seq and Ack are the sequence and acknowledgment numbers.
	Seq, Ack uint32
	// Len is the payload length in bytes (SYN and FIN are added by
	// TouchTCP).
	Len uint32
}

// end is the sequence number after the segment.
func (s *Segment) end() uint32 {
	e := s.Seq + s.Len
	if s.Flags&TCPSyn != 0 {
		e++
	}
	if s.Flags&TCPFin != 0 {
		e++
	}
	return e
}

// near reports whether x is within SeqWindow of n, or n is unknown.
func near(x, n uint32) bool {
	if n == 0 {
		return true
	}
	d := int32(x - n)
	return d >= -SeqWindow && d <= SeqWindow
}

func nonzero(x uint32) uint32 { return max(x, 1) }

// after reports whether a is after b in sequence space.
func after(a, b uint32) bool { return int32(a-b) > 0 }

func seqInWindow(ct *recCounters, c uint64, d Dir, seg *Segment) bool {
	if !near(seg.Seq, ct.nxt[d].Load()) {
		return false
	}
	return seg.Flags&TCPAck == 0 || near(seg.Ack, ct.nxt[d^1].Load())
}

// seqUpdate records segment seg from direction d, which took ctl from c to
// nc; inWin is seqInWindow's answer before the segment applied.
func seqUpdate(ct *recCounters, c, nc uint64, d Dir, seg *Segment, inWin bool) {
	switch {
	case seg.Flags&(TCPSyn|TCPAck) == TCPSyn && d == Original && ctlState(nc) == StateSynSent:
		// A connection starts (or restarts on a reused tuple).
		ct.nxt[Original].Store(nonzero(seg.end()))
		ct.nxt[Reply].Store(0)
		return
	case d == Reply && (ctlFlags(c)&flagReplied == 0 || seg.Flags&TCPSyn != 0):
		// The first reply, or a SYN-ACK: the endpoint's own numbers.
		ct.nxt[Reply].Store(nonzero(seg.end()))
		if seg.Flags&TCPAck != 0 {
			ct.nxt[Original].Store(nonzero(seg.Ack))
		}
		return
	case !inWin:
		return
	}
	if e, n := seg.end(), ct.nxt[d].Load(); n == 0 || after(e, n) {
		ct.nxt[d].Store(nonzero(e))
	}
	if seg.Flags&TCPAck != 0 {
		if n := ct.nxt[d^1].Load(); n == 0 || after(seg.Ack, n) {
			ct.nxt[d^1].CompareAndSwap(n, nonzero(seg.Ack))
		}
	}
}

// firstSeq is the tracking seqUpdate leaves after the first packet of a
// flow, in the original direction, from empty tracking (both 0, so every
// number is in the window), where nc is the ctl after the packet: what
// InsertFirst publishes the flow with. TestInsertFirst compares it with
// Insert followed by TouchTCP.
func firstSeq(nc uint64, seg *Segment) (nxt [2]uint32) {
	nxt[Original] = nonzero(seg.end())
	if seg.Flags&(TCPSyn|TCPAck) == TCPSyn && ctlState(nc) == StateSynSent {
		return nxt // a connection starts: the reply's numbers are unknown
	}
	if seg.Flags&TCPAck != 0 {
		nxt[Reply] = nonzero(seg.Ack)
	}
	return nxt
}
