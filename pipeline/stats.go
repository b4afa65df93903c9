package pipeline

import (
	"sync/atomic"

	"github.com/xdpgate/xdpgate/nat"
)

// pipeCounters are one queue's event counters, plain integers written only
// by that queue's poller: an atomic add per packet costs a locked
// instruction (10-20 ns), a large share of a 60 ns budget. The poller
// copies them into pipePublished once per batch (publish), where Stats
// reads them.
type pipeCounters struct {
	established, replies, newFlows, insertRaces uint64
	affinityHits, affinityMisses, rejects       uint64
	timeExceeded, icmpErrors, fragments         uint64
	forwarded, snatRetries, tooBig, reopens     uint64
}

// pipePublished is what other goroutines read: the counters as of the end
// of the poller's last batch, and the exact nat drop reasons (rare, so
// counted atomically at once). Only the queue's poller writes it; the
// padding keeps two queues off one cache line.
type pipePublished struct {
	c        [14]atomic.Uint64 // pipeCounters, in field order
	natDrops [nat.NumDropReasons]atomic.Uint64
	_        [64]byte
}

// publish copies the counters for Stats (once per batch).
func (pq *pipeQueue) publish() {
	c, p := &pq.c, &pq.pub
	for i, v := range [14]uint64{c.established, c.replies, c.newFlows, c.insertRaces,
		c.affinityHits, c.affinityMisses, c.rejects, c.timeExceeded, c.icmpErrors,
		c.fragments, c.forwarded, c.snatRetries, c.tooBig, c.reopens} {
		if p.c[i].Load() != v {
			p.c[i].Store(v)
		}
	}
}

// QueueStats are one queue's pipeline counters, cumulative since
// New, as of the end of the queue's last batch. Drops by reason
// are in the I/O layer's dataplane.QueueStats.Drops.
type QueueStats struct {
	// Established and Replies count packets of existing flows in the
	// original and the reply direction.
	Established, Replies uint64
	// NewFlows counts flows this queue inserted; InsertRaces new-flow
	// packets whose flow another poller (or frame) inserted first.
	NewFlows, InsertRaces uint64
	// AffinityHits and AffinityMisses count ClientIP lookups of new flows
	// (a hit on an endpoint no longer usable is a miss).
	AffinityHits, AffinityMisses uint64
	// Rejects counts ICMP port unreachable replies sent; TimeExceeded ICMP
	// time exceeded replies sent.
	Rejects, TimeExceeded uint64
	// ICMPErrors counts ICMP errors translated for a flow; Fragments
	// non-first fragments forwarded along their datagram's flow.
	ICMPErrors, Fragments uint64
	// Forwarded counts translated packets handed to TX, or held by the I/O
	// layer until their next hop resolves (dataplane QueueStats.NeighHeld).
	Forwarded uint64
	// SNATRetries counts SNAT ports found in use while allocating.
	SNATRetries uint64
	// TooBig counts ICMP fragmentation needed / packet too big errors
	// sent for packets larger than the egress MTU.
	TooBig uint64
	// Reopens counts TCP SYNs that opened a new connection on the tuple of
	// a closed flow still remembered (TIME_WAIT or CLOSE): the old flow was
	// deleted and the SYN started a new one, chosen afresh.
	Reopens uint64
	// NATDrops counts drops by exact nat reason (index nat.DropReason);
	// dataplane.QueueStats.Drops has them grouped.
	NATDrops [nat.NumDropReasons]uint64
}

// Stats returns every queue's counters, indexed by dataplane.Queue.Index.
func (p *Pipeline) Stats() []QueueStats {
	out := make([]QueueStats, len(p.queues))
	for i := range p.queues {
		c, o := &p.queues[i].pub, &out[i]
		o.Established, o.Replies = c.c[0].Load(), c.c[1].Load()
		o.NewFlows, o.InsertRaces = c.c[2].Load(), c.c[3].Load()
		o.AffinityHits, o.AffinityMisses = c.c[4].Load(), c.c[5].Load()
		o.Rejects, o.TimeExceeded = c.c[6].Load(), c.c[7].Load()
		o.ICMPErrors, o.Fragments = c.c[8].Load(), c.c[9].Load()
		o.Forwarded, o.SNATRetries = c.c[10].Load(), c.c[11].Load()
		o.TooBig, o.Reopens = c.c[12].Load(), c.c[13].Load()
		for r := range c.natDrops {
			o.NATDrops[r] = c.natDrops[r].Load()
		}
	}
	return out
}
