package pipeline

import (
	"maps"
	"slices"
	"sync/atomic"

	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
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
	forwarded, snatRetries, tooBig              uint64
}

// pipePublished is what other goroutines read: the counters as of the end
// of the poller's last batch, and the exact nat drop reasons (rare, so
// counted atomically at once). Only the queue's poller writes it; the
// padding keeps two queues off one cache line.
type pipePublished struct {
	c        [13]atomic.Uint64 // pipeCounters, in field order
	natDrops [nat.NumDropReasons]atomic.Uint64
	_        [64]byte
}

// publish copies the counters for Stats (once per batch).
func (pq *pipeQueue) publish() {
	c, p := &pq.c, &pq.pub
	for i, v := range [13]uint64{c.established, c.replies, c.newFlows, c.insertRaces,
		c.affinityHits, c.affinityMisses, c.rejects, c.timeExceeded, c.icmpErrors,
		c.fragments, c.forwarded, c.snatRetries, c.tooBig} {
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
		o.TooBig = c.c[12].Load()
		for r := range c.natDrops {
			o.NATDrops[r] = c.natDrops[r].Load()
		}
	}
	return out
}

// Per-service-port affinity events, the index into svcCounters.
const (
	svcHits      = iota // a new flow found its client's pin valid
	svcMisses           // no valid pin: a fresh choice
	svcNewPins          // a Pin that started (or re-pointed) an affinity
	svcEvictions        // a Pin that had to evict the least recently pinned entry
	numSvcEvents
)

// svcCounters are one queue's affinity counters of one service port. Only
// the queue's poller adds to them (uncontended atomic adds, one or two per
// new ClientIP flow, never per packet); scrapes read them.
type svcCounters [numSvcEvents]atomic.Uint64

// add counts event e; a nil receiver (no index yet) counts nothing.
func (c *svcCounters) add(e int) {
	if c != nil {
		c[e].Add(1)
	}
}

// ServicePortLabels name the service port of per-service metrics: the
// bounded label set (kube-proxy's ServicePortName). Both IP families of a
// dual-stack Service share one set of counters.
type ServicePortLabels struct {
	Namespace, Name, PortName, Protocol string
}

// svcIndex maps the IDs of ClientIP service ports to dense counter
// indices. It is immutable once published; Publish replaces it with a
// superset before publishing a snapshot, so every ClientIP port a poller
// sees in a snapshot has an index.
type svcIndex struct {
	byID   map[uint32]int32
	labels []ServicePortLabels // index -> labels
	// expiries counts, per index, pins that expired (affinity.Table's
	// OnExpire hook, from pollers and housekeeping alike). The counters
	// are shared by every later index, so no count is lost to a
	// replacement.
	expiries []*atomic.Uint64
}

// svcStats are the per-service-port affinity counters: per queue, an
// array indexed by svcIndex. index is replaced under the Pipeline's pubMu;
// each queue's counters array is replaced only by that queue's poller,
// which takes the larger array Publish left in spare when an index does
// not fit (so Process never allocates), copying its counts over first.
type svcStats struct {
	index  atomic.Pointer[svcIndex]
	byKey  map[ServicePortLabels]int32 // guarded by the Pipeline's pubMu
	queues []svcQueue
}

type svcQueue struct {
	cur, spare atomic.Pointer[[]svcCounters]
	_          [64 - 16]byte
}

func (s *svcStats) init(queues int) {
	s.index.Store(&svcIndex{byID: map[uint32]int32{}})
	s.byKey = map[ServicePortLabels]int32{}
	s.queues = make([]svcQueue, queues)
}

// update makes the index cover every ClientIP service port of snap and
// leaves every queue a spare array large enough for it. The caller holds
// pubMu. Indices are never reused: a service port that leaves keeps its
// counters (a Service re-created under the same name continues them).
func (s *svcStats) update(snap *snapshot.Snapshot) {
	old := s.index.Load()
	var nx *svcIndex
	for i := range snap.ServicePorts {
		sp := &snap.ServicePorts[i]
		if sp.AffinitySeconds == 0 {
			continue
		}
		if _, ok := old.byID[sp.ID]; ok {
			continue
		}
		if nx == nil {
			nx = &svcIndex{byID: maps.Clone(old.byID), labels: slices.Clip(old.labels), expiries: slices.Clip(old.expiries)}
		}
		k := ServicePortLabels{sp.Namespace, sp.Name, sp.PortName, sp.Protocol.String()}
		j, ok := s.byKey[k]
		if !ok {
			j = int32(len(nx.labels))
			nx.labels = append(nx.labels, k)
			nx.expiries = append(nx.expiries, new(atomic.Uint64))
			s.byKey[k] = j
		}
		nx.byID[sp.ID] = j
	}
	if nx == nil {
		return
	}
	for i := range s.queues {
		q := &s.queues[i]
		if sp := q.spare.Load(); sp == nil || len(*sp) < len(nx.labels) {
			a := make([]svcCounters, len(nx.labels)+len(nx.labels)/4+8)
			q.spare.Store(&a)
		}
	}
	s.index.Store(nx)
}

// expired counts an expired pin of service port id (affinity.Table's
// OnExpire hook: any goroutine, the table's shard lock held).
func (s *svcStats) expired(id uint32) {
	ix := s.index.Load()
	if j, ok := ix.byID[id]; ok {
		ix.expiries[j].Add(1)
	}
}

// counters returns queue q's counters of service port id, nil if id has no
// index (a service port without affinity). Only q's poller calls it.
func (s *svcStats) counters(q int, id uint32) *svcCounters {
	i, ok := s.index.Load().byID[id]
	if !ok {
		return nil
	}
	sq := &s.queues[q]
	cur := sq.cur.Load()
	if cur == nil || int(i) >= len(*cur) {
		nx := sq.spare.Load()
		if nx == nil || int(i) >= len(*nx) || nx == cur {
			return nil // unreachable: update leaves a large enough spare
		}
		if cur != nil {
			for j := range *cur {
				for e := range numSvcEvents {
					(*nx)[j][e].Store((*cur)[j][e].Load())
				}
			}
		}
		sq.cur.Store(nx)
		cur = nx
	}
	return &(*cur)[i]
}

// ServicePortAffinity are the affinity counters of one ClientIP service
// port, summed over queues, cumulative since New.
type ServicePortAffinity struct {
	ServicePortLabels
	// IDs are the service port IDs (one per IP family) these counters
	// cover in the current snapshot.
	IDs []uint32
	// Hits counts new flows whose client had a valid pin; Misses new flows
	// without one (a fresh choice).
	Hits, Misses uint64
	// NewPins counts pins that started an affinity (or re-pointed one whose
	// endpoint was no longer usable); Evictions those of them that had to
	// evict the least recently pinned entry (of any service port) from a
	// full probe window.
	NewPins, Evictions uint64
	// Expiries counts pins that expired (timeoutSeconds without a new
	// connection), removed by a lookup, a pin or the sweep.
	Expiries uint64
}

// AffinityStats returns the counters of every ClientIP service port of the
// current snapshot, in snapshot order. It allocates; call it at scrape time.
func (p *Pipeline) AffinityStats() []ServicePortAffinity {
	snap := p.snap.Load()
	if snap == nil {
		return nil
	}
	ix := p.svc.index.Load()
	var out []ServicePortAffinity
	at := map[int32]int{}
	for i := range snap.ServicePorts {
		sp := &snap.ServicePorts[i]
		j, ok := ix.byID[sp.ID]
		if !ok || sp.AffinitySeconds == 0 {
			continue
		}
		if k, seen := at[j]; seen {
			out[k].IDs = append(out[k].IDs, sp.ID)
			continue
		}
		at[j] = len(out)
		o := ServicePortAffinity{ServicePortLabels: ix.labels[j], IDs: []uint32{sp.ID}}
		for q := range p.svc.queues {
			cur := p.svc.queues[q].cur.Load()
			if cur == nil || int(j) >= len(*cur) {
				continue
			}
			c := &(*cur)[j]
			o.Hits += c[svcHits].Load()
			o.Misses += c[svcMisses].Load()
			o.NewPins += c[svcNewPins].Load()
			o.Evictions += c[svcEvictions].Load()
		}
		o.Expiries = ix.expiries[j].Load()
		out = append(out, o)
	}
	return out
}
