// Package sink is the benchmark rig's receiving end: an XDP program that
// counts the frames a gateway delivers, per endpoint, and drops them (or
// reflects them back as replies), with optional sampled correctness checks
// and client-affinity tracking.
//
// # What it counts
//
// Every frame the program sees adds to Total and Bytes. After Ethernet (and
// at most one 802.1Q/802.1ad tag):
//   - non-IP frames (ARP...) count as NonIP and go to the stack (XDP_PASS),
//     so the sink's namespace still answers ARP;
//   - IPv4 (IHL-aware, first fragments only) and IPv6 (no extension
//     headers) TCP/UDP frames whose {destination address, destination port,
//     family} is Config.Endpoints[i] count in PerEndpoint[i];
//   - with Config.ReplySources, TCP/UDP frames to no endpoint whose
//     {source address, source port, family} is Config.ReplySources[i] count
//     in Replies[i];
//   - every other IP frame counts as Other: other destinations or ports,
//     other protocols, later fragments, IPv6 extension headers, truncated
//     headers.
//
// IP frames are dropped, or with Config.Reflect every TCP/UDP frame (an
// endpoint's or Other) is sent back out of the same interface (XDP_TX) with
// the Ethernet addresses, IP addresses and L4 ports swapped: a reply that
// the gateway must translate back. With Config.ReplySources too, only the
// endpoints' frames are reflected; replies and Other are dropped (reflected,
// they would go round again). That makes one sink both ends of a one-arm
// reply scenario on the clients' interface, where the frames the gateway
// sends to the endpoints and the replies it sends back to the clients
// arrive together: the first are reflected, the second counted. A
// generator transmitting on that interface with AF_XDP is not seen by the
// program (XDP runs on receive). Swapping leaves every checksum valid (a
// one's-complement sum does not depend on word order), so nothing is
// recomputed. On a veth, a natively attached program's XDP_TX frames reach
// the peer only while the peer runs an XDP program (xdpgate does; for a
// kernel-forwarding gateway attach an XDP_PASS program to its interface, or
// use Config.Generic, whose XDP_TX goes through the peer's normal receive
// path).
//
// # Cost model
//
// The sink must stay far cheaper than the gateway it measures. The options
// are load-time constants, so the verifier removes the code of every feature
// that is off. An unsampled, untracked frame costs two map lookups, a
// per-CPU array (the fixed counters) and a per-CPU hash (the endpoint's
// index and frame counter in one value), and plain increments: no atomics,
// no shared cache lines, no ring buffer work. A reply costs a third, in the
// per-CPU hash of reply sources. Counts sums the per-CPU
// values. BPF_PROG_RUN measures about 33 ns per frame on the rig's machine
// counting or reflecting, about 43 ns with client tracking
// (BenchmarkPrivProg).
//
// # Sampling
//
// With Config.SampleEvery = N, a per-CPU tick selects every N-th IP frame on
// each CPU; its first 256 bytes, its length and the endpoint index go into a
// 1 MiB ring buffer (bpf_ringbuf_reserve, filled with bpf_xdp_load_bytes),
// and a reader goroutine checks it: the IPv4 header checksum, the TCP or UDP
// checksum with the IPv4 or IPv6 pseudo-header when the whole packet was
// captured (otherwise, and for fragments, non-TCP/UDP and checksum-less
// IPv4 UDP, the L4 check counts as ChecksumSkipped), that the destination
// is a listed endpoint (when Endpoints is not empty) and that the source is
// in Config.ExpectSrc (when not empty); a sampled reply is checked for its
// checksums and that its source is a reply source (the program marks reply
// samples). Failures count as ChecksumErrors or
// TranslationErrors, and RecentErrors says why. A full ring buffer loses
// samples (SamplesLost) rather than slowing the program; Counts waits for
// the reader to catch up with the samples emitted so far.
//
// # Retention
//
// With Config.TrackClients = M, a preallocated hash of M entries keyed by
// source address records the first endpoint each client hit. When the same
// client later hits another endpoint, its moved flag is set once (by
// compare-and-swap, so concurrent CPUs count it once) and ClientsMoved is
// incremented. Retention, the share of clients that kept their endpoint, is
// 1 - ClientsMoved/Clients over a run. A client arriving when the table is
// full is not tracked and counts in ClientsDropped (per frame): a non-zero
// value means M was too small (the rig's 100k clients need M >= 131072).
// ResetClients empties the table between runs; the counters stay monotonic,
// so callers take deltas.
package sink
