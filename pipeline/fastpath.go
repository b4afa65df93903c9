package pipeline

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"
)

// The XDP fast path (Config.FastPath): established flows are forwarded by
// the XDP program itself, as Open vSwitch offloads flows from its userspace
// datapath. The pipeline stays the authority and the slow path: a flow is
// offered to XDP only once conntrack says it is established both ways
// (conntrack.Table.Offloadable), and everything else (first packets, SYN,
// FIN, RST, ICMP errors, fragments, TTL expiry, too big, a capture) still
// comes here.
//
// Lifecycle of a flow's offload, per conntrack record (fastState.byRec, one
// word: the flow's generation << 32 | a mark):
//
//   - A poller that forwards a packet of an offloadable flow with no mark of
//     its generation marks it pending and queues it (pipeQueue.fastInstall);
//     at the end of Process, outside the per-packet loop, fastFlush builds
//     both directions (the translation, the next hops, as frame would use
//     them) and installs them: one system call per direction, once per flow.
//     The mark becomes the fast path slot, or "ineligible" when an egress
//     device cannot transmit XDP frames (counted: such flows stay here).
//   - Frames of an installed flow that still reach the pipeline first credit
//     what XDP forwarded to conntrack (counters, last-seen, TCP sequence
//     tracking: fastCredit), so a FIN or RST is judged against the current
//     window; a FIN or RST then queues the flow's removal.
//   - Housekeeping (fastSync, from Housekeep) credits every installed flow
//     at least every fastSyncPeriod, so the sweeper never expires a busy
//     flow, and removes the entries of flows that ended, timed out, lost
//     their endpoint (Publish's deletions run a full pass at once), are no
//     longer established, whose next hop changed, or whose device can no
//     longer transmit XDP frames. While a capture runs nothing is
//     installed and StartCapture removes every entry, so the capture sees
//     every packet.
//
// Slots (fastState.meta) are owned under fastState.mu: exactly one caller
// removes a slot's entries and frees it.

// fastSyncPeriod bounds how stale conntrack's view of an offloaded flow
// gets, and how long the entries of a flow removed from conntrack keep
// forwarding (except deletions by Publish, which remove them at once).
const fastSyncPeriod = time.Second

// fastRefreshPeriod is how often the devices XDP can transmit on are
// re-checked (dataplane.FastPath.Refresh).
const fastRefreshPeriod = time.Second

// byRec marks (low 32 bits); a value below fastIneligible is slot+1.
const (
	fastPending    = 0xffffffff
	fastIneligible = 0xfffffffe
)

// fastMeta is an installed flow.
type fastMeta struct {
	used bool
	h    conntrack.Handle
	rec  uint32
	e    [2]dataplane.FastEntry
}

// fastState is the pipeline's side of the fast path. byRec is written by
// CAS (pollers and housekeeping); mu guards free, meta and cursor; the
// counters are atomics.
type fastState struct {
	fp     dataplane.FastPath
	byRec  []atomic.Uint64
	mu     sync.Mutex
	free   []uint32
	meta   []fastMeta
	cursor int
	// nextRefresh is when fastSync next calls Refresh (the pipeline's
	// clock).
	nextRefresh                                    atomic.Int64
	installs, removals, ineligible, noSlot, errors atomic.Uint64
}

// FastPathStats are the pipeline's fast path counters (Pipeline.FastPathStats).
type FastPathStats struct {
	// Installed is the number of flows XDP forwards now; Capacity the most.
	Installed, Capacity int
	// Installs and Removals count flows installed and removed.
	Installs, Removals uint64
	// Ineligible counts flows left in userspace because an egress device
	// cannot transmit XDP frames; NoSlot those left for want of a free
	// slot (retried); Errors failed installs and removals.
	Ineligible, NoSlot, Errors uint64
	// XDP are the program's own counters (zero when they cannot be read).
	XDP dataplane.FastPathCounters
}

func newFastState(fp dataplane.FastPath, records int) *fastState {
	n := fp.Slots()
	fs := &fastState{fp: fp, byRec: make([]atomic.Uint64, records), free: make([]uint32, n), meta: make([]fastMeta, n)}
	for i := range fs.free {
		fs.free[i] = uint32(n - 1 - i)
	}
	return fs
}

// fastInstallReq is a flow a poller queued for installation.
type fastInstallReq struct {
	h   conntrack.Handle
	rec uint32
}

// fastRemoveReq is an installed flow a poller queued for removal.
type fastRemoveReq struct {
	h    conntrack.Handle
	rec  uint32
	slot uint32
}

// fastCredit credits what XDP forwarded of fl's flow, if installed, and
// queues its removal on a TCP FIN or RST. Called for every hit before
// Touch; it makes no system call.
func (p *Pipeline) fastCredit(b *batch, pk *nat.Packet, fl *conntrack.Flow) {
	fs := p.fast
	rec := uint32(p.ct.RecordSlot(fl.Handle))
	v := fs.byRec[rec].Load()
	gen := fl.Handle.Generation()
	if uint32(v>>32) != gen || uint32(v) >= fastIneligible {
		return
	}
	slot := uint32(v) - 1
	p.creditSlot(int(slot), fl.Handle, pk.Proto == nat.ProtoTCP)
	if pk.Proto == nat.ProtoTCP && pk.TCPFlags&(conntrack.TCPFin|conntrack.TCPRst) != 0 &&
		len(b.pq.fastRemove) < cap(b.pq.fastRemove) &&
		fs.byRec[rec].CompareAndSwap(v, uint64(gen)<<32|fastPending) {
		b.pq.fastRemove = append(b.pq.fastRemove, fastRemoveReq{h: fl.Handle, rec: rec, slot: slot})
	}
}

// creditSlot moves what XDP counted for slot since the last credit into
// conntrack and reports whether the flow is still live.
func (p *Pipeline) creditSlot(slot int, h conntrack.Handle, tcp bool) bool {
	live := true
	for d := 0; d < 2; d++ {
		s := p.fast.fp.Stats(slot, d)
		dp, db := p.fast.fp.Credit(slot, d, s.Packets, s.Bytes)
		c := conntrack.Credit{Packets: dp, Bytes: db, Last: s.Last, Seq: tcp && s.Packets > 0, SeqEnd: s.SeqEnd, Ack: s.Ack}
		live = p.ct.Credit(h, conntrack.Dir(d), c) && live
	}
	return live
}

// fastOffer queues fl's flow for installation when it is established and
// not yet offered. Called after a hit was forwarded; no system call.
func (p *Pipeline) fastOffer(b *batch, fl *conntrack.Flow) {
	fs := p.fast
	rec := uint32(p.ct.RecordSlot(fl.Handle))
	v := fs.byRec[rec].Load()
	gen := fl.Handle.Generation()
	if uint32(v>>32) == gen || len(b.pq.fastInstall) == cap(b.pq.fastInstall) || !p.ct.Offloadable(fl.Handle) {
		return
	}
	if fs.byRec[rec].CompareAndSwap(v, uint64(gen)<<32|fastPending) {
		b.pq.fastInstall = append(b.pq.fastInstall, fastInstallReq{h: fl.Handle, rec: rec})
	}
}

// fastFlush installs and removes what the batch queued (end of Process).
func (p *Pipeline) fastFlush(pq *pipeQueue) {
	fs := p.fast
	for _, r := range pq.fastRemove {
		p.fastRemoveSlot(int(r.slot), r.h)
		fs.byRec[r.rec].CompareAndSwap(uint64(r.h.Generation())<<32|fastPending, 0)
	}
	pq.fastRemove = pq.fastRemove[:0]
	for _, r := range pq.fastInstall {
		mark := p.fastInstall(r.h, r.rec)
		fs.byRec[r.rec].CompareAndSwap(uint64(r.h.Generation())<<32|fastPending, mark)
	}
	pq.fastInstall = pq.fastInstall[:0]
}

// fastInstall installs the flow h names and returns its byRec word: the
// slot, ineligible, or 0 (not now: no route or neighbour yet, no free
// slot, the flow ended, a capture started).
func (p *Pipeline) fastInstall(h conntrack.Handle, rec uint32) uint64 {
	fs := p.fast
	gen := uint64(h.Generation()) << 32
	if p.capture.Load() != nil || !p.ct.Offloadable(h) {
		return 0 // a capture started, or the flow moved on (a FIN seen by another poller)
	}
	var e [2]dataplane.FastEntry
	switch p.fastEntries(h, &e) {
	case fastNotNow:
		return 0
	case fastNoDevice:
		fs.ineligible.Add(1)
		return gen | fastIneligible
	}
	fs.mu.Lock()
	if len(fs.free) == 0 {
		fs.mu.Unlock()
		fs.noSlot.Add(1)
		return 0
	}
	slot := fs.free[len(fs.free)-1]
	fs.free = fs.free[:len(fs.free)-1]
	fs.meta[slot] = fastMeta{used: true, h: h, rec: rec, e: e}
	fs.mu.Unlock()
	if err := fs.fp.Install(int(slot), h.Generation(), &e); err != nil {
		fs.errors.Add(1)
		fs.mu.Lock()
		fs.meta[slot].used = false
		fs.free = append(fs.free, slot)
		fs.mu.Unlock()
		p.log.Warn("fast path install", "err", err)
		return gen | fastIneligible
	}
	fs.installs.Add(1)
	return gen | uint64(slot+1)
}

type fastEntriesResult uint8

const (
	fastOK fastEntriesResult = iota
	fastNotNow
	fastNoDevice
)

// fastEntries builds both directions of the flow h names, each with the
// translation and next hop frame applies to its packets.
func (p *Pipeline) fastEntries(h conntrack.Handle, e *[2]dataplane.FastEntry) fastEntriesResult {
	ent, ok := p.ct.Get(h)
	if !ok {
		return fastNotNow
	}
	ins := [2]conntrack.Tuple{ent.Orig, ent.Reply}
	for d := 0; d < 2; d++ {
		in := ins[d]
		out := ins[1-d].Reverse() // Flow.Rewrite of direction d
		hop, st := p.lookupFlow(&out)
		if st != dataplane.LookupOK {
			return fastNotNow
		}
		if !p.fast.fp.CanForward(hop.Ifindex) {
			return fastNoDevice
		}
		e[d] = dataplane.FastEntry{
			In:      dataplane.MakeFastTuple(in.SrcAddr(), in.DstAddr(), in.SrcPort, in.DstPort, in.Proto),
			Out:     dataplane.MakeFastTuple(out.SrcAddr(), out.DstAddr(), out.SrcPort, out.DstPort, out.Proto),
			Ifindex: hop.Ifindex, SrcMAC: hop.SrcMAC, DstMAC: hop.DstMAC, MTU: hop.MTU, Dir: uint8(d),
		}
	}
	return fastOK
}

// fastRemoveSlot removes slot's entries if it still holds the flow h names,
// crediting what XDP forwarded since the last credit first.
func (p *Pipeline) fastRemoveSlot(slot int, h conntrack.Handle) {
	fs := p.fast
	fs.mu.Lock()
	m := &fs.meta[slot]
	if !m.used || m.h != h {
		fs.mu.Unlock()
		return
	}
	m.used = false
	e := m.e
	fs.mu.Unlock()
	err := fs.fp.Remove(slot, &e)
	p.creditSlot(slot, h, e[0].In.Proto == nat.ProtoTCP)
	fs.mu.Lock()
	fs.free = append(fs.free, uint32(slot))
	fs.mu.Unlock()
	fs.removals.Add(1)
	if err != nil {
		fs.errors.Add(1)
		p.log.Warn("fast path remove", "err", err)
	}
}

// fastSync is housekeeping's pass over installed flows (see the top of
// this file): all of them when all is set, else the next share so that
// every flow is visited each fastSyncPeriod at HousekeepTick.
func (p *Pipeline) fastSync(now int64, all bool) {
	fs := p.fast
	if next := fs.nextRefresh.Load(); now >= next && fs.nextRefresh.CompareAndSwap(next, now+int64(fastRefreshPeriod)) {
		if err := fs.fp.Refresh(); err != nil {
			p.log.Warn("fast path devices", "err", err)
		}
	}
	n := len(fs.meta)
	budget := n
	if !all {
		per := int(fastSyncPeriod / HousekeepTick)
		budget = (n + per - 1) / per
	}
	capturing := p.capture.Load() != nil
	for i := 0; i < budget; i++ {
		fs.mu.Lock()
		slot := fs.cursor
		fs.cursor = (fs.cursor + 1) % n
		var m fastMeta
		if fs.meta[slot].used {
			m = fs.meta[slot]
		}
		fs.mu.Unlock()
		if !m.used {
			continue
		}
		live := p.creditSlot(slot, m.h, m.e[0].In.Proto == nat.ProtoTCP)
		if live && !capturing && p.ct.Offloadable(m.h) && p.fastHopsCurrent(&m.e) {
			continue
		}
		p.fastRemoveSlot(slot, m.h)
		if live {
			// Offer it again later (a new next hop, a device back).
			fs.byRec[m.rec].CompareAndSwap(uint64(m.h.Generation())<<32|uint64(slot+1), 0)
		}
	}
}

// fastHopsCurrent reports whether both directions' next hops are still
// what was installed and their devices can transmit XDP frames.
func (p *Pipeline) fastHopsCurrent(e *[2]dataplane.FastEntry) bool {
	for d := range e {
		out := conntrack.MakeTuple(e[d].Out.SrcAddr(), e[d].Out.DstAddr(), e[d].Out.SrcPort, e[d].Out.DstPort, e[d].Out.Proto)
		hop, st := p.lookupFlow(&out)
		if st != dataplane.LookupOK || hop.Ifindex != e[d].Ifindex || hop.DstMAC != e[d].DstMAC ||
			hop.SrcMAC != e[d].SrcMAC || hop.MTU != e[d].MTU || !p.fast.fp.CanForward(hop.Ifindex) {
			return false
		}
	}
	return true
}

// fastRemoveAll removes every installed flow (a capture starts).
func (p *Pipeline) fastRemoveAll() {
	fs := p.fast
	for slot := range fs.meta {
		fs.mu.Lock()
		m := fs.meta[slot]
		fs.mu.Unlock()
		if m.used {
			p.fastRemoveSlot(slot, m.h)
			fs.byRec[m.rec].CompareAndSwap(uint64(m.h.Generation())<<32|uint64(slot+1), 0)
		}
	}
}

// FastPathStats returns the fast path's counters; ok is false when the
// pipeline has no fast path.
func (p *Pipeline) FastPathStats() (s FastPathStats, ok bool) {
	fs := p.fast
	if fs == nil {
		return s, false
	}
	fs.mu.Lock()
	s.Capacity = len(fs.meta)
	s.Installed = len(fs.meta) - len(fs.free)
	fs.mu.Unlock()
	s.Installs, s.Removals = fs.installs.Load(), fs.removals.Load()
	s.Ineligible, s.NoSlot, s.Errors = fs.ineligible.Load(), fs.noSlot.Load(), fs.errors.Load()
	s.XDP, _ = fs.fp.Counters()
	return s, true
}
