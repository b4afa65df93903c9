package dataplane

import "net/netip"

// Frame is one received frame handed to a Processor.
//
// Buf aliases the frame's UMEM chunk. It, and every slice taken from it, is
// valid only until Process returns: the dataplane then transmits the chunk
// (the kernel reads it asynchronously), holds it until its next hop is
// resolved (VerdictHold), or gives it back to the kernel through the fill
// ring, and the kernel overwrites it with a later frame.
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
	// Ifindex is the egress interface for VerdictTX and VerdictHold; 0
	// means the receiving interface.
	Ifindex int
	// NextHop is the neighbour whose MAC a VerdictHold frame waits for.
	NextHop netip.Addr
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

// Hold sets the verdict to transmit on ifindex (0: the receiving interface)
// once the MAC of neighbour nextHop on that interface is known. The frame
// must be complete but for its destination MAC, which the dataplane writes
// when the neighbour resolves (see VerdictHold).
func (f *Frame) Hold(ifindex int, nextHop netip.Addr) {
	f.Verdict = VerdictHold
	f.Ifindex = ifindex
	f.NextHop = nextHop
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
	// VerdictHold is VerdictTX for a frame whose next hop (Frame.NextHop)
	// is not resolved yet, as the kernel queues packets for a neighbour in
	// state INCOMPLETE (unres_qlen_bytes in Linux's net/core/neighbour.c).
	// The dataplane keeps the frame in its UMEM chunk (no copy), bounded
	// per neighbour and per queue (Config.NeighHoldFrames,
	// NeighHoldPerNeighbour), writes the neighbour's MAC at Data()[0:6]
	// when Config.Neighbours knows it and transmits the frame as VerdictTX;
	// it drops it with DropNeighHoldFull when the hold is full and
	// DropNeighFailed after Config.NeighHoldTime. Without
	// Config.Neighbours (or with holding disabled) it drops at once with
	// DropNeighUnresolved.
	VerdictHold
)
