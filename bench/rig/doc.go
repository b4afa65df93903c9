// Package rig is the benchmark rig: it builds a three-namespace topology,
// runs each scenario against each dataplane in the same run, and returns a
// report.Run (bench/report renders it as JSON, Markdown and plots).
// cmd/xdpgate-bench is its command line.
//
//	gen [gen0] ---veth--- [gw0] gw [gw1] ---veth--- [sink0] sink
//
// The generator (bench/pktgen, AF_XDP transmit, pinned to the generator
// CPU) sends frames from client addresses 198.18.64.0 onwards to a
// LoadBalancer VIP (198.18.3.1). The gateway namespace runs one of:
//
//   - xdpgate: `xdpgate run` of Options.Binary (the product binary, a
//     child process) from a manifest, its pollers pinned to the gateway
//     CPU, exactly as a user runs it;
//   - xdpgate-fastpath: the same with --fast-path xdp, xdpgate's best
//     configuration where flows become established; by default only in
//     the reply scenarios, the only ones where the fast path takes flows
//     (one-way UDP flows are never established, tcp-syn is all first
//     packets);
//   - nftables: the kernel with kube-proxy's nftables-mode ruleset for the
//     same snapshot (bench/baseline);
//   - iptables: the kernel with kube-proxy's iptables-mode ruleset;
//   - afxdp-forwarder: dataplane.Forwarder on the same AF_XDP sockets,
//     rings and pollers with no translation: the ceiling of xdpgate's I/O
//     path on this machine;
//   - xdp-redirect: the kernel's own XDP forwarding of the same traffic
//     (bench/xdpfwd, as the kernel's samples/bpf xdp_fwd: bpf_fib_lookup,
//     TTL, devmap redirect, in native mode on the gateway's interfaces), no
//     translation: the physical ceiling of the rig.
//
// The two untranslated dataplanes forward by destination: the rig routes
// the VIP to the sink for them, and the sink counts their frames at the VIP
// instead of at the endpoints (still checking the sampled checksums).
//
// Options.External (xdpgate-bench --external NAME=COMMAND) adds dataplanes
// of your own: COMMAND runs under sh in the gateway namespace (in its own
// process group, stopped with SIGTERM; end it with exec so the dataplane
// itself receives the signal) and must forward what arrives on
// XDPGATE_BENCH_INGRESS (gw0) for XDPGATE_BENCH_VIP (198.18.3.1:80) and
// XDPGATE_BENCH_PROTO to XDPGATE_BENCH_ENDPOINTS through
// XDPGATE_BENCH_EGRESS (gw1), on XDPGATE_BENCH_CPU. XDPGATE_BENCH_MANIFEST
// is the scenario as Kubernetes objects, and XDPGATE_BENCH_NFT and
// XDPGATE_BENCH_IPTABLES the kube-proxy rulesets the rig renders for it.
//
// Scenarios run two-arm unless OneArm is set: then the gateway has one
// interface and forwards back out of it, and the sink counts on the
// generator's interface. Reply scenarios make the sink reflect every frame
// (Ethernet, addresses and ports swapped), so the gateway translates the
// replies back; two-arm, a second sink on the generator's interface counts
// them and checks that they come from the VIP. One-arm
// (udp64-1k-flows-one-arm-reply) the frames to the endpoints and the
// replies arrive at the same interface, gen0, so one sink does both: it
// reflects what is addressed to an endpoint (or, untranslated, to the VIP)
// back to gw0 and counts and checks what comes from the VIP
// (sink.Config.ReplySources), which it drops. It never sees the
// generator's own frames: AF_XDP transmits without running the receive
// program. The sinks of a reply scenario run in generic XDP mode (the
// kernel baselines' gw1 has no XDP program to receive a native XDP_TX),
// except for xdpgate-fastpath and xdp-redirect (and xdpgate with
// Options.NativeReplySinks): a veth can receive redirected XDP frames only
// when the peer has NAPI, which a native program gives it (one-arm, gen0
// receives such frames from gw0 as gw1's peer does two-arm). Native sinks
// cost the gateway CPU less than generic ones, so in the reply scenarios
// those rows compare like for like with each other, and only indicatively
// with the rest.
//
// The sink (bench/sink, an XDP program with per-CPU counters) counts what
// arrives per endpoint, checks a sample of frames (checksums, translation)
// and, for ClientIP scenarios, how many clients stayed on one endpoint.
//
// Fairness. Every dataplane gets the same gateway CPU. On veth, the
// receiver's NAPI poll (the kernel's whole receive and forwarding path, or
// the XDP program and the copy into an AF_XDP socket) runs in the sender's
// softirq, i.e. on the generator's CPU, unless steered. The rig steers it
// the same way for every dataplane: threaded NAPI on gw0, the thread
// pinned to the gateway CPU (topology.steer says why not RPS). With
// Options.Unsteered the rig also measures, once, xdpgate and nftables
// without steering. CPU cost is the gateway CPU's busy time over the burst
// (from /proc/stat), per million delivered frames; it includes the sink's
// XDP program, which runs on whichever CPU transmits to it (the gateway's),
// equally for every dataplane. xdpgate's pollers busy-poll briefly before
// sleeping, so at low rates its CPU per packet is overstated.
//
// Each (scenario, dataplane) measurement gets fresh namespaces, so no state
// (kernel conntrack entries above all) carries over. Namespaces are named
// xgb-*; Cleanup removes leftovers of an interrupted run.
package rig
