package dataplane

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// EgressConfig configures an Egress; zero fields take defaults.
type EgressConfig struct {
	// Logger receives rebuild errors (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock used to rate-limit resolution requests (default
	// time.Now).
	Now func() time.Time
	// ResolveInterval is the minimum time between two resolution requests
	// for the same neighbour (default 1s).
	ResolveInterval time.Duration
}

// Egress answers "where does a packet to dst leave" from the kernel's main
// routing table and neighbour table, without a syscall per packet.
//
// Netlink route, neighbour, link and address subscriptions mark the table
// dirty; one goroutine re-dumps and publishes a new immutable egressTable
// with an atomic pointer store. Lookup and Neighbour only load that
// pointer. An unresolved neighbour is queued (non-blocking, into a bounded
// set: resolveQueue) to a resolver goroutine that asks the kernel to
// resolve it with an RTM_NEWNEIGH carrying NTF_USE (what Cilium does): the
// kernel then sends ARP/ND itself and the neighbour subscription brings the
// answer. Resolution is also started before traffic needs it: Prime (every
// endpoint of a snapshot) and, when a rebuilt table has a route through a
// gateway it did not have before, that gateway.
//
// Routes: the endpoints given to Prime are routed as the kernel routes them
// (every ip rule and table): each rebuild after a route, rule, link or
// address change asks the kernel (RTM_GETROUTE with fibmatch, one request
// per endpoint, on the rebuild goroutine) for the route it would use, and
// Lookup prefers those to the main table. Other destinations (clients,
// for replies) are looked up in the main table. A multipath route keeps
// all its next hops; LookupFlow picks one by flow hash (hash-threshold,
// RFC 2992, as the kernel does), Lookup the first.
//
// Limits: ip rules that select by source address, input interface or
// mark are evaluated for a locally originated packet (no source, no
// mark), not per client; destinations other than endpoints see the main
// table only; routes through interfaces without a MAC are returned with
// a zero MAC (the Dataplane refuses them: DropEgressUnusable).
type Egress struct {
	table   atomic.Pointer[egressTable]
	h       *netlink.Handle
	cfg     EgressConfig
	resolve *resolveQueue
	dirty   chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// rebuilds counts table rebuilds (tests wait for it).
	rebuilds atomic.Uint64
	// resolveRequests counts NTF_USE requests sent.
	resolveRequests atomic.Uint64
	// routesDirty is set when routes, rules, links, addresses or the
	// endpoint set change: the next rebuild asks the kernel for the
	// endpoints' routes again (neighbour events alone do not).
	routesDirty atomic.Bool
	// devGen changes whenever the table's device list does.
	devGen atomic.Uint64
	// epMu guards eps, the endpoint addresses Prime was given (unmapped).
	epMu sync.Mutex
	eps  map[netip.Addr]struct{}
}

type routeEntry struct {
	ifindex  int
	gw, src  netip.Addr
	priority int
	reject   bool // blackhole, unreachable, prohibit
	// paths are the next hops of a multipath (ECMP) route, nil otherwise;
	// ifindex and gw are then paths[0]'s.
	paths []nextHopPath
}

// nextHopPath is one next hop of a multipath route.
type nextHopPath struct {
	ifindex int
	gw      netip.Addr
}

// v6key is a masked IPv6 prefix.
type v6key struct {
	hi, lo uint64
	bits   uint8
}

// routeTable is a longest-prefix-match table: one hash map probe per
// distinct prefix length present, longest first. IPv4 keys pack the masked
// address and the length into a uint64 (the runtime's fast 64-bit map path).
type routeTable struct {
	lens []int // distinct prefix lengths, longest first
	v4   map[uint64]routeEntry
	v6   map[v6key]routeEntry
}

func v4key(a uint32, bits int) uint64 {
	return uint64(a&^(^uint32(0)>>bits))<<8 | uint64(bits) // bits == 32: shift gives 0, no mask
}

func v6mask(hi, lo uint64, bits int) v6key {
	if bits >= 64 {
		return v6key{hi, lo &^ (^uint64(0) >> (bits - 64)), uint8(bits)}
	}
	return v6key{hi &^ (^uint64(0) >> bits), 0, uint8(bits)}
}

// add inserts p unless a route with a lower priority value exists.
func (rt *routeTable) add(p netip.Prefix, r routeEntry) {
	if rt.v4 == nil {
		rt.v4 = make(map[uint64]routeEntry)
		rt.v6 = make(map[v6key]routeEntry)
	}
	a := p.Addr().Unmap()
	bits := p.Bits()
	if a.Is4() {
		b := a.As4()
		k := v4key(binary.BigEndian.Uint32(b[:]), bits)
		if old, ok := rt.v4[k]; ok && old.priority <= r.priority {
			return
		}
		rt.v4[k] = r
	} else {
		b := a.As16()
		k := v6mask(binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), bits)
		if old, ok := rt.v6[k]; ok && old.priority <= r.priority {
			return
		}
		rt.v6[k] = r
	}
	if !slices.Contains(rt.lens, bits) {
		rt.lens = append(rt.lens, bits)
		slices.Sort(rt.lens)
		slices.Reverse(rt.lens)
	}
}

// lookup returns the longest-prefix match for a (of the table's family).
func (rt *routeTable) lookup(a netip.Addr) (routeEntry, bool) {
	if a.Is4() {
		b := a.As4()
		v := binary.BigEndian.Uint32(b[:])
		for _, l := range rt.lens {
			if r, ok := rt.v4[v4key(v, l)]; ok {
				return r, true
			}
		}
		return routeEntry{}, false
	}
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	for _, l := range rt.lens {
		if r, ok := rt.v6[v6mask(hi, lo, l)]; ok {
			return r, true
		}
	}
	return routeEntry{}, false
}

type linkInfo struct {
	mac    [6]byte
	mtu    int
	v4, v6 netip.Addr
	// addrs are the link's global unicast addresses, sorted.
	addrs  []netip.Addr
	name   string
	kind   DeviceKind
	master int // bridge (or other master) ifindex, 0 when none
	up     bool
}

// egressTable is immutable once published.
type egressTable struct {
	v4, v6 routeTable
	neigh  map[neighKey][6]byte
	links  map[int]linkInfo
	// gateways are the next hops of the routes through a router.
	gateways map[neighKey]struct{}
	// local is every address of the namespace, unmapped, sorted.
	local []netip.Addr
	// endpoints are the kernel's routes to the primed endpoint addresses
	// (RTM_GETROUTE with fibmatch: every ip rule and table the kernel
	// consults), keyed by the 16-byte address; Lookup prefers them to
	// the main table.
	endpoints map[[16]byte]routeEntry
	// devices are the devices the endpoints are reached through, and the
	// ports of those that are bridges (their replies arrive there).
	devices []Device
}

// NewEgress dumps the current routes, neighbours, links and addresses of the
// calling thread's network namespace, subscribes to their changes and
// returns a ready Egress. Close stops it.
func NewEgress(cfg EgressConfig) (*Egress, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ResolveInterval == 0 {
		cfg.ResolveInterval = time.Second
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("egress netlink handle: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Egress{h: h, cfg: cfg, resolve: newResolveQueue(maxPendingResolves), dirty: make(chan struct{}, 1), cancel: cancel,
		eps: make(map[netip.Addr]struct{})}
	e.routesDirty.Store(true)
	fail := func(err error) (*Egress, error) {
		cancel()
		e.wg.Wait()
		h.Close()
		return nil, err
	}
	routes := make(chan netlink.RouteUpdate, 256)
	neighs := make(chan netlink.NeighUpdate, 1024)
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	errCb := func(err error) {
		if ctx.Err() != nil {
			return // closing
		}
		e.routesDirty.Store(true)
		e.markDirty()
		cfg.Logger.Warn("egress netlink subscription", "err", err)
	}
	done := ctx.Done()
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{ErrorCallback: errCb}); err != nil {
		return fail(fmt.Errorf("subscribe routes: %w", err))
	}
	if err := netlink.NeighSubscribeWithOptions(neighs, done, netlink.NeighSubscribeOptions{ErrorCallback: errCb}); err != nil {
		return fail(fmt.Errorf("subscribe neighbours: %w", err))
	}
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: errCb}); err != nil {
		return fail(fmt.Errorf("subscribe links: %w", err))
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: errCb}); err != nil {
		return fail(fmt.Errorf("subscribe addresses: %w", err))
	}
	rules, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE)
	if err != nil {
		return fail(fmt.Errorf("subscribe rules: %w", err))
	}
	t, err := e.build(nil)
	if err != nil {
		rules.Close()
		return fail(err)
	}
	e.table.Store(t)
	e.rebuilds.Add(1)
	e.devGen.Add(1)
	e.primeGateways(nil, t)

	e.wg.Add(4)
	go func() {
		defer e.wg.Done()
		defer rules.Close()
		// vishvananda/netlink has no rule subscription: read the groups
		// with a timeout so Close is noticed.
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		if err := rules.SetReceiveTimeout(&tv); err != nil {
			cfg.Logger.Warn("egress rule subscription", "err", err)
			return
		}
		for ctx.Err() == nil {
			msgs, _, err := rules.Receive()
			if err == nil && len(msgs) > 0 {
				e.routesDirty.Store(true)
				e.markDirty()
			}
		}
	}()
	go func() {
		defer e.wg.Done()
		for {
			select {
			case <-done:
				return
			case _, ok := <-routes:
				if !ok {
					routes = nil
				}
				e.routesDirty.Store(true)
			case _, ok := <-neighs:
				if !ok {
					neighs = nil
				}
			case _, ok := <-links:
				if !ok {
					links = nil
				}
				e.routesDirty.Store(true)
			case _, ok := <-addrs:
				if !ok {
					addrs = nil
				}
				e.routesDirty.Store(true)
			}
			e.markDirty()
		}
	}()
	go func() {
		defer e.wg.Done()
		for {
			select {
			case <-done:
				return
			case <-e.dirty:
			}
			t, err := e.build(e.table.Load())
			if err != nil {
				e.routesDirty.Store(true)
				cfg.Logger.Warn("egress table rebuild", "err", err)
				continue
			}
			old := e.table.Swap(t)
			e.rebuilds.Add(1)
			if !slices.Equal(old.devices, t.devices) {
				e.devGen.Add(1)
			}
			e.primeGateways(old, t)
		}
	}()
	go func() {
		defer e.wg.Done()
		e.resolver(done)
	}()
	return e, nil
}

func (e *Egress) markDirty() {
	select {
	case e.dirty <- struct{}{}:
	default:
	}
}

// LocalAddrs returns every address of the node (all interfaces of the
// namespace) as of the last netlink update, sorted; the caller must not
// modify the slice. The generation changes whenever the tables are rebuilt,
// so a caller polling for address changes compares it first.
func (e *Egress) LocalAddrs() (addrs []netip.Addr, generation uint64) {
	gen := e.rebuilds.Load()
	return e.table.Load().local, gen
}

// IfaceAddrs returns the global unicast addresses of interface ifindex of
// src's family, src included when it is one (SNATAddrSource). The slice is
// part of the published table: it must not be modified.
func (e *Egress) IfaceAddrs(ifindex int, src netip.Addr) []netip.Addr {
	addrs := e.table.Load().links[ifindex].addrs
	// Sorted: IPv4 addresses come before IPv6 ones.
	split := 0
	for split < len(addrs) && addrs[split].Is4() {
		split++
	}
	if src.Is4() {
		return addrs[:split]
	}
	return addrs[split:]
}

// Close stops the subscriptions and goroutines.
func (e *Egress) Close() error {
	e.cancel()
	e.wg.Wait()
	e.h.Close()
	return nil
}

// Lookup returns the egress of a packet to dst. It allocates nothing and
// makes no syscall; when the next hop's MAC is unknown it queues a
// resolution request and returns LookupUnresolved with the rest of Hop
// filled in.
func (e *Egress) Lookup(dst netip.Addr) (Hop, LookupStatus) {
	return e.LookupFlow(dst, 0)
}

// LookupFlow implements FlowNextHopper: Lookup, with the next hop of a
// multipath route chosen by flowHash.
func (e *Egress) LookupFlow(dst netip.Addr, flowHash uint64) (Hop, LookupStatus) {
	t := e.table.Load()
	dst = dst.Unmap()
	r, found := t.route(dst)
	if !found || r.reject {
		return Hop{}, LookupNoRoute
	}
	if n := len(r.paths); n > 1 {
		// Hash-threshold (RFC 2992): n equal regions of the hash space.
		p := r.paths[(flowHash>>32)*uint64(n)>>32]
		r.ifindex, r.gw = p.ifindex, p.gw
	}
	li := t.links[r.ifindex]
	h := Hop{Ifindex: r.ifindex, SrcMAC: li.mac, Src: r.src, Gateway: r.gw, MTU: li.mtu, Kind: li.kind, Paths: max(len(r.paths), 1)}
	if !h.Src.IsValid() {
		if dst.Is4() {
			h.Src = li.v4
		} else {
			h.Src = li.v6
		}
	}
	nh := dst
	if r.gw.IsValid() {
		nh = r.gw
	}
	k := makeNeighKey(r.ifindex, nh)
	mac, ok := t.neigh[k]
	if !ok {
		e.resolve.add(k)
		return h, LookupUnresolved
	}
	h.DstMAC = mac
	return h, LookupOK
}

// nextHop returns the neighbour a packet to dst (unmapped) leaves for, and
// whether it is resolved in t; ok is false without a usable route.
func (t *egressTable) nextHop(dst netip.Addr) (k neighKey, resolved, ok bool) {
	r, found := t.route(dst)
	if !found || r.reject {
		return neighKey{}, false, false
	}
	nh := dst
	if r.gw.IsValid() {
		nh = r.gw
	}
	k = makeNeighKey(r.ifindex, nh)
	_, resolved = t.neigh[k]
	return k, resolved, true
}

// route returns the route to dst (unmapped): the kernel's answer for an
// endpoint, else the main table's longest match.
func (t *egressTable) route(dst netip.Addr) (routeEntry, bool) {
	if len(t.endpoints) > 0 {
		if r, ok := t.endpoints[dst.As16()]; ok {
			return r, true
		}
	}
	if dst.Is4() {
		return t.v4.lookup(dst)
	}
	return t.v6.lookup(dst)
}

// Devices implements DeviceSource: the devices the endpoints' routes go
// through, and the ports of those that are bridges.
func (e *Egress) Devices() ([]Device, uint64) {
	gen := e.devGen.Load()
	return e.table.Load().devices, gen
}

// Prime implements NextHopPrimer: it queues a resolution request for the
// next hop of every destination whose neighbour is not resolved. It takes
// the queue's lock once, makes no syscall and never blocks on the resolver;
// the resolver sends the requests (rate-limited per neighbour by
// ResolveInterval). Requests beyond the queue's bound (4096 neighbours)
// are dropped and counted; traffic queues them again.
func (e *Egress) Prime(dsts []netip.Addr) {
	e.setEndpoints(dsts)
	t := e.table.Load()
	q := e.resolve
	queued := false
	q.mu.Lock()
	for _, d := range dsts {
		if k, resolved, ok := t.nextHop(d.Unmap()); ok && !resolved {
			q.addLocked(k)
			queued = true
		}
	}
	q.mu.Unlock()
	if queued {
		q.signal()
	}
}

// setEndpoints records the endpoint set whose routes the rebuilds ask the
// kernel for; a change schedules a rebuild.
func (e *Egress) setEndpoints(dsts []netip.Addr) {
	e.epMu.Lock()
	if e.eps == nil {
		e.eps = make(map[netip.Addr]struct{})
	}
	changed := len(dsts) != len(e.eps)
	if !changed {
		for _, d := range dsts {
			if _, ok := e.eps[d.Unmap()]; !ok {
				changed = true
				break
			}
		}
	}
	if changed {
		clear(e.eps)
		for _, d := range dsts {
			e.eps[d.Unmap()] = struct{}{}
		}
	}
	e.epMu.Unlock()
	if changed {
		e.routesDirty.Store(true)
		e.markDirty()
	}
}

// primeGateways queues a resolution request for every unresolved gateway of
// t that old did not have (every one when old is nil): a router the node
// starts using is resolved before the first packet needs it. A gateway that
// stays unresolved is not asked for again at every rebuild (each answer or
// failure of the kernel's probes is a neighbour event, hence a rebuild);
// traffic through it asks again.
func (e *Egress) primeGateways(old, t *egressTable) {
	queued := false
	q := e.resolve
	q.mu.Lock()
	for k := range t.gateways {
		if _, ok := t.neigh[k]; ok {
			continue
		}
		if old != nil {
			if _, had := old.gateways[k]; had {
				continue
			}
		}
		q.addLocked(k)
		queued = true
	}
	q.mu.Unlock()
	if queued {
		q.signal()
	}
}

// Neighbour implements NeighbourTable from the current table: no syscall,
// no allocation. It does not ask for resolution (Lookup and Prime do).
func (e *Egress) Neighbour(ifindex int, addr netip.Addr) ([6]byte, bool) {
	mac, ok := e.table.Load().neigh[makeNeighKey(ifindex, addr.Unmap())]
	return mac, ok
}

// resolver sends rate-limited NTF_USE requests for the queued neighbours: at
// most one per neighbour per ResolveInterval. A burst (every endpoint of a
// snapshot) costs one netlink request each, on this goroutine only.
func (e *Egress) resolver(done <-chan struct{}) {
	last := make(map[neighKey]time.Time)
	var keys []neighKey
	for {
		select {
		case <-done:
			return
		case <-e.resolve.wake:
		}
		keys = e.resolve.take(keys)
		now := e.cfg.Now()
		if len(last) > maxPendingResolves {
			for kk, t := range last {
				if now.Sub(t) >= e.cfg.ResolveInterval {
					delete(last, kk)
				}
			}
		}
		for _, k := range keys {
			if t, ok := last[k]; ok && now.Sub(t) < e.cfg.ResolveInterval {
				continue
			}
			last[k] = now
			e.requestResolution(k)
		}
	}
}

// requestResolution sends RTM_NEWNEIGH with NTF_USE: the kernel creates the
// entry if needed and starts resolving it (neigh_event_send in Linux's
// net/core/neighbour.c), as if it had a packet for it.
func (e *Egress) requestResolution(k neighKey) {
	addr := k.Addr()
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	err := e.h.NeighSet(&netlink.Neigh{LinkIndex: int(k.ifindex), Family: fam, IP: net.IP(addr.AsSlice()), Flags: netlink.NTF_USE})
	e.resolveRequests.Add(1)
	if err != nil {
		e.cfg.Logger.Debug("neighbour resolution request", "ifindex", k.ifindex, "addr", addr, "err", err)
	}
}

const usableNeigh = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
	netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// build dumps the kernel's state into a new table. The endpoints' routes
// are asked for again when routesDirty is set (or there is no old table),
// else taken from old.
func (e *Egress) build(old *egressTable) (*egressTable, error) {
	t := &egressTable{neigh: make(map[neighKey][6]byte), links: make(map[int]linkInfo), gateways: make(map[neighKey]struct{})}
	ls, err := e.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range ls {
		a := l.Attrs()
		li := linkInfo{mtu: a.MTU, name: a.Name, kind: linkKind(l), master: a.MasterIndex, up: a.Flags&net.FlagUp != 0}
		copy(li.mac[:], a.HardwareAddr)
		t.links[a.Index] = li
	}
	// One dump for every interface's addresses.
	as, err := e.h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, ad := range as {
		li, ok := t.links[ad.LinkIndex]
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		t.local = append(t.local, ip)
		if ip.IsGlobalUnicast() {
			li.addrs = append(li.addrs, ip)
			slices.SortFunc(li.addrs, netip.Addr.Compare)
		}
		// Prefer global addresses; take a link-local one only when there
		// is nothing else.
		if ip.Is4() && (!li.v4.IsValid() || li.v4.IsLinkLocalUnicast()) {
			li.v4 = ip
		} else if ip.Is6() && (!li.v6.IsValid() || li.v6.IsLinkLocalUnicast()) {
			li.v6 = ip
		}
		t.links[ad.LinkIndex] = li
	}
	slices.SortFunc(t.local, netip.Addr.Compare)
	t.local = slices.Compact(t.local)
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rt := &t.v4
		if fam == netlink.FAMILY_V6 {
			rt = &t.v6
		}
		rs, err := e.h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		for _, r := range rs {
			var p netip.Prefix
			if r.Dst == nil {
				p = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
				if fam == netlink.FAMILY_V6 {
					p = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
				}
			} else {
				ip, ok := netip.AddrFromSlice(r.Dst.IP)
				if !ok {
					continue
				}
				ones, _ := r.Dst.Mask.Size()
				p = netip.PrefixFrom(ip.Unmap(), ones).Masked()
			}
			re, ok := makeRouteEntry(&r)
			if !ok {
				continue
			}
			t.addGateways(re)
			rt.add(p, re)
		}
	}
	if e.routesDirty.Swap(false) || old == nil {
		t.endpoints = e.endpointRoutes()
	} else {
		t.endpoints = old.endpoints
	}
	for _, re := range t.endpoints {
		t.addGateways(re)
	}
	t.devices = t.reachDevices()
	ns, err := e.h.NeighList(0, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list neighbours: %w", err)
	}
	for _, n := range ns {
		if n.State&usableNeigh == 0 || len(n.HardwareAddr) != 6 {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		t.neigh[makeNeighKey(n.LinkIndex, ip.Unmap())] = [6]byte(n.HardwareAddr)
	}
	return t, nil
}

// makeRouteEntry converts a unicast or reject route; ok is false for the
// other types (local, broadcast, multicast...).
func makeRouteEntry(r *netlink.Route) (re routeEntry, ok bool) {
	re = routeEntry{ifindex: r.LinkIndex, priority: r.Priority}
	switch r.Type {
	case unix.RTN_BLACKHOLE, unix.RTN_UNREACHABLE, unix.RTN_PROHIBIT:
		re.reject = true
	case unix.RTN_UNICAST:
	default:
		return re, false
	}
	if g, ok := netip.AddrFromSlice(r.Gw); ok {
		re.gw = g.Unmap()
	}
	if len(r.MultiPath) > 0 {
		for _, nh := range r.MultiPath {
			p := nextHopPath{ifindex: nh.LinkIndex}
			if g, ok := netip.AddrFromSlice(nh.Gw); ok {
				p.gw = g.Unmap()
			}
			re.paths = append(re.paths, p)
		}
		re.ifindex, re.gw = re.paths[0].ifindex, re.paths[0].gw
	}
	if s, ok := netip.AddrFromSlice(r.Src); ok {
		re.src = s.Unmap()
	}
	return re, true
}

// addGateways records the routers of re (every next hop of a multipath
// route) for primeGateways.
func (t *egressTable) addGateways(re routeEntry) {
	if re.reject {
		return
	}
	if re.gw.IsValid() {
		t.gateways[makeNeighKey(re.ifindex, re.gw)] = struct{}{}
	}
	for _, p := range re.paths {
		if p.gw.IsValid() {
			t.gateways[makeNeighKey(p.ifindex, p.gw)] = struct{}{}
		}
	}
}

// endpointRoutes asks the kernel for the route of every primed endpoint:
// RTM_GETROUTE with RTM_F_FIB_MATCH answers with the route (every next hop
// of a multipath one) the kernel's rules and tables select. An endpoint
// that is a local address, or whose lookup fails, falls back to the main
// table in Lookup.
func (e *Egress) endpointRoutes() map[[16]byte]routeEntry {
	e.epMu.Lock()
	eps := make([]netip.Addr, 0, len(e.eps))
	for a := range e.eps {
		eps = append(eps, a)
	}
	e.epMu.Unlock()
	out := make(map[[16]byte]routeEntry, len(eps))
	for _, a := range eps {
		rs, err := e.h.RouteGetWithOptions(net.IP(a.AsSlice()), &netlink.RouteGetOptions{FIBMatch: true})
		if err != nil {
			if errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EINVAL) {
				out[a.As16()] = routeEntry{reject: true}
			}
			continue
		}
		if len(rs) == 0 {
			continue
		}
		re, ok := makeRouteEntry(&rs[0])
		if !ok {
			continue
		}
		if !re.src.IsValid() {
			// fibmatch reports the route, not the source the kernel would
			// pick: ask for the resolved route's preferred source too.
			if rr, err := e.h.RouteGet(net.IP(a.AsSlice())); err == nil && len(rr) > 0 {
				if s, ok := netip.AddrFromSlice(rr[0].Src); ok && rr[0].LinkIndex == re.ifindex {
					re.src = s.Unmap()
				}
			}
		}
		out[a.As16()] = re
	}
	return out
}

// linkKind classifies a link for Device.Kind.
func linkKind(l netlink.Link) DeviceKind {
	a := l.Attrs()
	if a.EncapType != "" && a.EncapType != "ether" {
		return DeviceL3
	}
	if len(a.HardwareAddr) != 6 {
		return DeviceL3
	}
	switch l.Type() {
	case "veth":
		return DeviceVeth
	case "bridge":
		return DeviceBridge
	case "vxlan":
		return DeviceVXLAN
	case "geneve":
		return DeviceGeneve
	}
	return DeviceOther
}

// reachDevices lists the devices the endpoints' routes leave through and
// the ports of those that are bridges, sorted by ifindex.
func (t *egressTable) reachDevices() []Device {
	why := make(map[int]string)
	count := make(map[int]int)
	keys := make([][16]byte, 0, len(t.endpoints))
	for k := range t.endpoints {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [16]byte) int { return netip.AddrFrom16(a).Compare(netip.AddrFrom16(b)) })
	use := func(ifindex int, ep netip.Addr) {
		if _, ok := t.links[ifindex]; !ok || ifindex == 0 {
			return
		}
		if _, ok := why[ifindex]; !ok {
			why[ifindex] = "route to " + ep.String()
		}
		count[ifindex]++
	}
	for _, k := range keys {
		re := t.endpoints[k]
		if re.reject {
			continue
		}
		ep := netip.AddrFrom16(k).Unmap()
		if len(re.paths) == 0 {
			use(re.ifindex, ep)
		}
		for _, p := range re.paths {
			use(p.ifindex, ep)
		}
	}
	var out []Device
	for ifindex, w := range why {
		li := t.links[ifindex]
		if n := count[ifindex]; n > 1 {
			w += fmt.Sprintf(" and %d more endpoints", n-1)
		}
		out = append(out, Device{Ifindex: ifindex, Name: li.name, Kind: li.kind, MTU: li.mtu, Why: w, TxOnly: li.kind == DeviceBridge})
		if li.kind != DeviceBridge {
			continue
		}
		for pi, pl := range t.links {
			if pl.master == ifindex {
				out = append(out, Device{Ifindex: pi, Name: pl.name, Kind: pl.kind, MTU: pl.mtu, Why: "port of bridge " + li.name})
			}
		}
	}
	slices.SortFunc(out, func(a, b Device) int { return a.Ifindex - b.Ifindex })
	out = slices.CompactFunc(out, func(a, b Device) bool { return a.Ifindex == b.Ifindex })
	return out
}
