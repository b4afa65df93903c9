package dataplane

import (
	"fmt"
	"math/bits"
)

// TxSocket is a transmit-only AF_XDP socket for packet generators (see
// bench/pktgen). It is the dataplane's own socket (xsk_linux.go: atomic
// ring accesses, need_wakeup, bounded copy-mode kicks) with the UMEM
// handed to the caller: the caller writes frames into UMEM frames it has
// reserved and submits them in batches; the socket reclaims them from the
// completion ring.
//
// No XDP program redirects to the socket, so it never receives. The xsk
// layout reserves half of the UMEM for reception; OpenTxSocket sizes the
// UMEM so that only txFillFrames frames are parked on the fill ring and
// every other RX-half frame joins the transmit pool.
//
// A TxSocket is used by one goroutine at a time (each method takes the
// socket's TX lock, so misuse is serialised, not racy). It may be used from
// any goroutine and any network namespace after OpenTxSocket.
type TxSocket struct {
	s         *xsk
	numFrames int
	// reserved is how many frames at the top of s.txFree the last Reserve
	// handed out.
	reserved  int
	inFlight  int
	completed uint64
	submitted uint64
	kicks     uint64
	// compCons is the completion ring consumer index last accounted for.
	compCons uint32
	closed   bool
}

// txFillFrames is the size of the fill and RX rings of a TxSocket: the
// smallest the xsk layer handles comfortably; these frames are never used.
const txFillFrames = 64

// Limits of OpenTxSocket's numFrames (a power of two).
const (
	// MinTxFrames is the smallest numFrames.
	MinTxFrames = 64
	// MaxTxFrames is the largest numFrames (512 MiB of 2 KiB frames).
	MaxTxFrames = 1 << 18
)

// OpenTxSocket binds a transmit-only AF_XDP socket to (ifindex, queue) in
// the calling thread's network namespace, with numFrames transmit frames
// (a power of two in [MinTxFrames, MaxTxFrames]) of frameSize bytes (2048
// or 4096). TX and completion rings have numFrames entries, so every frame
// can be in flight at once. Zero-copy is used when the driver offers it.
func OpenTxSocket(ifindex, queue, numFrames, frameSize int) (*TxSocket, error) {
	if numFrames < MinTxFrames || numFrames > MaxTxFrames || bits.OnesCount(uint(numFrames)) != 1 {
		return nil, fmt.Errorf("tx socket numFrames %d: want a power of two in [%d, %d]", numFrames, MinTxFrames, MaxTxFrames)
	}
	if frameSize != 2048 && frameSize != 4096 {
		return nil, fmt.Errorf("tx socket frameSize %d: want 2048 or 4096", frameSize)
	}
	if ifindex <= 0 || queue < 0 {
		return nil, fmt.Errorf("tx socket ifindex %d queue %d: out of range", ifindex, queue)
	}
	// openXSK splits the UMEM in halves and parks min(fillSize, half) RX
	// frames on the fill ring: with numFrames+txFillFrames frames, exactly
	// numFrames are left for transmission.
	s, err := openXSK(ifindex, queue, xskConfig{
		numFrames: numFrames + txFillFrames, frameSize: frameSize,
		fillSize: txFillFrames, rxSize: txFillFrames,
		compSize: numFrames, txSize: numFrames,
		bind: BindAuto,
	})
	if err != nil {
		return nil, err
	}
	// No poller exists, so the RX frames openXSK kept back are ours.
	free := make([]uint64, 0, numFrames)
	free = append(free, s.txFree...)
	free = append(free, s.rxFree...)
	s.txFree, s.rxFree = free, nil
	if len(s.txFree) != numFrames {
		s.close()
		return nil, fmt.Errorf("tx socket ifindex %d queue %d: %d free frames, want %d (xsk layout changed)",
			ifindex, queue, len(s.txFree), numFrames)
	}
	return &TxSocket{s: s, numFrames: numFrames, compCons: s.comp.cachedCons}, nil
}

// NumFrames returns the number of transmit frames.
func (t *TxSocket) NumFrames() int { return t.numFrames }

// FrameSize returns the size of a UMEM frame.
func (t *TxSocket) FrameSize() int { return int(t.s.frameSize) }

// ZeroCopy reports whether the kernel bound the socket in zero-copy mode.
func (t *TxSocket) ZeroCopy() bool { return t.s.zeroCopy }

// UMEM returns the whole UMEM: the frame at address a is
// UMEM()[a : a+FrameSize()]. The caller may write a frame only while it
// owns it (between Reserve and Submit, or before the first Submit). The
// slice is valid until Close, which unmaps it: touching it afterwards
// faults.
func (t *TxSocket) UMEM() []byte { return t.s.umem }

// Frames returns the addresses of the free transmit frames (a new slice):
// before the first Submit, all NumFrames of them, for writing templates.
func (t *TxSocket) Frames() []uint64 {
	t.s.txMu.Lock()
	defer t.s.txMu.Unlock()
	if t.closed {
		return nil
	}
	return append(make([]uint64, 0, t.numFrames), t.s.txFree...)
}

// Reserve first reclaims completed frames, then returns up to n free
// frames that also fit in the TX ring now. The caller owns them until
// Submit. The slice aliases the socket's free list: it is valid until the
// next call on the socket.
func (t *TxSocket) Reserve(n int) []uint64 {
	t.s.txMu.Lock()
	defer t.s.txMu.Unlock()
	t.reserved = 0
	if t.closed {
		return nil
	}
	t.reclaimLocked()
	if n <= 0 {
		return nil
	}
	k := min(n, len(t.s.txFree), int(t.s.tx.freeSlots(uint32(min(n, t.numFrames)))))
	t.reserved = k
	return t.s.txFree[len(t.s.txFree)-k:]
}

// Submit places the first n frames of the last Reserve on the TX ring as
// descriptors of length bytes, publishes them with one atomic store and
// kicks the kernel only if the TX ring asks for a wakeup (in copy mode:
// always, and the kernel sends at most 32 frames per sendto, so a kick
// loops a bounded number of times). The remaining reserved frames stay
// free. It returns how many frames were submitted.
func (t *TxSocket) Submit(n, length int) (int, error) {
	t.s.txMu.Lock()
	defer t.s.txMu.Unlock()
	if t.closed {
		return 0, ErrTxSocketClosed
	}
	if length <= 0 || length > int(t.s.frameSize) {
		return 0, fmt.Errorf("submit %d bytes (frame size %d): %w", length, t.s.frameSize, ErrTxFrameLength)
	}
	n = max(0, min(n, t.reserved))
	free := t.s.txFree
	lo := len(free) - t.reserved
	for _, a := range free[lo : lo+n] {
		d := &t.s.tx.descs[t.s.tx.cachedProd&t.s.tx.mask]
		d.Addr, d.Len, d.Options = a, uint32(length), 0
		t.s.tx.cachedProd++
	}
	// Keep the reserved-but-unsubmitted frames on the stack.
	copy(free[lo:], free[lo+n:])
	t.s.txFree = free[:len(free)-n]
	t.reserved = 0
	if n > 0 {
		t.s.tx.publish()
		t.inFlight += n
		t.submitted += uint64(n)
		t.kicks += uint64(t.s.kickLocked())
		t.accountLocked()
	}
	return n, nil
}

// Flush reclaims completed frames and, if descriptors are still waiting in
// the TX ring, kicks the kernel (when it asks for a wakeup). It returns how
// many submitted frames have not completed yet.
func (t *TxSocket) Flush() int {
	t.s.txMu.Lock()
	defer t.s.txMu.Unlock()
	if t.closed {
		return 0
	}
	t.reclaimLocked()
	if t.s.tx.cons.Load() != t.s.tx.cachedProd {
		t.kicks += uint64(t.s.kickLocked())
		t.reclaimLocked()
	}
	return t.inFlight
}

// reclaimLocked drains the completion ring into the free list and
// accounts for completions, including those kickLocked reclaimed on its
// own. Caller holds txMu.
func (t *TxSocket) reclaimLocked() {
	t.s.reclaimLocked()
	t.accountLocked()
}

// accountLocked counts completions by the completion ring's consumer index
// (whoever consumed them: reclaimLocked here, or kickLocked between
// sendto retries) and moves RX-half chunks to the free list. Caller holds
// txMu.
func (t *TxSocket) accountLocked() {
	done := t.s.comp.cachedCons - t.compCons // uint32: wraps correctly
	t.compCons = t.s.comp.cachedCons
	t.inFlight -= int(done)
	t.completed += uint64(done)
	if len(t.s.rxReturned) > 0 {
		// Chunks from the RX half: they are transmit frames here too.
		t.s.txFree = append(t.s.txFree, t.s.rxReturned...)
		t.s.rxReturned = t.s.rxReturned[:0]
	}
}

// TxSocketStats are a TxSocket's counters.
type TxSocketStats struct {
	// Submitted counts frames placed on the TX ring, Completed those the
	// kernel returned through the completion ring, InFlight the difference.
	Submitted, Completed uint64
	InFlight             int
	// Kicks counts sendto wakeups.
	Kicks uint64
}

// Stats returns the socket's counters.
func (t *TxSocket) Stats() TxSocketStats {
	t.s.txMu.Lock()
	defer t.s.txMu.Unlock()
	return TxSocketStats{Submitted: t.submitted, Completed: t.completed, InFlight: t.inFlight, Kicks: t.kicks}
}

// KernelStats reads the kernel's XDP_STATISTICS for the socket.
func (t *TxSocket) KernelStats() (KernelXSKStats, error) {
	t.s.txMu.Lock()
	defer t.s.txMu.Unlock()
	if t.closed {
		return KernelXSKStats{}, ErrTxSocketClosed
	}
	return t.s.kernelStats()
}

// Close closes the socket and unmaps its rings and UMEM. Frames still in
// flight are abandoned.
func (t *TxSocket) Close() error {
	t.s.txMu.Lock()
	defer t.s.txMu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	err := t.s.close()
	t.s.umem = nil
	return err
}
