// Package pipeline is xdpgate's translation pipeline: kube-proxy's job
// (DNAT, SNAT where kube-proxy masquerades, reverse NAT, ClientIP affinity,
// traffic policies, reject) for the frames the XDP classifier redirects to
// the AF_XDP sockets. It is pure Go: the I/O layer (package dataplane) hands
// it batches of frames through the dataplane.Processor seam and applies the
// verdicts it sets; it makes no syscalls of its own.
//
// # Per frame
//
//	nat.Parse
//	  -> conntrack (fragments: the first fragment's flow; ICMP errors: the
//	     quoted packet's flow, reversed)
//	  hit:  the flow's precomputed tuple
//	  miss: snapshot.Classify -> reject (ICMP port unreachable) | drop by
//	        cause | forward: affinity or Maglev endpoint, SNAT port, Insert
//	  -> TTL check, only for packets being forwarded (time exceeded back to
//	     the sender) -> rewrite
//	  -> TTL-1 -> next hop (dataplane.NextHopper) -> Ethernet -> TX, or
//	     hold while the next hop's MAC is resolved (dataplane.VerdictHold)
//
// Every ICMP error the pipeline generates (time exceeded, port
// unreachable, fragmentation needed / packet too big) is rate-limited per
// queue with the kernel's budgets: a global token bucket, and for time
// exceeded and port unreachable one per destination address in a bounded
// hashed array (icmplimit.go), so xdpgate cannot be used as a reflector.
//
// Frames are processed in chunks of 64 so that conntrack lookups are
// batched. Every per-queue buffer is allocated by New; Process allocates
// nothing (TestNoAllocs).
//
// # Drop reasons
//
// The I/O layer counts drops per dataplane.DropReason and reserves the values
// from dataplane.FirstPipelineDropReason up for this package (reasons.go),
// which names them with dataplane.RegisterDropReason. nat's finer
// malformed-frame reasons are grouped into those and also counted exactly in
// QueueStats.NATDrops.
//
// # Applying snapshots
//
// Applier is the protocol between the control loop and the dataplane: Apply
// first asks the next hopper to resolve every endpoint's next hop
// (PrimeNextHops, when it is a dataplane.NextHopPrimer: queued, never
// blocking), publishes a new snapshot (Publish: one atomic store, then the
// flow and affinity tables are reconciled with the change, as kube-proxy's
// UDP conntrack reconciler does) and then programs the classifier with
// Rules;
// Run sweeps the tables and prunes removed TCP endpoints whose last flow
// ended ("retained" endpoints, whose replies the classifier keeps
// redirecting until then).
//
// # Concurrency
//
// Process runs on every poller at once. Shared state is the published
// snapshot (loaded once per batch), the conntrack and affinity tables
// (concurrent by design, see their packages) and the next hopper. Everything
// else a poller touches is its own queue's state, indexed by
// dataplane.Queue.Index; counters are plain integers published with atomic
// stores once per batch (Stats). Per-service-port counters (packets, bytes,
// new connections, drops after classification, affinity events) are plain
// per-queue arrays indexed by a dense service-port index, reached through a
// one-entry cache, and published for the service ports a batch touched
// (ServiceStats; svcstats.go). Capture costs one atomic load per batch
// while off.
//
// # Affinity and load
//
// For ClientIP service ports the pipeline also keeps (load.go) each
// endpoint's pinned clients, exact through the affinity table's OnChange
// hook, its new connections (per queue) and the clients that moved to it
// from departed endpoints; an endpoint that leaves with pinned clients is
// logged and followed until they have moved (ReportDepartures). A port with
// AffinityMaxLoadPercent or AffinityRebalanceOnScale chooses new pins with
// bounded loads (snapshot.PickSessionBounded); rebalance-on-scale also
// expires the excess pins when endpoints are added (rebalance.go). Heavy
// clients per port come from topk sketches per queue (heavy.go), handed to
// readers by an ownership word, never blocking the poller.
//
// # XDP fast path
//
// With Config.FastPath, established flows are installed in the XDP
// program (dataplane.FastPath) and their frames no longer reach Process:
// the pipeline queues a flow once conntrack calls it established, installs
// both directions at the end of the batch, credits what XDP forwarded back
// into conntrack (before every packet of the flow it still sees, and in
// Housekeep) and removes the entries when the flow ends, times out, loses
// its endpoint, changes next hop, or a capture starts (fastpath.go). The
// pipeline stays the authority: XDP only ever applies a translation it
// computed. TestPrivFastPathOracle checks the two produce identical bytes.
package pipeline
