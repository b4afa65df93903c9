// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The kernel's own XDP forwarding, as samples/bpf/xdp_fwd_kern.c does it:
// the benchmark rig's "xdp-redirect" dataplane, the ceiling of what any
// forwarder can do on the rig's veths.
//
// For an IPv4 or IPv6 frame it asks the kernel's FIB (bpf_fib_lookup: the
// route, the egress device, the next hop's neighbour entry), rewrites the
// Ethernet addresses from the result, decrements the TTL (IPv4: the header
// checksum updated incrementally) or hop limit, and redirects the frame
// through tx_ports, a devmap holding the devices it may transmit on. No
// translation: addresses and ports stay as they are.
//
// Everything it cannot forward goes to the kernel untouched (XDP_PASS):
// non-IP frames (ARP), VLAN-tagged frames, truncated headers, TTL or hop
// limit <= 1 (the kernel sends the ICMP error), FIB misses, no neighbour
// entry yet (the kernel resolves it), frames above the egress MTU, and
// egress devices not in tx_ports. Each outcome is counted per CPU in stats,
// indexed by enum reason (keep in step with reasons.go).

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

#define XDP_DROP 1
#define XDP_PASS 2
#define XDP_REDIRECT 4

#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_DEVMAP_HASH 25

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

#define AF_INET 2
#define AF_INET6 10

#define BPF_FIB_LKUP_RET_SUCCESS 0
#define BPF_FIB_LKUP_RET_FWD_DISABLED 5
#define BPF_FIB_LKUP_RET_NO_NEIGH 7
#define BPF_FIB_LKUP_RET_FRAG_NEEDED 8

// The IPv6 flow label and traffic class: the first word of the header
// without the version.
#define IPV6_FLOWINFO_MASK 0x0FFFFFFF

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

// struct bpf_fib_lookup of the UAPI (linux/bpf.h), 64 bytes.
struct bpf_fib_lookup {
	__u8 family;
	__u8 l4_protocol;
	__be16 sport;
	__be16 dport;
	union {
		__u16 tot_len;
		__u16 mtu_result;
	} __attribute__((packed, aligned(2)));
	__u32 ifindex;
	union {
		__u8 tos;
		__be32 flowinfo;
		__u32 rt_metric;
	};
	union {
		__be32 ipv4_src;
		__u32 ipv6_src[4];
	};
	union {
		__be32 ipv4_dst;
		__u32 ipv6_dst[4];
	};
	union {
		struct {
			__be16 h_vlan_proto;
			__be16 h_vlan_TCI;
		};
		__u32 tbid;
	};
	__u8 smac[6];
	__u8 dmac[6];
};

struct eth {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};

struct ipv4 {
	__u8 vihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag;
	__u8 ttl;
	__u8 proto;
	__u16 check;
	__be32 src;
	__be32 dst;
};

struct ipv6 {
	__be32 vtcfl; // version, traffic class, flow label
	__be16 payload_len;
	__u8 next;
	__u8 hop_limit;
	__u32 src[4];
	__u32 dst[4];
};

// reason indexes stats; reasons.go names them.
enum reason {
	R_FORWARDED,	   // redirected to the FIB's egress device
	R_NOT_IP,	   // not IPv4 or IPv6 (ARP, VLAN-tagged): passed
	R_MALFORMED,	   // headers cut short: passed
	R_TTL,		   // TTL or hop limit <= 1: passed (the kernel sends the ICMP error)
	R_NO_ROUTE,	   // FIB: no route, blackhole, unreachable, prohibited, local, not forwarded: passed
	R_FWD_DISABLED,	   // FIB: forwarding disabled on the ingress device: passed
	R_NO_NEIGH,	   // FIB: no neighbour entry for the next hop: passed
	R_FRAG_NEEDED,	   // FIB: larger than the egress MTU: passed
	R_NO_PORT,	   // the egress device is not in tx_ports: passed
	R_REDIRECT_FAILED, // bpf_redirect_map refused (tx_ports changed meanwhile): dropped
	R_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, R_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

// tx_ports: ifindex -> ifindex of every device the program may redirect to.
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

static __always_inline void count(__u32 r)
{
	__u64 *n = bpf_map_lookup_elem(&stats, &r);

	if (n)
		*n += 1; // per-CPU: no atomic needed
}

static __always_inline int pass(__u32 r)
{
	count(r);
	return XDP_PASS;
}

// ipv4_decrement_ttl decrements the TTL and updates the header checksum
// incrementally. RFC 1624, eqn. 3:
//
//	HC' = ~(~HC + ~m + m')
//
// The TTL is the high byte of the 16-bit word {TTL, protocol}, so m' = m -
// 0x0100 and ~m + m' = -0x0100 in one's complement, i.e. ~HC' = ~HC -
// 0x0100, HC' = HC + 0x0100 with the carry folded back in. The sum is of
// network-order words; one's complement addition is byte-order independent,
// so adding bpf_htons(0x0100) to the stored field is the same.
static __always_inline void ipv4_decrement_ttl(struct ipv4 *ip)
{
	__u32 sum = (__u32)ip->check + (__u32)bpf_htons(0x0100);

	ip->check = (__u16)(sum + (sum >> 16));
	ip->ttl--;
}

SEC("xdp")
int xdp_fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct bpf_fib_lookup fib = {};
	struct eth *eth = data;
	struct ipv4 *ip4 = (void *)(eth + 1);
	struct ipv6 *ip6 = (void *)(eth + 1);
	int v4;

	if ((void *)(eth + 1) > data_end)
		return pass(R_MALFORMED);
	v4 = eth->proto == bpf_htons(ETH_P_IP);
	if (v4) {
		if ((void *)(ip4 + 1) > data_end)
			return pass(R_MALFORMED);
		if (ip4->ttl <= 1)
			return pass(R_TTL);
		fib.family = AF_INET;
		fib.tos = ip4->tos;
		fib.l4_protocol = ip4->proto;
		fib.tot_len = bpf_ntohs(ip4->tot_len);
		fib.ipv4_src = ip4->src;
		fib.ipv4_dst = ip4->dst;
	} else if (eth->proto == bpf_htons(ETH_P_IPV6)) {
		if ((void *)(ip6 + 1) > data_end)
			return pass(R_MALFORMED);
		if (ip6->hop_limit <= 1)
			return pass(R_TTL);
		fib.family = AF_INET6;
		fib.flowinfo = ip6->vtcfl & bpf_htonl(IPV6_FLOWINFO_MASK);
		fib.l4_protocol = ip6->next;
		fib.tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		__builtin_memcpy(fib.ipv6_src, ip6->src, sizeof(fib.ipv6_src));
		__builtin_memcpy(fib.ipv6_dst, ip6->dst, sizeof(fib.ipv6_dst));
	} else {
		return pass(R_NOT_IP);
	}
	fib.ifindex = ctx->ingress_ifindex;

	switch (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0)) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		break;
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return pass(R_FWD_DISABLED);
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		return pass(R_NO_NEIGH);
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return pass(R_FRAG_NEEDED);
	default:
		return pass(R_NO_ROUTE);
	}
	// A device that cannot transmit XDP frames would drop them where no
	// one sees it: only the devices the loader put in tx_ports (lookups
	// in a devmap from a program: kernel 5.8+).
	if (!bpf_map_lookup_elem(&tx_ports, &fib.ifindex))
		return pass(R_NO_PORT);

	// Both headers were bounds-checked above; the verifier tracks each
	// pointer's range, not which of the two branches ran, so check again.
	if (v4) {
		if ((void *)(ip4 + 1) > data_end)
			return pass(R_MALFORMED);
		ipv4_decrement_ttl(ip4);
	} else {
		if ((void *)(ip6 + 1) > data_end)
			return pass(R_MALFORMED);
		ip6->hop_limit--;
	}
	__builtin_memcpy(eth->dst, fib.dmac, sizeof(eth->dst));
	__builtin_memcpy(eth->src, fib.smac, sizeof(eth->src));

	// The frame is already rewritten: if the entry went away since the
	// lookup, drop it rather than hand the kernel a frame it would
	// forward a second time.
	if (bpf_redirect_map(&tx_ports, fib.ifindex, XDP_DROP) != XDP_REDIRECT) {
		count(R_REDIRECT_FAILED);
		return XDP_DROP;
	}
	count(R_FORWARDED);
	return XDP_REDIRECT;
}

char _license[] SEC("license") = "Dual BSD/GPL";
