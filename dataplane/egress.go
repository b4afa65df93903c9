package dataplane

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// Hop is where a packet to a destination leaves: the interface, its MAC and
// address, and the next hop's MAC.
type Hop struct {
	// Ifindex is the egress interface.
	Ifindex int
	// SrcMAC is the egress interface's MAC, DstMAC the next hop's.
	SrcMAC [6]byte
	DstMAC [6]byte
	// Src is the route's preferred source, else an address of the egress
	// interface of the destination's family (invalid when it has none).
	Src netip.Addr
	// Gateway is the next-hop router, or invalid for a directly connected
	// destination.
	Gateway netip.Addr
	// MTU is the egress interface's MTU.
	MTU int
	// Kind is the egress interface's kind.
	Kind DeviceKind
	// Paths is the number of next hops of the route (above 1: a multipath
	// route, see FlowNextHopper).
	Paths int
}

// NextHop returns the neighbour a packet to dst leaves for: the gateway, or
// dst itself when it is directly connected.
func (h *Hop) NextHop(dst netip.Addr) netip.Addr {
	if h.Gateway.IsValid() {
		return h.Gateway
	}
	return dst.Unmap()
}

// LookupStatus is the outcome of a next-hop lookup.
type LookupStatus uint8

// Lookup outcomes.
const (
	// LookupOK: Hop is complete.
	LookupOK LookupStatus = iota
	// LookupNoRoute: no route, or an unreachable/blackhole/prohibit route.
	LookupNoRoute
	// LookupUnresolved: the route is known but the next hop's MAC is not;
	// kernel resolution has been triggered. Hop has everything but DstMAC.
	LookupUnresolved
)

// NextHopper resolves next hops; *Egress implements it.
type NextHopper interface {
	Lookup(dst netip.Addr) (Hop, LookupStatus)
}

// NextHopPrimer is implemented by a NextHopper that can resolve next hops
// before traffic needs them (*Egress). Prime asks for the next hop of every
// destination in dsts to be resolved; it does not block and makes no
// syscall (requests are queued to a resolver goroutine, which rate-limits
// them); next hops already resolved cost a table lookup.
type NextHopPrimer interface {
	Prime(dsts []netip.Addr)
}

// NeighbourTable answers "what is the MAC of neighbour addr on interface
// ifindex" without a syscall; *Egress implements it. The dataplane asks it
// for the next hops of held frames (VerdictHold). addr is unmapped.
type NeighbourTable interface {
	Neighbour(ifindex int, addr netip.Addr) (mac [6]byte, ok bool)
}

// neighKey is a neighbour: interface and address (IPv4 in its IPv4-mapped
// 16-byte form). Fixed-size and pointer-free, so map hashing is cheap and
// tables of them are not scanned by the garbage collector.
type neighKey struct {
	ifindex int32
	addr    [16]byte
}

func makeNeighKey(ifindex int, a netip.Addr) neighKey {
	return neighKey{ifindex: int32(ifindex), addr: a.As16()}
}

// Addr returns the neighbour's address, unmapped.
func (k neighKey) Addr() netip.Addr { return netip.AddrFrom16(k.addr).Unmap() }

// maxPendingResolves bounds the neighbours waiting for a resolution request.
const maxPendingResolves = 4096

// resolveQueue is the set of neighbours waiting for a resolution request:
// a bounded set rather than a channel, so that a burst (every endpoint of a
// new snapshot, hundreds of new clients at once) is neither lost to a full
// channel nor queued twice for one neighbour.
//
// mu guards pending; wake (capacity 1) tells the resolver goroutine there is
// work; dropped counts requests refused because the set was full.
type resolveQueue struct {
	mu      sync.Mutex
	pending map[neighKey]struct{}
	max     int
	wake    chan struct{}
	dropped atomic.Uint64
}

func newResolveQueue(max int) *resolveQueue {
	// Sized up front: adding up to max keys never allocates (Lookup is on
	// the per-packet path).
	return &resolveQueue{pending: make(map[neighKey]struct{}, max), max: max, wake: make(chan struct{}, 1)}
}

// add queues k unless it is already queued or the set is full. It never
// blocks on the resolver and allocates nothing.
func (q *resolveQueue) add(k neighKey) {
	q.mu.Lock()
	q.addLocked(k)
	q.mu.Unlock()
	q.signal()
}

func (q *resolveQueue) addLocked(k neighKey) {
	if _, ok := q.pending[k]; ok {
		return
	}
	if len(q.pending) >= q.max {
		q.dropped.Add(1)
		return
	}
	q.pending[k] = struct{}{}
}

func (q *resolveQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take moves every queued key into buf[:0] and returns it.
func (q *resolveQueue) take(buf []neighKey) []neighKey {
	buf = buf[:0]
	q.mu.Lock()
	for k := range q.pending {
		buf = append(buf, k)
	}
	clear(q.pending)
	q.mu.Unlock()
	return buf
}

// len returns the number of queued keys.
func (q *resolveQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// FlowNextHopper is a NextHopper that spreads flows over the next hops of
// multipath (ECMP) routes: LookupFlow picks the next hop from flowHash,
// so every packet of a flow (one hash) leaves through one next hop.
// *Egress implements it. A Hop whose Paths is above 1 came from a
// multipath route: callers that know the flow ask LookupFlow again.
type FlowNextHopper interface {
	NextHopper
	LookupFlow(dst netip.Addr, flowHash uint64) (Hop, LookupStatus)
}

// SNATAddrSource is implemented by a NextHopper that knows every address
// of each interface (*Egress): IfaceAddrs returns the global unicast
// addresses of interface ifindex of src's family (src among them when it
// is one), the SNAT addresses a masquerading dataplane may fall back to
// when src's ports run out. The slice is shared and immutable: callers
// must not modify it. It allocates nothing.
type SNATAddrSource interface {
	IfaceAddrs(ifindex int, src netip.Addr) []netip.Addr
}

// DeviceKind is what kind of device a frame leaves through, for metrics
// and inspect. It decides how the device is used (doc.go, "Reach").
type DeviceKind uint8

// Device kinds.
const (
	// DeviceOther: an Ethernet device of no kind below (a NIC, macvlan...).
	DeviceOther DeviceKind = iota
	// DeviceVeth: a veth (a pod's host end).
	DeviceVeth
	// DeviceBridge: a Linux bridge (cni0); frames sent on it are bridged
	// to the port that has the destination MAC.
	DeviceBridge
	// DeviceVXLAN and DeviceGeneve: overlay devices; the kernel
	// encapsulates what is sent on them.
	DeviceVXLAN
	DeviceGeneve
	// DeviceL3: a device without Ethernet (IPIP, WireGuard, TUN): not
	// usable by an AF_XDP dataplane that writes Ethernet frames.
	DeviceL3
	// NumDeviceKinds bounds DeviceKind.
	NumDeviceKinds
)

var deviceKindNames = [NumDeviceKinds]string{"other", "veth", "bridge", "vxlan", "geneve", "l3"}

// String returns the kind's metric label.
func (k DeviceKind) String() string {
	if k < NumDeviceKinds {
		return deviceKindNames[k]
	}
	return "unknown"
}

// Device is a device the node's routing reaches endpoints through (or a
// port of such a bridge), which the Dataplane attaches to on demand.
type Device struct {
	Ifindex int
	Name    string
	Kind    DeviceKind
	// MTU is the device's MTU.
	MTU int
	// Why says why it is used: "route to 198.19.20.11", "port of cni0".
	Why string
	// TxOnly: the device needs a socket to send on but no classifier
	// (a bridge: replies arrive on its ports, which have one).
	TxOnly bool
}

// DeviceSource tells a Dataplane which devices to attach to; *Egress
// implements it. Devices returns the current list (sorted by ifindex; the
// caller must not modify it) and a generation that changes with it.
type DeviceSource interface {
	Devices() (devs []Device, generation uint64)
}
