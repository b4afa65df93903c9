package conntrack

import (
	"sync/atomic"

	"github.com/xdpgate/xdpgate/nat"
)

// Flow is what Lookup and Insert return: a copy of the parts of a flow the
// dataplane needs for one packet. It stays meaningful after the flow is
// deleted; only Handle goes stale.
type Flow struct {
	// Rewrite is the tuple the packet must carry after translation: for an
	// original-direction packet the reply tuple reversed (destination =
	// DNAT target, source = SNAT address or unchanged), for a reply the
	// original tuple reversed (source = the service frontend, destination
	// = the client).
	Rewrite Tuple
	// ServicePort and Endpoint are the IDs given to Insert.
	ServicePort, Endpoint uint32
	// Handle names the flow for Touch and Delete.
	Handle Handle
	// Dir is the direction of the looked-up tuple (Original for Insert).
	Dir Dir
	// State is the protocol state when the flow was read.
	State State
}

// Lookup finds the live flow one of whose tuples is k, in one probe window
// (one index cache line, two when the first bucket has overflowed and the
// flow is not in it), then one record. It never blocks, never allocates and never
// writes shared memory, except that a flow found expired is deleted on the
// spot (lazy expiry) and reported as a miss.
//
// Only the first 4 bytes of IPv4 addresses are compared: build tuples with
// the constructors.
func (t *Table) Lookup(k Tuple, now int64) (Flow, bool) {
	if k.Family != IPv4 && k.Family != IPv6 {
		return Flow{}, false
	}
	return t.lookupHashed(&k, k.hash(&t.key), now)
}

// lookupHashed is Lookup of k, whose hash is h.
func (t *Table) lookupHashed(k *Tuple, h uint64, now int64) (Flow, bool) {
	want := entryKey(h, k.Family == IPv6)
	b1 := t.bucketOf(h)
	var f Flow
	// The header is in the same cache line as the first bucket's slots.
	overflow := t.header(b1).Load() >= hdrOverflow
	if t.scanBucket(t.bucket(b1), want, k, now, &f) {
		return f, true
	}
	if overflow {
		if _, b2 := t.buckets(h); t.scanBucket(t.bucket(b2), want, k, now, &f) {
			return f, true
		}
	}
	return Flow{}, false
}

// scanBucket resolves the entries of w whose tag and family are want.
func (t *Table) scanBucket(w []atomic.Uint64, want uint64, k *Tuple, now int64, f *Flow) bool {
	for i := range w {
		e := w[i].Load()
		if e&keyMask != want {
			continue
		}
		if e&fam6Bit != 0 {
			if t.resolve6(e, k, now, f) {
				return true
			}
		} else if t.resolve4(e, k, now, f) {
			return true
		}
	}
	return false
}

// resolve4 checks that the IPv4 record entry e points to is live and holds k
// in e's direction, and fills f. The generation read before and after the
// field reads must agree (seqlock validation; doc.go).
func (t *Table) resolve4(e uint64, k *Tuple, now int64, f *Flow) bool {
	idx := uint32(e & idxMask)
	d := Dir(e >> 30 & 1)
	r := &t.r4[idx]
	c := r.ctl.Load()
	if !ctlLive(c) || ctlProto(c) != k.Proto {
		return false
	}
	w := &r.t[d]
	if w.src.Load() != le32(k.Src[:4]) || w.dst.Load() != le32(k.Dst[:4]) ||
		w.ports.Load() != ports(k.SrcPort, k.DstPort) {
		return false
	}
	o := &r.t[d^1]
	// Rewrite is the other direction's tuple reversed.
	var rw Tuple
	le := o.dst.Load()
	rw.Src[0], rw.Src[1], rw.Src[2], rw.Src[3] = byte(le), byte(le>>8), byte(le>>16), byte(le>>24)
	le = o.src.Load()
	rw.Dst[0], rw.Dst[1], rw.Dst[2], rw.Dst[3] = byte(le), byte(le>>8), byte(le>>16), byte(le>>24)
	p := o.ports.Load()
	rw.SrcPort, rw.DstPort, rw.Proto, rw.Family = uint16(p), uint16(p>>16), k.Proto, IPv4
	svc, ep := r.svc.Load(), r.ep.Load()
	last := r.last.Load()
	c2 := r.ctl.Load()
	if ctlGen(c2) != ctlGen(c) {
		return false // recycled while we read: not this entry
	}
	s := ctlState(c2)
	if t.expired(c2, last, now) {
		t.remove(false, idx, c2, reasonExpired)
		return false
	}
	*f = Flow{Rewrite: rw, ServicePort: svc, Endpoint: ep, Handle: makeHandle(ctlGen(c2), false, idx), Dir: d, State: s}
	return true
}

// resolve6 is resolve4 for IPv6 records.
func (t *Table) resolve6(e uint64, k *Tuple, now int64, f *Flow) bool {
	idx := uint32(e & idxMask)
	if int(idx) >= len(t.r6) {
		return false
	}
	d := Dir(e >> 30 & 1)
	r := &t.r6[idx]
	c := r.ctl.Load()
	if !ctlLive(c) || ctlProto(c) != k.Proto || !r.t[d].match(k) {
		return false
	}
	rw := r.t[d^1].load(k.Proto).Reverse()
	svc, ep := r.svc.Load(), r.ep.Load()
	last := r.last.Load()
	c2 := r.ctl.Load()
	if ctlGen(c2) != ctlGen(c) {
		return false
	}
	s := ctlState(c2)
	if t.expired(c2, last, now) {
		t.remove(true, idx, c2, reasonExpired)
		return false
	}
	*f = Flow{Rewrite: rw, ServicePort: svc, Endpoint: ep, Handle: makeHandle(ctlGen(c2), true, idx), Dir: d, State: s}
	return true
}

// Touch applies one packet to the flow h names: it refreshes last-seen
// (when it advanced by Config.TouchResolution), adds the packet and its
// bytes to dir's counters and advances the protocol state (tcpFlags is
// byte 13 of the TCP header; ignored for other protocols). It reports false
// when h is no longer live, in which case the caller should look the tuple
// up again. Touch trusts the flags: the dataplane calls TouchTCP for TCP,
// which checks sequence numbers first.
//
// The counters are approximate: a packet that races with the flow's
// deletion and reuse can be counted on the record's next incarnation
// (last-seen likewise, which only makes a brand-new flow look a few
// nanoseconds younger). State changes are exact: they are a CAS on a word
// that carries the generation.
func (t *Table) Touch(h Handle, dir Dir, tcpFlags uint8, bytes int, now int64) bool {
	return t.touch(h, dir, tcpFlags, nil, bytes, now)
}

// TouchTCP is Touch for a TCP segment whose sequence numbers are known. A
// segment that would change the flow's state (a RST, a FIN, the ACK that
// completes a handshake, ...) applies only when its sequence numbers are
// within SeqWindow of what the flow's tracking expects (seq.go); otherwise
// nothing at all is applied (no state, last-seen, counters or tracking) and
// it is counted in Stats.OutOfWindow. So a spoofed RST or FIN cannot shorten
// a flow, nor a blind ACK assure a flood's half-open flow. The caller still
// forwards the segment: the endpoint judges it by its own, exact, window.
func (t *Table) TouchTCP(h Handle, dir Dir, seg Segment, bytes int, now int64) bool {
	return t.touch(h, dir, seg.Flags, &seg, bytes, now)
}

func (t *Table) touch(h Handle, dir Dir, tcpFlags uint8, seg *Segment, bytes int, now int64) bool {
	idx := h.idx()
	r := t.hdrChecked(h.fam6(), idx)
	if r == nil {
		return false
	}
	gen := h.gen()
	c := r.ctl.Load()
	if ctlGen(c) != gen || gen&1 == 0 {
		return false
	}
	d := dir & 1
	ct := t.ctr(h.fam6(), idx)
	inWin := true
	if seg != nil && ctlProto(c) == nat.ProtoTCP {
		inWin = seqInWindow(ct, c, d, seg)
		if !inWin && gated(c, d, seg.Flags) {
			t.stripe(idx).outOfWindow.Add(1)
			return true
		}
	}
	if now-r.last.Load() >= t.touchRes {
		r.last.Store(now)
	}
	ct.pkts[d].Add(1)
	ct.bytes[d].Add(uint64(max(bytes, 0)))
	for {
		nc := advance(c, d, tcpFlags)
		if nc != c && !r.ctl.CompareAndSwap(c, nc) {
			if c = r.ctl.Load(); ctlGen(c) != gen {
				return false
			}
			continue
		}
		if os, ns := ctlState(c), ctlState(nc); os != ns {
			st := t.stripe(idx)
			st.states[os].Add(-1)
			st.states[ns].Add(1)
		}
		if seg != nil && ctlProto(c) == nat.ProtoTCP {
			seqUpdate(ct, c, nc, d, seg, inWin)
		}
		return true
	}
}

// gated reports whether a TCP segment in direction d with flags, applied
// to ctl c, must be within the window to apply: it would change the state
// or carries RST or FIN. A SYN without ACK opening a connection is not
// gated (its sequence number starts the tracking), nor is the first reply
// of a flow (it resynchronises tracking a mid-stream pickup guessed).
func gated(c uint64, d Dir, flags uint8) bool {
	if d == Reply && ctlFlags(c)&flagReplied == 0 {
		return false
	}
	nc := advance(c, d, flags)
	if flags&(TCPSyn|TCPAck) == TCPSyn && ctlState(nc) == StateSynSent {
		return false
	}
	return flags&(TCPRst|TCPFin) != 0 || ctlState(nc) != ctlState(c) || ctlFlags(nc)&flagAssured != ctlFlags(c)&flagAssured
}

// advance returns ctl after a packet in direction d with TCP flags.
func advance(c uint64, d Dir, tcpFlags uint8) uint64 {
	fl := ctlFlags(c)
	s := ctlState(c)
	repliedBefore := fl&flagReplied != 0
	if d == Reply {
		fl |= flagReplied
	}
	switch ctlProto(c) {
	case nat.ProtoTCP:
		closer := Original
		if fl&flagCloserReply != 0 {
			closer = Reply
		}
		os := s
		s, closer = tcpNext(s, closer, d, tcpFlags)
		fl &^= flagCloserReply
		if closer == Reply {
			fl |= flagCloserReply
		}
		// Assured as nf_conntrack: the ACK that moves SYN_RECV to
		// ESTABLISHED, or a packet of a picked-up ESTABLISHED flow once a
		// reply was seen.
		if s == StateEstablished && fl&flagReplied != 0 && (os == StateSynRecv || os == StateEstablished) {
			fl |= flagAssured
		}
		if s == StateSynSent && os != StateSynSent && os != StateTCPNone {
			fl &^= flagAssured | flagReplied // port reuse: a new connection
		}
	case nat.ProtoUDP:
		if fl&flagReplied != 0 {
			s = StateUDPReplied
		}
		fallthrough
	default:
		// Both directions seen, then more from the originator.
		if repliedBefore && d == Original {
			fl |= flagAssured
		}
	}
	return makeCtl(ctlGen(c), ctlProto(c), fl, s)
}
