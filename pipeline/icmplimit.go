package pipeline

import (
	"net/netip"
	"sync/atomic"

	"github.com/xdpgate/xdpgate/maglev"
)

// ICMP error budgets: the kernel's, one per gateway as the kernel's are
// one per host, shared by every queue.
//
//   - Global: net.ipv4.icmp_msgs_per_sec = 1000 and icmp_msgs_burst = 50,
//     a token bucket refilled with the batch clock.
//   - Per destination: net.ipv4.icmp_ratelimit = 1000 ms, the interval
//     between errors to one address, with the kernel's XRLIM_BURST_FACTOR
//     of 6 as the burst (inet_peer_xrlim_allow). The kernel keeps this in
//     its inet_peer cache; here it is a fixed array of icmpDestSlots
//     buckets indexed by a hash of the destination. Addresses that share a
//     slot share its budget: a collision limits more, never less, and the
//     state is bounded, pointer-free and never allocated on the data path
//     whatever the number of destinations.
//
// A bucket is one atomic word updated by compare-and-swap, so queues share
// budgets without a lock; errors are rare, so the shared cache lines are
// written only when one is sent (a reflection flood sent over every queue,
// which RSS spreads by the spoofed ports, gets one gateway's budget, not
// one per queue).
//
// Too-big errors use the global bucket only: the kernel exempts
// fragmentation needed from the per-destination limit
// (icmpv4_mask_allow), because path MTU discovery must not stall.
const (
	icmpRate  = 1000
	icmpBurst = 50
	// icmpDestInterval is the per-destination refill interval (ns).
	icmpDestInterval = int64(1e9)
	icmpDestBurst    = 6
	// icmpDestSlots is the number of per-destination buckets (a power of
	// two): 8 bytes each.
	icmpDestSlots = 1024
)

// bucket is a token bucket kept as GCRA's theoretical arrival time (ns of
// the batch clock): one integer, and its zero value is a full bucket.
type bucket struct{ tat atomic.Int64 }

// take takes a token of a bucket refilled every interval ns up to burst
// tokens, if there is one. Queues' batch clocks may differ by a batch:
// GCRA's max(tat, now) absorbs that.
func (b *bucket) take(now, interval, burst int64) bool {
	for {
		tat := b.tat.Load()
		if tat-now > (burst-1)*interval {
			return false
		}
		if b.tat.CompareAndSwap(tat, max(tat, now)+interval) {
			return true
		}
	}
}

// giveBack returns a token take took.
func (b *bucket) giveBack(interval int64) { b.tat.Add(-interval) }

// icmpLimiter is the gateway's ICMP error budget: the global bucket and the
// per-destination buckets, shared by the queues.
type icmpLimiter struct {
	global bucket
	dest   [icmpDestSlots]bucket
}

// allowGlobal takes a token of the global bucket (too-big errors).
func (l *icmpLimiter) allowGlobal(now int64) bool {
	return l.global.take(now, 1e9/icmpRate, icmpBurst)
}

// allow reports whether an ICMP error to dst may be sent now: both the
// destination's bucket and the global one must have a token. A refusal by
// the global bucket gives the destination its token back, so one flooded
// victim does not starve errors to everyone else.
func (l *icmpLimiter) allow(dst netip.Addr, now int64) bool {
	d := &l.dest[maglev.HashClientIP(dst)&(icmpDestSlots-1)]
	if !d.take(now, icmpDestInterval, icmpDestBurst) {
		return false
	}
	if !l.global.take(now, 1e9/icmpRate, icmpBurst) {
		d.giveBack(icmpDestInterval) // not sent: the destination keeps its token
		return false
	}
	return true
}
