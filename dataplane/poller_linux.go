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
	groups [][]int32 // frames to copy, by port index
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
	sc := pollerScratch{
		frames: make([]Frame, batch),
		chunks: make([]uint64, batch),
		local:  make([]int32, 0, batch),
		groups: make([][]int32, len(d.ports)),
	}
	for i := range sc.groups {
		sc.groups[i] = make([]int32, 0, batch)
	}
	s := qs.s
	s.refill()
	pfds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}, {Fd: int32(d.stopfd), Events: unix.POLLIN}}
	idleMs := int(d.cfg.IdleWakeup / time.Millisecond)
	var idleStart time.Time
	spins := 0

	for !d.stop.Load() {
		n := int(s.rx.available())
		if n == 0 {
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
			pfds[0].Revents, pfds[1].Revents = 0, 0
			if _, err := unix.Poll(pfds, idleMs); err != nil && !errors.Is(err, unix.EINTR) {
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
		d.dispatch(qs, &sc, n)

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

// dispatch applies the verdicts of sc.frames[:n].
func (d *Dataplane) dispatch(qs *queueState, sc *pollerScratch, n int) {
	s := qs.s
	sc.local = sc.local[:0]
	for i := range sc.groups {
		sc.groups[i] = sc.groups[i][:0]
	}
	for i := 0; i < n; i++ {
		f := &sc.frames[i]
		if f.Verdict != VerdictTX {
			r := f.Reason
			if r >= NumDropReasons {
				r = DropUnspecified
			}
			d.drop(qs, sc.chunks[i], r)
			continue
		}
		if f.Off < 0 || f.Len <= 0 || f.Off+f.Len > len(f.Buf) || len(f.Buf) == 0 ||
			unsafe.SliceData(f.Buf) != &s.umem[sc.chunks[i]] {
			d.drop(qs, sc.chunks[i], DropBadFrame)
			continue
		}
		if f.Ifindex == 0 || f.Ifindex == qs.q.Ifindex {
			sc.local = append(sc.local, int32(i))
			continue
		}
		pi := -1
		for j, p := range d.ports {
			if p.ifindex == f.Ifindex {
				pi = j
				break
			}
		}
		if pi < 0 {
			d.drop(qs, sc.chunks[i], DropEgressNotManaged)
			continue
		}
		sc.groups[pi] = append(sc.groups[pi], int32(i))
	}
	if len(sc.local) > 0 {
		d.txLocal(qs, sc)
	}
	for pi, g := range sc.groups {
		if len(g) > 0 {
			d.txCopy(qs, sc, d.ports[pi], g)
		}
	}
}

func (d *Dataplane) drop(qs *queueState, chunk uint64, r DropReason) {
	qs.s.rxFree = append(qs.s.rxFree, chunk)
	qs.c.drops[r].Add(1)
}

// txLocal transmits frames in place on the receiving socket.
func (d *Dataplane) txLocal(qs *queueState, sc *pollerScratch) {
	s := qs.s
	s.txMu.Lock()
	s.reclaimLocked()
	s.rxFree = append(s.rxFree, s.rxReturned...)
	s.rxReturned = s.rxReturned[:0]
	free := s.tx.freeSlots(uint32(len(sc.local)))
	var sent, bytes uint64
	for _, i := range sc.local {
		f := &sc.frames[i]
		if free == 0 {
			qs.c.txRingFull.Add(1)
			s.rxFree = append(s.rxFree, sc.chunks[i])
			qs.c.drops[DropTxRingFull].Add(1)
			continue
		}
		free--
		s.tx.descs[s.tx.cachedProd&s.tx.mask] = unix.XDPDesc{Addr: sc.chunks[i] + uint64(f.Off), Len: uint32(f.Len)}
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
}

// txCopy copies frames into a socket of port p (queue QueueID mod its queue
// count) and transmits them there. The RX chunks go back to rxFree.
func (d *Dataplane) txCopy(qs *queueState, sc *pollerScratch, p *port, idx []int32) {
	t := p.socks[qs.q.QueueID%len(p.socks)]
	var sent, bytes uint64
	t.txMu.Lock()
	t.reclaimLocked()
	free := t.tx.freeSlots(uint32(len(idx)))
	for _, i := range idx {
		f := &sc.frames[i]
		chunk := sc.chunks[i]
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
}
