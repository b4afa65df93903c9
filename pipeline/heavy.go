package pipeline

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/xdpgate/xdpgate/internal/topk"
)

// Heavy clients of ClientIP service ports.
//
// Every ClientIP service port (by its dense counter index, so both IP
// families of a port share it) gets, per queue, two topk sketches: one of
// new connections per client address (every new flow, the flow's source)
// and one of packets from the client (sampled: on average one original-
// direction packet in HeavySampleMean is counted, with the weight of the
// packets since the previous sample). A sketch update costs a hash and at
// most four compares on plain memory.
//
// A queue's sketches are plain memory, handed between the poller and
// readers by an ownership word per queue (heavyQueue.own): the poller takes
// it (one CAS) at the first update of a batch and gives it back at the end
// of the batch; a reader (HeavyClients) takes it between batches and holds
// it while it copies. The poller never waits: in the rare batch where a
// reader holds its sketches, its updates are counted as lost instead
// (Lost widens every bound). Sketch sets are allocated by Publish and never
// freed (their number is bounded by the ClientIP service ports seen).

const (
	// HeavyWindow is the generation length of the sketches: they report
	// the last one to two windows of traffic (topk).
	HeavyWindow = 30 * time.Second
	// HeavySampleMean is the mean interval of the packet sampling.
	HeavySampleMean = 32
)

// Ownership of a queue's sketches.
const (
	heavyFree uint32 = iota
	heavyPoller
	heavyReader
)

// heavyQueue is one queue's ownership word and lost-update counter,
// padded to its own cache line.
type heavyQueue struct {
	own  atomic.Uint32
	lost atomic.Uint64
	_    [64 - 16]byte
}

// heavyPair are one queue's sketches of one service port.
type heavyPair struct {
	conns, pkts *topk.Sketch
	// sampleLeft counts down to the next sampled packet; sampled is the
	// interval it started from (the weight of the sample). Poller only.
	sampleLeft, sampled uint32
}

// heavySet are the sketches of one service port, per queue.
type heavySet struct {
	q []heavyPair
}

// heavyIndex maps dense service-port indices to sketch sets; immutable
// once published.
type heavyIndex struct {
	of []*heavySet // by dense index; nil: no sketches
}

// heavyStats are the heavy-client sketches.
type heavyStats struct {
	index  atomic.Pointer[heavyIndex]
	queues []heavyQueue
	seed   uint64 // one seed for every sketch, so that they merge
}

func (h *heavyStats) init(queues int) {
	h.queues = make([]heavyQueue, queues)
	h.seed = rand.Uint64()
	h.index.Store(&heavyIndex{})
}

// update gives every ClientIP service port of the svc index ix sketches.
// The caller holds pubMu; ix covers every port of the snapshot being
// published.
func (h *heavyStats) update(ix *svcIndex, affinity map[int32]bool) {
	old := h.index.Load()
	var nx *heavyIndex
	for j := range affinity {
		if int(j) < len(old.of) && old.of[j] != nil {
			continue
		}
		if nx == nil {
			nx = &heavyIndex{of: make([]*heavySet, len(ix.labels))}
			copy(nx.of, old.of)
		}
		set := &heavySet{q: make([]heavyPair, len(h.queues))}
		for q := range set.q {
			set.q[q] = heavyPair{conns: topk.New(int64(HeavyWindow), h.seed), pkts: topk.New(int64(HeavyWindow), h.seed)}
		}
		nx.of[j] = set
	}
	if nx != nil {
		h.index.Store(nx)
	}
}

// heavyBatch is a poller's view of the sketches for one batch.
type heavyBatch struct {
	ix    *heavyIndex
	q     *heavyQueue
	state uint32 // heavyFree: not tried yet; heavyPoller: owned; heavyReader: a reader has them
}

// pair returns the poller's sketches of dense index j, nil if none or not
// owned (then counting the update as lost).
func (hb *heavyBatch) pair(j int32, qi int) *heavyPair {
	if j < 0 || int(j) >= len(hb.ix.of) || hb.ix.of[j] == nil {
		return nil
	}
	if hb.state == heavyFree {
		hb.state = heavyReader
		if hb.q.own.CompareAndSwap(heavyFree, heavyPoller) {
			hb.state = heavyPoller
		}
	}
	if hb.state != heavyPoller {
		hb.q.lost.Add(1)
		return nil
	}
	return &hb.ix.of[j].q[qi]
}

// end gives the sketches back at the end of a batch.
func (hb *heavyBatch) end() {
	if hb.state == heavyPoller {
		hb.q.own.Store(heavyFree)
	}
	hb.state = heavyFree
}

// conn counts a new connection from client.
func (hb *heavyBatch) conn(j int32, qi int, client netip.Addr, now int64) {
	if hp := hb.pair(j, qi); hp != nil {
		hp.conns.Update(client, 1, now)
	}
}

// packet counts an original-direction packet from client, sampled.
// rnd is the queue's random state.
func (hb *heavyBatch) packet(j int32, qi int, client netip.Addr, now int64, rnd *uint64) {
	if j < 0 || int(j) >= len(hb.ix.of) || hb.ix.of[j] == nil {
		return
	}
	hs := &hb.ix.of[j].q[qi]
	if hs.sampleLeft > 1 {
		hs.sampleLeft--
		return
	}
	w := max(hs.sampled, 1)
	*rnd += 0x9e3779b97f4a7c15
	hs.sampled = 1 + uint32(mix(*rnd)%(2*HeavySampleMean-1)) // mean HeavySampleMean
	hs.sampleLeft = hs.sampled
	if hp := hb.pair(j, qi); hp != nil {
		hp.pkts.Update(client, uint64(w), now)
	}
}

// mix is the splitmix64 finaliser.
func mix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// HeavyClient is one client address's estimated weight: the true value
// lies in [Count-Err, Count+Spill+Lost] (topk.Entry; Lost counts updates
// made while a reader held a queue's sketches).
type HeavyClient struct {
	Client netip.Addr `json:"client"`
	Count  uint64     `json:"count"`
	Err    uint64     `json:"err"`
	Spill  uint64     `json:"spill"`
}

// HeavyClients are the top clients of one service port over the last one
// to two HeavyWindow.
type HeavyClients struct {
	// Connections are ranked by new connections, Packets by packets from
	// the client (sampled, 1 in HeavySampleMean on average).
	Connections []HeavyClient `json:"connections"`
	Packets     []HeavyClient `json:"packets"`
	// Lost counts sketch updates of any service port skipped because a
	// reader held the queue's sketches at the time.
	Lost uint64 `json:"lost"`
}

// HeavyClients returns the top k clients (k <= 0: every counter) of the
// ClientIP service port whose counters cover service port id, merged over
// queues, and false when it has no sketches. It waits for each queue's
// poller to finish its batch, never the other way round; it allocates.
func (p *Pipeline) HeavyClients(id uint32, k int) (HeavyClients, bool) {
	var out HeavyClients
	j, ok := p.svc.index.Load().lookup(id)
	if !ok {
		return out, false
	}
	ix := p.heavy.index.Load()
	if int(j) >= len(ix.of) || ix.of[j] == nil {
		return out, false
	}
	set := ix.of[j]
	now := p.cfg.Now()
	var conns, pkts topk.Reading
	for qi := range set.q {
		hq := &p.heavy.queues[qi]
		for !hq.own.CompareAndSwap(heavyFree, heavyReader) {
			runtime.Gosched() // the poller is in a batch: microseconds
		}
		c, pk := set.q[qi].conns.Read(now), set.q[qi].pkts.Read(now)
		hq.own.Store(heavyFree)
		conns.Merge(c)
		pkts.Merge(pk)
		out.Lost += hq.lost.Load()
	}
	out.Connections, out.Packets = heavyOf(conns.Top(k)), heavyOf(pkts.Top(k))
	return out, true
}

func heavyOf(es []topk.Entry) []HeavyClient {
	out := make([]HeavyClient, len(es))
	for i, e := range es {
		out[i] = HeavyClient{Client: e.Client, Count: e.Count, Err: e.Err, Spill: e.Spill}
	}
	return slices.Clip(out)
}
