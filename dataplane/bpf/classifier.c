// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// xdpgate XDP classifier.
//
// Redirects to the AF_XDP socket of the receive queue (xsks, keyed by queue
// index) only the frames xdpgate owns, and passes everything else to the
// kernel untouched (ARP, IPv6 ND, SSH, pings to the node, kubelet, health
// checks...). The rule maps are plain data filled from dataplane.Rules by the
// Go side (classifier_linux.go); the program never writes them.
//
// A frame is owned when, after up to two VLAN tags (802.1Q / 802.1ad):
//   - TCP/UDP/SCTP and {dst addr, dst port, proto} is a frontend;
//   - TCP/UDP/SCTP, {dst port, proto} is a NodePort and dst addr is a node
//     address with the NODEPORT flag;
//   - TCP/UDP/SCTP, {src addr, src port, proto} is an endpoint and dst addr is
//     not an address of this node (replies of translated flows: they go to a
//     client, or to a SNAT address and port, matched below; a reply from an
//     endpoint to a node address is the node's own traffic, such as the
//     kubelet's connection to the API server, and stays with the kernel);
//   - TCP/UDP/SCTP, dst addr is a node address with the SNAT flag and dst port
//     is inside the SNAT port range (replies to masqueraded flows);
//   - an ICMP destination-unreachable / time-exceeded (ICMPv6 also
//     packet-too-big) error whose embedded packet is one xdpgate sent: inner
//     dst is an endpoint and inner src not a node address, or inner src is a
//     frontend, a NodePort on a node address, or a SNAT address and port.
//
// Fragments: a first fragment (offset 0) carries the ports and is classified
// like any packet. A later fragment has no ports: it is owned when its dst
// is a frontend address, or its src an endpoint address (any port) and its
// dst not a node address; later fragments of NodePort and SNAT flows are
// passed (the node's own traffic uses those addresses too).
//
// IPv6 extension headers (hop-by-hop, routing, destination options,
// fragment) are walked, at most four.
//
// Not owned, passed: more than two VLAN tags, more than four IPv6 extension
// headers or other ones (AH, ESP...), every ICMP message other than the
// errors above.
//
// Addresses are kept as 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d)
// so that one key type serves both families.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed long long __s64;
typedef int __s32;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define XDP_ABORTED 0
#define XDP_DROP 1
#define XDP_PASS 2
#define XDP_TX 3
#define XDP_REDIRECT 4

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_XSKMAP 17
#define BPF_MAP_TYPE_DEVMAP_HASH 25
#define BPF_F_MMAPABLE (1U << 10)

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ICMPV6 58
#define IPPROTO_SCTP 132

// Node address flags (values of node_addrs).
#define ADDR_NODEPORT 1
#define ADDR_SNAT 2
#define ADDR_LOCAL 4 // any address of this node

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

// l4_key identifies {addr, port, proto}: frontends and endpoints.
struct l4_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 pad;
};

// port_key identifies a NodePort.
struct port_key {
	__be16 port;
	__u8 proto;
	__u8 pad;
};

// addr_key is a node address.
struct addr_key {
	__u8 addr[16];
};

// config is the single element of the config array.
struct config {
	__u16 snat_port_min; // host order, inclusive; 0/0 disables SNAT matching
	__u16 snat_port_max; // host order, inclusive
};

// Counter indexes; keep in step with classifier_linux.go.
enum {
	CNT_PASS_NOT_IP = 0,
	CNT_PASS_NOT_OWNED,
	CNT_PASS_FRAGMENT,
	CNT_PASS_TRUNCATED,
	CNT_PASS_ICMP,
	CNT_REDIRECT_FRONTEND,
	CNT_REDIRECT_NODEPORT,
	CNT_REDIRECT_ENDPOINT,
	CNT_REDIRECT_SNAT,
	CNT_REDIRECT_ICMP_ERROR,
	CNT_REDIRECT_FRAGMENT,
	CNT_PASS_NODE_TRAFFIC, // from an endpoint to a node address: the node's own
	CNT_REDIRECT_NO_SOCKET, // chosen for redirect, but no AF_XDP socket on the queue: passed
	CNT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct l4_key);
	__type(value, __u8);
} frontends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct l4_key);
	__type(value, __u8);
} endpoints SEC(".maps");

// Address-only sets for later fragments.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct addr_key);
	__type(value, __u8);
} frontend_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct addr_key);
	__type(value, __u8);
} endpoint_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct port_key);
	__type(value, __u8);
} node_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct addr_key);
	__type(value, __u8);
} node_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// tuple is what the matchers look at, addresses in the 16-byte form.
struct tuple {
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 later_frag; // a fragment with a non-zero offset: no L4 header
};

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);
	if (c)
		*c += 1;
}

static __always_inline int pass(__u32 idx)
{
	count(idx);
	return XDP_PASS;
}

static __always_inline void map_v4(__u8 *dst, const __u8 *src)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, src, 4);
}

static __always_inline int is_l4(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

static __always_inline int addr_has(const __u8 *addr, __u8 flag)
{
	struct addr_key k;
	__builtin_memcpy(k.addr, addr, 16);
	__u8 *v = bpf_map_lookup_elem(&node_addrs, &k);
	return v && (*v & flag);
}

static __always_inline int is_l4_in(void *map, const __u8 *addr, __be16 port, __u8 proto)
{
	struct l4_key k;
	__builtin_memcpy(k.addr, addr, 16);
	k.port = port;
	k.proto = proto;
	k.pad = 0;
	return bpf_map_lookup_elem(map, &k) != 0;
}

static __always_inline int is_nodeport(const __u8 *addr, __be16 port, __u8 proto)
{
	struct port_key k = {.port = port, .proto = proto, .pad = 0};
	if (!bpf_map_lookup_elem(&node_ports, &k))
		return 0;
	return addr_has(addr, ADDR_NODEPORT);
}

static __always_inline int is_snat(const __u8 *addr, __be16 port)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return 0;
	__u16 p = bpf_ntohs(port);
	if (cfg->snat_port_max == 0 || p < cfg->snat_port_min || p > cfg->snat_port_max)
		return 0;
	return addr_has(addr, ADDR_SNAT);
}

static __always_inline int in_set(void *map, const __u8 *addr)
{
	struct addr_key k;
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(map, &k) != 0;
}

// parse_ip reads an IP header at off. It fills t (addresses, proto,
// later_frag) and returns the offset of the transport header, or a negative
// value: -1 the header is truncated or malformed, -2 an IPv6 extension
// header chain this program does not walk.
static __always_inline int parse_ip(void *data, void *data_end, __u32 off, __u16 proto,
				    struct tuple *t)
{
	if (proto == ETH_P_IP) {
		__u8 *ip = data + off;
		if ((void *)(ip + 20) > data_end)
			return -1;
		if ((ip[0] >> 4) != 4)
			return -1;
		__u32 ihl = (ip[0] & 0x0f) * 4;
		if (ihl < 20)
			return -1;
		// 13-bit fragment offset (the MF flag, 0x20, alone is a first fragment).
		if ((ip[6] & 0x1f) != 0 || ip[7] != 0)
			t->later_frag = 1;
		t->proto = ip[9];
		map_v4(t->src, ip + 12);
		map_v4(t->dst, ip + 16);
		return off + ihl;
	}
	if (proto == ETH_P_IPV6) {
		__u8 *ip6 = data + off;
		if ((void *)(ip6 + 40) > data_end)
			return -1;
		if ((ip6[0] >> 4) != 6)
			return -1;
		__builtin_memcpy(t->src, ip6 + 8, 16);
		__builtin_memcpy(t->dst, ip6 + 24, 16);
		__u8 nh = ip6[6];
		__u32 l4 = off + 40;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			if (nh == 0 || nh == 43 || nh == 60) { // hop-by-hop, routing, dest opts
				__u8 *h = data + l4;
				if ((void *)(h + 2) > data_end)
					return -1;
				nh = h[0];
				l4 += ((__u32)h[1] + 1) * 8;
			} else if (nh == 44) { // fragment
				__u8 *h = data + l4;
				if ((void *)(h + 8) > data_end)
					return -1;
				if ((h[2] << 8 | h[3]) & 0xfff8)
					t->later_frag = 1;
				nh = h[0];
				l4 += 8;
			} else {
				break;
			}
		}
		t->proto = nh;
		if (!t->later_frag && !is_l4(nh) && nh != IPPROTO_ICMPV6)
			return -2;
		return l4;
	}
	return -1;
}

// inner_owned reports whether the packet embedded in an ICMP error, whose IP
// header starts at off, is one xdpgate sent.
static __always_inline int inner_owned(void *data, void *data_end, __u32 off, __u16 proto)
{
	struct tuple in = {};
	int l4 = parse_ip(data, data_end, off, proto, &in);
	if (l4 < 0 || in.later_frag)
		return 0;
	if (!is_l4(in.proto))
		return 0;
	if (l4 > 0xffff)
		return 0;
	__be16 *ports = data + l4;
	if ((void *)(ports + 2) > data_end)
		return 0;
	in.sport = ports[0];
	in.dport = ports[1];
	if (is_l4_in(&endpoints, in.dst, in.dport, in.proto) && !addr_has(in.src, ADDR_LOCAL))
		return 1;
	if (is_l4_in(&frontends, in.src, in.sport, in.proto))
		return 1;
	if (is_nodeport(in.src, in.sport, in.proto))
		return 1;
	if (is_snat(in.src, in.sport))
		return 1;
	return 0;
}

static __always_inline int redirect(struct xdp_md *ctx, __u32 idx)
{
	int act = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	// The fallback (XDP_PASS): no AF_XDP socket on this queue. Counted
	// instead of the reason, so that the counters add up to the packets.
	count(act == XDP_REDIRECT ? idx : CNT_REDIRECT_NO_SOCKET);
	return act;
}

#include "fastpath.h"

SEC("xdp")
int xdpgate_classify(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 off = 14;

	if (data + 14 > data_end)
		return pass(CNT_PASS_TRUNCATED);
	__u16 proto = bpf_ntohs(*(__be16 *)(data + 12));

#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if (data + off + 4 > data_end)
			return pass(CNT_PASS_TRUNCATED);
		proto = bpf_ntohs(*(__be16 *)(data + off + 2));
		off += 4;
	}
	if (proto != ETH_P_IP && proto != ETH_P_IPV6)
		return pass(CNT_PASS_NOT_IP);

	int fast = fast_path(ctx, data, data_end, off, proto);
	if (fast >= 0)
		return fast;

	struct tuple t = {};
	int l4 = parse_ip(data, data_end, off, proto, &t);
	if (l4 == -2)
		return pass(CNT_PASS_NOT_OWNED);
	if (l4 < 0 || l4 > 0xffff)
		return pass(CNT_PASS_TRUNCATED);
	if (t.later_frag) {
		if (in_set(&frontend_addrs, t.dst))
			return redirect(ctx, CNT_REDIRECT_FRAGMENT);
		if (in_set(&endpoint_addrs, t.src))
			return addr_has(t.dst, ADDR_LOCAL) ? pass(CNT_PASS_NODE_TRAFFIC)
							   : redirect(ctx, CNT_REDIRECT_FRAGMENT);
		return pass(CNT_PASS_FRAGMENT);
	}

	if (is_l4(t.proto)) {
		__be16 *ports = data + l4;
		if ((void *)(ports + 2) > data_end)
			return pass(CNT_PASS_TRUNCATED);
		t.sport = ports[0];
		t.dport = ports[1];
		if (is_l4_in(&frontends, t.dst, t.dport, t.proto))
			return redirect(ctx, CNT_REDIRECT_FRONTEND);
		if (is_nodeport(t.dst, t.dport, t.proto))
			return redirect(ctx, CNT_REDIRECT_NODEPORT);
		if (is_snat(t.dst, t.dport))
			return redirect(ctx, CNT_REDIRECT_SNAT);
		if (is_l4_in(&endpoints, t.src, t.sport, t.proto))
			return addr_has(t.dst, ADDR_LOCAL) ? pass(CNT_PASS_NODE_TRAFFIC)
							   : redirect(ctx, CNT_REDIRECT_ENDPOINT);
		return pass(CNT_PASS_NOT_OWNED);
	}

	if (t.proto == IPPROTO_ICMP && proto == ETH_P_IP) {
		__u8 *icmp = data + l4;
		if ((void *)(icmp + 8) > data_end)
			return pass(CNT_PASS_TRUNCATED);
		// 3 destination unreachable (incl. 4 fragmentation needed), 11 time exceeded.
		if (icmp[0] != 3 && icmp[0] != 11)
			return pass(CNT_PASS_ICMP);
		if (inner_owned(data, data_end, l4 + 8, ETH_P_IP))
			return redirect(ctx, CNT_REDIRECT_ICMP_ERROR);
		return pass(CNT_PASS_ICMP);
	}
	if (t.proto == IPPROTO_ICMPV6 && proto == ETH_P_IPV6) {
		__u8 *icmp = data + l4;
		if ((void *)(icmp + 8) > data_end)
			return pass(CNT_PASS_TRUNCATED);
		// 1 destination unreachable, 2 packet too big, 3 time exceeded.
		if (icmp[0] < 1 || icmp[0] > 3)
			return pass(CNT_PASS_ICMP);
		if (inner_owned(data, data_end, l4 + 8, ETH_P_IPV6))
			return redirect(ctx, CNT_REDIRECT_ICMP_ERROR);
		return pass(CNT_PASS_ICMP);
	}
	return pass(CNT_PASS_NOT_OWNED);
}

char __license[] SEC("license") = "Dual BSD/GPL";
