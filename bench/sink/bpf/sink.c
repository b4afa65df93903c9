// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Benchmark counting sink (and reflector).
//
// Counts every frame it sees, and IP frames per endpoint {dst addr, dst
// port, family}; drops counted frames (or sends TCP/UDP ones back out of the
// same interface with Ethernet, IP addresses and L4 ports swapped when
// reflect is set) and passes non-IP frames (ARP) to the stack. With
// count_replies, a TCP/UDP frame to no endpoint whose {src addr, src port,
// family} is a reply source counts per source and is dropped, never
// reflected (nor is any other frame to no endpoint): one program is then
// both the endpoints and the clients of a one-arm reply scenario.
// Optionally copies every sample_every-th IP frame to user space through a
// ring buffer and remembers which endpoint each client (source address) hit
// first.
//
// The configuration is four read-only globals set before loading, so the
// verifier removes the sampling, tracking, reply-counting and reflecting
// code entirely when they are off: an unsampled, untracked frame costs two
// map lookups (the per-CPU stats and the per-CPU endpoint hash) and no
// atomics; a reply costs one more (the per-CPU source hash).
//
// Addresses are kept as 16 bytes plus a family; IPv4 uses the first four
// bytes and zeroes the rest (sink_linux.go builds keys the same way).

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
#define XDP_TX 3

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_PERCPU_HASH 5
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_RINGBUF 27

#define BPF_NOEXIST 1
#define EEXIST 17

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

#define FAMILY_V4 4
#define FAMILY_V6 6

// SAMPLE_BYTES is how much of a sampled frame is copied; keep in step with
// sampleBytes in sink_linux.go.
#define SAMPLE_BYTES 256
// EP_NONE is the endpoint index of a frame to no listed endpoint.
#define EP_NONE 0xffffffff
// EP_REPLY marks a sample's endpoint field as a reply source's index; keep
// in step with epReply in sink_linux.go.
#define EP_REPLY 0x80000000

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

struct eth {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};

struct vlan {
	__be16 tci;
	__be16 proto;
};

struct ip4 {
	__u8 vihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag;
	__u8 ttl;
	__u8 proto;
	__u16 csum;
	__be32 saddr;
	__be32 daddr;
};

struct ip6 {
	__be32 vtcfl;
	__be16 plen;
	__u8 nexthdr;
	__u8 hlim;
	__u8 saddr[16];
	__u8 daddr[16];
};

// ports is the first four bytes of a TCP or UDP header.
struct ports {
	__be16 src;
	__be16 dst;
};

// ep_key is an endpoint: destination address, destination port, family.
struct ep_key {
	__u8 addr[16];
	__be16 port;
	__u8 family;
	__u8 pad;
};

// ep_val is per CPU: index is the same on every CPU (written by user
// space), frames is this CPU's count. The source map (reply sources) uses
// the same key and value, the key holding the source address and port.
struct ep_val {
	__u64 frames;
	__u32 index;
	__u32 pad;
};

struct client_key {
	__u8 addr[16];
	__u32 family;
};

// client_val: endpoint is the first endpoint the client hit; moved is set
// (once, by compare-and-swap) when it later hits another one.
struct client_val {
	__u32 endpoint;
	__u32 moved;
};

// stats is the single per-CPU element of the stats array; keep in step with
// statsValue in sink_linux.go.
struct stats {
	__u64 total;
	__u64 bytes;
	__u64 other;
	__u64 non_ip;
	__u64 tick;            // IP frames since the last sample
	__u64 samples;         // samples submitted to the ring buffer
	__u64 samples_lost;    // ring buffer full
	__u64 clients;         // clients inserted
	__u64 clients_moved;   // moved flags set
	__u64 clients_dropped; // inserts refused (table full)
};

// sample is one ring buffer record; keep in step with sink_linux.go.
struct sample {
	__u32 endpoint; // index, EP_NONE, or EP_REPLY | a reply source's index
	__u32 len;      // frame length
	__u32 caplen;   // bytes of data that are valid
	__u32 pad;
	__u8 data[SAMPLE_BYTES];
};

volatile const __u32 sample_every = 0;
volatile const __u32 reflect = 0;
volatile const __u32 track_clients = 0;
volatile const __u32 count_replies = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stats);
} stats SEC(".maps");

// EP_MAP declares a per-CPU hash of ep_key to ep_val, sized by user space:
// endpoints (matched by destination) and sources (reply sources, matched by
// source).
#define EP_MAP(name)                                                                                   \
	struct {                                                                                       \
		__uint(type, BPF_MAP_TYPE_PERCPU_HASH);                                                \
		__uint(max_entries, 1);                                                                \
		__type(key, struct ep_key);                                                            \
		__type(value, struct ep_val);                                                          \
	} name SEC(".maps")

EP_MAP(endpoints);
EP_MAP(sources);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); // sized by user space
	__type(key, struct client_key);
	__type(value, struct client_val);
} clients SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); // sized by user space
} samples SEC(".maps");

static __always_inline void take_sample(struct xdp_md *ctx, struct stats *st, __u32 ep, __u32 len)
{
	if (++st->tick < sample_every)
		return;
	st->tick = 0;
	struct sample *s = bpf_ringbuf_reserve(&samples, sizeof(*s), 0);
	if (!s) {
		st->samples_lost++;
		return;
	}
	// The verifier needs caplen provably in [1, SAMPLE_BYTES]: a 64-bit
	// value that clang cannot fold the checks away from.
	__u64 caplen = len;
	asm volatile("" : "+r"(caplen));
	if (caplen > SAMPLE_BYTES)
		caplen = SAMPLE_BYTES;
	s->endpoint = ep;
	s->len = len;
	s->caplen = caplen;
	s->pad = 0;
	if (caplen < 1 || bpf_xdp_load_bytes(ctx, 0, s->data, caplen) < 0) {
		bpf_ringbuf_discard(s, 0);
		st->samples_lost++;
		return;
	}
	bpf_ringbuf_submit(s, 0);
	st->samples++;
}

static __always_inline void track(struct stats *st, struct client_key *ck, __u32 ep)
{
	struct client_val *cv = bpf_map_lookup_elem(&clients, ck);
	if (!cv) {
		struct client_val nv = {.endpoint = ep};
		long err = bpf_map_update_elem(&clients, ck, &nv, BPF_NOEXIST);
		if (err == 0) {
			st->clients++;
			return;
		}
		if (err != -EEXIST) {
			st->clients_dropped++;
			return;
		}
		// Another CPU inserted the client first: compare with its entry.
		cv = bpf_map_lookup_elem(&clients, ck);
		if (!cv)
			return;
	}
	if (cv->endpoint != ep && cv->moved == 0 && __sync_val_compare_and_swap(&cv->moved, 0, 1) == 0)
		st->clients_moved++;
}

static __always_inline void swap_eth(struct eth *eth)
{
	__u8 tmp[6];
	__builtin_memcpy(tmp, eth->src, 6);
	__builtin_memcpy(eth->src, eth->dst, 6);
	__builtin_memcpy(eth->dst, tmp, 6);
}

// swap_ports exchanges the L4 ports. Together with the address swap this
// leaves the IPv4 header checksum and the TCP/UDP checksum valid: both are
// one's-complement sums, and a sum does not depend on the order of its
// 16-bit words (RFC 1071, 2.(B) "commutative and associative").
static __always_inline void swap_ports(struct ports *p)
{
	__be16 tmp = p->src;
	p->src = p->dst;
	p->dst = tmp;
}

// lookup counts a frame in map m (endpoints by destination, or reply sources
// by source) and returns the entry's index, or EP_NONE when there is none.
static __always_inline __u32 lookup(void *m, struct ep_key *key)
{
	struct ep_val *v = bpf_map_lookup_elem(m, key);
	if (!v)
		return EP_NONE;
	v->frames++;
	return v->index;
}

// reflects reports whether a TCP/UDP frame counted as ep goes back: every
// one with reflect alone, only an endpoint's with count_replies too (a reply
// reflected would loop, and so could a frame that is neither).
static __always_inline int reflects(__u32 ep)
{
	if (!reflect)
		return 0;
	return !count_replies || ep < EP_REPLY;
}

static __always_inline int handle4(struct xdp_md *ctx, struct stats *st, struct eth *eth, struct ip4 *ip,
				   void *data_end, __u32 len)
{
	struct ports *ports = 0;
	__u32 ep = EP_NONE;
	__u32 hl = (ip->vihl & 0x0f) * 4;
	if (hl >= sizeof(*ip) && (ip->frag & bpf_htons(0x1fff)) == 0 &&
	    (ip->proto == IPPROTO_TCP || ip->proto == IPPROTO_UDP)) {
		ports = (void *)ip + hl;
		if ((void *)(ports + 1) > data_end)
			ports = 0;
	}
	if (ports) {
		struct ep_key key = {.port = ports->dst, .family = FAMILY_V4};
		__builtin_memcpy(key.addr, &ip->daddr, 4);
		ep = lookup(&endpoints, &key);
		if (count_replies && ep == EP_NONE) {
			key.port = ports->src;
			__builtin_memcpy(key.addr, &ip->saddr, 4);
			ep = lookup(&sources, &key);
			if (ep != EP_NONE)
				ep |= EP_REPLY;
		}
	}
	if (ep == EP_NONE)
		st->other++;
	if (sample_every)
		take_sample(ctx, st, ep, len);
	if (track_clients && ep < EP_REPLY) {
		struct client_key ck = {.family = FAMILY_V4};
		__builtin_memcpy(ck.addr, &ip->saddr, 4);
		track(st, &ck, ep);
	}
	if (!ports || !reflects(ep))
		return XDP_DROP;
	swap_eth(eth);
	__be32 a = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = a;
	swap_ports(ports);
	return XDP_TX;
}

static __always_inline int handle6(struct xdp_md *ctx, struct stats *st, struct eth *eth, struct ip6 *ip,
				   void *data_end, __u32 len)
{
	struct ports *ports = 0;
	__u32 ep = EP_NONE;
	// Extension headers are not walked: such frames count as Other.
	if (ip->nexthdr == IPPROTO_TCP || ip->nexthdr == IPPROTO_UDP) {
		ports = (void *)(ip + 1);
		if ((void *)(ports + 1) > data_end)
			ports = 0;
	}
	if (ports) {
		struct ep_key key = {.port = ports->dst, .family = FAMILY_V6};
		__builtin_memcpy(key.addr, ip->daddr, 16);
		ep = lookup(&endpoints, &key);
		if (count_replies && ep == EP_NONE) {
			key.port = ports->src;
			__builtin_memcpy(key.addr, ip->saddr, 16);
			ep = lookup(&sources, &key);
			if (ep != EP_NONE)
				ep |= EP_REPLY;
		}
	}
	if (ep == EP_NONE)
		st->other++;
	if (sample_every)
		take_sample(ctx, st, ep, len);
	if (track_clients && ep < EP_REPLY) {
		struct client_key ck = {.family = FAMILY_V6};
		__builtin_memcpy(ck.addr, ip->saddr, 16);
		track(st, &ck, ep);
	}
	if (!ports || !reflects(ep))
		return XDP_DROP;
	swap_eth(eth);
	__u8 tmp[16];
	__builtin_memcpy(tmp, ip->saddr, 16);
	__builtin_memcpy(ip->saddr, ip->daddr, 16);
	__builtin_memcpy(ip->daddr, tmp, 16);
	swap_ports(ports);
	return XDP_TX;
}

SEC("xdp")
int sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct stats *st = bpf_map_lookup_elem(&stats, &zero);
	if (!st)
		return XDP_PASS; // cannot happen: a one-element array
	__u32 len = data_end - data;
	st->total++;
	st->bytes += len;

	struct eth *eth = data;
	if ((void *)(eth + 1) > data_end) {
		st->non_ip++;
		return XDP_PASS;
	}
	__be16 proto = eth->proto;
	void *l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan *vl = l3;
		if ((void *)(vl + 1) > data_end) {
			st->non_ip++;
			return XDP_PASS;
		}
		proto = vl->proto;
		l3 = vl + 1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct ip4 *ip = l3;
		if ((void *)(ip + 1) > data_end) {
			st->other++; // truncated: IP, but nothing to match
			return XDP_DROP;
		}
		return handle4(ctx, st, eth, ip, data_end, len);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ip6 *ip = l3;
		if ((void *)(ip + 1) > data_end) {
			st->other++;
			return XDP_DROP;
		}
		return handle6(ctx, st, eth, ip, data_end, len);
	}
	st->non_ip++;
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
