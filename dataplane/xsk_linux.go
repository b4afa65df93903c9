package dataplane

// This file is the one wrapper around github.com/asavie/xdp. It uses the
// library for socket setup only (socket, UMEM mmap and XDP_UMEM_REG, ring
// sizing and mmap, bind) and drives the four rings itself, because of the
// library's known gaps:
//
//   - No memory barriers: asavie reads and writes the ring producer and
//     consumer as plain *uint32 (its fences are commented out since 2019,
//     asavie/xdp#34). The Go compiler may reorder or cache plain accesses and
//     arm64 needs acquire/release. Here every producer/consumer access is a
//     sync/atomic load or store (sequentially consistent: at least the
//     kernel's smp_load_acquire/smp_store_release pairing) and the other side
//     is read only when the cached copy says the ring looks empty/full (the
//     libxdp and gVisor pkg/xdp scheme), so a batch costs two atomics.
//   - No need_wakeup (asavie/xdp#35) and a sendto on every Transmit: we bind
//     with XDP_USE_NEED_WAKEUP (through asavie's DefaultSocketFlags global,
//     set under bindMu) and kick with sendto only when the TX ring's
//     XDP_RING_NEED_WAKEUP flag is set, with recvfrom only when the fill
//     ring's is. In copy mode (veth, generic XDP) the kernel always sets the
//     TX flag and sends at most 32 frames per sendto (TX_BATCH_SIZE in
//     net/xdp/xsk.c), returning EAGAIN: kick loops a bounded number of times.
//   - Ring pointers are unexported: we read them with reflect (the version is
//     pinned by go.mod; TestPrivXSKOpenClose fails if the layout changes).
//     asavie's Close never unmaps the four rings; we do it with
//     syscall.Munmap on the same slices its syscall.Mmap returned.
//   - No shared UMEM: every socket has its own UMEM, half of its frames for
//     RX (fill ring) and half for TX copies from other interfaces. A frame
//     leaving on another interface is copied once into that socket's UMEM;
//     a frame leaving on the receiving interface is transmitted in place.
//   - Its default XDP program (one per queue, qidconf map) is not used: the
//     classifier (classifier_linux.go) owns the XSKMAP.
//   - GetDescs' linear scan of a []bool free list is replaced by LIFO free
//     stacks of chunk addresses.
//   - Its Stats reads ring heads without atomics; kernelStats does the
//     getsockopt itself.

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"
)

// bindRetries and bindRetryDelay bound the wait for a queue released by a
// just-closed socket.
const (
	bindRetries    = 50
	bindRetryDelay = 20 * time.Millisecond
)

// maxKicks bounds the sendto loop of one kick (32 frames each in copy mode).
const maxKicks = 64

// bindMu guards asavie's DefaultSocketFlags global during NewSocket.
var bindMu sync.Mutex

// ring is one of the four single-producer single-consumer rings shared with
// the kernel. prod and cons point into the mmapped ring; cachedProd and
// cachedCons are this side's private copies. A ring is used by one goroutine
// at a time (fill and rx: the owning poller; tx and completion: whoever
// holds xsk.txMu).
type ring struct {
	prod, cons, flags *atomic.Uint32
	mask, size        uint32
	cachedProd        uint32
	cachedCons        uint32
	addrs             []uint64       // fill and completion rings
	descs             []unix.XDPDesc // rx and tx rings
	mapping           []byte         // for munmap
}

// freeSlots returns how many entries a producer may write, reading the
// kernel's consumer only when the cached value does not show want free.
func (r *ring) freeSlots(want uint32) uint32 {
	free := r.size - (r.cachedProd - r.cachedCons)
	if free >= want {
		return free
	}
	r.cachedCons = r.cons.Load()
	return r.size - (r.cachedProd - r.cachedCons)
}

// publish makes the entries written since the last publish visible.
func (r *ring) publish() { r.prod.Store(r.cachedProd) }

// available returns how many entries a consumer may read.
func (r *ring) available() uint32 {
	n := r.cachedProd - r.cachedCons
	if n == 0 {
		r.cachedProd = r.prod.Load()
		n = r.cachedProd - r.cachedCons
	}
	return n
}

// release hands the entries read since the last release back to the kernel.
func (r *ring) release() { r.cons.Store(r.cachedCons) }

// needWakeup reports the ring's XDP_RING_NEED_WAKEUP flag.
func (r *ring) needWakeup() bool { return r.flags.Load()&unix.XDP_RING_NEED_WAKEUP != 0 }

// xsk is one AF_XDP socket with its own UMEM.
//
// Ownership: fill, rx and rxFree belong to the socket's poller goroutine.
// txMu guards tx, comp, txFree and rxReturned, because pollers of other
// interfaces transmit copies on this socket.
type xsk struct {
	sock      *xdp.Socket
	fd        int
	umem      []byte
	frameSize uint64
	chunkMask uint64
	// Frames [0, txBase) are RX frames, [txBase, len(umem)) TX frames.
	txBase   uint64
	zeroCopy bool

	fill, rx ring
	rxFree   []uint64 // RX chunks owned by the poller

	txMu       sync.Mutex
	gone       bool // set under txMu before a followed device's socket closes
	tx, comp   ring
	txFree     []uint64 // TX chunks free for copies
	rxReturned []uint64 // RX chunks back from the completion ring
}

// xskConfig sizes one socket.
type xskConfig struct {
	numFrames, frameSize               int
	fillSize, compSize, rxSize, txSize int
	bind                               BindMode
}

// openXSK creates an AF_XDP socket bound to (ifindex, queue) in the calling
// thread's network namespace.
func openXSK(ifindex, queue int, c xskConfig) (*xsk, error) {
	var flags uint16 = unix.XDP_USE_NEED_WAKEUP
	switch c.bind {
	case BindCopy:
		flags |= unix.XDP_COPY
	case BindZeroCopy:
		flags |= unix.XDP_ZEROCOPY
	}
	opts := xdp.SocketOptions{
		NumFrames:              c.numFrames,
		FrameSize:              c.frameSize,
		FillRingNumDescs:       c.fillSize,
		CompletionRingNumDescs: c.compSize,
		RxRingNumDescs:         c.rxSize,
		TxRingNumDescs:         c.txSize,
	}
	var sock *xdp.Socket
	var err error
	for try := 0; ; try++ {
		bindMu.Lock()
		saved := xdp.DefaultSocketFlags
		xdp.DefaultSocketFlags = flags
		sock, err = xdp.NewSocket(ifindex, queue, &opts)
		xdp.DefaultSocketFlags = saved
		bindMu.Unlock()
		// The kernel releases a closed socket's queue from a workqueue
		// (xp_release_deferred), so binding right after a Close can see
		// EBUSY for a moment. asavie formats the errno with %v, hence the
		// string match. Each failed attempt leaks asavie's ring mappings
		// (its error path does not unmap them): a few pages, bounded by
		// bindRetries.
		if err == nil || try >= bindRetries || !strings.Contains(err.Error(), "resource busy") {
			break
		}
		time.Sleep(bindRetryDelay)
	}
	if err != nil {
		return nil, fmt.Errorf("bind xsk ifindex %d queue %d: %w", ifindex, queue, err)
	}
	s := &xsk{
		sock:      sock,
		fd:        sock.FD(),
		frameSize: uint64(c.frameSize),
		chunkMask: ^uint64(c.frameSize - 1),
	}
	total := c.numFrames * c.frameSize
	s.umem = sock.GetFrame(xdp.Desc{Addr: 0, Len: uint32(total)})
	if err := s.mapRings(c); err != nil {
		sock.Close()
		return nil, fmt.Errorf("xsk ifindex %d queue %d: %w", ifindex, queue, err)
	}
	var opt struct{ Flags uint32 } // struct xdp_options
	if err := getsockopt(s.fd, unix.XDP_OPTIONS, unsafe.Pointer(&opt), unsafe.Sizeof(opt)); err == nil {
		s.zeroCopy = opt.Flags&unix.XDP_OPTIONS_ZEROCOPY != 0
	}

	nRX := c.numFrames / 2
	s.txBase = uint64(nRX) * s.frameSize
	s.rxFree = make([]uint64, 0, nRX)
	for i := nRX - 1; i >= 0; i-- {
		s.rxFree = append(s.rxFree, uint64(i)*s.frameSize)
	}
	s.rxReturned = make([]uint64, 0, nRX)
	s.txFree = make([]uint64, 0, c.numFrames-nRX)
	for i := c.numFrames - 1; i >= nRX; i-- {
		s.txFree = append(s.txFree, uint64(i)*s.frameSize)
	}
	// Fill now, so frames redirected before the poller starts are not
	// dropped for an empty fill ring. The poller goroutine, started later,
	// owns the ring from then on.
	s.refill()
	return s, nil
}

func getsockopt(fd, opt int, p unsafe.Pointer, size uintptr) error {
	_, err := getsockoptLen(fd, opt, p, size)
	return err
}

// getsockoptLen is getsockopt returning the length the kernel wrote, which
// is less than size when its struct is older (shorter) than ours.
func getsockoptLen(fd, opt int, p unsafe.Pointer, size uintptr) (uintptr, error) {
	l := uint32(size)
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt),
		uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 {
		return 0, errno
	}
	return uintptr(l), nil
}

// mapRings finds the rings asavie mapped (unexported fields, read with
// reflect) and builds atomic views of them.
func (s *xsk) mapRings(c xskConfig) error {
	var off unix.XDPMmapOffsets
	if err := getsockopt(s.fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off)); err != nil {
		return fmt.Errorf("getsockopt XDP_MMAP_OFFSETS: %w", err)
	}
	v := reflect.ValueOf(s.sock).Elem()
	setup := func(r *ring, field string, o unix.XDPRingOffset, size int, descSize uintptr) error {
		f := v.FieldByName(field)
		if !f.IsValid() {
			return fmt.Errorf("asavie/xdp: no field %s (library layout changed)", field)
		}
		pf := f.FieldByName("Producer")
		if !pf.IsValid() || pf.Kind() != reflect.Pointer || pf.IsNil() {
			return fmt.Errorf("asavie/xdp: %s.Producer missing (library layout changed)", field)
		}
		base := unsafe.Add(pf.UnsafePointer(), -int(o.Producer))
		length := int(o.Desc) + size*int(descSize)
		r.mapping = unsafe.Slice((*byte)(base), length)
		r.prod = (*atomic.Uint32)(unsafe.Add(base, int(o.Producer)))
		r.cons = (*atomic.Uint32)(unsafe.Add(base, int(o.Consumer)))
		r.flags = (*atomic.Uint32)(unsafe.Add(base, int(o.Flags)))
		r.size = uint32(size)
		r.mask = uint32(size - 1)
		if descSize == 8 {
			r.addrs = unsafe.Slice((*uint64)(unsafe.Add(base, int(o.Desc))), size)
		} else {
			r.descs = unsafe.Slice((*unix.XDPDesc)(unsafe.Add(base, int(o.Desc))), size)
		}
		r.cachedProd = r.prod.Load()
		r.cachedCons = r.cons.Load()
		return nil
	}
	if err := setup(&s.fill, "fillRing", off.Fr, c.fillSize, 8); err != nil {
		return err
	}
	if err := setup(&s.comp, "completionRing", off.Cr, c.compSize, 8); err != nil {
		return err
	}
	if err := setup(&s.rx, "rxRing", off.Rx, c.rxSize, unsafe.Sizeof(unix.XDPDesc{})); err != nil {
		return err
	}
	return setup(&s.tx, "txRing", off.Tx, c.txSize, unsafe.Sizeof(unix.XDPDesc{}))
}

// close closes the socket and unmaps the UMEM (asavie) and the rings (here).
func (s *xsk) close() error {
	err := s.sock.Close()
	for _, r := range []*ring{&s.fill, &s.comp, &s.rx, &s.tx} {
		if r.mapping == nil {
			continue
		}
		// Same base and length as asavie's syscall.Mmap, so the syscall
		// package's mmapper finds and forgets it.
		if e := syscall.Munmap(r.mapping); e != nil && err == nil {
			err = fmt.Errorf("munmap ring: %w", e)
		}
		r.mapping, r.addrs, r.descs = nil, nil, nil
	}
	return err
}

// refill moves RX chunks from rxFree to the fill ring and kicks the kernel
// if the fill ring asks for a wakeup. starved reports that rxFree ran out
// while the kernel had no fill entry left. Poller goroutine only.
func (s *xsk) refill() (starved bool, kicked bool) {
	free := s.fill.freeSlots(s.fill.size)
	if free == 0 {
		return false, false
	}
	n := min(int(free), len(s.rxFree))
	for i := 0; i < n; i++ {
		s.fill.addrs[s.fill.cachedProd&s.fill.mask] = s.rxFree[len(s.rxFree)-1-i]
		s.fill.cachedProd++
	}
	s.rxFree = s.rxFree[:len(s.rxFree)-n]
	if n > 0 {
		s.fill.publish()
	}
	starved = n < int(free) && s.fill.cachedProd == s.fill.cons.Load()
	if s.fill.needWakeup() {
		recvfromKick(s.fd)
		kicked = true
	}
	return starved, kicked
}

// reclaimLocked drains the completion ring: RX chunks sent in place go to
// rxReturned, TX chunks to txFree. Caller holds txMu.
func (s *xsk) reclaimLocked() {
	n := s.comp.available()
	for i := uint32(0); i < n; i++ {
		chunk := s.comp.addrs[s.comp.cachedCons&s.comp.mask] & s.chunkMask
		s.comp.cachedCons++
		if chunk < s.txBase {
			s.rxReturned = append(s.rxReturned, chunk)
		} else {
			s.txFree = append(s.txFree, chunk)
		}
	}
	if n > 0 {
		s.comp.release()
	}
}

// kickLocked tells the kernel to send, if the TX ring asks for it. In copy
// mode each sendto sends up to 32 frames and returns EAGAIN while more are
// queued or the completion ring is full; we reclaim and retry, bounded.
// Caller holds txMu.
func (s *xsk) kickLocked() (kicks int) {
	for kicks < maxKicks {
		if !s.tx.needWakeup() {
			return kicks
		}
		_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		kicks++
		switch errno {
		case unix.EAGAIN, unix.EBUSY, unix.EINTR:
			s.reclaimLocked()
			if s.tx.cons.Load() == s.tx.cachedProd {
				return kicks
			}
		default:
			// 0: done. ENOBUFS, ENETDOWN, ENXIO...: the kernel keeps the
			// descriptors or counts them; the next batch kicks again.
			return kicks
		}
	}
	return kicks
}

func recvfromKick(fd int) {
	unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
}

// kernelStats reads XDP_STATISTICS. Kernels before 5.9 know only the
// first three fields (rx_dropped, rx_invalid_descs, tx_invalid_descs) and
// write 24 bytes: the ring counters then stay 0 and RingCounters is false.
// It costs one getsockopt: call it at scrape or stats time, never per
// packet.
func (s *xsk) kernelStats() (KernelXSKStats, error) {
	var st unix.XDPStatistics
	n, err := getsockoptLen(s.fd, unix.XDP_STATISTICS, unsafe.Pointer(&st), unsafe.Sizeof(st))
	if err != nil {
		return KernelXSKStats{}, fmt.Errorf("getsockopt XDP_STATISTICS: %w", err)
	}
	return KernelXSKStats{
		RxDropped:       st.Rx_dropped,
		RxInvalidDescs:  st.Rx_invalid_descs,
		TxInvalidDescs:  st.Tx_invalid_descs,
		RxRingFull:      st.Rx_ring_full,
		RxFillRingEmpty: st.Rx_fill_ring_empty_descs,
		TxRingEmpty:     st.Tx_ring_empty_descs,
		RingCounters:    n >= unsafe.Sizeof(st),
	}, nil
}
