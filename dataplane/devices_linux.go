package dataplane

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// followInterval is how often follow compares Config.Devices' generation
// with the one applied: a pod's veth is in use within this much of the
// netlink event that made the egress table list it.
const followInterval = 50 * time.Millisecond

// Devices returns the devices in use and the followed devices refused, by
// ifindex.
func (d *Dataplane) Devices() []DeviceStatus {
	var out []DeviceStatus
	for _, p := range d.ports {
		out = append(out, DeviceStatus{Ifindex: p.ifindex, Name: p.name, Kind: p.kind.String(), Mode: p.mode, Queues: len(p.socks), Why: p.why})
	}
	d.devMu.Lock()
	for _, p := range d.dyn {
		out = append(out, DeviceStatus{Ifindex: p.ifindex, Name: p.name, Kind: p.kind.String(), Mode: p.mode, Queues: len(p.socks), Why: p.why})
	}
	for _, u := range d.unusable {
		out = append(out, DeviceStatus{Ifindex: u.dev.Ifindex, Name: u.dev.Name, Kind: u.dev.Kind.String(), Why: u.dev.Why, Error: u.err})
	}
	d.devMu.Unlock()
	slices.SortFunc(out, func(a, b DeviceStatus) int { return a.Ifindex - b.Ifindex })
	return out
}

// follow attaches to and detaches from the devices Config.Devices lists
// until ctx ends. It runs on Run's goroutines; p is Run's Processor.
func (d *Dataplane) follow(ctx context.Context, p Processor) {
	tick := time.NewTicker(followInterval)
	defer tick.Stop()
	for {
		devs, gen := d.cfg.Devices.Devices()
		d.reconcile(ctx, p, devs, gen)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// reconcile makes the followed devices those of devs: new ones are
// attached, departed (or broken) ones detached.
func (d *Dataplane) reconcile(ctx context.Context, p Processor, devs []Device, gen uint64) {
	d.devMu.Lock()
	broken := false
	for _, pt := range d.dyn {
		if pt.broken.Load() {
			broken = true
		}
	}
	if gen == d.devGen && !broken {
		d.devMu.Unlock()
		return
	}
	d.devGen = gen
	d.devMu.Unlock()

	want := make(map[int]Device, len(devs))
	for _, dv := range devs {
		if d.managed(dv.Ifindex) {
			continue
		}
		want[dv.Ifindex] = dv
	}
	var gone []*port
	d.devMu.Lock()
	for ifindex, pt := range d.dyn {
		if dv, ok := want[ifindex]; !ok || pt.broken.Load() || dv.Name != pt.name {
			gone = append(gone, pt)
			delete(d.dyn, ifindex)
		}
	}
	for ifindex := range d.unusable {
		if _, ok := want[ifindex]; !ok {
			delete(d.unusable, ifindex)
		}
	}
	d.devMu.Unlock()
	if len(gone) > 0 {
		d.publishPorts()
		for _, pt := range gone {
			d.removePort(pt)
		}
	}
	changed := false
	for _, dv := range devs {
		if _, ok := want[dv.Ifindex]; !ok || ctx.Err() != nil {
			continue
		}
		d.devMu.Lock()
		_, have := d.dyn[dv.Ifindex]
		_, refused := d.unusable[dv.Ifindex]
		d.devMu.Unlock()
		if have || refused {
			continue
		}
		pt, err := d.addPort(dv, p)
		d.devMu.Lock()
		if err != nil {
			d.unusable[dv.Ifindex] = deviceErr{dev: dv, err: err.Error()}
			d.log.Warn("device not usable: frames routed to it are dropped (egress_unusable)",
				"ifname", dv.Name, "ifindex", dv.Ifindex, "kind", dv.Kind.String(), "why", dv.Why, "err", err)
		} else {
			d.dyn[dv.Ifindex] = pt
		}
		d.devMu.Unlock()
		changed = true
	}
	if changed {
		d.publishPorts()
	}
}

// managed reports whether ifindex is a managed interface (--interfaces).
func (d *Dataplane) managed(ifindex int) bool {
	for _, p := range d.ports {
		if p.ifindex == ifindex {
			return true
		}
	}
	return false
}

// publishPorts publishes the current ports for the pollers.
func (d *Dataplane) publishPorts() {
	t := &portTable{byIfindex: make(map[int]*port), unusable: make(map[int]deviceErr)}
	for _, p := range d.ports {
		t.byIfindex[p.ifindex] = p
	}
	d.devMu.Lock()
	for i, p := range d.dyn {
		t.byIfindex[i] = p
	}
	for i, u := range d.unusable {
		t.unusable[i] = u
	}
	d.devMu.Unlock()
	d.portTab.Store(t)
	if f := d.classifier.FastPath(); f != nil {
		if err := f.Refresh(); err != nil {
			d.log.Warn("fast path devices", "err", err)
		}
	}
}

// addPort attaches to a followed device: one socket per receive queue (one
// socket and no classifier for a bridge), the classifier in native mode
// where the driver has it (veth), else generic, and a poller per socket.
func (d *Dataplane) addPort(dv Device, proc Processor) (_ *port, err error) {
	switch {
	case dv.Kind == DeviceL3:
		return nil, errors.New("no Ethernet header (an L3 device: IPIP, WireGuard, TUN): AF_XDP frames cannot be sent on it")
	case dv.MTU+14+8+xdpPacketHeadroom > d.cfg.FrameSize:
		return nil, fmt.Errorf("MTU %d does not fit %d-byte frames: %w", dv.MTU, d.cfg.FrameSize, ErrMTUTooLarge)
	}
	// Sockets and netlink requests use the calling thread's namespace:
	// Run's, which is Open's (the caller's contract).
	l, err := netlink.LinkByIndex(dv.Ifindex)
	if err != nil {
		return nil, fmt.Errorf("link %d: %w", dv.Ifindex, err)
	}
	a := l.Attrs()
	nq := 1
	if !dv.TxOnly {
		if nq, err = rxQueues(a.Name, a.NumRxQueues); err != nil {
			return nil, err
		}
	}
	pt := &port{ifindex: a.Index, name: a.Name, mtu: a.MTU, kind: dv.Kind, why: dv.Why, dynamic: true, stopfd: -1}
	defer func() {
		if err != nil {
			d.closePort(pt)
		}
	}()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	pt.stopfd = efd
	nf := d.cfg.DeviceNumFrames
	ring := 1
	for ring < nf/2 {
		ring <<= 1
	}
	xc := xskConfig{numFrames: nf, frameSize: d.cfg.FrameSize, fillSize: ring, compSize: ring, rxSize: ring, txSize: ring, bind: BindCopy}
	if !dv.TxOnly {
		if pt.inst, err = d.classifier.instance(nq); err != nil {
			return nil, err
		}
	}
	for q := 0; q < nq; q++ {
		s, err := openXSK(a.Index, q, xc)
		if err != nil {
			return nil, err
		}
		pt.socks = append(pt.socks, s)
		if pt.inst != nil {
			if err := pt.inst.xsks.Put(uint32(q), uint32(s.fd)); err != nil {
				return nil, fmt.Errorf("register xsk %s queue %d: %w", a.Name, q, err)
			}
		}
	}
	if dv.TxOnly {
		pt.mode = "tx-only"
	} else {
		// The managed interfaces' attach mode applies to them; a followed
		// device takes native where its driver has it, else generic.
		if err := d.attach(pt, l, AttachNativeOrGeneric); err != nil {
			return nil, err
		}
	}
	if !dv.TxOnly {
		d.devMu.Lock()
		for q, s := range pt.socks {
			slot := slices.Index(d.queues[d.nStatic:], nil)
			if slot < 0 {
				d.devMu.Unlock()
				return nil, fmt.Errorf("more than %d device queues (MaxDeviceQueues)", d.cfg.MaxDeviceQueues)
			}
			idx := d.nStatic + slot
			cpu := -1
			if len(d.cfg.CPUs) > 0 {
				cpu = d.cfg.CPUs[idx%len(d.cfg.CPUs)]
			}
			qs := &queueState{q: Queue{Index: idx, Ifindex: a.Index, Ifname: a.Name, QueueID: q, CPU: cpu}, s: s, port: pt}
			d.queues[idx] = qs
			pt.queues = append(pt.queues, qs)
		}
		d.devMu.Unlock()
		for _, qs := range pt.queues {
			pt.done.Add(1)
			go func() {
				defer pt.done.Done()
				if err := d.poll(qs, proc); err != nil {
					pt.broken.Store(true)
				}
			}()
		}
	}
	d.log.Info("xdpgate device attached", "ifname", a.Name, "ifindex", a.Index, "kind", dv.Kind.String(),
		"why", dv.Why, "queues", nq, "xdp_mode", pt.mode, "mtu", a.MTU)
	return pt, nil
}

// removePort stops a followed device's pollers and closes its sockets and
// classifier instance. pt is no longer in the published portTable, but a
// poller that loaded the previous one may still be copying into its
// sockets: each socket is marked gone under its TX lock first, and txCopy
// checks that under the same lock.
func (d *Dataplane) removePort(pt *port) {
	pt.stop.Store(true)
	var one = [8]byte{1}
	if pt.stopfd >= 0 {
		_, _ = unix.Write(pt.stopfd, one[:])
	}
	pt.done.Wait()
	d.devMu.Lock()
	for _, qs := range pt.queues {
		d.queues[qs.q.Index] = nil
		d.fold(qs)
	}
	d.devMu.Unlock()
	d.closePort(pt)
	d.log.Info("xdpgate device detached", "ifname", pt.name, "ifindex", pt.ifindex, "kind", pt.kind.String())
}

// closePort closes what addPort opened.
func (d *Dataplane) closePort(pt *port) {
	for _, s := range pt.socks {
		s.txMu.Lock()
		s.gone = true
		s.txMu.Unlock()
	}
	if pt.inst != nil {
		if err := pt.inst.close(); err != nil {
			d.log.Debug("close device classifier", "ifname", pt.name, "err", err)
		}
	}
	for _, s := range pt.socks {
		_ = s.close()
	}
	pt.socks = nil
	if pt.stopfd >= 0 {
		unix.Close(pt.stopfd)
		pt.stopfd = -1
	}
}

// fold adds a departing queue's counters to d.departed. devMu held.
func (d *Dataplane) fold(qs *queueState) {
	st := &d.departed
	st.Ifname = "departed"
	qs.c.addTo(st)
	// The socket is still open: keep what the kernel counted for it too.
	if k, err := qs.s.kernelStats(); err == nil {
		st.Kernel.add(k)
	}
}

// addTo adds the queue's counters to st (Stats reads one queue into a zero
// QueueStats; fold adds a departing queue's into the departed total).
func (c *queueCounters) addTo(st *QueueStats) {
	st.RxFrames += c.rxFrames.Load()
	st.RxBytes += c.rxBytes.Load()
	st.TxFrames += c.txFrames.Load()
	st.TxBytes += c.txBytes.Load()
	st.TxCopied += c.txCopied.Load()
	st.TxRingFull += c.txRingFull.Load()
	st.FillRingEmpty += c.fillRingEmpty.Load()
	st.Wakeups += c.wakeups.Load()
	st.Sleeps += c.sleeps.Load()
	st.NeighHeld += c.neighHeld.Load()
	st.NeighReleased += c.neighReleased.Load()
	for r := range c.drops {
		st.Drops[r] += c.drops[r].Load()
	}
	for k := range c.egressKind {
		st.EgressKind[k] += c.egressKind[k].Load()
	}
}

// removeAllDevices detaches every followed device (Run is over, or Close).
func (d *Dataplane) removeAllDevices() {
	d.devMu.Lock()
	var all []*port
	for i, pt := range d.dyn {
		all = append(all, pt)
		delete(d.dyn, i)
	}
	clear(d.unusable)
	d.devGen = 0
	d.devMu.Unlock()
	if d.classifier == nil {
		return
	}
	d.publishPorts()
	for _, pt := range all {
		d.removePort(pt)
	}
}
