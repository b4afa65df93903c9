package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpgate/xdpgate/dataplane"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/internal/statefile"
	"github.com/xdpgate/xdpgate/maglev"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// Pipeline defaults, the one place they live (Config.withDefaults).
const (
	// DefaultSNATPortMin and DefaultSNATPortMax bound the SNAT port range
	// below Kubernetes' default NodePort range (30000-32767) and the
	// kernel's default ip_local_port_range (32768-60999): the classifier
	// redirects packets to a node address whose port is in the SNAT range,
	// so an overlap would take replies of the node's own connections away
	// from the kernel, or let a SNAT reply tuple collide with a NodePort.
	DefaultSNATPortMin = 20000
	DefaultSNATPortMax = 29999
	// DefaultSNATProbes is how many SNAT ports a new masqueraded flow tries
	// (Cilium tries 32 for NodePort SNAT, 128 for its BPF masquerading).
	DefaultSNATProbes = 32
	// pipelineChunk is how many frames one conntrack LookupBatch covers.
	pipelineChunk = 64
	// scratchSize holds the largest ICMP reply nat builds (IPv6: 1280 bytes
	// plus Ethernet and two VLAN tags).
	scratchSize = 2048
)

// ErrBadConfig is wrapped by New for an invalid Config.
var ErrBadConfig = errors.New("invalid pipeline config")

// Config configures a Pipeline. Zero fields take defaults
// (withDefaults), except the tables and the next hopper, which are required.
type Config struct {
	// Conntrack is the flow table shared by every queue.
	Conntrack *conntrack.Table
	// Affinity is the ClientIP affinity table shared by every queue.
	Affinity *affinity.Table
	// Hops resolves next hops (an *Egress in production).
	Hops dataplane.NextHopper
	// NumQueues bounds dataplane.Queue.Index (Dataplane.NumQueues()).
	NumQueues int
	// SNATPortMin and SNATPortMax bound the SNAT port range, inclusive
	// (defaults DefaultSNATPortMin, DefaultSNATPortMax).
	SNATPortMin, SNATPortMax uint16
	// SNATProbes bounds the ports one new flow tries (DefaultSNATProbes).
	SNATProbes int
	// Now returns monotonic nanoseconds; read once per batch. Default:
	// statefile.Now, CLOCK_MONOTONIC (time since boot), which every
	// process on this boot shares, so the last-seen and pin times in
	// tables adopted from a previous process (internal/statefile) keep
	// their meaning. The same clock must drive Housekeep's callers.
	Now func() int64
	// Wall returns wall-clock Unix nanoseconds; read for each new flow of a
	// ClientIP client without a valid affinity entry, whose choice depends
	// on its session epoch (maglev.Epoch). Gateways that must agree need
	// synchronised clocks. Default: time.Now().UnixNano().
	Wall func() int64
	// Logger defaults to slog.Default(); never used per packet.
	Logger *slog.Logger
	// LoadEndpoints bounds the endpoints of ClientIP service ports whose
	// load (pinned clients, new connections) is tracked at once, departed
	// endpoints that still hold pins included (DefaultLoadEndpoints; 8
	// bytes each, plus 8 per queue).
	LoadEndpoints int
	// FastPath, if set, is the XDP fast path established flows are
	// installed in (fastpath.go); nil keeps every packet in the pipeline.
	FastPath dataplane.FastPath
}

func (c Config) withDefaults() Config {
	if c.SNATPortMin == 0 && c.SNATPortMax == 0 {
		c.SNATPortMin, c.SNATPortMax = DefaultSNATPortMin, DefaultSNATPortMax
	}
	if c.SNATProbes == 0 {
		c.SNATProbes = DefaultSNATProbes
	}
	if c.Now == nil {
		c.Now = statefile.Now
	}
	if c.Wall == nil {
		c.Wall = func() int64 { return time.Now().UnixNano() }
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LoadEndpoints == 0 {
		c.LoadEndpoints = DefaultLoadEndpoints
	}
	return c
}

// Pipeline is the translation dataplane.Processor: kube-proxy's job for the frames the
// classifier redirects. Per frame:
//
//	nat.Parse
//	  -> conntrack (fragments: the first fragment's flow; ICMP errors: the
//	     quoted packet's flow, reversed)
//	  hit:  Touch
//	  miss: snapshot.Classify -> reject (ICMP port unreachable, NEW only,
//	        rate-limited) | drop by cause | forward: affinity or Maglev
//	        endpoint, SNAT port from conntrack, Insert (a racing insert's
//	        winner is applied)
//	  -> TTL check (time exceeded back to the sender, rate-limited: only
//	     for packets being forwarded)
//	  -> rewrite to Flow.Rewrite -> TTL-1 -> next hop -> Ethernet -> TX
//
// Concurrency: Process runs on every poller at once. Shared state is the
// published snapshot (an atomic pointer, loaded once per batch), the
// conntrack and affinity tables (concurrent by design) and the next hopper.
// Everything else a poller touches is its queue's pipeQueue (scratch and
// counters), indexed by dataplane.Queue.Index and written only by that poller; the
// counters are plain integers published with atomic stores once per batch
// (pipeQueue.publish) for Stats, so no two pollers ever write the same
// cache line and no packet pays for a locked instruction. dataplane.Queue.Index
// must be below Config.NumQueues (a wiring invariant: Process
// panics otherwise).
type Pipeline struct {
	cfg  Config
	ct   *conntrack.Table
	aff  *affinity.Table
	hops dataplane.NextHopper
	// flowHops is hops when it spreads flows over multipath routes.
	flowHops dataplane.FlowNextHopper
	// snatAddrs is hops when it knows each interface's addresses: the
	// other SNAT addresses snatInsert falls back to.
	snatAddrs dataplane.SNATAddrSource
	// retry remembers tuples refused for want of a SNAT port (snatretry.go).
	retry retryFilter
	// icmp is the gateway's ICMP error budget, shared by the queues
	// (icmplimit.go).
	icmp  icmpLimiter
	snap  atomic.Pointer[snapshot.Snapshot]
	snatN uint32 // size of the SNAT port range
	// snatReserved counts the range's ports reclaimed only for repeated
	// tuples (snatretry.go); 0 for a range under snatReserveMin ports.
	snatReserved uint32
	queues       []pipeQueue
	log          *slog.Logger
	// pubMu serialises Publish and guards retained.
	pubMu sync.Mutex
	// retained are endpoints that left the snapshot while TCP flows to
	// them are kept (OnSnapshot): the classifier must keep redirecting
	// their replies until those flows end (PruneRetained).
	retained map[dataplane.L4Addr]uint32
	// capture is the running capture session, nil when none (one atomic
	// load per batch in Process; see pipeline_capture.go).
	capture atomic.Pointer[Capture]
	// svc are the per-service-port counters (svcstats.go).
	svc svcStats
	// load is the per-endpoint load of ClientIP service ports (load.go).
	load epLoad
	// heavy are the heavy-client sketches of ClientIP service ports
	// (heavy.go).
	heavy heavyStats
	// fast is the XDP fast path's state, nil when it is off (fastpath.go).
	fast *fastState
}

// New checks cfg and allocates every per-queue buffer.
func New(cfg Config) (*Pipeline, error) {
	cfg = cfg.withDefaults()
	switch {
	case cfg.Conntrack == nil || cfg.Affinity == nil || cfg.Hops == nil:
		return nil, fmt.Errorf("conntrack, affinity and next hops are required: %w", ErrBadConfig)
	case cfg.NumQueues < 1:
		return nil, fmt.Errorf("num queues %d: %w", cfg.NumQueues, ErrBadConfig)
	case cfg.SNATPortMin == 0 || cfg.SNATPortMax < cfg.SNATPortMin:
		return nil, fmt.Errorf("snat ports %d-%d: %w", cfg.SNATPortMin, cfg.SNATPortMax, ErrBadConfig)
	case cfg.SNATProbes < 1:
		return nil, fmt.Errorf("snat probes %d: %w", cfg.SNATProbes, ErrBadConfig)
	case cfg.LoadEndpoints < 1 || cfg.LoadEndpoints > 1<<24:
		return nil, fmt.Errorf("load endpoints %d: want 1-%d: %w", cfg.LoadEndpoints, 1<<24, ErrBadConfig)
	}
	p := &Pipeline{
		cfg: cfg, ct: cfg.Conntrack, aff: cfg.Affinity, hops: cfg.Hops, log: cfg.Logger,
		snatN:    uint32(cfg.SNATPortMax-cfg.SNATPortMin) + 1,
		queues:   make([]pipeQueue, cfg.NumQueues),
		retained: make(map[dataplane.L4Addr]uint32),
	}
	p.svc.init(cfg.NumQueues)
	p.load.init(cfg.LoadEndpoints, cfg.NumQueues)
	p.heavy.init(cfg.NumQueues)
	p.load.adopt(p.aff) // before the hook: nothing else uses the table yet
	p.aff.OnChange(p.onAffinityChange)
	p.flowHops, _ = cfg.Hops.(dataplane.FlowNextHopper)
	p.snatAddrs, _ = cfg.Hops.(dataplane.SNATAddrSource)
	p.retry = newRetryFilter(rand.Uint64())
	if p.snatN >= snatReserveMin {
		p.snatReserved = p.snatN / snatReserveEvery
	}
	for i := range p.queues {
		q := &p.queues[i]
		q.scratch = make([]byte, scratchSize)
		q.keys = make([]conntrack.Tuple, pipelineChunk)
		q.flows = make([]conntrack.Flow, pipelineChunk)
		q.found = make([]bool, pipelineChunk)
		q.pkts = make([]nat.Packet, pipelineChunk)
		q.reasons = make([]nat.DropReason, pipelineChunk)
		q.rnd = rand.Uint64()
	}
	if cfg.FastPath != nil {
		p.fast = newFastState(cfg.FastPath, p.ct.RecordSlots())
		for i := range p.queues {
			p.queues[i].fastInstall = make([]fastInstallReq, 0, pipelineChunk)
			p.queues[i].fastRemove = make([]fastRemoveReq, 0, pipelineChunk)
		}
	}
	return p, nil
}

// Snapshot returns the snapshot in use (nil before the first Publish).
func (p *Pipeline) Snapshot() *snapshot.Snapshot { return p.snap.Load() }

// pipeQueue is one poller's private state. Only that poller writes it.
type pipeQueue struct {
	scratch []byte // ICMP replies are built here, then copied into the frame
	keys    []conntrack.Tuple
	flows   []conntrack.Flow
	found   []bool
	pkts    []nat.Packet
	reasons []nat.DropReason
	c       pipeCounters
	pub     pipePublished
	// rnd is the SNAT port prober's random state (splitmix64), seeded by
	// New so that a spoofer cannot predict which ports a flow will try.
	rnd uint64
	// fastInstall and fastRemove are the flows this batch queued for the
	// XDP fast path (fastpath.go), flushed at the end of Process.
	fastInstall []fastInstallReq
	fastRemove  []fastRemoveReq
}

// batch is what Process reads once per batch.
type batch struct {
	q    *dataplane.Queue
	pq   *pipeQueue
	sq   *svcQueue
	snap *snapshot.Snapshot
	now  int64
	// load is the per-endpoint load index, hb the heavy-client sketches.
	load *loadIndex
	hb   heavyBatch
}

// Process implements dataplane.Processor.
func (p *Pipeline) Process(q *dataplane.Queue, frames []dataplane.Frame) {
	b := batch{q: q, pq: &p.queues[q.Index], sq: &p.svc.queues[q.Index], snap: p.snap.Load(), now: p.cfg.Now(),
		load: p.load.index.Load(), hb: heavyBatch{ix: p.heavy.index.Load(), q: &p.heavy.queues[q.Index]}}
	b.sq.begin(p.svc.index.Load())
	capt := p.capture.Load()
	if capt != nil {
		capt.frames(CapturePre, frames, false)
	}
	all := frames
	for len(frames) > 0 {
		n := min(len(frames), pipelineChunk)
		p.chunk(&b, frames[:n])
		frames = frames[n:]
	}
	if capt != nil {
		capt.frames(CapturePost, all, true)
	}
	if p.fast != nil && (len(b.pq.fastInstall) > 0 || len(b.pq.fastRemove) > 0) {
		p.fastFlush(b.pq)
	}
	b.pq.publish()
	b.sq.publish()
	b.hb.end()
}

// chunk parses up to pipelineChunk frames, looks all their tuples up in one
// conntrack.LookupBatch (overlapping the cache misses of a big table), then
// handles each frame.
func (p *Pipeline) chunk(b *batch, frames []dataplane.Frame) {
	pq := b.pq
	keys := pq.keys[:0]
	for i := range frames {
		f := &frames[i]
		pk := &pq.pkts[i]
		r := nat.Parse(f.Data(), pk)
		pq.reasons[i] = r
		var k conntrack.Tuple
		if r == nat.DropNone {
			k = lookupKey(pk)
		}
		keys = append(keys, k) // the zero Tuple never matches
	}
	p.ct.LookupBatch(keys, b.now, pq.flows, pq.found)
	for i := range frames {
		p.frame(b, &frames[i], &pq.pkts[i], pq.reasons[i], pq.flows[i], pq.found[i])
	}
}

// lookupKey is the conntrack key of a parsed packet: its own 5-tuple, or,
// for an ICMP error, the quoted packet's tuple reversed (the quote is a
// packet of the flow going the other way). Packets without ports (non-first
// fragments, ICMP other than echo) get the zero Tuple.
func lookupKey(pk *nat.Packet) conntrack.Tuple {
	if pk.ICMPError {
		if !pk.InnerHasPorts || pk.InnerFragment {
			return conntrack.Tuple{}
		}
		return conntrack.MakeTuple(pk.InnerDst, pk.InnerSrc, pk.InnerDstPort, pk.InnerSrcPort, pk.InnerProto)
	}
	if !pk.HasPorts {
		return conntrack.Tuple{}
	}
	return conntrack.MakeTuple(pk.Src, pk.Dst, pk.SrcPort, pk.DstPort, pk.Proto)
}

// frame decides one frame.
func (p *Pipeline) frame(b *batch, f *dataplane.Frame, pk *nat.Packet, r nat.DropReason, fl conntrack.Flow, hit bool) {
	pq := b.pq
	if r != nat.DropNone {
		p.natDrop(pq, f, r)
		return
	}
	data := f.Data()
	switch {
	case pk.ICMPError:
		if !hit {
			f.Drop(DropICMPErrorUntracked)
			return
		}
		if p.expired(b, f, pk) {
			return
		}
		if rr := translateICMPError(data, pk, &fl); rr != nat.DropNone {
			p.natDrop(pq, f, rr)
			return
		}
		pq.c.icmpErrors++
		p.emit(b, f, pk, nil)
		return
	case pk.Fragment && pk.FragOffset != 0:
		p.laterFragment(b, f, pk)
		return
	}
	var reuse netip.AddrPort // a reopened flow's masquerade source (see newFlow)
	if hit && reopens(pk, &fl) {
		// A new connection on the tuple of a closed one (the client reused
		// its port while the old flow lingers in TIME_WAIT or CLOSE). As
		// nf_conntrack does (tcp_packet: nf_ct_kill, then look up again),
		// the old flow goes and the SYN starts a new one, chosen afresh:
		// the old endpoint may have left, the client's pin may have moved.
		// Keeping the old translation would send it to the old endpoint,
		// gone or not, for as long as the SYNs keep the flow alive.
		if p.ct.Delete(fl.Handle) {
			pq.c.reopens++
		}
		if src := netip.AddrPortFrom(fl.Rewrite.SrcAddr(), fl.Rewrite.SrcPort); src != netip.AddrPortFrom(pk.Src, pk.SrcPort) {
			reuse = src
		}
		hit = false
	}
	var hop *dataplane.Hop
	if hit {
		if p.fast != nil {
			p.fastCredit(b, pk, &fl)
		}
		n := int(pk.End - pk.L3Off)
		p.touch(data, pk, fl.Handle, fl.Dir, b.now)
		b.sq.of(fl.ServicePort).count(fl.Dir, n)
		if fl.Dir == conntrack.Reply {
			pq.c.replies++
		} else {
			pq.c.established++
			b.hb.packet(b.sq.lastJ, b.q.Index, pk.Src, b.now, &pq.rnd)
		}
	} else {
		var h dataplane.Hop
		var st newFlowStatus
		if fl, h, st = p.newFlow(b, f, pk, reuse); st == newFlowDone {
			return
		}
		if st == newFlowHop {
			hop = &h
		}
	}
	if p.expired(b, f, pk) {
		return
	}
	if pk.Fragment { // first fragment: later ones (untranslated addresses) follow its flow
		p.ct.RememberFragment(conntrack.MakeFragKey(pk.Src, pk.Dst, pk.Proto, pk.FragID), fl, b.now)
	}
	// The next hop is known before the rewrite: an oversized packet is
	// answered quoting what its sender sent, and a multipath route's next
	// hop is chosen by the translated flow's hash.
	var h dataplane.Hop
	st := dataplane.LookupOK
	if hop == nil || hop.Paths > 1 {
		h, st = p.lookupFlow(&fl.Rewrite)
		hop = &h
	}
	if st != dataplane.LookupNoRoute && p.tooBig(b, f, pk, hop) {
		return
	}
	if rr := applyRewrite(data, pk, &fl.Rewrite); rr != nat.DropNone {
		p.natDrop(pq, f, rr)
		return
	}
	p.forward(b, f, pk, hop, st)
	if hit && p.fast != nil && f.Verdict == dataplane.VerdictTX {
		p.fastOffer(b, &fl)
	}
}

// lookupFlow returns the next hop of the translated packet rw: for a
// multipath route, the one its flow hash selects (every packet of the
// direction has the same rw, hence the same next hop).
func (p *Pipeline) lookupFlow(rw *conntrack.Tuple) (dataplane.Hop, dataplane.LookupStatus) {
	dst := rw.DstAddr()
	h, st := p.hops.Lookup(dst)
	if h.Paths > 1 && p.flowHops != nil {
		h, st = p.flowHops.LookupFlow(dst, maglev.HashFlow(rw.SrcAddr(), dst, rw.SrcPort, rw.DstPort, uint8(rw.Proto)))
	}
	return h, st
}

// tooBig handles a packet that does not fit the egress MTU: IPv4 with DF
// and every IPv6 packet get ICMP fragmentation needed / packet too big
// with the MTU, as the kernel's forwarding does (rate-limited), and IPv4
// without DF is dropped (DropFragNeededNoDF): fragmenting would turn one
// frame into several, which the one-frame-in, one-frame-out verdict model
// does not allow, and senders of large datagrams without DF are rare
// (TCP sets DF). It reports whether it took the frame.
func (p *Pipeline) tooBig(b *batch, f *dataplane.Frame, pk *nat.Packet, hop *dataplane.Hop) bool {
	if hop.MTU <= 0 || int(pk.End-pk.L3Off) <= hop.MTU {
		return false
	}
	if pk.Version == 4 && !pk.DontFragment {
		f.Drop(DropFragNeededNoDF)
		return true
	}
	pq := b.pq
	if !p.icmp.allowGlobal(b.now) {
		f.Drop(DropTooBigRateLimited)
		return true
	}
	back, st := p.hops.Lookup(pk.Src)
	if st == dataplane.LookupNoRoute || !back.Src.IsValid() {
		f.Drop(DropTooBigNotSent)
		return true
	}
	room := min(len(pq.scratch), len(f.Buf)-f.Off)
	n, err := nat.BuildICMPTooBig(pq.scratch[:room], f.Data(), pk, back.Src, hop.MTU)
	if err != nil {
		f.Drop(DropTooBigNotSent)
		return true
	}
	copy(f.Buf[f.Off:], pq.scratch[:n])
	f.Len = n
	f.TX(0)
	pq.c.tooBig++
	return true
}

// natDrop drops f for a nat reason, counting the exact reason too.
func (p *Pipeline) natDrop(pq *pipeQueue, f *dataplane.Frame, r nat.DropReason) {
	if r < nat.NumDropReasons {
		pq.pub.natDrops[r].Add(1)
		f.Drop(natDropGroup[r])
		return
	}
	f.Drop(DropRewriteFailed)
}

// applyRewrite makes the packet carry rw: source and destination address
// and port, changing only what differs.
func applyRewrite(data []byte, pk *nat.Packet, rw *conntrack.Tuple) nat.DropReason {
	if src := rw.SrcAddr(); src != pk.Src || rw.SrcPort != pk.SrcPort {
		if r := nat.SetSrc(data, pk, src, rw.SrcPort); r != nat.DropNone {
			return r
		}
	}
	if dst := rw.DstAddr(); dst != pk.Dst || rw.DstPort != pk.DstPort {
		if r := nat.SetDst(data, pk, dst, rw.DstPort); r != nat.DropNone {
			return r
		}
	}
	return nat.DropNone
}

// translateICMPError rewrites an ICMP error about flow fl. fl was found
// with the quoted tuple reversed, so the quote travels opposite to fl.Dir
// and must become reverse(fl.Rewrite): what the far end of that direction
// sent. The outer destination is the quote's (new) source; the outer
// source, when it was the quote's destination (the host itself reports),
// becomes the quote's new destination, else (a router on the path) it is
// kept, so traceroute and PMTU discovery name the real router.
func translateICMPError(data []byte, pk *nat.Packet, fl *conntrack.Flow) nat.DropReason {
	rw := &fl.Rewrite
	newSrc, newSrcPort := rw.DstAddr(), rw.DstPort
	newDst, newDstPort := rw.SrcAddr(), rw.SrcPort
	reporterIsHost := pk.Src == pk.InnerDst
	if r := nat.RewriteICMPErrorInnerSrc(data, pk, newSrc, newSrcPort); r != nat.DropNone {
		return r
	}
	if r := nat.RewriteICMPErrorInnerDst(data, pk, newDst, newDstPort); r != nat.DropNone {
		return r
	}
	if pk.Dst != newSrc {
		if r := nat.SetDstAddr(data, pk, newSrc); r != nat.DropNone {
			return r
		}
	}
	if reporterIsHost && pk.Src != newDst {
		if r := nat.SetSrcAddr(data, pk, newDst); r != nat.DropNone {
			return r
		}
	}
	return nat.DropNone
}

// laterFragment forwards a non-first fragment along its datagram's flow:
// addresses only (it carries no ports).
func (p *Pipeline) laterFragment(b *batch, f *dataplane.Frame, pk *nat.Packet) {
	fl, ok := p.ct.LookupFragment(conntrack.MakeFragKey(pk.Src, pk.Dst, pk.Proto, pk.FragID), b.now)
	if !ok {
		f.Drop(DropFragmentUnknown)
		return
	}
	if p.expired(b, f, pk) {
		return
	}
	data := f.Data()
	rw := &fl.Rewrite
	if src := rw.SrcAddr(); src != pk.Src {
		if r := nat.SetSrcAddr(data, pk, src); r != nat.DropNone {
			p.natDrop(b.pq, f, r)
			return
		}
	}
	if dst := rw.DstAddr(); dst != pk.Dst {
		if r := nat.SetDstAddr(data, pk, dst); r != nat.DropNone {
			p.natDrop(b.pq, f, r)
			return
		}
	}
	b.pq.c.fragments++
	b.sq.of(fl.ServicePort).count(fl.Dir, int(pk.End-pk.L3Off))
	p.emit(b, f, pk, nil)
}

// emit forwards a translated packet: TTL-1, next hop, Ethernet, TX. hop is
// the next hop when the caller already resolved it (new flows), else nil.
func (p *Pipeline) emit(b *batch, f *dataplane.Frame, pk *nat.Packet, hop *dataplane.Hop) {
	var h dataplane.Hop
	st := dataplane.LookupOK
	if hop == nil {
		h, st = p.hops.Lookup(pk.Dst)
		hop = &h
	}
	p.forward(b, f, pk, hop, st)
}

// forward sends a translated packet to hop (found with status st): TTL-1,
// Ethernet, TX or hold.
func (p *Pipeline) forward(b *batch, f *dataplane.Frame, pk *nat.Packet, hop *dataplane.Hop, st dataplane.LookupStatus) {
	data := f.Data()
	if r := nat.DecrementTTL(data, pk); r != nat.DropNone {
		p.natDrop(b.pq, f, r) // TTL was checked before; only a broken invariant lands here
		return
	}
	switch st {
	case dataplane.LookupOK:
	case dataplane.LookupUnresolved:
		// Resolution is under way: the dataplane holds the frame, as the
		// kernel queues packets for an incomplete neighbour, and writes
		// the destination MAC when it is known.
		nat.SetEthernet(data, hop.DstMAC, hop.SrcMAC)
		f.Hold(hop.Ifindex, hop.NextHop(pk.Dst))
		b.pq.c.forwarded++
		return
	default:
		f.Drop(dataplane.DropNoRoute)
		return
	}
	nat.SetEthernet(data, hop.DstMAC, hop.SrcMAC)
	f.TX(hop.Ifindex)
	b.pq.c.forwarded++
}

// PrimeNextHops asks the next hopper, if it can (dataplane.NextHopPrimer),
// to resolve the next hop of every endpoint of s now, so that the first
// packet of a flow to a new endpoint finds its neighbour resolved. It does
// not block: the requests are queued to the next hopper's resolver.
func (p *Pipeline) PrimeNextHops(s *snapshot.Snapshot) {
	pr, ok := p.hops.(dataplane.NextHopPrimer)
	if !ok || s == nil {
		return
	}
	var addrs []netip.Addr
	for i := range s.ServicePorts {
		for j := range s.ServicePorts[i].Endpoints {
			addrs = append(addrs, s.ServicePorts[i].Endpoints[j].Addr)
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	pr.Prime(slices.Compact(addrs))
}

// expired answers a packet xdpgate would forward but whose TTL (hop
// limit) would expire with ICMP time exceeded, and reports whether it did.
// It is checked once the packet is known to be forwarded (a flow hit, a new
// flow, a tracked ICMP error or fragment), as the kernel's ip_forward does
// after PREROUTING: a packet that is dropped, rejected or refused by source
// ranges gets no time exceeded, so TTL=1 traffic cannot make xdpgate answer
// what it would not forward. It runs before any rewrite: the error quotes
// what the sender sent.
func (p *Pipeline) expired(b *batch, f *dataplane.Frame, pk *nat.Packet) bool {
	if pk.TTL > 1 {
		return false
	}
	p.timeExceeded(b, f, pk)
	return true
}

// timeExceeded answers a packet whose TTL would expire with ICMP time
// exceeded, from the address this node uses towards the sender (the
// receiving interface's, with symmetric routing), out of the receiving
// interface.
func (p *Pipeline) timeExceeded(b *batch, f *dataplane.Frame, pk *nat.Packet) {
	h, st := p.hops.Lookup(pk.Src)
	if st == dataplane.LookupNoRoute || !h.Src.IsValid() {
		f.Drop(DropTTLExpired)
		return
	}
	p.reply(b, f, pk, h.Src, nat.BuildICMPTimeExceeded, DropTTLExpired)
	if f.Verdict == dataplane.VerdictTX {
		b.pq.c.timeExceeded++
	}
}

// reply builds an ICMP error answering pk into the queue's scratch buffer
// and replaces the frame with it, to be sent back out of the receiving
// interface (the builder swaps the Ethernet addresses). The gateway's ICMP
// budget (icmpLimiter.allow, global and per destination) bounds what it
// sends; a frame over budget is dropped (DropICMPRateLimited).
func (p *Pipeline) reply(b *batch, f *dataplane.Frame, pk *nat.Packet, src netip.Addr,
	build func(buf, frame []byte, p *nat.Packet, src netip.Addr) (int, error), fail dataplane.DropReason) {
	if !p.icmp.allow(pk.Src, b.now) {
		f.Drop(DropICMPRateLimited)
		return
	}
	room := min(len(b.pq.scratch), len(f.Buf)-f.Off)
	n, err := build(b.pq.scratch[:room], f.Data(), pk, src)
	if err != nil {
		f.Drop(fail)
		return
	}
	copy(f.Buf[f.Off:], b.pq.scratch[:n])
	f.Len = n
	f.TX(0)
}
