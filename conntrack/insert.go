package conntrack

import (
	"fmt"
	"sync/atomic"

	"github.com/xdpgate/xdpgate/internal/owned"
	"github.com/xdpgate/xdpgate/nat"
)

// InsertResult says what Insert did.
type InsertResult uint8

// Insert results.
const (
	// Inserted: a new flow was created.
	Inserted InsertResult = iota
	// Exists: a live flow with this original tuple already exists (for
	// example another poller inserted it first); the returned Flow is that
	// flow, so racing pollers apply the same translation.
	Exists
	// Conflict: the original tuple is the reply tuple of another flow, or
	// the reply tuple is already used by another flow (pick another SNAT
	// port and retry).
	Conflict
	// Full: no record or index slot could be found or freed.
	Full
	// Invalid: the tuple is malformed, the translation is of another
	// family, the original and reply tuples are equal, or the family has
	// no capacity.
	Invalid
)

var insertResultNames = [...]string{"inserted", "exists", "conflict", "full", "invalid"}

// String names the result.
func (r InsertResult) String() string {
	if int(r) < len(insertResultNames) {
		return insertResultNames[r]
	}
	return fmt.Sprintf("insert-result(%d)", uint8(r))
}

// removal reasons (which counter a removal increments).
type reason uint8

const (
	reasonDeleted reason = iota
	reasonExpired
	reasonEvicted
)

// Insert creates the flow with original tuple orig, translation x (the
// reply tuple is x.Reply(orig)), service port svc and endpoint ep, last
// seen at now, in the protocol's initial state; call Touch with the first
// packet. With Exists the returned Flow is the existing flow (Dir
// Original); with Conflict, Full and Invalid it is the zero Flow.
//
// When no record is free, Insert marks the table under pressure (Pressure)
// and the eviction hand (hand.go) frees one flow among the next records of
// the array: an expired one if any, else an evictable flow idle for
// ReclaimAge, else the least recently seen evictable flow (evictable:
// unassured, or an assured TCP flow already closing, as the kernel's
// early_drop); the new flow takes its record. It never evicts an assured
// open flow: when the hand finds only those the new flow is refused (Full,
// counted in Stats.RefusedAssured). When a tuple's window has no empty slot
// (vanishingly rare) it chooses a victim inside the window, expired first,
// then the least recently seen evictable one. Evictions are counted in
// Stats.Evictions (expired victims in Stats.Expiries).
//
// Insert never allocates. It takes the spin bits of the two tuples' home
// buckets (not a global lock) for the few hundred nanoseconds it runs.
func (t *Table) Insert(orig Tuple, x Translation, svc, ep uint32, now int64) (Flow, InsertResult) {
	return t.insert(orig, x, svc, ep, nil, now)
}

// Packet is a flow's first packet for InsertFirst, in the original
// direction: Seg.Flags is byte 13 of the TCP header (ignored for other
// protocols), Seg's numbers count only with HasSeq (TouchTCP's rules, else
// Touch's), Bytes is its length from the IP header on.
type Packet struct {
	Seg    Segment
	HasSeq bool
	Bytes  int
}

// InsertFirst is Insert followed by the Touch (TouchTCP with pkt.HasSeq)
// of the flow's first packet, with the same outcome, but cheaper: for a new
// flow the packet is applied while the record is still being built, with
// plain stores into fields the build writes anyway, instead of a Touch's
// atomic read-modify-writes on a published flow. With Exists the packet is
// applied to the existing flow as Touch would. The returned Flow's State is
// the state after the packet.
func (t *Table) InsertFirst(orig Tuple, x Translation, svc, ep uint32, pkt Packet, now int64) (Flow, InsertResult) {
	f, res := t.insert(orig, x, svc, ep, &pkt, now)
	if res == Exists {
		var seg *Segment
		if pkt.HasSeq {
			seg = &pkt.Seg
		}
		t.touch(f.Handle, Original, pkt.Seg.Flags, seg, pkt.Bytes, now)
	}
	return f, res
}

func (t *Table) insert(orig Tuple, x Translation, svc, ep uint32, first *Packet, now int64) (Flow, InsertResult) {
	reply := x.Reply(orig)
	fam6 := orig.Family == IPv6
	if !orig.Valid() || !reply.Valid() || orig == reply || (fam6 && len(t.r6) == 0) {
		t.stripe(svc).invalid.Add(1)
		return Flow{}, Invalid
	}
	ho, hr := orig.hash(&t.key), reply.hash(&t.key)
	bo, br := t.bucketOf(ho), t.bucketOf(hr)
	b0, b1 := min(bo, br), max(bo, br) // lock order: ascending bucket
	// Touch both home buckets before the first CAS: the two independent
	// loads overlap their cache misses, whereas a locked instruction would
	// serialise them. (The compiler never elides atomic loads.)
	_ = t.header(bo).Load()
	_ = t.header(br).Load()
	t.lock(b0)
	if b1 != b0 {
		t.lock(b1)
	}
	f, res := t.insertLocked(&orig, &reply, ho, hr, svc, ep, first, now)
	if b1 != b0 {
		t.unlock(b1)
	}
	t.unlock(b0)
	return f, res
}

func (t *Table) insertLocked(orig, reply *Tuple, ho, hr uint64, svc, ep uint32, first *Packet, now int64) (Flow, InsertResult) {
	fam6 := orig.Family == IPv6
	// Uniqueness: we hold the home-bucket bits of both tuples, so no other
	// inserter can add a flow using either of them until we return.
	if idx, c, d, ok := t.findLocked(orig, ho, now); ok {
		if d != Original {
			t.stripe(idx).conflicts.Add(1)
			return Flow{}, Conflict
		}
		return t.flowOf(fam6, idx, c, Original), Exists
	}
	if idx, _, _, ok := t.findLocked(reply, hr, now); ok {
		t.stripe(idx).conflicts.Add(1)
		return Flow{}, Conflict
	}

	pool := t.pool(fam6)
	hint := uint32(ho >> 16)
	idx, ok := pool.pop(hint)
	assuredOnly := false
	if !ok {
		t.Pressure(now)
	}
	if !ok {
		// No free record: the eviction hand frees one and hands it over
		// (hand.go).
		idx, ok, assuredOnly = t.evictHand(fam6, now)
	}
	if !ok {
		st := t.stripe(uint32(ho))
		st.full.Add(1)
		if assuredOnly {
			st.refusedAssured.Add(1)
		}
		return Flow{}, Full
	}

	// The record is ours (even generation: readers and deleters ignore
	// it). Fill it with plain stores (internal/owned), publish its index entries,
	// then make it live.
	r := t.hdr(fam6, idx)
	if fam6 {
		t.r6[idx].t[Original].store(orig)
		t.r6[idx].t[Reply].store(reply)
	} else {
		t.r4[idx].t[Original].store(orig)
		t.r4[idx].t[Reply].store(reply)
	}
	owned.Set32(&r.svc, svc)
	owned.Set32(&r.ep, ep)
	owned.SetI64(&r.last, now)
	// The state, counters and sequence tracking the flow is published
	// with: the initial ones, or those its first packet leads to.
	gen := ctlGen(r.ctl.Load()) + 1
	c := makeCtl(gen, orig.Proto, 0, initialState(orig.Proto))
	var pkts, bytes uint64
	var nxt [2]uint32 // a reused record must not keep its last flow's numbers
	if first != nil {
		nc := advance(c, Original, first.Seg.Flags)
		if first.HasSeq && orig.Proto == nat.ProtoTCP {
			nxt = firstSeq(nc, &first.Seg)
		}
		c, pkts, bytes = nc, 1, uint64(max(first.Bytes, 0))
	}
	ct := t.ctr(fam6, idx)
	owned.Set64(&ct.pkts[Original], pkts)
	owned.Set64(&ct.bytes[Original], bytes)
	owned.Set64(&ct.pkts[Reply], 0)
	owned.Set64(&ct.bytes[Reply], 0)
	owned.Set32(&ct.nxt[Original], nxt[Original])
	owned.Set32(&ct.nxt[Reply], nxt[Reply])
	eo := entryKey(ho, fam6) | uint64(idx)
	er := entryKey(hr, fam6) | dirBit | uint64(idx)
	// Reply entry first: once the original entry is visible, so is the
	// reply entry (and no reply packet can precede the first original one).
	if !t.claimSlot(hr, er, now) {
		pool.push(idx)
		t.stripe(idx).full.Add(1)
		return Flow{}, Full
	}
	if !t.claimSlot(ho, eo, now) {
		t.unlink(hr, er)
		pool.push(idx)
		t.stripe(idx).full.Add(1)
		return Flow{}, Full
	}
	r.ctl.Store(c)
	s := ctlState(c)
	st := t.stripe(idx)
	st.inserts.Add(1)
	st.states[s].Add(1)
	if fam6 {
		st.live6.Add(1)
	}
	return Flow{Rewrite: reply.Reverse(), ServicePort: svc, Endpoint: ep,
		Handle: makeHandle(gen, fam6, idx), Dir: Original, State: s}, Inserted
}

// flowOf builds the Flow of live record idx (ctl c) seen in direction d.
func (t *Table) flowOf(fam6 bool, idx uint32, c uint64, d Dir) Flow {
	r := t.hdr(fam6, idx)
	return Flow{Rewrite: t.loadTuple(fam6, idx, d^1, ctlProto(c)).Reverse(),
		ServicePort: r.svc.Load(), Endpoint: r.ep.Load(),
		Handle: makeHandle(ctlGen(c), fam6, idx), Dir: d, State: ctlState(c)}
}

// findLocked looks for a live flow using tuple k in either direction, like
// Lookup, deleting expired ones it meets. It returns the record, its ctl
// and the direction k has in it.
func (t *Table) findLocked(k *Tuple, h uint64, now int64) (idx uint32, c uint64, d Dir, ok bool) {
	fam6 := k.Family == IPv6
	want := entryKey(h, fam6)
	b1, b2 := t.buckets(h)
	ws := [2][]atomic.Uint64{t.bucket(b1), t.bucket(b2)}
	nw := 1
	if t.header(b1).Load() >= hdrOverflow {
		// Only inserters holding b1's bit put entries homed in b1 into
		// b2, and we hold it: the count is exact.
		nw = 2
	}
	for _, w := range ws[:nw] {
		for i := range w {
			e := w[i].Load()
			if e&keyMask != want {
				continue
			}
			idx := uint32(e & idxMask)
			d := Dir(e >> 30 & 1)
			r := t.hdr(fam6, idx)
			c := r.ctl.Load()
			if !ctlLive(c) || ctlProto(c) != k.Proto {
				continue
			}
			if t.loadTuple(fam6, idx, d, k.Proto) != *k {
				continue
			}
			last := r.last.Load()
			c2 := r.ctl.Load()
			if ctlGen(c2) != ctlGen(c) {
				continue
			}
			if t.expired(c2, last, now) {
				t.remove(fam6, idx, c2, reasonExpired)
				continue
			}
			return idx, c2, d, true
		}
	}
	return 0, 0, 0, false
}

// claimSlot stores entry e in an empty slot of the window of hash h: in
// the first bucket while it has at least four empty slots (so that most
// lookups read one cache line), else in the emptier bucket (two-choice
// hashing keeps overflow negligible at load 1/2), evicting a flow from the
// window when neither has room. An entry stored in the second bucket is
// counted in the first bucket's header before it is published.
func (t *Table) claimSlot(h, e uint64, now int64) bool {
	b1, b2 := t.buckets(h)
	w0, w1 := t.bucket(b1), t.bucket(b2)
	hd := t.header(b1)
	for attempt := 0; attempt < 3; attempt++ {
		second := false
		if n0 := empties(w0); n0 < 4 && empties(w1) > n0 {
			second = true
		}
		for pass := 0; pass < 2; pass++ {
			if second {
				hd.Add(hdrOverflow)
				if claimIn(w1, e) {
					return true
				}
				hd.Add(hdrUnderflow)
			} else if claimIn(w0, e) {
				return true
			}
			second = !second
		}
		if removed, _ := t.evict([]uint64{b1, b2}, now); !removed {
			return false
		}
	}
	return false
}

func claimIn(w []atomic.Uint64, e uint64) bool {
	for i := range w {
		if w[i].Load() == 0 && w[i].CompareAndSwap(0, e) {
			return true
		}
	}
	return false
}

func empties(w []atomic.Uint64) int {
	n := 0
	for i := range w {
		if w[i].Load() == 0 {
			n++
		}
	}
	return n
}

// evict removes one flow referenced from the index buckets bs: the first
// expired one, else the least recently seen evictable one (half-open TCP,
// one-way UDP: what a flood creates; and closing TCP: as nf_conntrack's
// early_drop). An assured open flow is never evicted to make room: a new
// flow is unassured, and proven two-way flows outrank it (protected). It reports whether it removed something
// (or found a flow already being removed by someone else, which frees room
// as well), and whether the buckets held only assured live flows.
func (t *Table) evict(bs []uint64, now int64) (removed, assuredOnly bool) {
	const none = ^uint32(0)
	var (
		bestUnrep     = none
		bestUnrepLast int64
		bestUnrepC    uint64
		bestUnrepFam6 bool
		assured       bool
	)
	for _, b := range bs {
		w := t.bucket(b)
		for i := range w {
			e := w[i].Load()
			if e == 0 {
				continue
			}
			fam6 := e&fam6Bit != 0
			idx := uint32(e & idxMask)
			r := t.hdr(fam6, idx)
			c := r.ctl.Load()
			if !ctlLive(c) {
				continue
			}
			last := r.last.Load()
			if t.expired(c, last, now) {
				if t.remove(fam6, idx, c, reasonExpired) {
					return true, false
				}
				continue
			}
			if protected(c) {
				assured = true
				continue
			}
			if bestUnrep == none || last < bestUnrepLast {
				bestUnrep, bestUnrepLast, bestUnrepC, bestUnrepFam6 = idx, last, c, fam6
			}
		}
	}
	if bestUnrep == none {
		return false, assured
	}
	// A failed remove means another goroutine is removing the victim:
	// room appears either way.
	t.remove(bestUnrepFam6, bestUnrep, bestUnrepC, reasonEvicted)
	return true, false
}
