// Package dataplane is xdpgate's AF_XDP I/O layer: the XDP classifier that
// decides which frames leave the kernel, one AF_XDP socket and one poller
// goroutine per (interface, receive queue), next-hop resolution from the
// kernel's tables, and the transmit paths. It knows nothing of Services: each
// poller hands its received batch to a Processor (the translation pipeline,
// package pipeline, or the raw Forwarder) and applies the verdicts the
// Processor sets. Only this package touches AF_XDP, XDP programs and
// netlink; on other operating systems Open returns ErrNotSupported.
//
// # Files
//
// frame.go is the Processor seam (Frame, Queue, Verdict); reasons.go the
// drop reasons, the I/O layer's own and the range reserved for the
// Processor; rules.go what the classifier redirects; egress.go and
// egress_linux.go next hops; hold.go the frames held for unresolved next
// hops; config.go the Config and its defaults; stats.go the counters;
// errors.go the sentinel errors. xsk_linux.go holds the socket and ring
// code, poller_linux.go the poll loop, classifier_linux.go the XDP program's
// maps, txsocket_linux.go a transmit-only socket for packet generators.
//
// # Packet path
//
//	NIC queue q --XDP classifier--> XSKMAP[q] --> socket (iface, q) --> poller
//	     |  not owned (ARP/ND, SSH, pings to the node, ...): XDP_PASS
//	     v
//	  kernel stack
//
// The classifier (bpf/classifier.c, loaded with cilium/ebpf and attached
// with a bpf_link, native mode by default) redirects only what Rules say
// xdpgate owns: packets to frontends and NodePorts, replies from endpoints
// to clients (a packet from an endpoint to a node address is the node's own
// traffic and is passed), replies to SNAT ports, and ICMP errors about
// those. Its maps are plain
// data; Classifier.Update replaces them (add new, then delete stale).
//
// # The four rings
//
// Every socket has its own UMEM: NumFrames chunks of FrameSize bytes (2 or
// 4 KiB), the first half used for reception, the second for frames copied
// in from other interfaces. Four single-producer single-consumer rings are
// shared with the kernel; producer and consumer indexes are accessed with
// sync/atomic (see xsk_linux.go for why asavie/xdp's own ring code is not
// used):
//
//   - fill ring (we produce, the kernel consumes): free RX chunks the kernel
//     may receive into.
//   - RX ring (the kernel produces, we consume): descriptors {addr, len} of
//     received frames. A frame starts 256 bytes (XDP_PACKET_HEADROOM) into
//     its chunk.
//   - TX ring (we produce, the kernel consumes): descriptors of frames to
//     send. The kernel is kicked with sendto only when the ring's
//     need_wakeup flag is set (always in copy mode).
//   - completion ring (the kernel produces, we consume): addresses of
//     frames whose transmission is finished.
//
// # Frame lifecycle and ownership
//
// A UMEM chunk is owned by exactly one party at a time:
//
//  1. free in userspace (rxFree / txFree stacks) -- the dataplane;
//  2. on the fill ring, or being received into -- the kernel;
//  3. on the RX ring, then inside Processor.Process -- the poller and the
//     Processor; Frame.Buf aliases the chunk;
//  4. after Process returns, by verdict:
//     drop: back to rxFree, then to the fill ring (state 2);
//     TX on the receiving interface: the same chunk goes on the TX ring
//     (kernel-owned) and comes back through the completion ring to rxFree;
//     TX on another managed interface: the bytes are copied into a free TX
//     chunk of a socket of that interface (its TX ring, then its completion
//     ring, then its txFree), and the RX chunk goes back to rxFree at once;
//     hold (the next hop's MAC is unknown): state 5.
//  5. held -- the poller: the chunk, with the frame in place, is in the
//     poller's hold table (neither on the fill ring nor in rxFree) until
//     the neighbour resolves (its MAC is written into the frame, which
//     then leaves as TX above), or until NeighHoldTime passes or the
//     poller stops (back to rxFree, counted as DropNeighFailed). At most
//     NeighHoldFrames chunks per socket (1/8 of its RX chunks) are held,
//     so the fill ring never lacks more than that.
//
// So a Frame, Frame.Buf, Frame.Data() and every slice taken from them are
// valid only until Process returns (a held frame's bytes stay in its chunk,
// but only the dataplane touches them). A Processor that needs bytes later
// must copy them. There is no "pass to the kernel" verdict: the classifier
// must pass what the kernel should see, because once redirected a frame
// belongs to the socket.
//
// # Pollers
//
// Run starts one goroutine per socket, locked to its OS thread and pinned
// to Config.CPUs when given. Each loop: take up to BatchSize descriptors
// from the RX ring, call Process once, apply the verdicts (in-place TX under
// the socket's TX lock, copies under the target socket's TX lock, both once
// per batch), top up the fill ring. While frames are held, every loop
// first asks Config.Neighbours for their next hops (before the new batch
// is sent, so a neighbour's frames leave in order), sends the resolved
// ones and drops the expired ones. With nothing to receive it busy-polls
// for Config.BusyPoll, then sleeps in poll(2) on the socket and a stop
// eventfd, so an idle gateway does not burn a core; the sleep lasts at most
// 2 ms while frames are held. Counters are per queue (Stats), drops per
// DropReason.
//
// # Egress
//
// Egress mirrors the kernel's main routing table and neighbour table
// through netlink subscriptions into an immutable table published with an
// atomic pointer; Lookup costs a few map lookups and no syscall. An
// unresolved next hop is queued, in a bounded set, to a resolver goroutine
// that asks the kernel to resolve it (RTM_NEWNEIGH with NTF_USE, at most
// once a second per neighbour), and the frame is held (VerdictHold) as the
// kernel queues packets for an incomplete neighbour: per queue at most
// NeighHoldFrames frames, NeighHoldPerNeighbour per neighbour, for at most
// NeighHoldTime (3 s, the kernel's own resolution time: mcast_solicit
// probes retrans_time_ms apart); beyond those bounds it is dropped with
// DropNeighHoldFull or DropNeighFailed. Egress is also the pollers'
// NeighbourTable. Next hops are resolved before traffic needs them where
// they are known in advance: Prime (the pipeline's Applier primes every
// endpoint of each snapshot) and every new gateway of the routing table.
//
// TxSocket is a transmit-only AF_XDP socket over the same ring code, for
// packet generators (bench/pktgen): callers fill UMEM frames and submit
// them in batches; completions are reclaimed whoever consumed them.
//
// # Known limits
//
//   - The classifier matches first fragments by ports and later fragments
//     by address only (dst a frontend address, src an endpoint address);
//     later fragments of NodePort and SNAT flows are passed to the kernel.
//     It walks at most four IPv6 extension headers (hop-by-hop, routing,
//     destination options, fragment) and two VLAN tags; anything beyond is
//     passed, so the userspace parser (package nat), which is more
//     permissive, never sees it.
//   - No shared UMEM: a frame leaving on another interface is copied once.
//   - A socket of another interface is chosen as queue id modulo its queue
//     count, and its TX ring is shared under a mutex (held once per batch).
//   - Egress routes endpoints as the kernel does (RTM_GETROUTE fibmatch per
//     endpoint, refreshed on route, rule, link and address events), but
//     other destinations (clients) by the main table only; rules that
//     match on source, input interface or mark are evaluated without them.
//
// # Reach
//
// With Config.Devices (an *Egress), Run follows the devices the endpoints'
// routes leave through (devices_linux.go): every 50 ms it compares the
// Egress's device list generation and attaches to new devices, detaches
// from departed ones. A followed device gets the classifier (native XDP
// where its driver has it, veth; generic elsewhere: VXLAN, Geneve), one
// small AF_XDP socket per queue (DeviceNumFrames) and a poller in a queue
// slot reserved at Open (MaxDeviceQueues, so NumQueues never changes). A
// bridge gets one transmit-only socket and no classifier: frames sent on
// it are bridged to the pod; its ports (the pods' veths) are followed
// for the replies. Pollers find ports through an immutable portTable
// behind an atomic pointer; a departing device is first unpublished,
// then its pollers stopped, then each socket marked gone under its TX
// lock (a poller holding the old table drops instead of copying), then
// closed. Its counters are folded into a "departed" Stats entry. An L3
// device (no Ethernet) or one whose MTU exceeds the frame size is
// refused with a log line; frames routed to it count DropEgressUnusable.
//
// # Requirements on the environment
//
// Managed interfaces must receive complete L4 checksums: a veth peer in
// the same host sending with checksum offload leaves them partial (turn it
// off with `ethtool -K DEV tx off`). The MTU must fit a frame (MTU+22 <=
// FrameSize-256); multi-buffer (jumbo) frames are not supported.
//
// # XDP fast path
//
// With ClassifierConfig.FastPathFlows the classifier program first looks
// the frame's tuple up in fast_flows (bpf/fastpath.h): an established flow
// the pipeline installed is rewritten and sent by XDP itself (XDP_TX, or
// XDP_REDIRECT through the fast_ports devmap), counted per flow in an
// mmap-ed array (FastPathMaps, the FastPath interface); every other frame
// is classified as before. Without it the program is verified without that
// code (a load-time constant), and the classifier is as it was.
package dataplane
