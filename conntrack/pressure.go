package conntrack

import "github.com/xdpgate/xdpgate/nat"

// Attack resistance: how a table under a flood keeps the flows that matter
// (doc.go, "Timeouts, expiry and eviction").

// pressureHold is how long one Pressure call keeps the table under
// pressure, and pressureRefresh how stale the mark may get before a caller
// rewrites it (so a flood does not write the shared word on every insert).
const (
	pressureHold    = int64(10e9)
	pressureRefresh = int64(1e9)
)

// ReclaimAge is the usual minimum idle time of a flow Reclaim removes: a
// real client's handshake completes within a round trip, far below it.
const ReclaimAge = int64(1e9)

// timeout is the idle timeout of a flow whose ctl is c at time now: its
// state's, capped at Timeouts.Unacknowledged for a TCP flow that never saw
// a reply (nf_conntrack caps a picked-up flow the same way), and at
// Timeouts.Embryonic for an unassured half-open TCP flow while the table is
// under pressure (the kernel's early_drop frees those first).
func (t *Table) timeout(c uint64, now int64) int64 {
	s := ctlState(c)
	to := t.timeouts[s]
	if ctlProto(c) != nat.ProtoTCP {
		return to
	}
	fl := ctlFlags(c)
	if fl&flagReplied == 0 {
		to = min(to, t.unack)
	}
	if fl&flagAssured == 0 && s <= StateSynRecv && now < t.pressureUntil.Load() {
		to = min(to, t.embryo)
	}
	return to
}

// expired reports whether a flow with ctl c last seen at last has expired
// at now.
func (t *Table) expired(c uint64, last, now int64) bool {
	return now-last > t.timeout(c, now)
}

// Pressure marks the table as under pressure at now, for the next 10 s:
// unassured half-open TCP flows then time out after Timeouts.Embryonic.
// Insert calls it when it finds no free record; the pipeline calls it when
// a SNAT port range is so full that probing fails. Cheap enough to call
// per packet: it writes shared memory at most about once a second.
func (t *Table) Pressure(now int64) {
	if now+pressureHold-t.pressureUntil.Load() >= pressureRefresh {
		t.pressureUntil.Store(now + pressureHold)
	}
}

// UnderPressure reports whether the table is under pressure at now.
func (t *Table) UnderPressure(now int64) bool { return now < t.pressureUntil.Load() }

// protected reports whether eviction must spare the flow whose ctl is c:
// an assured flow whose connection is still open. As the kernel's
// early_drop (tcp_can_early_drop), an assured TCP flow in a closing state
// (FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE) carries no more than
// the end of a connection and may go: otherwise a small table fills with
// TIME_WAIT flows, which live 120 s, and refuses every new flow until they
// expire.
func protected(c uint64) bool {
	if ctlFlags(c)&flagAssured == 0 {
		return false
	}
	if ctlProto(c) != nat.ProtoTCP {
		return true
	}
	switch ctlState(c) {
	case StateFinWait, StateCloseWait, StateLastAck, StateTimeWait, StateClose:
		return false
	}
	return true
}

// Reclaim removes the flow one of whose tuples is k if it has been idle
// for at least minIdle nanoseconds (ReclaimAge, usually) and is unassured,
// or a TCP connection that has ended (TIME_WAIT or CLOSE: the kernel's NAT
// reuses those tuples for a new SYN too), so that its tuple (a SNAT port)
// can be reused at once instead of when a flood's half-open flow or a
// closed connection times out. It reports whether it removed a flow; the
// removal counts as an eviction.
func (t *Table) Reclaim(k Tuple, minIdle, now int64) bool {
	f, ok := t.Lookup(k, now)
	if !ok {
		return false
	}
	fam6, idx := f.Handle.fam6(), f.Handle.idx()
	r := t.hdrChecked(fam6, idx)
	if r == nil {
		return false
	}
	c := r.ctl.Load()
	ended := ctlProto(c) == nat.ProtoTCP && (ctlState(c) == StateTimeWait || ctlState(c) == StateClose)
	if ctlGen(c) != f.Handle.gen() || ctlFlags(c)&flagAssured != 0 && !ended || now-r.last.Load() < minIdle {
		return false
	}
	return t.remove(fam6, idx, c, reasonEvicted)
}

// Assured reports whether the flow h names is live and assured.
func (t *Table) Assured(h Handle) bool {
	r := t.hdrChecked(h.fam6(), h.idx())
	if r == nil {
		return false
	}
	c := r.ctl.Load()
	return ctlGen(c) == h.gen() && ctlLive(c) && ctlFlags(c)&flagAssured != 0
}
