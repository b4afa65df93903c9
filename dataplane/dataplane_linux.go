package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Dataplane owns the AF_XDP sockets of every managed interface, the
// classifier attached to them and the pollers.
//
// mu guards running and closed and serialises Run, Stats and Close; the
// per-queue counters are atomics written by one poller each. ports (the
// managed interfaces) are fixed at Open; the followed devices (Config.Devices)
// come and go while Run runs: devMu guards dyn, unusable, the entries of
// queues past the managed interfaces' and departed; pollers read the
// current set of ports only through portTab (an immutable portTable).
type Dataplane struct {
	cfg        Config
	log        *slog.Logger
	classifier *Classifier
	ports      []*port
	queues     []*queueState // len NumQueues(); nil: a free device slot
	nStatic    int           // queues of the managed interfaces
	stopfd     int           // eventfd, readable once Run is stopping
	stop       atomic.Bool
	epoch      time.Time // the pollers' monotonic clock starts here
	portTab    atomic.Pointer[portTable]

	mu      sync.Mutex
	running bool
	closed  bool

	devMu    sync.Mutex
	dyn      map[int]*port     // followed devices with sockets, by ifindex
	unusable map[int]deviceErr // followed devices that cannot be used
	departed QueueStats        // counters of removed devices' queues
	devGen   uint64            // Config.Devices generation last applied
}

// port is one managed interface.
type port struct {
	ifindex int
	name    string
	mtu     int
	inst    *classifierInstance
	socks   []*xsk // by queue id
	mode    string // "native", "generic" or "tx-only"
	kind    DeviceKind
	// why says why the port is in use ("--interfaces", or Device.Why).
	why string
	// Followed devices only: dynamic is set; stop and stopfd (an eventfd)
	// stop the port's pollers, done waits for them; broken is set by a
	// poller whose socket failed (the device went away).
	dynamic bool
	stop    atomic.Bool
	stopfd  int
	done    sync.WaitGroup
	broken  atomic.Bool
	queues  []*queueState
}

// portTable is the set of ports pollers may send on, immutable once
// published: the managed interfaces and the followed devices, by ifindex,
// and the followed devices that cannot be used.
type portTable struct {
	byIfindex map[int]*port
	unusable  map[int]deviceErr
}

// deviceErr is why a followed device is not used.
type deviceErr struct {
	dev Device
	err string
}

// queueState is one socket with its poller's identity and counters.
type queueState struct {
	q    Queue
	s    *xsk
	port *port
	c    queueCounters
}

// queueCounters are written by the queue's poller only and read by Stats.
type queueCounters struct {
	rxFrames, rxBytes, txFrames, txBytes, txCopied atomic.Uint64
	txRingFull, fillRingEmpty, wakeups, sleeps     atomic.Uint64
	neighHeld, neighReleased                       atomic.Uint64
	drops                                          [NumDropReasons]atomic.Uint64
	egressKind                                     [NumDeviceKinds]atomic.Uint64
}

// Open creates and binds one AF_XDP socket per receive queue of every
// configured interface, and attaches the classifier to each interface
// (replacing a program left by a crashed run). It must be called from the
// network namespace of the interfaces (sockets and netlink requests use the
// calling thread's namespace). Nothing is received until Run.
func Open(cfg Config) (*Dataplane, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// Pin the goroutine so every socket and netlink request below uses the
	// same thread, hence the same namespace.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	d := &Dataplane{cfg: cfg, log: cfg.Logger, stopfd: -1, epoch: time.Now(),
		dyn: make(map[int]*port), unusable: make(map[int]deviceErr)}
	ok := false
	defer func() {
		if !ok {
			d.closeAll()
		}
	}()

	links := make([]netlink.Link, len(cfg.Interfaces))
	maxMTU, maxName := 0, ""
	for i, name := range cfg.Interfaces {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", name, err)
		}
		links[i] = l
		if l.Attrs().MTU > maxMTU {
			maxMTU, maxName = l.Attrs().MTU, name
		}
	}
	// One frame size for every socket: copies between interfaces must fit.
	fs, err := frameSizeFor(cfg.FrameSize, maxMTU)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", maxName, err)
	}
	d.cfg.FrameSize = fs

	d.classifier, err = NewClassifier(cfg.Classifier)
	if err != nil {
		return nil, err
	}
	if f := d.classifier.FastPath(); f != nil {
		f.candidates = d.fastCandidates
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	d.stopfd = efd

	xc := xskConfig{
		numFrames: cfg.NumFrames, frameSize: fs,
		fillSize: cfg.FillRingSize, compSize: cfg.CompletionRingSize,
		rxSize: cfg.RxRingSize, txSize: cfg.TxRingSize, bind: cfg.Bind,
	}
	for _, l := range links {
		a := l.Attrs()
		nq, err := rxQueues(a.Name, a.NumRxQueues)
		if err != nil {
			return nil, err
		}
		p := &port{ifindex: a.Index, name: a.Name, mtu: a.MTU, kind: linkKind(l), why: "--interfaces", stopfd: -1}
		d.ports = append(d.ports, p)
		p.inst, err = d.classifier.instance(nq)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", a.Name, err)
		}
		for q := 0; q < nq; q++ {
			s, err := openXSK(a.Index, q, xc)
			if err != nil {
				return nil, fmt.Errorf("interface %s: %w", a.Name, err)
			}
			p.socks = append(p.socks, s)
			if err := p.inst.xsks.Put(uint32(q), uint32(s.fd)); err != nil {
				return nil, fmt.Errorf("register xsk %s queue %d: %w", a.Name, q, err)
			}
			cpu := -1
			if len(cfg.CPUs) > 0 {
				cpu = cfg.CPUs[len(d.queues)%len(cfg.CPUs)]
			}
			d.queues = append(d.queues, &queueState{
				q:    Queue{Index: len(d.queues), Ifindex: a.Index, Ifname: a.Name, QueueID: q, CPU: cpu},
				s:    s,
				port: p,
			})
		}
		if err := d.attach(p, l, d.cfg.Attach); err != nil {
			return nil, err
		}
		d.log.Info("xdpgate interface ready", "ifname", a.Name, "ifindex", a.Index, "queues", nq,
			"xdp_mode", p.mode, "zero_copy", p.socks[0].zeroCopy, "frame_size", fs, "mtu", a.MTU)
	}
	d.nStatic = len(d.queues)
	d.queues = append(d.queues, make([]*queueState, d.cfg.MaxDeviceQueues)...)
	d.publishPorts()
	ok = true
	return d, nil
}

// attach attaches p's classifier instance with a bpf_link (detached when the
// link is closed or the process dies).
//
// A program already on the interface is replaced only when it is xdpgate's
// own (the same program name as p's classifier, e.g. left attached through
// netlink by an older run) or when Config.ReplaceForeign is set; another
// tool's program makes attach fail with an error naming it (ID, name,
// attach mode), since removing it silently would switch off whatever that
// tool does. The name is the recognition: it is what the kernel keeps of a
// program across xdpgate versions (tags change with the code), and a tool
// naming its program xdpgate_classify asks for the consequences.
func (d *Dataplane) attach(p *port, l netlink.Link, mode AttachMode) error {
	var modes []link.XDPAttachFlags
	var names []string
	switch mode {
	case AttachNative:
		modes, names = []link.XDPAttachFlags{link.XDPDriverMode}, []string{"native"}
	case AttachGeneric:
		modes, names = []link.XDPAttachFlags{link.XDPGenericMode}, []string{"generic"}
	default:
		modes = []link.XDPAttachFlags{link.XDPDriverMode, link.XDPGenericMode}
		names = []string{"native", "generic"}
	}
	if x := l.Attrs().Xdp; x != nil && x.Attached {
		prev := attachedXDP(x)
		own := false
		if info, err := p.inst.prog.Info(); err == nil {
			own = sameProgramName(prev.name, info.Name)
		}
		what := fmt.Sprintf("XDP program id %d name %q (%s mode)", prev.id, prev.name, prev.mode)
		if !own && !d.cfg.ReplaceForeign {
			return fmt.Errorf("attach classifier to %s: %w: another tool's %s is attached; "+
				"remove it (ip link set dev %s xdp off) or let xdpgate replace it (--xdp-replace-foreign)",
				p.name, ErrAttach, what, p.name)
		}
		if err := removeXDP(l, prev, p.ifindex, own); err != nil {
			return fmt.Errorf("attach classifier to %s: %w: remove %s: %w", p.name, ErrAttach, what, err)
		}
		if own {
			d.log.Info("replaced leftover xdpgate XDP program", "ifname", p.name, "prog_id", prev.id)
		} else {
			d.log.Warn("replaced foreign XDP program (--xdp-replace-foreign)", "ifname", p.name,
				"prog_id", prev.id, "prog_name", prev.name, "xdp_mode", prev.mode)
		}
	}
	var errs []error
	for i, m := range modes {
		lk, err := link.AttachXDP(link.XDPOptions{Program: p.inst.prog, Interface: p.ifindex, Flags: m})
		if err == nil {
			p.inst.link = lk
			p.mode = names[i]
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", names[i], err))
	}
	return fmt.Errorf("attach classifier to %s: %w: %w", p.name, ErrAttach, errors.Join(errs...))
}

// xdpProgram is what the kernel says about a program attached to an
// interface: its ID (0 when programs are attached in several modes at
// once, which netlink reports per mode), name ("" when unknown) and mode.
type xdpProgram struct {
	id   uint32
	name string
	mode string
}

// attachedXDP describes the program in x.
func attachedXDP(x *netlink.LinkXdp) xdpProgram {
	pr := xdpProgram{id: x.ProgId, mode: fmt.Sprintf("mode %d", x.AttachMode)}
	switch x.AttachMode { // enum xdp_attach_mode in linux/if_link.h
	case 1: // XDP_ATTACHED_DRV
		pr.mode = "native"
	case 2: // XDP_ATTACHED_SKB
		pr.mode = "generic"
	case 3: // XDP_ATTACHED_HW
		pr.mode = "offload"
	case 4: // XDP_ATTACHED_MULTI
		pr.mode = "several"
	}
	if pr.id == 0 {
		return pr
	}
	if prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(pr.id)); err == nil {
		if info, err := prog.Info(); err == nil {
			pr.name = info.Name
		}
		prog.Close()
	}
	return pr
}

// sameProgramName compares two program names as the kernel keeps them: the
// first BPF_OBJ_NAME_LEN-1 (15) bytes (the library may report the full
// name from BTF for one and not the other). Empty names never match.
func sameProgramName(a, b string) bool {
	const n = 15
	return a != "" && b != "" && a[:min(len(a), n)] == b[:min(len(b), n)]
}

// removeXDP removes the program attached to l: through netlink when it was
// attached that way, else by detaching the bpf_link that holds it. A link
// holding xdpgate's own program (own) belongs to a running xdpgate and is
// never detached.
func removeXDP(l netlink.Link, pr xdpProgram, ifindex int, own bool) error {
	for _, f := range []int{unix.XDP_FLAGS_DRV_MODE, unix.XDP_FLAGS_SKB_MODE, unix.XDP_FLAGS_HW_MODE} {
		_ = netlink.LinkSetXdpFdWithFlags(l, -1, f) // EBUSY when a bpf_link holds it
	}
	if !ifaceHasXDP(ifindex) {
		return nil
	}
	if own {
		return errors.New("held by a live bpf_link: is another xdpgate running on this interface?")
	}
	// Link IDs are global; the interface index is per namespace, so the
	// program ID must match too.
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || info.Type != link.XDPType || info.XDP() == nil ||
			int(info.XDP().Ifindex) != ifindex || uint32(info.Program) != pr.id {
			continue
		}
		if err := it.Link.Detach(); err != nil {
			return fmt.Errorf("detach bpf_link %d: %w", it.ID, err)
		}
		if !ifaceHasXDP(ifindex) {
			return nil
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	if ifaceHasXDP(ifindex) {
		return errors.New("still attached after netlink removal, and no bpf_link found")
	}
	return nil
}

// ifaceHasXDP reports whether an XDP program is attached to the interface
// (true when it cannot be told).
func ifaceHasXDP(ifindex int) bool {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return true
	}
	x := l.Attrs().Xdp
	return x != nil && x.Attached
}

// rxQueues returns the number of receive queues in use: ETHTOOL_GCHANNELS
// (rx + combined), else the netlink count.
func rxQueues(name string, netlinkRx int) (int, error) {
	n, err := ethtoolRxChannels(name)
	if err == nil && n > 0 {
		return n, nil
	}
	if netlinkRx > 0 {
		return netlinkRx, nil
	}
	return 0, fmt.Errorf("queue count of %s: %w", name, err)
}

// ethtoolChannels is struct ethtool_channels.
type ethtoolChannels struct {
	cmd                                         uint32
	maxRx, maxTx, maxOther, maxCombined         uint32
	rxCount, txCount, otherCount, combinedCount uint32
}

func ethtoolRxChannels(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ch := ethtoolChannels{cmd: unix.ETHTOOL_GCHANNELS}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(&ch)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&ch)
	if errno != 0 {
		return 0, fmt.Errorf("ETHTOOL_GCHANNELS %s: %w", name, errno)
	}
	return int(ch.rxCount + ch.combinedCount), nil
}

// Classifier returns the classifier whose Update sets what is redirected.
func (d *Dataplane) Classifier() *Classifier { return d.classifier }

// NumQueues returns the number of sockets (and pollers); Queue.Index is
// below it.
//
// It counts the sockets of followed devices up to Config.MaxDeviceQueues,
// whether open or not, so that it never changes.
func (d *Dataplane) NumQueues() int { return len(d.queues) }

// Queues returns the identity of every open socket that receives.
func (d *Dataplane) Queues() []Queue {
	d.devMu.Lock()
	defer d.devMu.Unlock()
	out := make([]Queue, 0, len(d.queues))
	for _, qs := range d.queues {
		if qs != nil {
			out = append(out, qs.q)
		}
	}
	return out
}

// FrameSize returns the UMEM frame size in use.
func (d *Dataplane) FrameSize() int { return d.cfg.FrameSize }

// Run starts one poller goroutine per socket, each calling p.Process for
// every received batch, and blocks until ctx is cancelled and every poller
// has stopped. It returns nil after a cancellation, or the first poller
// error (which stops the others).
func (d *Dataplane) Run(ctx context.Context, p Processor) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	if d.running {
		d.mu.Unlock()
		return ErrRunning
	}
	d.running = true
	d.stop.Store(false)
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.running = false
		d.mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var errOnce sync.Once
	var firstErr error
	if d.cfg.Devices != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.follow(ctx, p)
		}()
	}
	for _, qs := range d.queues[:d.nStatic] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.poll(qs, p); err != nil {
				errOnce.Do(func() { firstErr = err })
				cancel()
			}
		}()
	}
	<-ctx.Done()
	d.stop.Store(true)
	var one = [8]byte{1}
	if _, err := unix.Write(d.stopfd, one[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		d.log.Error("wake pollers", "err", err)
	}
	wg.Wait()
	// Followed devices are attached for one Run: a later Run attaches
	// again what it needs.
	d.removeAllDevices()
	// Make the eventfd unreadable again for a later Run.
	var buf [8]byte
	_, _ = unix.Read(d.stopfd, buf[:])
	return firstErr
}

// Stats returns a snapshot of every socket's counters, in Queues order.
func (d *Dataplane) Stats() []QueueStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.devMu.Lock()
	defer d.devMu.Unlock()
	out := make([]QueueStats, 0, len(d.queues)+1)
	for _, qs := range d.queues {
		if qs == nil {
			continue
		}
		out = append(out, QueueStats{})
		st := &out[len(out)-1]
		st.Ifname, st.Ifindex, st.QueueID = qs.q.Ifname, qs.q.Ifindex, qs.q.QueueID
		st.ZeroCopy = qs.s.zeroCopy
		qs.c.addTo(st)
		if !d.closed {
			if k, err := qs.s.kernelStats(); err == nil {
				st.Kernel = k
			}
		}
	}
	if d.departed.Ifname != "" {
		out = append(out, d.departed)
	}
	return out
}

// Close detaches the classifier from every interface and closes sockets and
// maps. Run must have returned.
func (d *Dataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	if d.running {
		return fmt.Errorf("close while running: %w", ErrRunning)
	}
	d.closed = true
	d.removeAllDevices()
	return d.closeAll()
}

func (d *Dataplane) closeAll() error {
	var errs []error
	for _, p := range d.ports {
		if p.inst != nil {
			errs = append(errs, p.inst.close())
		}
		for _, s := range p.socks {
			errs = append(errs, s.close())
		}
		p.socks = nil
	}
	if d.classifier != nil {
		errs = append(errs, d.classifier.Close())
	}
	if d.stopfd >= 0 {
		errs = append(errs, unix.Close(d.stopfd))
		d.stopfd = -1
	}
	return errors.Join(errs...)
}
