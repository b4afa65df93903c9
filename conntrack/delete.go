package conntrack

import "github.com/xdpgate/xdpgate/nat"

// remove deletes the live record idx whose ctl was observed as c, for
// reason why. The CAS of ctl from live to the next (even) generation is the
// linearisation point and decides which of several concurrent removers
// wins; only the winner unlinks the index entries and frees the record. It
// reports whether this call removed the flow.
func (t *Table) remove(fam6 bool, idx uint32, c uint64, why reason) bool {
	if !t.detach(fam6, idx, c, why) {
		return false
	}
	t.pool(fam6).push(idx)
	return true
}

// detach is remove without freeing the record: when it reports true the
// caller owns record idx (even generation, no index entries) and must
// either build a new flow in it or push it on its free stack. Insert uses
// it to reuse an evicted flow's record, whose lines are then in cache.
func (t *Table) detach(fam6 bool, idx uint32, c uint64, why reason) bool {
	r := t.hdr(fam6, idx)
	gen := ctlGen(c)
	for {
		if ctlGen(c) != gen || !ctlLive(c) {
			return false
		}
		if r.ctl.CompareAndSwap(c, ctlFree(gen+1)) {
			break
		}
		c = r.ctl.Load()
	}
	// The record is ours until pushed back: its tuples cannot change.
	proto := ctlProto(c)
	var hs, es [2]uint64
	for d := Original; d <= Reply; d++ {
		k := t.loadTuple(fam6, idx, d, proto)
		h := k.hash(&t.key)
		e := entryKey(h, fam6) | uint64(idx)
		if d == Reply {
			e |= dirBit
		}
		hs[d], es[d] = h, e
		// Touch both windows' first lines before the first CAS: the two
		// loads overlap their cache misses, a locked instruction between
		// them would serialise them (as in Insert).
		_ = t.header(t.bucketOf(h)).Load()
	}
	t.unlink(hs[Original], es[Original])
	t.unlink(hs[Reply], es[Reply])
	st := t.stripe(idx)
	st.states[ctlState(c)].Add(-1)
	if fam6 {
		st.live6.Add(-1)
	}
	switch why {
	case reasonExpired:
		st.expiries.Add(1)
	case reasonEvicted:
		st.evictions.Add(1)
	default:
		st.deletes.Add(1)
	}
	return true
}

// unlink clears the slot holding entry e in the window of hash h, and
// uncounts it from the first bucket's header when it was in the second.
// Entries name a record index that only one incarnation owns, so e is in
// the window at most once.
func (t *Table) unlink(h, e uint64) {
	b1, b2 := t.buckets(h)
	w := t.bucket(b1)
	for i := range w {
		if w[i].Load() == e && w[i].CompareAndSwap(e, 0) {
			return
		}
	}
	w = t.bucket(b2)
	for i := range w {
		if w[i].Load() == e && w[i].CompareAndSwap(e, 0) {
			t.header(b1).Add(hdrUnderflow)
			return
		}
	}
}

// Delete removes the flow h names. It reports false when h is not live
// (already removed).
func (t *Table) Delete(h Handle) bool {
	r := t.hdrChecked(h.fam6(), h.idx())
	if r == nil {
		return false
	}
	c := r.ctl.Load()
	if ctlGen(c) != h.gen() {
		return false
	}
	return t.remove(h.fam6(), h.idx(), c, reasonDeleted)
}

// scan calls fn for every live record in [from, to) of the combined index
// space (IPv4 records, then IPv6 records) and removes those for which fn
// returns true, counting them as why. It returns the number removed.
func (t *Table) scan(from, to int, why reason, fn func(r *recHdr, c uint64) bool) int {
	n := 0
	n4 := len(t.r4)
	for i := from; i < to; i++ {
		fam6 := i >= n4
		idx := uint32(i)
		if fam6 {
			idx = uint32(i - n4)
		}
		r := t.hdr(fam6, idx)
		c := r.ctl.Load()
		if !ctlLive(c) || !fn(r, c) {
			continue
		}
		if t.remove(fam6, idx, c, why) {
			n++
		}
	}
	return n
}

// DeleteByEndpoint removes every flow whose endpoint ID is ep (the endpoint
// left) and returns how many it removed. It reads the whole record array
// (a few milliseconds per million flows of capacity) without blocking
// anything else; flows inserted for ep while it runs may survive it.
func (t *Table) DeleteByEndpoint(ep uint32) int {
	return t.scan(0, len(t.r4)+len(t.r6), reasonDeleted, func(r *recHdr, c uint64) bool {
		return r.ep.Load() == ep && ctlGen(r.ctl.Load()) == ctlGen(c)
	})
}

// DeleteUDPByServicePort removes the UDP flows of service port svc whose
// endpoint is not kept (keep(ep) false: the endpoint is no longer serving),
// which is kube-proxy's UDP conntrack reconcile, and returns how many it
// removed. keep is called without any lock held. Cost as DeleteByEndpoint.
func (t *Table) DeleteUDPByServicePort(svc uint32, keep func(ep uint32) bool) int {
	return t.scan(0, len(t.r4)+len(t.r6), reasonDeleted, func(r *recHdr, c uint64) bool {
		if ctlProto(c) != nat.ProtoUDP || r.svc.Load() != svc {
			return false
		}
		ep := r.ep.Load()
		return ctlGen(r.ctl.Load()) == ctlGen(c) && !keep(ep)
	})
}

// Sweep examines the next budget records (IPv4 and IPv6 together, in a
// round robin over the whole table shared by all callers) and removes those
// that have expired at now. It returns how many it removed. Call it
// periodically with a budget that covers the table every few seconds, for
// example capacity/1000 every 5 ms; it never stops the world, and several
// goroutines may sweep at once (they take disjoint slices). A flow touched
// at the very instant it is found expired may still be removed; its next
// packet misses and the dataplane re-creates it, as with nf_conntrack.
func (t *Table) Sweep(now int64, budget int) int {
	total := len(t.r4) + len(t.r6)
	if budget <= 0 || total == 0 {
		return 0
	}
	budget = min(budget, total)
	start := int((t.cursor.Add(uint64(budget)) - uint64(budget)) % uint64(total))
	expired := func(r *recHdr, c uint64) bool {
		return t.expired(c, r.last.Load(), now)
	}
	end := start + budget
	if end <= total {
		return t.scan(start, end, reasonExpired, expired)
	}
	return t.scan(start, total, reasonExpired, expired) + t.scan(0, end-total, reasonExpired, expired)
}

// Entry is a full copy of one flow, for inspection.
type Entry struct {
	Handle                Handle
	Orig, Reply           Tuple
	ServicePort, Endpoint uint32
	State                 State
	// Replied: a reply-direction packet was seen.
	Replied bool
	// Assured: the flow proved two-way (a completed TCP handshake, or a
	// reply followed by more from the originator); eviction spares it.
	Assured bool
	// Timeout is the flow's idle timeout when it was read: its state's,
	// capped for a TCP flow without a reply (Timeouts.Unacknowledged) and
	// for a half-open one while the table is under pressure.
	Timeout int64
	// LastSeen is the last-seen time in the caller's clock.
	LastSeen int64
	// Packets and Bytes count per direction (index Dir).
	Packets, Bytes [2]uint64
}

// Range calls fn with a copy of every live flow until fn returns false. It
// takes no lock and does not block writers; a flow inserted or removed
// while Range runs may or may not be seen, and each copy is consistent
// (validated by the record generation). e is only valid during the call.
func (t *Table) Range(fn func(e *Entry) bool) {
	var e Entry
	n4 := len(t.r4)
	for i := 0; i < n4+len(t.r6); i++ {
		fam6 := i >= n4
		idx := uint32(i)
		if fam6 {
			idx = uint32(i - n4)
		}
		if t.readEntry(fam6, idx, &e) && !fn(&e) {
			return
		}
	}
}

// Get returns a copy of the flow h names, if it is live.
func (t *Table) Get(h Handle) (Entry, bool) {
	var e Entry
	if t.hdrChecked(h.fam6(), h.idx()) == nil {
		return e, false
	}
	ok := t.readEntry(h.fam6(), h.idx(), &e) && e.Handle == h
	return e, ok
}

func (t *Table) readEntry(fam6 bool, idx uint32, e *Entry) bool {
	r, ct := t.hdr(fam6, idx), t.ctr(fam6, idx)
	c := r.ctl.Load()
	if !ctlLive(c) {
		return false
	}
	p := ctlProto(c)
	*e = Entry{
		Orig: t.loadTuple(fam6, idx, Original, p), Reply: t.loadTuple(fam6, idx, Reply, p),
		ServicePort: r.svc.Load(), Endpoint: r.ep.Load(), LastSeen: r.last.Load(),
		Packets: [2]uint64{ct.pkts[0].Load(), ct.pkts[1].Load()},
		Bytes:   [2]uint64{ct.bytes[0].Load(), ct.bytes[1].Load()},
	}
	c2 := r.ctl.Load()
	if ctlGen(c2) != ctlGen(c) {
		return false
	}
	e.Handle = makeHandle(ctlGen(c2), fam6, idx)
	e.State = ctlState(c2)
	e.Replied = ctlFlags(c2)&flagReplied != 0
	e.Assured = ctlFlags(c2)&flagAssured != 0
	e.Timeout = t.timeout(c2, e.LastSeen)
	return true
}
