package dataplane

import (
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pollerScratch is allocated once per poller and reset with [:0] per batch.
type pollerScratch struct {
	frames []Frame
	chunks []uint64  // RX chunk of frames[i]
	local  []int32   // frames to transmit in place
	copies []copyTo  // frames to copy to another port
	group  []int32   // one port's frames of copies
	hold   holdTable // frames waiting for their next hop's MAC
	// released and expired receive hold.sweep's output; relFrames and
	// relChunks are the released frames as a batch for dispatch.
	released, expired []heldFrame
	relFrames         []Frame
	relChunks         []uint64
}

// copyTo is a frame to copy to another port.
type copyTo struct {
	p *port
	i int32
}

// holdPollMs bounds a poll(2) sleep while frames are held, so that a
// resolved neighbour's frames leave within a few ms of the answer.
const holdPollMs = 2

func (d *Dataplane) newScratch(qs *queueState) pollerScratch {
	batch := d.cfg.BatchSize
	holdN := max(d.cfg.NeighHoldFrames, 0)
	if qs.port.dynamic {
		// At most 1/8 of the socket's RX frames, as for the others.
		holdN = min(holdN, d.cfg.DeviceNumFrames/16)
	}
	if d.cfg.Neighbours == nil {
		holdN = 0
	}
	// local and groups may hold a whole released batch (up to holdN).
	n := max(batch, holdN)
	sc := pollerScratch{
		frames:    make([]Frame, batch),
		chunks:    make([]uint64, batch),
		local:     make([]int32, 0, n),
		copies:    make([]copyTo, 0, n),
		group:     make([]int32, 0, n),
		hold:      newHoldTable(holdN, d.cfg.NeighHoldPerNeighbour, int64(d.cfg.NeighHoldTime)),
		released:  make([]heldFrame, 0, holdN),
		expired:   make([]heldFrame, 0, holdN),
		relFrames: make([]Frame, 0, holdN),
		relChunks: make([]uint64, 0, holdN),
	}
	return sc
}

// poll is one poller goroutine: RX batch -> Process -> TX/copy/drop -> fill.
func (d *Dataplane) poll(qs *queueState, p Processor) (err error) {
	runtime.LockOSThread()
	// A pinned thread is not handed back to the runtime: it ends with
	// this goroutine instead of running others on the poller's CPU.
	pinned := false
	defer func() {
		if !pinned {
			runtime.UnlockOSThread()
		}
	}()
	log := d.log.With("ifname", qs.q.Ifname, "queue", qs.q.QueueID, "index", qs.q.Index, "cpu", qs.q.CPU)
	if qs.q.CPU >= 0 {
		var set unix.CPUSet
		set.Set(qs.q.CPU)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin poller %s/%d to cpu %d: %w", qs.q.Ifname, qs.q.QueueID, qs.q.CPU, err)
		}
		pinned = true
	}
	log.Info("poller started")
	defer func() { log.Info("poller stopped", "err", err) }()

	batch := d.cfg.BatchSize
	sc := d.newScratch(qs)
	// Held frames go back to rxFree when the poller stops, whatever the
	// reason: a later Run starts with every RX chunk accounted for.
	defer d.dropHeld(qs, &sc)
	s := qs.s
	s.refill()
	pfds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}, {Fd: int32(d.stopfd), Events: unix.POLLIN},
		{Fd: int32(qs.port.stopfd), Events: unix.POLLIN}} // -1 (ignored by poll) for a managed interface
	idleMs := int(d.cfg.IdleWakeup / time.Millisecond)
	var idleStart time.Time
	spins := 0

	for !d.stop.Load() && !qs.port.stop.Load() {
		n := int(s.rx.available())
		if n == 0 {
			if sc.hold.len() > 0 {
				d.releaseHeld(qs, &sc)
			}
			// Busy-poll for cfg.BusyPoll, then sleep in poll(2).
			spins++
			if d.cfg.BusyPoll > 0 {
				if spins == 1 {
					idleStart = time.Now()
					continue
				}
				if spins&63 != 0 || time.Since(idleStart) < d.cfg.BusyPoll {
					continue
				}
			}
			spins = 0
			d.housekeep(qs)
			qs.c.sleeps.Add(1)
			pfds[0].Revents, pfds[1].Revents, pfds[2].Revents = 0, 0, 0
			timeout := idleMs
			if sc.hold.len() > 0 {
				timeout = min(timeout, holdPollMs)
			}
			if _, err := unix.Poll(pfds, timeout); err != nil && !errors.Is(err, unix.EINTR) {
				return fmt.Errorf("poll xsk %s/%d: %w", qs.q.Ifname, qs.q.QueueID, err)
			}
			if pfds[0].Revents&(unix.POLLERR|unix.POLLNVAL|unix.POLLHUP) != 0 {
				// Never spin on a broken socket (e.g. its device is gone).
				return fmt.Errorf("poll xsk %s/%d: revents %#x: %w", qs.q.Ifname, qs.q.QueueID, pfds[0].Revents, ErrSocketBroken)
			}
			continue
		}
		spins = 0
		n = min(n, batch)
		var bytes uint64
		for i := 0; i < n; i++ {
			desc := s.rx.descs[(s.rx.cachedCons+uint32(i))&s.rx.mask]
			chunk := desc.Addr & s.chunkMask
			sc.chunks[i] = chunk
			sc.frames[i] = Frame{
				Buf: s.umem[chunk : chunk+s.frameSize : chunk+s.frameSize],
				Off: int(desc.Addr - chunk),
				Len: int(desc.Len),
			}
			bytes += uint64(desc.Len)
		}
		s.rx.cachedCons += uint32(n)
		s.rx.release()
		qs.c.rxFrames.Add(uint64(n))
		qs.c.rxBytes.Add(bytes)

		p.Process(&qs.q, sc.frames[:n])
		if sc.hold.len() > 0 {
			// Before the batch: a neighbour Process found resolved
			// gets the frames held for it first, in order.
			d.releaseHeld(qs, &sc)
		}
		d.dispatch(qs, &sc, sc.frames[:n], sc.chunks[:n])

		if len(s.rxFree) < batch && s.fill.cachedProd-s.fill.cons.Load() < uint32(cap(s.rxFree)/2) {
			// Fewer than half the RX chunks are with the kernel: frames
			// sent in place wait on the completion ring; collect them even
			// if this poller no longer sends in place.
			reclaimOwn(s)
		}
		starved, kicked := s.refill()
		if starved {
			qs.c.fillRingEmpty.Add(1)
		}
		if kicked {
			qs.c.wakeups.Add(1)
		}
	}
	return nil
}

// housekeep returns completed in-place transmissions to the fill ring before
// the poller sleeps.
func (d *Dataplane) housekeep(qs *queueState) {
	s := qs.s
	reclaimOwn(s)
	if _, kicked := s.refill(); kicked {
		qs.c.wakeups.Add(1)
	}
}

// reclaimOwn drains s's completion ring and takes back the RX chunks that
// were sent in place. Owning poller only.
func reclaimOwn(s *xsk) {
	s.txMu.Lock()
	s.reclaimLocked()
	s.rxFree = append(s.rxFree, s.rxReturned...)
	s.rxReturned = s.rxReturned[:0]
	s.txMu.Unlock()
}

// dispatch applies the verdicts of frames, whose RX chunks are chunks.
func (d *Dataplane) dispatch(qs *queueState, sc *pollerScratch, frames []Frame, chunks []uint64) {
	s := qs.s
	sc.local = sc.local[:0]
	sc.copies = sc.copies[:0]
	pt := d.portTab.Load()
	for i := range frames {
		f := &frames[i]
		if f.Verdict != VerdictTX && f.Verdict != VerdictHold {
			r := f.Reason
			if f.Verdict != VerdictDrop || r >= NumDropReasons {
				r = DropUnspecified
			}
			d.drop(qs, chunks[i], r)
			continue
		}
		if f.Off < 0 || f.Len <= 0 || f.Off+f.Len > len(f.Buf) || len(f.Buf) == 0 ||
			unsafe.SliceData(f.Buf) != &s.umem[chunks[i]] {
			d.drop(qs, chunks[i], DropBadFrame)
			continue
		}
		var to *port // nil: the receiving interface
		if f.Ifindex != 0 && f.Ifindex != qs.q.Ifindex {
			if to = pt.byIfindex[f.Ifindex]; to == nil {
				r := DropEgressNotManaged
				if _, ok := pt.unusable[f.Ifindex]; ok {
					r = DropEgressUnusable
				}
				d.drop(qs, chunks[i], r)
				continue
			}
		}
		if f.Verdict == VerdictHold {
			d.hold(qs, sc, f, chunks[i])
			continue
		}
		if to == nil {
			sc.local = append(sc.local, int32(i))
		} else {
			sc.copies = append(sc.copies, copyTo{to, int32(i)})
		}
	}
	if len(sc.local) > 0 {
		d.txLocal(qs, sc, frames, chunks)
	}
	// One txCopy per target port, in frame order: O(frames x ports) for
	// the few ports a batch goes to.
	for j := range sc.copies {
		to := sc.copies[j].p
		if to == nil {
			continue
		}
		sc.group = sc.group[:0]
		for k := j; k < len(sc.copies); k++ {
			if sc.copies[k].p == to {
				sc.group = append(sc.group, sc.copies[k].i)
				sc.copies[k].p = nil
			}
		}
		d.txCopy(qs, frames, chunks, to, sc.group)
	}
}

// hold keeps a VerdictHold frame (already checked to lie in its chunk and
// to leave on a managed interface) in the hold table, or drops it.
func (d *Dataplane) hold(qs *queueState, sc *pollerScratch, f *Frame, chunk uint64) {
	switch {
	case !sc.hold.enabled():
		d.drop(qs, chunk, DropNeighUnresolved)
		return
	case !f.NextHop.IsValid():
		d.drop(qs, chunk, DropBadFrame)
		return
	}
	ifindex := f.Ifindex
	if ifindex == 0 {
		ifindex = qs.q.Ifindex
	}
	k := makeNeighKey(ifindex, f.NextHop.Unmap())
	if !sc.hold.add(k, chunk, f.Off, f.Len, d.now()) {
		d.drop(qs, chunk, DropNeighHoldFull)
		return
	}
	qs.c.neighHeld.Add(1)
}

// now is the pollers' monotonic clock, in ns since Open.
func (d *Dataplane) now() int64 { return int64(time.Since(d.epoch)) }

// releaseHeld transmits the held frames whose next hop is now known (the
// MAC written into the frame, then the normal TX path: in place or copied)
// and drops those held past NeighHoldTime.
func (d *Dataplane) releaseHeld(qs *queueState, sc *pollerScratch) {
	sc.released, sc.expired = sc.hold.sweep(d.now(), d.cfg.Neighbours, sc.released[:0], sc.expired[:0])
	for _, h := range sc.expired {
		d.drop(qs, h.chunk, DropNeighFailed)
	}
	if len(sc.released) == 0 {
		return
	}
	s := qs.s
	sc.relFrames, sc.relChunks = sc.relFrames[:0], sc.relChunks[:0]
	for _, h := range sc.released {
		buf := s.umem[h.chunk : h.chunk+s.frameSize : h.chunk+s.frameSize]
		copy(buf[h.off:], h.mac[:])
		sc.relFrames = append(sc.relFrames, Frame{Buf: buf, Off: int(h.off), Len: int(h.len),
			Verdict: VerdictTX, Ifindex: int(h.key.ifindex)})
		sc.relChunks = append(sc.relChunks, h.chunk)
	}
	qs.c.neighReleased.Add(uint64(len(sc.released)))
	d.dispatch(qs, sc, sc.relFrames, sc.relChunks)
}

// dropHeld drops every held frame (the poller is stopping).
func (d *Dataplane) dropHeld(qs *queueState, sc *pollerScratch) {
	sc.expired = sc.hold.flush(sc.expired[:0])
	for _, h := range sc.expired {
		d.drop(qs, h.chunk, DropNeighFailed)
	}
}

func (d *Dataplane) drop(qs *queueState, chunk uint64, r DropReason) {
	qs.s.rxFree = append(qs.s.rxFree, chunk)
	qs.c.drops[r].Add(1)
}

// txLocal transmits frames[sc.local] in place on the receiving socket.
func (d *Dataplane) txLocal(qs *queueState, sc *pollerScratch, frames []Frame, chunks []uint64) {
	s := qs.s
	s.txMu.Lock()
	s.reclaimLocked()
	s.rxFree = append(s.rxFree, s.rxReturned...)
	s.rxReturned = s.rxReturned[:0]
	free := s.tx.freeSlots(uint32(len(sc.local)))
	var sent, bytes uint64
	for _, i := range sc.local {
		f := &frames[i]
		if free == 0 {
			qs.c.txRingFull.Add(1)
			s.rxFree = append(s.rxFree, chunks[i])
			qs.c.drops[DropTxRingFull].Add(1)
			continue
		}
		free--
		s.tx.descs[s.tx.cachedProd&s.tx.mask] = unix.XDPDesc{Addr: chunks[i] + uint64(f.Off), Len: uint32(f.Len)}
		s.tx.cachedProd++
		sent++
		bytes += uint64(f.Len)
	}
	if sent > 0 {
		s.tx.publish()
		if k := s.kickLocked(); k > 0 {
			qs.c.wakeups.Add(uint64(k))
		}
	}
	s.txMu.Unlock()
	qs.c.txFrames.Add(sent)
	qs.c.txBytes.Add(bytes)
	qs.c.egressKind[qs.port.kind].Add(sent)
}

// txCopy copies frames[idx] into a socket of port p (queue QueueID mod its
// queue count) and transmits them there. The RX chunks go back to rxFree.
func (d *Dataplane) txCopy(qs *queueState, frames []Frame, chunks []uint64, p *port, idx []int32) {
	t := p.socks[qs.q.QueueID%len(p.socks)]
	var sent, bytes uint64
	t.txMu.Lock()
	if t.gone {
		// The device went away while this poller held the previous
		// portTable.
		t.txMu.Unlock()
		for _, i := range idx {
			d.drop(qs, chunks[i], DropEgressNotManaged)
		}
		return
	}
	t.reclaimLocked()
	free := t.tx.freeSlots(uint32(len(idx)))
	for _, i := range idx {
		f := &frames[i]
		chunk := chunks[i]
		switch {
		case uint64(f.Len) > t.frameSize:
			qs.c.drops[DropTooLong].Add(1)
		case free == 0:
			qs.c.txRingFull.Add(1)
			qs.c.drops[DropTxRingFull].Add(1)
		case len(t.txFree) == 0:
			qs.c.drops[DropNoTxFrame].Add(1)
		default:
			free--
			dst := t.txFree[len(t.txFree)-1]
			t.txFree = t.txFree[:len(t.txFree)-1]
			copy(t.umem[dst:dst+uint64(f.Len)], f.Buf[f.Off:f.Off+f.Len])
			t.tx.descs[t.tx.cachedProd&t.tx.mask] = unix.XDPDesc{Addr: dst, Len: uint32(f.Len)}
			t.tx.cachedProd++
			sent++
			bytes += uint64(f.Len)
		}
		qs.s.rxFree = append(qs.s.rxFree, chunk)
	}
	if sent > 0 {
		t.tx.publish()
		if k := t.kickLocked(); k > 0 {
			qs.c.wakeups.Add(uint64(k))
		}
	}
	t.txMu.Unlock()
	qs.c.txFrames.Add(sent)
	qs.c.txBytes.Add(bytes)
	qs.c.txCopied.Add(sent)
	qs.c.egressKind[p.kind].Add(sent)
}
