package dataplane

// KernelXSKStats are the kernel's XDP_STATISTICS for one socket: what the
// kernel lost on its side of the rings, which xdpgate's own counters cannot
// see.
type KernelXSKStats struct {
	// RxDropped counts frames the kernel dropped for this socket: for lack
	// of a free UMEM frame (those are also in RxFillRingEmpty) or too long
	// for one. Frames lost to a full RX ring are not in it (RxRingFull).
	RxDropped uint64
	// RxInvalidDescs and TxInvalidDescs count invalid descriptors.
	RxInvalidDescs, TxInvalidDescs uint64
	// RxRingFull counts frames dropped because the RX ring was full: the
	// poller did not keep up.
	RxRingFull uint64
	// RxFillRingEmpty counts the times the kernel found the fill ring
	// empty when it needed a frame to receive into: in copy mode each is a
	// frame dropped (and counted in RxDropped).
	RxFillRingEmpty uint64
	// TxRingEmpty counts times the kernel found the TX ring empty when
	// asked to send.
	TxRingEmpty uint64
	// RingCounters is false when the kernel (before 5.9) reports only
	// RxDropped and the invalid descriptors; the other fields are then 0.
	RingCounters bool
}

// add adds o's counters to k.
func (k *KernelXSKStats) add(o KernelXSKStats) {
	k.RxDropped += o.RxDropped
	k.RxInvalidDescs += o.RxInvalidDescs
	k.TxInvalidDescs += o.TxInvalidDescs
	k.RxRingFull += o.RxRingFull
	k.RxFillRingEmpty += o.RxFillRingEmpty
	k.TxRingEmpty += o.TxRingEmpty
	k.RingCounters = k.RingCounters || o.RingCounters
}

// ClassifierCounters are the classifier's per-decision packet counts, summed
// over CPUs and over every interface it is attached to.
type ClassifierCounters struct {
	PassNotIP, PassNotOwned, PassFragment, PassTruncated, PassICMP uint64
	RedirectFrontend, RedirectNodePort, RedirectEndpoint           uint64
	RedirectSNAT, RedirectICMPError                                uint64
	// RedirectFragment counts later fragments (no ports) redirected
	// because their dst is a frontend address or their src an endpoint
	// address.
	RedirectFragment uint64
	// PassNodeTraffic counts packets from an endpoint's address and port
	// to an address of this node: the node's own connections to endpoints
	// (the kubelet to the API server, probes, DNS), left to the kernel.
	PassNodeTraffic uint64
	// RedirectNoSocket counts packets the classifier chose to redirect that
	// found no AF_XDP socket on their receive queue and went to the kernel
	// instead (not counted under a Redirect reason).
	RedirectNoSocket uint64
}

// Redirected is the number of packets the classifier redirected to an
// AF_XDP socket.
func (c ClassifierCounters) Redirected() uint64 {
	return c.RedirectFrontend + c.RedirectNodePort + c.RedirectEndpoint + c.RedirectSNAT +
		c.RedirectICMPError + c.RedirectFragment
}

// Passed is the number of packets the classifier left to the kernel,
// RedirectNoSocket included.
func (c ClassifierCounters) Passed() uint64 {
	return c.PassNotIP + c.PassNotOwned + c.PassFragment + c.PassTruncated + c.PassICMP +
		c.PassNodeTraffic + c.RedirectNoSocket
}

// QueueStats is a snapshot of one socket's counters.
type QueueStats struct {
	// Ifname, Ifindex and QueueID identify the socket. The counters of
	// the sockets of followed devices that went away are summed in one
	// entry named "departed" (Ifindex 0), so totals never go down.
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
	// NeighHeld counts frames held for an unresolved next hop
	// (VerdictHold); NeighReleased those of them sent once it resolved.
	// The others were dropped (DropNeighFailed).
	NeighHeld, NeighReleased uint64
	// Drops counts dropped frames by reason.
	Drops [NumDropReasons]uint64
	// EgressKind counts TxFrames by the kind of device they left on.
	EgressKind [NumDeviceKinds]uint64
	// Kernel holds the kernel's counters for the socket.
	Kernel KernelXSKStats
}
