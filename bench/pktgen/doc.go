// Package pktgen is the benchmark rig's traffic generator: it transmits
// synthetic client traffic towards a Service VIP through AF_XDP sockets
// (dataplane.TxSocket), one socket and one goroutine per TX queue, so that
// the gateway under test, not the sender's network stack, is the
// bottleneck.
//
// # What it generates
//
// Ethernet frames with one IPv4 or IPv6 header and, by Mode:
//
//   - UDP: datagrams to Dst;
//   - TCPSyn: bare SYNs (every frame a new connection attempt, the
//     gateway's new-flow path);
//   - TCPEstablished: ACK+PSH segments with payload, which a stateful
//     gateway picks up as established flows (loose pickup). A flow's
//     sequence number advances by the payload length on each visit.
//
// Frames carry complete IP and L4 checksums (AF_XDP transmits bytes as
// they are: no offload fills them in), IPv4 with DF set and TTL 64. The
// frame after the headers is zero payload up to the frame size.
//
// # Frame size and the FCS
//
// FrameSize follows RFC 2544: it is the on-wire Ethernet frame size
// including the 4-byte FCS, 64 to 1518. The buffer handed to the kernel is
// FrameSize-4 bytes; the NIC appends the FCS (veth has none, so on veth a
// "64-byte frame" is 60 bytes). IPv6 headers do not fit in 64 bytes: the
// minimum is 66 for UDP and 78 for TCP over IPv6 (MinFrameSizeFor).
//
// # Flows
//
// A flow is a (client address, source port) pair towards Dst: flow i has
// client Src + i/PortsPerClient and source port SrcPortBase +
// i%PortsPerClient, for i < Flows() = Clients*PortsPerClient. Every client
// and Dst must lie in the benchmarking ranges 198.18.0.0/15 (RFC 2544) or
// 2001:2::/48 (RFC 5180), so a misconfigured run cannot spray real hosts.
//
// The generator sends a stream of frames; frame s carries flow
// perm(s mod Flows()) on visit s/Flows(), where perm is a seeded
// pseudo-random permutation (a bijective integer mixer with cycle walking,
// no table, a few nanoseconds per frame). So every Flows() consecutive
// frames visit every flow exactly once, consecutive frames hit different
// flows (different hash buckets at the gateway), and a Count of k*Flows()
// sends every flow exactly k times. Queue j of Q sends stream frames j,
// j+Q, j+2Q, ...; a new Run continues each queue's stream. Frame(i)
// returns flow i's bytes, FlowAt(s) the flow of frame s, FlowSource(i) its
// address and port: what a sink needs to check what it received.
//
// # Per-frame work
//
// Open builds one template with gopacket and copies it into every UMEM
// frame. Sending a frame rewrites only the source address, the source port
// (and the TCP sequence number) and patches the checksums incrementally
// (RFC 1624, in checksum.go) from constants computed once: no allocation,
// no per-frame syscall. Frames go out in batches (BatchSize, default 64):
// reserve free UMEM frames (reclaiming completions), fill them, put the
// descriptors on the TX ring with one atomic store, and kick with sendto
// only when the ring's need_wakeup flag asks for it. In copy mode (veth,
// generic XDP) the kernel always asks and sends at most 32 frames per
// sendto, so a 64-frame batch costs two or three syscalls.
//
// # Rate limiting
//
// RatePPS (split evenly over the queues) is enforced per queue by a token
// bucket on the monotonic clock with batch granularity: tokens accrue at
// the rate up to one batch; a queue sends once it has saved up 50µs worth
// of frames (at least one, at most a batch), so at 1 Mpps it sends batches
// of 50 and at 20 kpps single frames, and the long-run rate never exceeds
// RatePPS. Waits under 2ms spin (Go's timers are too coarse for them);
// longer ones sleep. RatePPS 0 sends flat out.
//
// # Bounds and results
//
// A Run ends at Count frames (split over the queues), after Duration, or
// when its context is done; it then waits (at most a second) for the last
// completions. Stats.Sent counts frames the kernel completed, that is
// transmitted by the driver (on veth: handed to the peer, which may still
// drop them under overload). A queue whose frames stop completing for a
// second ends the run with ErrStalled rather than spinning.
//
// # Limits
//
//   - One VLAN-less Ethernet header, no IP options or extension headers,
//     no TCP options; the destination is a single VIP:port.
//   - The TCP modes do not complete handshakes or react to replies: the
//     generator only transmits.
//   - On veth the kernel copies every frame into an skb (copy mode): the
//     generator's own cost per frame is about ten nanoseconds
//     (BenchmarkFill), the kernel's (skb, veth, the peer's NAPI and XDP,
//     all in the sendto) about half a microsecond, so one queue tops out
//     below 2 Mpps on veth (BenchmarkPrivGenerator).
//   - A rate-limited queue spins through waits under 2ms, so it keeps its
//     CPU busy at any rate above a few hundred frames per second; pin it
//     (Config.CPUs) away from the gateway.
//   - Open must run in the sender's network namespace (with the OS thread
//     locked, as testnet.NS.Do does); the sockets keep working from any
//     goroutine afterwards.
package pktgen
