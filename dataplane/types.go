package dataplane

import (
	"errors"
	"net/netip"
)

// Sentinel errors returned (wrapped) by this package.
var (
	// ErrNotSupported is returned on operating systems without AF_XDP.
	ErrNotSupported = errors.New("dataplane: AF_XDP is not supported on this OS")
	// ErrBadConfig is returned for an invalid Config or ClassifierConfig.
	ErrBadConfig = errors.New("invalid dataplane config")
	// ErrMTUTooLarge is returned when an interface's MTU does not fit the
	// UMEM frame size.
	ErrMTUTooLarge = errors.New("MTU does not fit the UMEM frame size")
	// ErrAttach is returned when the classifier attaches in no mode allowed.
	ErrAttach = errors.New("cannot attach XDP program")
	// ErrTooManyRules is returned by Classifier.Update when a rule set does
	// not fit its map.
	ErrTooManyRules = errors.New("rules exceed classifier map capacity")
	// ErrClosed is returned when a closed Dataplane is used.
	ErrClosed = errors.New("dataplane closed")
	// ErrRunning is returned when Run is called twice.
	ErrRunning = errors.New("dataplane already running")
	// ErrSocketBroken is returned by Run when a socket reports an error
	// (e.g. its interface was deleted).
	ErrSocketBroken = errors.New("AF_XDP socket error")
	// ErrTxFrameLength is returned by TxSocket.Submit for a length outside
	// [1, FrameSize()].
	ErrTxFrameLength = errors.New("dataplane: tx frame length out of range")
	// ErrTxSocketClosed is returned by TxSocket.Submit after Close.
	ErrTxSocketClosed = errors.New("dataplane: tx socket closed")
)

// L4Addr is {address, port, IP protocol}: a frontend (ClusterIP, external IP,
// load-balancer IP with the service port) or an endpoint.
type L4Addr struct {
	Addr  netip.Addr
	Port  uint16
	Proto uint8
}

// PortProto is a NodePort: a port and an IP protocol.
type PortProto struct {
	Port  uint16
	Proto uint8
}

// Rules is the plain-data content of the classifier's maps: what the XDP
// program redirects to the AF_XDP sockets. Everything not matched is passed
// to the kernel. The integrator converts the control-plane snapshot into it.
//
// Protocols are TCP (6), UDP (17) or SCTP (132). IPv4-mapped IPv6 addresses
// are unmapped, so either spelling of an IPv4 address works.
type Rules struct {
	// Frontends are matched on the destination of a packet. Their
	// addresses alone also match later IPv4/IPv6 fragments (which carry no
	// ports), so frontend addresses should not be node addresses.
	Frontends []L4Addr
	// NodePorts are matched on the destination port when the destination
	// address is one of NodePortAddrs.
	NodePorts []PortProto
	// NodePortAddrs are the node addresses NodePorts are served on.
	NodePortAddrs []netip.Addr
	// Endpoints are matched on the source of a packet (replies from the
	// endpoints of translated flows); their addresses alone match later
	// fragments.
	Endpoints []L4Addr
	// SNATAddrs are the node addresses used for masquerade; a packet to one
	// of them with a destination port in [SNATPortMin, SNATPortMax] is a
	// reply to a masqueraded flow. The range must not overlap the kernel's
	// net.ipv4.ip_local_port_range on those addresses, or replies to the
	// node's own connections are taken away from the kernel.
	SNATAddrs []netip.Addr
	// SNATPortMin and SNATPortMax bound the SNAT port range, inclusive.
	// SNATPortMax == 0 disables SNAT matching.
	SNATPortMin, SNATPortMax uint16
}

// Verdict is what the dataplane does with a frame after Process.
//
// There is no "pass to the kernel": once the classifier has redirected a
// frame to an AF_XDP socket the kernel has given it up. Anything the kernel
// must see is passed by the classifier (see Rules).
type Verdict uint8

// Verdicts.
const (
	// VerdictDrop returns the frame to the fill ring and counts
	// Frame.Reason. It is the zero value: a frame the Processor forgets is
	// dropped.
	VerdictDrop Verdict = iota
	// VerdictTX transmits Frame.Data() on Frame.Ifindex: in place on the
	// receiving socket when Ifindex is 0 or the receiving interface, else
	// copied into the UMEM of a socket of that (managed) interface.
	VerdictTX
)

// DropReason says why a frame was dropped; Stats count drops per reason.
type DropReason uint8

// Drop reasons of the I/O layer and the Forwarder. The translation pipeline
// defines its own from FirstPipelineDropReason up to NumDropReasons-1 and
// names them with RegisterDropReason.
const (
	// DropUnspecified: the Processor returned VerdictDrop without a reason.
	DropUnspecified DropReason = iota
	// DropBadFrame: the Processor left Off/Len outside the UMEM chunk.
	DropBadFrame
	// DropEgressNotManaged: VerdictTX to an interface with no socket.
	DropEgressNotManaged
	// DropTxRingFull: the egress socket's TX ring had no free slot.
	DropTxRingFull
	// DropNoTxFrame: the egress socket had no free UMEM frame for the copy.
	DropNoTxFrame
	// DropTooLong: the frame does not fit the egress socket's frame size.
	DropTooLong
	// DropNotIP: the Forwarder got a frame that is not IPv4 or IPv6
	// (VLAN-tagged frames included).
	DropNotIP
	// DropMalformed: truncated or invalid IP header.
	DropMalformed
	// DropTTLExceeded: TTL or hop limit would reach zero.
	DropTTLExceeded
	// DropNoRoute: no route, or an unreachable/blackhole/prohibit route.
	DropNoRoute
	// DropNeighUnresolved: the next hop's MAC is not known yet; resolution
	// has been triggered.
	DropNeighUnresolved

	// FirstPipelineDropReason is the first reason the translation pipeline
	// may define.
	FirstPipelineDropReason DropReason = 32
	// NumDropReasons bounds DropReason: Stats hold one counter per value.
	NumDropReasons = 64
)

var dropReasonNames = [NumDropReasons]string{
	DropUnspecified:      "unspecified",
	DropBadFrame:         "bad_frame",
	DropEgressNotManaged: "egress_not_managed",
	DropTxRingFull:       "tx_ring_full",
	DropNoTxFrame:        "no_tx_frame",
	DropTooLong:          "too_long",
	DropNotIP:            "not_ip",
	DropMalformed:        "malformed",
	DropTTLExceeded:      "ttl_exceeded",
	DropNoRoute:          "no_route",
	DropNeighUnresolved:  "neigh_unresolved",
}

// RegisterDropReason names a pipeline drop reason for String (and metrics).
// It is meant for package init functions; it is not safe for concurrent use
// with String.
func RegisterDropReason(r DropReason, name string) {
	if r < FirstPipelineDropReason || r >= NumDropReasons {
		panic("dataplane: RegisterDropReason outside the pipeline range")
	}
	dropReasonNames[r] = name
}

// String returns the reason's metric label, or "reason_N" when unnamed.
func (r DropReason) String() string {
	if int(r) < len(dropReasonNames) && dropReasonNames[r] != "" {
		return dropReasonNames[r]
	}
	return "reason_" + itoa(int(r))
}

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// Frame is one received frame handed to a Processor.
//
// Buf aliases the frame's UMEM chunk. It, and every slice taken from it, is
// valid only until Process returns: the dataplane then transmits the chunk
// (the kernel reads it asynchronously) or gives it back to the kernel through
// the fill ring, and the kernel overwrites it with a later frame.
type Frame struct {
	// Buf is the whole UMEM chunk (the frame size, e.g. 2048 bytes). The
	// bytes before Off are headroom the Processor may use to prepend
	// headers.
	Buf []byte
	// Off is the offset of the Ethernet header in Buf.
	Off int
	// Len is the frame length from the Ethernet header.
	Len int
	// Verdict is set by the Processor; the zero value drops.
	Verdict Verdict
	// Reason is counted when Verdict is VerdictDrop.
	Reason DropReason
	// Ifindex is the egress interface for VerdictTX; 0 means the receiving
	// interface.
	Ifindex int
}

// Data returns the frame bytes, Buf[Off:Off+Len]. Valid until Process
// returns.
func (f *Frame) Data() []byte { return f.Buf[f.Off : f.Off+f.Len] }

// Drop sets the verdict to drop with reason r.
func (f *Frame) Drop(r DropReason) {
	f.Verdict = VerdictDrop
	f.Reason = r
}

// TX sets the verdict to transmit on ifindex (0: the receiving interface).
func (f *Frame) TX(ifindex int) {
	f.Verdict = VerdictTX
	f.Ifindex = ifindex
}

// Queue identifies the (interface, queue) a batch was received on. It is
// owned by the dataplane and read-only for Processors.
type Queue struct {
	// Index is dense, 0 <= Index < Dataplane.NumQueues(): Processors index
	// per-queue state (scratch buffers, caches) with it.
	Index int
	// Ifindex and Ifname name the receiving interface.
	Ifindex int
	Ifname  string
	// QueueID is the NIC receive queue.
	QueueID int
	// CPU is the CPU the poller is pinned to, or -1.
	CPU int
}

// Processor decides the fate of received frames. Process is called by every
// poller goroutine concurrently, each with its own Queue, with a batch of
// 1..Config.BatchSize frames whose Verdict is VerdictDrop and Reason
// DropUnspecified. It must set each frame's Verdict (and Reason or Ifindex),
// may rewrite frames in place, and may move Off/Len within Buf. It must not
// retain frames or slices of them after it returns, block, or allocate per
// frame.
type Processor interface {
	Process(q *Queue, frames []Frame)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(q *Queue, frames []Frame)

// Process calls f(q, frames).
func (f ProcessorFunc) Process(q *Queue, frames []Frame) { f(q, frames) }

// KernelXSKStats are the kernel's XDP_STATISTICS for one socket.
type KernelXSKStats struct {
	// RxDropped counts frames dropped by the kernel (e.g. too long).
	RxDropped uint64
	// RxInvalidDescs and TxInvalidDescs count invalid descriptors.
	RxInvalidDescs, TxInvalidDescs uint64
	// RxRingFull counts frames dropped because the RX ring was full.
	RxRingFull uint64
	// RxFillRingEmpty counts frames dropped because the fill ring was empty.
	RxFillRingEmpty uint64
	// TxRingEmpty counts times the kernel found the TX ring empty.
	TxRingEmpty uint64
}

// QueueStats is a snapshot of one socket's counters.
type QueueStats struct {
	// Ifname, Ifindex and QueueID identify the socket.
	Ifname  string
	Ifindex int
	QueueID int
	// ZeroCopy is true when the kernel bound the socket in zero-copy mode.
	ZeroCopy bool
	// RxFrames and RxBytes count frames received from the RX ring.
	RxFrames, RxBytes uint64
	// TxFrames and TxBytes count frames this queue's poller put on a TX
	// ring (in place or copied to another interface).
	TxFrames, TxBytes uint64
	// TxCopied counts TxFrames that were copied to another interface.
	TxCopied uint64
	// TxRingFull counts frames not sent because the TX ring was full.
	TxRingFull uint64
	// FillRingEmpty counts batches after which the fill ring could not be
	// topped up because every RX frame was in use (see also
	// Kernel.RxFillRingEmpty).
	FillRingEmpty uint64
	// Wakeups counts sendto/recvfrom kicks (need_wakeup honoured).
	Wakeups uint64
	// Sleeps counts poll(2) calls made when idle.
	Sleeps uint64
	// Drops counts dropped frames by reason.
	Drops [NumDropReasons]uint64
	// Kernel holds the kernel's counters for the socket.
	Kernel KernelXSKStats
}

// AttachMode selects the XDP attach mode.
type AttachMode uint8

// Attach modes.
const (
	// AttachNative attaches in driver mode only.
	AttachNative AttachMode = iota
	// AttachNativeOrGeneric tries driver mode, then generic (SKB) mode.
	AttachNativeOrGeneric
	// AttachGeneric attaches in generic (SKB) mode only.
	AttachGeneric
)

// BindMode selects AF_XDP copy or zero-copy.
type BindMode uint8

// Bind modes.
const (
	// BindAuto lets the kernel use zero-copy when the driver supports it.
	BindAuto BindMode = iota
	// BindCopy forces copy mode.
	BindCopy
	// BindZeroCopy requires zero-copy; binding fails without it.
	BindZeroCopy
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
