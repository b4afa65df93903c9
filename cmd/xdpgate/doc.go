// Command xdpgate is a Kubernetes Service dataplane for gateway nodes on
// AF_XDP: kube-proxy's DNAT/SNAT/reverse NAT, conntrack, ClientIP session
// affinity and traffic policies for the traffic entering the node on the
// interfaces it manages.
//
// Usage:
//
//	xdpgate run --interfaces eth1,eth2 --manifests services.yaml   (standalone)
//	xdpgate run --interfaces eth1 --kubeconfig /etc/kubeconfig      (cluster)
//	xdpgate run --config /etc/xdpgate/config.yaml                   (flags override the file; no source: in-cluster)
//	xdpgate config print-defaults | validate FILE [run flags]
//	xdpgate inspect services|conntrack|affinity|stats [-o json]     (a running gateway)
//	xdpgate capture -w out.pcap [--point pre|post|both] [filters]   (a running gateway)
//	xdpgate demo [--duration 30s] [--keep] | --cleanup              (make demo)
//	xdpgate version
//
// The benchmark rig is its own binary, cmd/xdpgate-bench, so that its
// plotting and traffic generator stay out of this one.
//
// `xdpgate run -h` lists every flag; with --cpus the pollers are pinned and
// the process's other threads are kept off those CPUs. It runs as root or with CAP_NET_ADMIN,
// CAP_BPF, CAP_PERFMON, CAP_NET_RAW and CAP_IPC_LOCK, and exits 0 after SIGTERM or SIGINT
// with every XDP program detached.
//
// Managed interfaces must receive complete L4 checksums: a veth peer sending
// with checksum offload leaves them partial (`ethtool -K PEER tx off`).
package main
