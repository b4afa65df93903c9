package pipeline

import (
	"maps"
	"slices"
	"sync/atomic"

	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/snapshot"
)

// Per-service-port counters.
//
// Every service port a snapshot has ever named gets a dense index
// (svcIndex; both IP families of a port share one); each queue keeps an
// array of plain counters indexed by it (svcLocal), written only by its
// poller, and publishes the entries a batch touched into an array of atomics
// at the end of the batch (svcQueue.publish), where ServiceStats sums them
// over queues. Per packet this costs a one-entry cache compare (packets of a
// batch mostly belong to one service port), on a miss an array load (IDs are
// small: control assigns them from a counter) and a first-touch check, then
// two plain adds; per batch, a few atomic stores per service port touched.

// Per-service-port affinity events, an index into svcLocal.w from swAff.
const (
	svcHits      = iota // a new flow found its client's pin valid
	svcMisses           // no valid pin: a fresh choice
	svcNewPins          // a Pin that started (or re-pointed) an affinity
	svcEvictions        // a Pin that had to evict the least recently pinned entry
	numSvcEvents
)

// Per-service-port drop reasons: the reasons a packet can meet once its
// service port is known (a new flow classified to it). Drops before that
// (malformed frames, no service) or independent of the service (time
// exceeded, too big) are counted gateway-wide only. SvcReject is not a
// drop reason of the I/O layer: the packet was answered with ICMP port
// unreachable (a service without endpoints).
const (
	SvcReject = iota
	SvcRejectNotNew
	SvcRejectNotAllowed
	SvcNoLocalEndpoints
	SvcSourceRange
	SvcNoEndpoint
	SvcNoRoute
	SvcNoSNATAddr
	SvcSNATExhausted
	SvcConntrackFull
	SvcConntrackInvalid
	SvcConntrackConflict
	// NumServiceDrops bounds ServicePortStats.Drops.
	NumServiceDrops
)

// svcDropReasons are the I/O layer's reasons of the per-service drops.
var svcDropReasons = [NumServiceDrops]dataplane.DropReason{
	SvcReject: dataplane.DropUnspecified, SvcRejectNotNew: DropRejectNotNew,
	SvcRejectNotAllowed: DropRejectNotAllowed, SvcNoLocalEndpoints: DropNoLocalEndpoints,
	SvcSourceRange: DropSourceRange, SvcNoEndpoint: DropNoEndpoint, SvcNoRoute: dataplane.DropNoRoute,
	SvcNoSNATAddr: DropNoSNATAddr, SvcSNATExhausted: DropSNATExhausted, SvcConntrackFull: DropConntrackFull,
	SvcConntrackInvalid: DropConntrackInvalid, SvcConntrackConflict: DropConntrackConflict,
}

// ServiceDropName returns the metric label of per-service drop reason i
// (0 <= i < NumServiceDrops): "reject", else the I/O layer's name of the
// reason (dataplane.DropReason.String), so the same label means the same
// thing in xdpgate_drops_total and xdpgate_service_drops_total.
func ServiceDropName(i int) string {
	if i == SvcReject {
		return "reject"
	}
	return svcDropReasons[i].String()
}

// Offsets into svcLocal.w and svcPub.
const (
	swPkts      = 0                    // + conntrack.Dir
	swBytes     = 2                    // + conntrack.Dir
	swNew       = 4                    // connections inserted
	swAff       = 5                    // + affinity event
	swDrops     = swAff + numSvcEvents // + Svc* drop reason
	numSvcWords = swDrops + NumServiceDrops
)

// svcLocal are one queue's counters of one service port: plain integers,
// written only by the queue's poller (an atomic add per packet would cost
// a locked instruction). gen is the batch that last put it on the dirty
// list.
type svcLocal struct {
	w   [numSvcWords]uint64
	gen uint32
}

// svcPub is what scrapes read of one queue's svcLocal, as of the end of
// the poller's last batch.
type svcPub [numSvcWords]atomic.Uint64

// ServicePortLabels name the service port of per-service metrics: the
// bounded label set (kube-proxy's ServicePortName). Both IP families of a
// dual-stack Service share one set of counters.
type ServicePortLabels struct {
	Namespace, Name, PortName, Protocol string
}

// svcDenseMax bounds svcIndex.dense (1 MiB): IDs above it (a gateway that
// has seen a quarter of a million service ports come and go) are looked up
// in the map, on a cache miss only.
const svcDenseMax = 1 << 18

// svcIndex maps service port IDs to dense counter indices. It is immutable
// once published; Publish replaces it with a superset before publishing a
// snapshot, so every service port a poller sees in a snapshot has an
// index.
type svcIndex struct {
	// dense[id] is id's index + 1 (0: none), for IDs below len(dense).
	dense  []int32
	byID   map[uint32]int32
	labels []ServicePortLabels // index -> labels
	// shared are, per index, the counters any goroutine adds to
	// (svcShared: the affinity table's OnChange hook, from pollers and
	// housekeeping alike, and Publish). They are shared by every later
	// index, so no count is lost to a replacement.
	shared []*[numSvcShared]atomic.Uint64
}

// Per-service-port counters outside the queues, an index into
// svcIndex.shared.
const (
	svcExpiries      = iota // pins that expired
	svcRebalanced           // clients of a departed endpoint pinned anew
	svcDepartedPins         // clients pinned to endpoints when they left
	svcScaleExpiries        // pins expired early by rebalance-on-scale
	numSvcShared
)

// lookup returns id's index.
func (ix *svcIndex) lookup(id uint32) (int32, bool) {
	if uint64(id) < uint64(len(ix.dense)) {
		j := ix.dense[id]
		return j - 1, j != 0
	}
	j, ok := ix.byID[id]
	return j, ok
}

// svcStats are the per-service-port counters. index is replaced under the
// Pipeline's pubMu; each queue's arrays are replaced only by that queue's
// poller, which takes the larger arrays Publish left in spare when the
// index has outgrown them (so Process never allocates), copying its counts
// over first.
type svcStats struct {
	index  atomic.Pointer[svcIndex]
	byKey  map[ServicePortLabels]int32 // guarded by the Pipeline's pubMu
	queues []svcQueue
}

// svcArrays are a queue's counter arrays, allocated together.
type svcArrays struct {
	local []svcLocal
	pub   []svcPub
}

// svcQueue is one queue's per-service state. pub and spare are atomic
// (scrapes read pub, Publish stores spare); the other fields are the
// poller's own.
type svcQueue struct {
	pub   atomic.Pointer[[]svcPub]
	spare atomic.Pointer[svcArrays]
	local []svcLocal
	ix    *svcIndex // loaded once per batch
	dirty []int32   // indices touched in this batch
	gen   uint32
	// lastID and last are the one-entry cache: consecutive packets mostly
	// belong to one service port. ID 0 is never assigned.
	lastID uint32
	last   *svcLocal
	lastJ  int32 // last's dense index
	_      [64]byte
}

// svcDirtyMax bounds the dirty list; a batch touching more service ports
// publishes early.
const svcDirtyMax = 256

func (s *svcStats) init(queues int) {
	s.index.Store(&svcIndex{byID: map[uint32]int32{}})
	s.byKey = map[ServicePortLabels]int32{}
	s.queues = make([]svcQueue, queues)
	for i := range s.queues {
		s.queues[i].dirty = make([]int32, 0, svcDirtyMax)
	}
}

// update makes the index cover every service port of snap and leaves
// every queue spare arrays large enough for it. The caller holds pubMu.
// Indices are never reused: a service port that leaves keeps its counters
// (a Service re-created under the same name continues them), so the index
// grows with the distinct service ports seen since the process started.
func (s *svcStats) update(snap *snapshot.Snapshot) {
	old := s.index.Load()
	var nx *svcIndex
	for i := range snap.ServicePorts {
		sp := &snap.ServicePorts[i]
		if _, ok := old.byID[sp.ID]; ok {
			continue
		}
		if nx == nil {
			nx = &svcIndex{byID: maps.Clone(old.byID), labels: slices.Clip(old.labels), shared: slices.Clip(old.shared)}
		}
		k := ServicePortLabels{sp.Namespace, sp.Name, sp.PortName, sp.Protocol.String()}
		j, ok := s.byKey[k]
		if !ok {
			j = int32(len(nx.labels))
			nx.labels = append(nx.labels, k)
			nx.shared = append(nx.shared, new([numSvcShared]atomic.Uint64))
			s.byKey[k] = j
		}
		nx.byID[sp.ID] = j
	}
	if nx == nil {
		return
	}
	maxID := uint32(0)
	for id := range nx.byID {
		if id < svcDenseMax {
			maxID = max(maxID, id)
		}
	}
	nx.dense = make([]int32, maxID+1)
	for id, j := range nx.byID {
		if id < svcDenseMax {
			nx.dense[id] = j + 1
		}
	}
	n := len(nx.labels)
	for i := range s.queues {
		q := &s.queues[i]
		if sp := q.spare.Load(); sp == nil || len(sp.local) < n {
			c := n + n/4 + 8
			q.spare.Store(&svcArrays{local: make([]svcLocal, c), pub: make([]svcPub, c)})
		}
	}
	s.index.Store(nx)
}

// add adds n to shared counter w of service port id (any goroutine).
func (s *svcStats) add(id uint32, w int, n uint64) {
	ix := s.index.Load()
	if j, ok := ix.lookup(id); ok {
		ix.shared[j][w].Add(n)
	}
}

// count adds one to shared counter w of service port id.
func (s *svcStats) count(id uint32, w int) { s.add(id, w, 1) }

// begin starts a batch: it loads the index and, when the index has
// outgrown the counter arrays, moves to the spare ones.
func (q *svcQueue) begin(ix *svcIndex) {
	q.ix, q.lastID, q.last, q.lastJ = ix, 0, nil, -1
	q.gen++
	q.dirty = q.dirty[:0]
	if len(ix.labels) <= len(q.local) {
		return
	}
	sp := q.spare.Load()
	if sp == nil || len(sp.local) < len(ix.labels) || !q.spare.CompareAndSwap(sp, nil) {
		return // unreachable: update leaves large enough spare arrays; of() checks bounds
	}
	// The previous batch published every count, so local is pub.
	copy(sp.local, q.local)
	for j := range q.local {
		for w, v := range q.local[j].w {
			sp.pub[j][w].Store(v)
		}
	}
	q.local = sp.local
	q.pub.Store(&sp.pub)
}

// of returns the poller's counters of service port id, nil if id has no
// index (a flow adopted from a previous process whose service port has
// not been seen since). Only the queue's poller calls it.
func (q *svcQueue) of(id uint32) *svcLocal {
	if id == q.lastID {
		return q.last
	}
	j, ok := q.ix.lookup(id)
	if !ok || int(j) >= len(q.local) {
		q.lastID, q.last, q.lastJ = id, nil, -1
		return nil
	}
	c := &q.local[j]
	if c.gen != q.gen {
		if len(q.dirty) == cap(q.dirty) {
			q.publish() // starts a new generation: every entry is clean
		}
		c.gen = q.gen
		q.dirty = append(q.dirty, j)
	}
	q.lastID, q.last, q.lastJ = id, c, j
	return c
}

// publish copies the counters this batch touched for ServiceStats and
// starts a new generation.
func (q *svcQueue) publish() {
	if len(q.dirty) > 0 {
		pub := *q.pub.Load()
		for _, j := range q.dirty {
			l, p := &q.local[j].w, &pub[j]
			for w, v := range l {
				if p[w].Load() != v {
					p[w].Store(v)
				}
			}
		}
	}
	q.dirty = q.dirty[:0]
	q.gen++
	q.lastID, q.last, q.lastJ = 0, nil, -1
}

// count counts a packet of n bytes in direction dir.
func (c *svcLocal) count(dir conntrack.Dir, n int) {
	if c != nil {
		c.w[swPkts+int(dir&1)]++
		c.w[swBytes+int(dir&1)] += uint64(n)
	}
}

// add counts word w; a nil receiver (no index) counts nothing.
func (c *svcLocal) add(w int) {
	if c != nil {
		c.w[w]++
	}
}

// drop drops f for per-service reason r (not SvcReject), counting it.
func (c *svcLocal) drop(f *dataplane.Frame, r int) {
	c.add(swDrops + r)
	f.Drop(svcDropReasons[r])
}

// AffinityCounters are the ClientIP affinity counters of a service port.
type AffinityCounters struct {
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
	// DepartedPins counts the clients that were pinned to endpoints when
	// they left the service port; Rebalanced those of them (and of
	// endpoints that left while xdpgate was down) that were pinned to
	// another endpoint on their next connection.
	DepartedPins, Rebalanced uint64
	// ScaleExpiries counts pins expired early because endpoints were
	// added to a port with AffinityRebalanceOnScale (rebalance.go).
	ScaleExpiries uint64
}

// ServicePortStats are the counters of one service port, summed over
// queues, cumulative since New, as of the end of each queue's last batch.
type ServicePortStats struct {
	ServicePortLabels
	// IDs are the service port IDs (one per IP family) these counters
	// cover in the current snapshot.
	IDs []uint32
	// AffinitySeconds is the ClientIP timeout (0: no affinity), the
	// largest of the IDs'.
	AffinitySeconds uint32
	// Packets and Bytes count the packets of the service port's flows
	// (bytes from the IP header on), [conntrack.Original] client to
	// endpoint, [conntrack.Reply] back: every packet that found or
	// started a flow, including later fragments, whether or not it was
	// then forwarded (gateway-wide drops such as no_route for a reply
	// happen after).
	Packets, Bytes [2]uint64
	// NewConnections counts the flows this gateway inserted.
	NewConnections uint64
	// Drops counts packets refused for the service port by reason (index
	// Svc*, named by ServiceDropName).
	Drops [NumServiceDrops]uint64
	AffinityCounters
}

// ServicePortAffinity are the affinity counters of one ClientIP service
// port, summed over queues, cumulative since New.
type ServicePortAffinity struct {
	ServicePortLabels
	// IDs are the service port IDs (one per IP family) these counters
	// cover in the current snapshot.
	IDs []uint32
	AffinityCounters
}

// ServiceStats returns the counters of every service port of the current
// snapshot, one entry per ServicePortLabels, in snapshot order. It
// allocates; call it at scrape time.
func (p *Pipeline) ServiceStats() []ServicePortStats {
	snap := p.snap.Load()
	if snap == nil {
		return nil
	}
	ix := p.svc.index.Load()
	var out []ServicePortStats
	at := map[int32]int{}
	for i := range snap.ServicePorts {
		sp := &snap.ServicePorts[i]
		j, ok := ix.lookup(sp.ID)
		if !ok {
			continue
		}
		if k, seen := at[j]; seen {
			out[k].IDs = append(out[k].IDs, sp.ID)
			out[k].AffinitySeconds = max(out[k].AffinitySeconds, sp.AffinitySeconds)
			continue
		}
		at[j] = len(out)
		o := ServicePortStats{ServicePortLabels: ix.labels[j], IDs: []uint32{sp.ID}, AffinitySeconds: sp.AffinitySeconds}
		var w [numSvcWords]uint64
		for q := range p.svc.queues {
			pub := p.svc.queues[q].pub.Load()
			if pub == nil || int(j) >= len(*pub) {
				continue
			}
			for k := range w {
				w[k] += (*pub)[j][k].Load()
			}
		}
		o.Packets = [2]uint64{w[swPkts], w[swPkts+1]}
		o.Bytes = [2]uint64{w[swBytes], w[swBytes+1]}
		o.NewConnections = w[swNew]
		copy(o.Drops[:], w[swDrops:])
		o.AffinityCounters = AffinityCounters{Hits: w[swAff+svcHits], Misses: w[swAff+svcMisses],
			NewPins: w[swAff+svcNewPins], Evictions: w[swAff+svcEvictions], Expiries: ix.shared[j][svcExpiries].Load(),
			DepartedPins: ix.shared[j][svcDepartedPins].Load(), Rebalanced: ix.shared[j][svcRebalanced].Load(),
			ScaleExpiries: ix.shared[j][svcScaleExpiries].Load()}
		out = append(out, o)
	}
	return out
}

// AffinityStats returns the affinity counters of every ClientIP service
// port of the current snapshot (ServiceStats, filtered). It allocates;
// call it at scrape time.
func (p *Pipeline) AffinityStats() []ServicePortAffinity {
	var out []ServicePortAffinity
	for _, s := range p.ServiceStats() {
		if s.AffinitySeconds > 0 {
			out = append(out, ServicePortAffinity{ServicePortLabels: s.ServicePortLabels, IDs: s.IDs, AffinityCounters: s.AffinityCounters})
		}
	}
	return out
}
