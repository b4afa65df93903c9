package dataplane

import (
	"context"
	"encoding/binary"
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
// Limits: only the main table (no policy routing); for a multipath route
// the first next hop is used; routes through interfaces without a MAC are
// returned with a zero MAC.
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
}

type routeEntry struct {
	ifindex  int
	gw, src  netip.Addr
	priority int
	reject   bool // blackhole, unreachable, prohibit
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
	e := &Egress{h: h, cfg: cfg, resolve: newResolveQueue(maxPendingResolves), dirty: make(chan struct{}, 1), cancel: cancel}
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
	t, err := e.build()
	if err != nil {
		return fail(err)
	}
	e.table.Store(t)
	e.rebuilds.Add(1)
	e.primeGateways(nil, t)

	e.wg.Add(3)
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
			case _, ok := <-neighs:
				if !ok {
					neighs = nil
				}
			case _, ok := <-links:
				if !ok {
					links = nil
				}
			case _, ok := <-addrs:
				if !ok {
					addrs = nil
				}
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
			t, err := e.build()
			if err != nil {
				cfg.Logger.Warn("egress table rebuild", "err", err)
				continue
			}
			old := e.table.Swap(t)
			e.rebuilds.Add(1)
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
	t := e.table.Load()
	dst = dst.Unmap()
	rt := &t.v4
	if dst.Is6() {
		rt = &t.v6
	}
	r, found := rt.lookup(dst)
	if !found || r.reject {
		return Hop{}, LookupNoRoute
	}
	li := t.links[r.ifindex]
	h := Hop{Ifindex: r.ifindex, SrcMAC: li.mac, Src: r.src, Gateway: r.gw, MTU: li.mtu}
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
	rt := &t.v4
	if dst.Is6() {
		rt = &t.v6
	}
	r, found := rt.lookup(dst)
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

// Prime implements NextHopPrimer: it queues a resolution request for the
// next hop of every destination whose neighbour is not resolved. It takes
// the queue's lock once, makes no syscall and never blocks on the resolver;
// the resolver sends the requests (rate-limited per neighbour by
// ResolveInterval). Requests beyond the queue's bound (4096 neighbours)
// are dropped and counted; traffic queues them again.
func (e *Egress) Prime(dsts []netip.Addr) {
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

// build dumps the kernel's state into a new table.
func (e *Egress) build() (*egressTable, error) {
	t := &egressTable{neigh: make(map[neighKey][6]byte), links: make(map[int]linkInfo), gateways: make(map[neighKey]struct{})}
	ls, err := e.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range ls {
		a := l.Attrs()
		li := linkInfo{mtu: a.MTU}
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
			re := routeEntry{ifindex: r.LinkIndex, priority: r.Priority}
			switch r.Type {
			case unix.RTN_BLACKHOLE, unix.RTN_UNREACHABLE, unix.RTN_PROHIBIT:
				re.reject = true
			case unix.RTN_UNICAST:
			default:
				continue
			}
			gw := r.Gw
			if len(r.MultiPath) > 0 {
				re.ifindex = r.MultiPath[0].LinkIndex
				gw = r.MultiPath[0].Gw
			}
			if g, ok := netip.AddrFromSlice(gw); ok {
				re.gw = g.Unmap()
				if !re.reject {
					t.gateways[makeNeighKey(re.ifindex, re.gw)] = struct{}{}
				}
			}
			if s, ok := netip.AddrFromSlice(r.Src); ok {
				re.src = s.Unmap()
			}
			rt.add(p, re)
		}
	}
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
