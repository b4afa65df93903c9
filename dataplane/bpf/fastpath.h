// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// xdpgate XDP fast path for established flows (included by classifier.c).
//
// The userspace pipeline stays the authority: it installs one fast_flows
// entry per direction of a flow once the flow is established (TCP: the
// handshake seen both ways; UDP: after the first reply) and removes it when
// the flow ends, times out or loses its endpoint. An entry is the
// translation precomputed: the new addresses and ports, the one's
// complement sums (~m + m') of the words each step changes, the MACs and the
// egress device. This program applies exactly what the Go pipeline would,
// in the same order and with the same arithmetic (nat.ChecksumAdjust, RFC
// 1624 eqn. 3): source rewrite, destination rewrite, TTL - 1, Ethernet
// addresses; so the output is byte-identical (TestFastPathOracle).
//
// A frame takes the fast path only when all of these hold, else it goes on
// to the classifier below (and so to userspace) untouched:
//   - IPv4 that is not a fragment (options allowed), or IPv6 whose next
//     header is TCP or UDP directly (no extension headers);
//   - TCP without SYN, FIN or RST (the pipeline tracks the state), or UDP;
//   - the frame holds the whole IP packet; TTL/hop limit above 1 (expiry is
//     answered by userspace); the IP length fits the egress MTU recorded in
//     the entry (too big is answered by userspace);
//   - the entry's slot generation matches (a slot reused for a later flow
//     before the stale entry was removed never forwards);
//   - the egress device is in fast_ports, the devices userspace found able
//     to transmit XDP frames; a device leaving that map moves its flows to
//     the slow path at once.
// Out goes XDP_TX (egress = receiving device) or XDP_REDIRECT through the
// fast_ports devmap.
//
// Per entry the program adds packets and bytes (IP length, as the
// pipeline counts), stores the last-seen time (bpf_ktime_get_ns: the
// CLOCK_MONOTONIC clock conntrack's times are in) and, for TCP, the end
// of the latest segment and its acknowledgment number, in fast_stats, an
// mmap-able array userspace reads without a system call.

// fast_key is a direction's tuple as received (addresses 16 bytes, IPv4
// mapped as in struct tuple).
struct fast_key {
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

#define FAST_SRC 1 // rewrite the source (address and port)
#define FAST_DST 2 // rewrite the destination

// fast_val is the precomputed rewrite of one direction.
struct fast_val {
	__u8 src[16]; // new source address (IPv4: the first 4 bytes)
	__u8 dst[16]; // new destination address
	__be16 sport; // new ports
	__be16 dport;
	__u8 dmac[6]; // next hop
	__u8 smac[6]; // egress device
	__u32 ifindex; // egress device
	__u32 slot;    // fast_stats index
	__u32 gen;     // must equal fast_stats[slot].gen
	__u32 l3_src;  // IPv4 header checksum sums of the source step
	__u32 l3_dst;  // ... and of the destination step
	__u32 l4_src;  // TCP/UDP checksum sums (pseudo-header and port)
	__u32 l4_dst;
	__u16 mtu; // egress MTU: larger IP packets go to userspace
	__u8 dir;  // 0 original, 1 reply: the fast_stats half to count in
	__u8 flags;
};

struct fast_dir {
	__u64 packets;
	__u64 bytes;
	__u64 last;     // bpf_ktime_get_ns of the latest packet
	__u32 seq_end;  // TCP: seq + payload length of the latest segment
	__u32 ack;      // TCP: its acknowledgment number (with ACK set)
};

// fast_stat is one flow's slot: both directions' counters, written by this
// program; gen and the credited counts are userspace's.
struct fast_stat {
	struct fast_dir d[2];
	__u32 gen;
	__u32 pad;
	__u64 credited[4]; // userspace: packets and bytes per direction already credited
	__u64 pad2[3];
};

// Fast path counter indexes; keep in step with fastpath_linux.go.
enum {
	FCNT_TX = 0,      // forwarded with XDP_TX
	FCNT_REDIRECT,    // forwarded with XDP_REDIRECT
	FCNT_SLOW_FLAGS,  // an entry's TCP segment with SYN, FIN or RST
	FCNT_SLOW_TTL,    // an entry's packet whose TTL would expire
	FCNT_SLOW_MTU,    // an entry's packet larger than the egress MTU
	FCNT_SLOW_STALE,  // an entry whose slot was reused
	FCNT_SLOW_DEVICE, // an entry whose egress device is not in fast_ports
	FCNT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2);
	__type(key, struct fast_key);
	__type(value, struct fast_val);
} fast_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct fast_stat);
} fast_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} fast_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FCNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} fast_counters SEC(".maps");

// fast_enabled is set when the program is loaded (FastPath, Go side); while
// 0 the verifier removes the fast path and the classifier is as without it.
volatile const __u32 fast_enabled = 0;

static __always_inline void fast_count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&fast_counters, &idx);
	if (c)
		*c += 1;
}

// csum_adjust is nat.ChecksumAdjust on the big-endian field at p:
// HC' = ~(~HC + ~m + m') (RFC 1624, section 3, eqn. 3), diff < 2^24.
static __always_inline __u16 csum_fold_adjust(__u16 hc, __u32 diff)
{
	__u32 s = (__u32)(__u16)~hc + diff;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

static __always_inline __u16 rd16(const __u8 *p)
{
	return (__u16)p[0] << 8 | p[1];
}

static __always_inline void wr16(__u8 *p, __u16 v)
{
	p[0] = v >> 8;
	p[1] = v;
}

// l4_adjust applies diff to the TCP or UDP checksum at c, with UDP's rules
// (nat.adjustUDP): 0 stays 0, a computed 0 is written as 0xFFFF.
static __always_inline void l4_adjust(__u8 *c, __u8 proto, __u32 diff)
{
	__u16 hc = rd16(c);
	if (proto == IPPROTO_UDP) {
		if (hc == 0)
			return;
		__u16 n = csum_fold_adjust(hc, diff);
		wr16(c, n ? n : 0xffff);
		return;
	}
	wr16(c, csum_fold_adjust(hc, diff));
}

// fast_path forwards the frame if it belongs to an installed flow and
// returns the XDP action, or -1 to let the classifier decide.
static __always_inline int fast_path(struct xdp_md *ctx, void *data, void *data_end, __u32 off,
				     __u16 eth_proto)
{
	struct fast_key k = {};
	__u8 *l3 = data + off;
	__u8 *l4;
	__u32 iplen;
	__u8 ttl;
	int v6 = 0;

	if (!fast_enabled || off > 22)
		return -1;
	if (eth_proto == ETH_P_IP) {
		if ((void *)(l3 + 20) > data_end)
			return -1;
		if ((l3[0] >> 4) != 4)
			return -1;
		__u32 ihl = (l3[0] & 0x0f) * 4;
		if (ihl < 20)
			return -1;
		if ((l3[6] & 0x3f) != 0 || l3[7] != 0) // MF or a fragment offset
			return -1;
		k.proto = l3[9];
		iplen = rd16(l3 + 2);
		ttl = l3[8];
		map_v4(k.src, l3 + 12);
		map_v4(k.dst, l3 + 16);
		l4 = l3 + ihl;
	} else if (eth_proto == ETH_P_IPV6) {
		if ((void *)(l3 + 40) > data_end)
			return -1;
		if ((l3[0] >> 4) != 6)
			return -1;
		k.proto = l3[6];
		iplen = 40 + (__u32)rd16(l3 + 4);
		ttl = l3[7];
		__builtin_memcpy(k.src, l3 + 8, 16);
		__builtin_memcpy(k.dst, l3 + 24, 16);
		l4 = l3 + 40;
		v6 = 1;
	} else {
		return -1;
	}
	if (k.proto != IPPROTO_TCP && k.proto != IPPROTO_UDP)
		return -1;
	if ((void *)(l4 + 8) > data_end)
		return -1;
	if (iplen > 0xffff || (void *)(l3 + iplen) > data_end)
		return -1;
	__builtin_memcpy(&k.sport, l4, 2);
	__builtin_memcpy(&k.dport, l4 + 2, 2);

	struct fast_val *v = bpf_map_lookup_elem(&fast_flows, &k);
	if (!v)
		return -1;
	__u8 tcpflags = 0;
	__u32 seq = 0, ack = 0, doff = 0;
	if (k.proto == IPPROTO_TCP) {
		if ((void *)(l4 + 20) > data_end)
			return -1;
		tcpflags = l4[13];
		if (tcpflags & 0x07) { // FIN, SYN, RST: the pipeline's
			fast_count(FCNT_SLOW_FLAGS);
			return -1;
		}
		doff = (l4[12] >> 4) * 4;
		seq = (__u32)l4[4] << 24 | (__u32)l4[5] << 16 | (__u32)l4[6] << 8 | l4[7];
		ack = (__u32)l4[8] << 24 | (__u32)l4[9] << 16 | (__u32)l4[10] << 8 | l4[11];
	}
	if (ttl <= 1) {
		fast_count(FCNT_SLOW_TTL);
		return -1;
	}
	if (iplen > v->mtu) {
		fast_count(FCNT_SLOW_MTU);
		return -1;
	}
	__u32 slot = v->slot;
	struct fast_stat *st = bpf_map_lookup_elem(&fast_stats, &slot);
	if (!st || st->gen != v->gen) {
		fast_count(FCNT_SLOW_STALE);
		return -1;
	}
	__u32 ifindex = v->ifindex;
	if (!bpf_map_lookup_elem(&fast_ports, &ifindex)) {
		fast_count(FCNT_SLOW_DEVICE);
		return -1;
	}

	// From here on the frame is ours and changes, in the pipeline's order.
	__u8 *l4c = k.proto == IPPROTO_TCP ? l4 + 16 : l4 + 6;
	if ((void *)(l4c + 2) > data_end)
		return -1;
	if (v->flags & FAST_SRC) {
		if (v6) {
			__builtin_memcpy(l3 + 8, v->src, 16);
		} else {
			__builtin_memcpy(l3 + 12, v->src, 4);
			wr16(l3 + 10, csum_fold_adjust(rd16(l3 + 10), v->l3_src));
		}
		__builtin_memcpy(l4, &v->sport, 2);
		l4_adjust(l4c, k.proto, v->l4_src);
	}
	if (v->flags & FAST_DST) {
		if (v6) {
			__builtin_memcpy(l3 + 24, v->dst, 16);
		} else {
			__builtin_memcpy(l3 + 16, v->dst, 4);
			wr16(l3 + 10, csum_fold_adjust(rd16(l3 + 10), v->l3_dst));
		}
		__builtin_memcpy(l4 + 2, &v->dport, 2);
		l4_adjust(l4c, k.proto, v->l4_dst);
	}
	if (v6) {
		l3[7] = ttl - 1;
	} else {
		// TTL and protocol are one 16-bit word (nat.DecrementTTL4).
		__u16 old = (__u16)ttl << 8 | l3[9];
		__u16 n = old - 0x100;
		l3[8] = ttl - 1;
		wr16(l3 + 10, csum_fold_adjust(rd16(l3 + 10), (__u32)(__u16)~old + n));
	}
	__u8 *eth = data;
	__builtin_memcpy(eth, v->dmac, 6);
	__builtin_memcpy(eth + 6, v->smac, 6);

	struct fast_dir *d = &st->d[v->dir & 1];
	__sync_fetch_and_add(&d->packets, 1);
	__sync_fetch_and_add(&d->bytes, iplen);
	d->last = bpf_ktime_get_ns();
	if (k.proto == IPPROTO_TCP) {
		__u32 hdr = (__u32)(l4 - l3) + doff;
		d->seq_end = seq + (iplen > hdr ? iplen - hdr : 0);
		if (tcpflags & 0x10)
			d->ack = ack;
	}
	if (ifindex == ctx->ingress_ifindex) {
		fast_count(FCNT_TX);
		return XDP_TX;
	}
	fast_count(FCNT_REDIRECT);
	return bpf_redirect_map(&fast_ports, ifindex, 0);
}
