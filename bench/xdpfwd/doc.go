// Package xdpfwd is the kernel's own XDP forwarding, as the kernel's
// samples/bpf/xdp_fwd does it: an XDP program that routes each IPv4 and
// IPv6 frame with bpf_fib_lookup (the kernel's routes and neighbours),
// rewrites its Ethernet addresses, decrements the TTL or hop limit and
// redirects it through a devmap to the egress device, all in the driver's
// receive path with no socket buffer. The benchmark rig (bench/rig) runs it
// as the "xdp-redirect" dataplane: the ceiling any forwarder can reach on
// the rig's veths, next to xdpgate, the raw AF_XDP forwarder and the
// kernel's netfilter paths.
//
// It translates nothing: frames keep their addresses and ports, like the
// raw AF_XDP forwarder's. What it cannot forward (ARP, TTL expiry, no route,
// no neighbour yet, too large for the egress MTU, an egress device it was
// not attached to) goes to the kernel untouched. Per-CPU counters say which
// (Stats, by Reason).
//
// Attach installs it in native (driver) mode on every given interface, which
// is also the set of devices it may redirect to. A veth can transmit an
// XDP frame only to a peer with NAPI (an XDP program on the peer, or GRO
// enabled on it): without one the kernel drops redirected frames, counted
// only in the xdp:xdp_devmap_xmit tracepoint and the veth's ethtool
// statistics, not here. The rig's sinks run native XDP on every peer.
package xdpfwd
