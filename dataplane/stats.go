package dataplane

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
