package dataplane

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xdpgate/xdpgate/nat"
)

// Fast path counter indexes, in step with the enum in bpf/fastpath.h.
const (
	fcntTX = iota
	fcntRedirect
	fcntSlowFlags
	fcntSlowTTL
	fcntSlowMTU
	fcntSlowStale
	fcntSlowDevice
	fcntMax
)

// Entry flags, as in bpf/fastpath.h.
const (
	fastSrc = 1
	fastDst = 2
)

// fastKey mirrors struct fast_key (40 bytes).
type fastKey struct {
	Src, Dst     [16]byte
	Sport, Dport [2]byte // network order
	Proto        uint8
	Pad          [3]byte
}

// fastVal mirrors struct fast_val (80 bytes).
type fastVal struct {
	Src, Dst                   [16]byte // IPv4: the first 4 bytes
	Sport, Dport               [2]byte
	DMAC, SMAC                 [6]byte
	Ifindex, Slot, Gen         uint32
	L3Src, L3Dst, L4Src, L4Dst uint32
	MTU                        uint16
	Dir, Flags                 uint8
}

// fastDir and fastStat mirror struct fast_dir and struct fast_stat: the
// mmap-ed fast_stats array, written by the XDP program (d) and by Go (gen,
// credited) at once, so every field is accessed atomically.
type fastDir struct {
	packets, bytes, last atomic.Uint64
	seqEnd, ack          atomic.Uint32
}

type fastStat struct {
	d        [2]fastDir
	gen      atomic.Uint32
	_        uint32
	credited [4]atomic.Uint64 // packets, bytes of direction 0, then 1
	_        [3]uint64
}

// FastPathMaps is the XDP fast path's state (FastPath): the rewrite entries
// (fast_flows, a hash by received tuple), the per-flow counters
// (fast_stats, an array mapped into this process, so reading them costs no
// system call), the devices XDP may transmit on (fast_ports, a devmap) and
// the decision counters. The Classifier owns it; every program instance
// shares it.
//
// Concurrency: the maps are safe for concurrent use; a slot's entries are
// written only by the caller that allocated it. portsMu serialises Refresh;
// can is replaced whole by it.
type FastPathMaps struct {
	flows, stats, ports, counters *ebpf.Map
	mem                           []byte     // the mapping of stats
	st                            []fastStat // mem as slots

	portsMu sync.Mutex
	// candidates lists the devices that may be able to transmit XDP frames
	// (set by the Dataplane; nil: none).
	candidates func() []int
	can        atomic.Pointer[map[int]bool]
}

// newFastPathMaps creates the fast path maps for n flows from spec.
func newFastPathMaps(spec *ebpf.CollectionSpec, n int) (_ *FastPathMaps, err error) {
	if n < 1 || n > 1<<24 {
		return nil, fmt.Errorf("fast path flows %d: %w", n, ErrBadConfig)
	}
	if unsafe.Sizeof(fastStat{}) != 128 || unsafe.Sizeof(fastVal{}) != 80 || unsafe.Sizeof(fastKey{}) != 40 {
		panic("dataplane: fast path structs out of step with bpf/fastpath.h")
	}
	f := &FastPathMaps{}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	// The spec is changed in place: program instances load from it, and a
	// replacement map must match its spec.
	fs := spec.Maps[classifierMapFastFlows]
	fs.MaxEntries = uint32(2 * n)
	fs.Flags |= unix.BPF_F_NO_PREALLOC
	ss := spec.Maps[classifierMapFastStats]
	ss.MaxEntries = uint32(n)
	for dst, s := range map[**ebpf.Map]*ebpf.MapSpec{
		&f.flows: fs, &f.stats: ss, &f.ports: spec.Maps[classifierMapFastPorts],
		&f.counters: spec.Maps[classifierMapFastCounters],
	} {
		m, err := ebpf.NewMap(s)
		if err != nil {
			return nil, fmt.Errorf("create fast path map %s: %w", s.Name, err)
		}
		*dst = m
	}
	size := (n*int(unsafe.Sizeof(fastStat{})) + unix.Getpagesize() - 1) &^ (unix.Getpagesize() - 1)
	f.mem, err = unix.Mmap(f.stats.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map fast path counters: %w", err)
	}
	f.st = unsafe.Slice((*fastStat)(unsafe.Pointer(&f.mem[0])), n)
	empty := map[int]bool{}
	f.can.Store(&empty)
	return f, nil
}

// replacements adds the shared maps to a program instance's.
func (f *FastPathMaps) replacements(m map[string]*ebpf.Map) {
	m[classifierMapFastFlows] = f.flows
	m[classifierMapFastStats] = f.stats
	m[classifierMapFastPorts] = f.ports
	m[classifierMapFastCounters] = f.counters
}

// Close unmaps the counters and closes the maps.
func (f *FastPathMaps) Close() error {
	var errs []error
	if f.mem != nil {
		f.st = nil
		errs = append(errs, unix.Munmap(f.mem))
		f.mem = nil
	}
	for _, m := range []*ebpf.Map{f.flows, f.stats, f.ports, f.counters} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// Slots implements FastPath.
func (f *FastPathMaps) Slots() int { return len(f.st) }

// CanForward implements FastPath.
func (f *FastPathMaps) CanForward(ifindex int) bool { return (*f.can.Load())[ifindex] }

// Install implements FastPath. The counters are reset and the generation
// set before the entries are written, so XDP never counts a packet of this
// flow into an earlier one's slot.
func (f *FastPathMaps) Install(slot int, gen uint32, e *[2]FastEntry) error {
	if slot < 0 || slot >= len(f.st) || gen == 0 {
		return fmt.Errorf("fast path slot %d generation %d: %w", slot, gen, ErrBadConfig)
	}
	st := &f.st[slot]
	st.gen.Store(0)
	for d := range st.d {
		st.d[d].packets.Store(0)
		st.d[d].bytes.Store(0)
		st.d[d].last.Store(0)
		st.d[d].seqEnd.Store(0)
		st.d[d].ack.Store(0)
	}
	for i := range st.credited {
		st.credited[i].Store(0)
	}
	st.gen.Store(gen)
	for i := range e {
		k, v := makeFastKey(&e[i].In), makeFastVal(&e[i], slot, gen)
		if err := f.flows.Put(&k, &v); err != nil {
			st.gen.Store(0)
			if i == 1 {
				k0 := makeFastKey(&e[0].In)
				_ = f.flows.Delete(&k0)
			}
			return fmt.Errorf("install fast path entry: %w", err)
		}
	}
	return nil
}

// Remove implements FastPath: clearing the generation stops XDP at once;
// the entries are then deleted.
func (f *FastPathMaps) Remove(slot int, e *[2]FastEntry) error {
	if slot < 0 || slot >= len(f.st) {
		return fmt.Errorf("fast path slot %d: %w", slot, ErrBadConfig)
	}
	f.st[slot].gen.Store(0)
	var errs []error
	for i := range e {
		k := makeFastKey(&e[i].In)
		if err := f.flows.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove fast path entry: %w", err)
	}
	return nil
}

// Installed implements FastPath.
func (f *FastPathMaps) Installed(slot int, gen uint32) bool {
	return slot >= 0 && slot < len(f.st) && gen != 0 && f.st[slot].gen.Load() == gen
}

// Stats implements FastPath.
func (f *FastPathMaps) Stats(slot, dir int) FastDirStats {
	d := &f.st[slot].d[dir&1]
	return FastDirStats{Packets: d.packets.Load(), Bytes: d.bytes.Load(), Last: int64(d.last.Load()),
		SeqEnd: d.seqEnd.Load(), Ack: d.ack.Load()}
}

// Credit implements FastPath.
func (f *FastPathMaps) Credit(slot, dir int, packets, bytes uint64) (dp, db uint64) {
	c := f.st[slot].credited[2*(dir&1):]
	return raise(&c[0], packets), raise(&c[1], bytes)
}

// raise moves a to v if v is larger and returns by how much.
func raise(a *atomic.Uint64, v uint64) uint64 {
	for {
		old := a.Load()
		if v <= old {
			return 0
		}
		if a.CompareAndSwap(old, v) {
			return v - old
		}
	}
}

// Refresh implements FastPath: the devices XDP may transmit on become the
// candidate devices that can transmit XDP frames (fastCapable); a device
// that leaves the set sends its flows to userspace from the next frame on.
// Without a Dataplane (a Classifier used alone) it keeps what SetDevices
// set.
func (f *FastPathMaps) Refresh() error {
	if f.candidates == nil {
		return nil
	}
	var want []int
	for _, i := range f.candidates() {
		if fastCapable(i) {
			want = append(want, i)
		}
	}
	return f.SetDevices(want)
}

// SetDevices makes ifindexes the devices XDP may transmit on, without
// Refresh's checks: for tests and tools that know their devices. Refresh
// (and so the Dataplane, whenever its devices change) replaces the set.
func (f *FastPathMaps) SetDevices(ifindexes []int) error {
	f.portsMu.Lock()
	defer f.portsMu.Unlock()
	want := map[int]bool{}
	for _, i := range ifindexes {
		want[i] = true
	}
	var errs []error
	var k, v uint32
	var stale []uint32
	it := f.ports.Iterate()
	for it.Next(&k, &v) {
		if !want[int(k)] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		errs = append(errs, err)
	}
	// Publish the smaller set first: the pipeline stops installing for a
	// device before XDP stops using it.
	next := map[int]bool{}
	for i := range *f.can.Load() {
		if want[i] {
			next[i] = true
		}
	}
	f.can.Store(&next)
	for _, i := range stale {
		if err := f.ports.Delete(i); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	for i := range want {
		if err := f.ports.Put(uint32(i), uint32(i)); err != nil {
			errs = append(errs, fmt.Errorf("device %d: %w", i, err))
			delete(want, i)
		}
	}
	f.can.Store(&want)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fast path devices: %w", err)
	}
	return nil
}

// Program loads an instance of the classifier program bound to the shared
// maps, not attached anywhere, for BPF_PROG_TEST_RUN (the fast path's
// oracle test). The caller closes it.
func (c *Classifier) Program() (*ebpf.Program, error) {
	ci, err := c.instance(1)
	if err != nil {
		return nil, err
	}
	ci.xsks.Close()
	return ci.prog, nil
}

// Counters implements FastPath.
func (f *FastPathMaps) Counters() (FastPathCounters, error) {
	var out [fcntMax]uint64
	var vals []uint64
	for i := uint32(0); i < fcntMax; i++ {
		if err := f.counters.Lookup(i, &vals); err != nil {
			return FastPathCounters{}, fmt.Errorf("read fast path counters: %w", err)
		}
		for _, v := range vals {
			out[i] += v
		}
	}
	return FastPathCounters{TX: out[fcntTX], Redirect: out[fcntRedirect], SlowFlags: out[fcntSlowFlags],
		SlowTTL: out[fcntSlowTTL], SlowMTU: out[fcntSlowMTU], SlowStale: out[fcntSlowStale],
		SlowDevice: out[fcntSlowDevice]}, nil
}

func makeFastKey(t *FastTuple) fastKey {
	return fastKey{Src: t.Src, Dst: t.Dst, Sport: be16(t.SrcPort), Dport: be16(t.DstPort), Proto: uint8(t.Proto)}
}

func be16(v uint16) [2]byte { return [2]byte{byte(v >> 8), byte(v)} }

// makeFastVal precomputes the rewrite of e as the pipeline applies it
// (applyRewrite: the source step when the source address or port changes,
// then the destination step; nat.AddrSum and nat.PortSum are SetSrc's and
// SetDst's own sums).
func makeFastVal(e *FastEntry, slot int, gen uint32) fastVal {
	v := fastVal{Sport: be16(e.Out.SrcPort), Dport: be16(e.Out.DstPort), DMAC: e.DstMAC, SMAC: e.SrcMAC,
		Ifindex: uint32(e.Ifindex), Slot: uint32(slot), Gen: gen, Dir: e.Dir & 1, MTU: 0xffff}
	if e.MTU > 0 && e.MTU < 0xffff {
		v.MTU = uint16(e.MTU)
	}
	inSrc, inDst, outSrc, outDst := e.In.SrcAddr(), e.In.DstAddr(), e.Out.SrcAddr(), e.Out.DstAddr()
	if outSrc.Is4() {
		a, b := outSrc.As4(), outDst.As4()
		copy(v.Src[:], a[:])
		copy(v.Dst[:], b[:])
	} else {
		v.Src, v.Dst = e.Out.Src, e.Out.Dst
	}
	if inSrc != outSrc || e.In.SrcPort != e.Out.SrcPort {
		v.Flags |= fastSrc
		v.L3Src = nat.AddrSum(inSrc, outSrc)
		v.L4Src = v.L3Src + nat.PortSum(e.In.SrcPort, e.Out.SrcPort)
	}
	if inDst != outDst || e.In.DstPort != e.Out.DstPort {
		v.Flags |= fastDst
		v.L3Dst = nat.AddrSum(inDst, outDst)
		v.L4Dst = v.L3Dst + nat.PortSum(e.In.DstPort, e.Out.DstPort)
	}
	return v
}

// fastCandidates lists the devices XDP might transmit on: managed and
// followed devices with the classifier attached in native (driver) mode
// that are veth or other Ethernet devices. Generic-mode devices (VXLAN,
// Geneve) and bridges (transmit-only) are not: their flows stay in
// userspace.
func (d *Dataplane) fastCandidates() []int {
	t := d.portTab.Load()
	if t == nil {
		return nil
	}
	var out []int
	for i, p := range t.byIfindex {
		if p.mode == "native" && !p.broken.Load() && (p.kind == DeviceVeth || p.kind == DeviceOther) {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

// fastCapable reports whether XDP frames can be transmitted on device
// ifindex. A veth delivers XDP frames (XDP_TX, or a devmap redirect) into
// its peer's NAPI queue, which exists only while the peer has an XDP
// program or GRO enabled; without it the kernel drops them (veth_xdp_xmit:
// -ENXIO), counted nowhere this process sees. So a veth qualifies only
// when its peer, in whatever namespace, has an XDP program attached (GRO
// cannot be read across namespaces), in native mode. Other native-mode devices qualify:
// a driver with native XDP implements ndo_xdp_xmit in every in-tree case
// this project knows of (a device without it would drop redirected frames:
// the README names the limit).
func fastCapable(ifindex int) bool {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return false
	}
	if l.Type() != "veth" {
		return true
	}
	a := l.Attrs()
	if a.ParentIndex == 0 {
		return false
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(a.ParentIndex)
	req.AddData(msg)
	if a.NetNsID >= 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_TARGET_NETNSID, nl.Uint32Attr(uint32(a.NetNsID))))
	}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil || len(msgs) == 0 {
		return false
	}
	peer, err := netlink.LinkDeserialize(nil, msgs[0])
	if err != nil {
		return false
	}
	// Native (driver) mode only: a generic-mode program on the peer does
	// not give it NAPI. XDP_ATTACHED_DRV in linux/if_link.h.
	x := peer.Attrs().Xdp
	return x != nil && x.Attached && x.AttachMode == 1
}
