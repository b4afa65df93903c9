package pipeline

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sync/atomic"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/snapshot"
)

// Per-endpoint load of ClientIP service ports.
//
// Every endpoint of a ClientIP service port gets a slot in fixed arrays
// (Config.LoadEndpoints of them): its pinned clients, the clients that came
// to it from departed endpoints, the clients that left it after it departed,
// and per queue its new connections. Pinned clients are kept exact by the
// affinity table's change hook (affinity.Table.OnChange: +1 for the new
// endpoint, -1 for the old), so they include expired pins until the sweep
// or the client's next connection removes them (AffinitySweepPeriod); New
// recounts them from the table, so pins adopted from a previous process
// count from the start. The hook runs on pollers (Pin) and on housekeeping
// (Sweep), with an affinity shard lock held: a map lookup and a CAS.
//
// A slot's first word is owner<<32 | departed<<31 | pins: the endpoint ID
// that owns it is checked by the same CAS that changes the count, so a hook
// that found the slot in an older index can never count into a slot that
// was freed and given to another endpoint. Slots are assigned by Publish
// (under pubMu) and freed by ReportDepartures once a departed endpoint holds
// no pin.

// DefaultLoadEndpoints is Config.LoadEndpoints' default.
const DefaultLoadEndpoints = 16384

const (
	loadDeparted = 1 << 31
	loadPinsMask = 1<<31 - 1
)

// loadIndex maps endpoint IDs to slots. It is immutable once published.
type loadIndex struct {
	byID map[uint32]int32
	// snap is the snapshot bySP was built for; bySP[i][k] is the slot of
	// snap.ServicePorts[i].Endpoints[k] (-1: none), nil for a port
	// without affinity.
	snap *snapshot.Snapshot
	bySP [][]int32
}

// departure is an endpoint that left while clients were pinned to it,
// followed until the last of them has moved or expired.
type departure struct {
	id           uint32
	svcPort      uint32
	service, ep  string
	pinnedAtExit uint64
	// movedIn is, for every slot of the same service port's remaining
	// endpoints, its movedIn when the endpoint left: the destinations are
	// the endpoints whose count grew since.
	movedIn map[int32]uint64
	// reported is the moved count last logged.
	reported uint64
}

// epLoad is the per-endpoint load state.
type epLoad struct {
	n     int
	index atomic.Pointer[loadIndex]
	// words, movedIn and movedOut are per slot; conns per queue and slot
	// (queue*n + slot).
	words    []atomic.Uint64
	movedIn  []atomic.Uint64
	movedOut []atomic.Uint64
	conns    []atomic.Uint64
	// rate is per slot the new connections per second over the last
	// SampleLoad interval (float64 bits).
	rate []atomic.Uint64
	// Guarded by the Pipeline's pubMu.
	prevConns  []uint64 // per slot, at the last SampleLoad
	sampledAt  int64
	free       []int32
	departures map[uint32]*departure
	full       bool // the last Publish found no free slot (logged once)
}

func (l *epLoad) init(n, queues int) {
	l.n = n
	l.words = make([]atomic.Uint64, n)
	l.movedIn = make([]atomic.Uint64, n)
	l.movedOut = make([]atomic.Uint64, n)
	l.conns = make([]atomic.Uint64, n*queues)
	l.rate = make([]atomic.Uint64, n)
	l.prevConns = make([]uint64, n)
	l.free = make([]int32, n)
	for i := range l.free {
		l.free[i] = int32(n - 1 - i) // pop from the end: slot 0 first
	}
	l.departures = map[uint32]*departure{}
	l.index.Store(&loadIndex{byID: map[uint32]int32{}})
}

func (l *epLoad) slot(ix *loadIndex, id uint32) int32 {
	if j, ok := ix.byID[id]; ok {
		return j
	}
	return -1
}

// addPins adds d (+1 or -1) to the pins of endpoint id's slot j, if j is
// still id's, never below zero.
func (l *epLoad) addPins(j int32, id uint32, d int64) {
	w := &l.words[j]
	for {
		v := w.Load()
		if uint32(v>>32) != id {
			return
		}
		pins := int64(v & loadPinsMask)
		if pins+d < 0 || pins+d > loadPinsMask {
			return
		}
		if w.CompareAndSwap(v, v&^loadPinsMask|uint64(pins+d)) {
			return
		}
	}
}

// pins returns slot j's pinned clients.
func (l *epLoad) pins(j int32) uint64 {
	if j < 0 {
		return 0
	}
	return l.words[j].Load() & loadPinsMask
}

// change applies an affinity change (the table's OnChange hook, shard lock
// held) and reports whether it moved a client of a departed endpoint.
func (l *epLoad) change(c affinity.Change) (moved bool) {
	ix := l.index.Load()
	from, to := int32(-1), int32(-1)
	if c.From != 0 {
		if from = l.slot(ix, c.From); from >= 0 {
			l.addPins(from, c.From, -1)
		}
	}
	if c.To != 0 {
		if to = l.slot(ix, c.To); to >= 0 {
			l.addPins(to, c.To, +1)
		}
	}
	// A client of a departed endpoint pinned anew: re-balanced.
	if from >= 0 && c.To != 0 && c.To != c.From {
		if v := l.words[from].Load(); uint32(v>>32) == c.From && v&loadDeparted != 0 {
			l.movedOut[from].Add(1)
			if to >= 0 {
				l.movedIn[to].Add(1)
			}
			return true
		}
	}
	return false
}

// onAffinityChange is the affinity table's OnChange hook: per-service-port
// expiries and re-balanced clients, per-endpoint pins.
func (p *Pipeline) onAffinityChange(c affinity.Change) {
	if c.Cause == affinity.CauseExpired {
		p.svc.count(c.ServicePort, svcExpiries)
	}
	if p.load.change(c) {
		p.svc.count(c.ServicePort, svcRebalanced)
	}
}

// conn counts a new connection to endpoint id on queue q.
func (l *epLoad) conn(ix *loadIndex, q int, id uint32) {
	if j := l.slot(ix, id); j >= 0 {
		l.conns[q*l.n+int(j)].Add(1)
	}
}

// adopt counts the pins of a table adopted from a previous process (every
// slot, expired ones included, as the hook counts them). Nothing else may
// use the table or l yet.
func (l *epLoad) adopt(aff *affinity.Table) {
	byID := map[uint32]int32{}
	aff.Range(-1<<62, func(e affinity.Entry) bool {
		j, ok := byID[e.Endpoint]
		if !ok {
			if len(l.free) == 0 {
				return true
			}
			j = l.free[len(l.free)-1]
			l.free = l.free[:len(l.free)-1]
			byID[e.Endpoint] = j
			l.words[j].Store(uint64(e.Endpoint) << 32)
		}
		l.words[j].Add(1)
		return true
	})
	l.index.Store(&loadIndex{byID: byID})
}

// assignLoad gives a slot to every endpoint of s's ClientIP service ports
// that has none and publishes the index for s, before s itself is
// published. The caller holds pubMu.
func (p *Pipeline) assignLoad(s *snapshot.Snapshot) {
	l := &p.load
	byID := maps.Clone(l.index.Load().byID)
	ix := &loadIndex{byID: byID, snap: s, bySP: make([][]int32, len(s.ServicePorts))}
	short := 0
	for i := range s.ServicePorts {
		sp := &s.ServicePorts[i]
		if sp.AffinitySeconds == 0 {
			continue
		}
		slots := make([]int32, len(sp.Endpoints))
		for k := range sp.Endpoints {
			id := sp.Endpoints[k].ID
			j, ok := byID[id]
			if !ok && len(l.free) > 0 {
				j, ok = l.free[len(l.free)-1], true
				l.free = l.free[:len(l.free)-1]
				l.words[j].Store(uint64(id) << 32)
				l.movedIn[j].Store(0)
				l.movedOut[j].Store(0)
				l.rate[j].Store(0)
				l.prevConns[j] = 0
				for q := range p.queues {
					l.conns[q*l.n+int(j)].Store(0)
				}
				byID[id] = j
			}
			if !ok {
				j = -1
				short++
			}
			slots[k] = j
		}
		ix.bySP[i] = slots
	}
	if short > 0 && !l.full {
		p.log.Warn("per-endpoint load: no free slot, endpoints not tracked (their load reads 0)",
			"endpoints", short, "slots", l.n)
	}
	l.full = short > 0
	l.index.Store(ix)
}

// departLoad marks the endpoints with a slot that are no longer endpoints
// of a ClientIP service port of s as departed, and follows those that left
// clients pinned (ReportDepartures). It runs after the snapshot change was
// reconciled, so a port that lost its affinity has no pins left. The
// caller holds pubMu.
func (p *Pipeline) departLoad(old, s *snapshot.Snapshot) {
	l := &p.load
	byID := l.index.Load().byID
	for id, j := range byID {
		if _, spi, ok := s.Endpoint(id); ok && s.ServicePorts[spi].AffinitySeconds > 0 {
			continue
		}
		w := &l.words[j]
		v := w.Load()
		if v&loadDeparted != 0 {
			continue
		}
		for !w.CompareAndSwap(v, v|loadDeparted) {
			v = w.Load()
		}
		p.depart(old, id, j, v&loadPinsMask, byID)
	}
}

// depart starts following endpoint id (slot j), which left with pins
// pinned clients. The caller holds pubMu.
func (p *Pipeline) depart(old *snapshot.Snapshot, id uint32, j int32, pins uint64, byID map[uint32]int32) {
	l := &p.load
	d := &departure{id: id, pinnedAtExit: pins, movedIn: map[int32]uint64{}, ep: fmt.Sprintf("#%d", id), service: "-"}
	if old != nil {
		if e, spi, ok := old.Endpoint(id); ok {
			sp := &old.ServicePorts[spi]
			d.svcPort, d.service, d.ep = sp.ID, sp.Key(), e.AddrPort().String()
			for k := range sp.Endpoints {
				if o, ok := byID[sp.Endpoints[k].ID]; ok && o != j {
					d.movedIn[o] = l.movedIn[o].Load()
				}
			}
		}
	}
	p.svc.add(d.svcPort, svcDepartedPins, pins)
	if pins == 0 {
		return
	}
	l.departures[id] = d
	p.log.Info("endpoint removed with pinned clients; they are re-balanced on their next connection",
		"service", d.service, "endpoint", d.ep, "pinned_clients", pins)
}

// ReportDepartures logs, for every endpoint that left with pinned clients,
// how many of them have since moved and over how many endpoints ("endpoint
// 198.18.1.2:80 removed: 412 pinned clients, 400 re-balanced over 3
// endpoints, 12 still pinned"), when that changed, and frees the slots of
// those that hold no pin any more (a last line then). Housekeeping calls it
// every LoadSampleEvery.
func (p *Pipeline) ReportDepartures() {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	l := &p.load
	var freed []uint32
	for _, id := range slices.Sorted(maps.Keys(l.departures)) {
		d := l.departures[id]
		j := l.slot(l.index.Load(), id)
		if j < 0 {
			delete(l.departures, id)
			continue
		}
		moved, left := l.movedOut[j].Load(), l.pins(j)
		if moved == d.reported && left != 0 {
			continue
		}
		d.reported = moved
		over := 0
		for o, before := range d.movedIn {
			if l.movedIn[o].Load() > before {
				over++
			}
		}
		msg := fmt.Sprintf("endpoint %s removed: %d pinned clients, %d re-balanced over %d endpoints, %d still pinned",
			d.ep, d.pinnedAtExit, moved, over, left)
		p.log.Info(msg, "service", d.service, "endpoint", d.ep, "pinned_clients", d.pinnedAtExit,
			"rebalanced", moved, "over_endpoints", over, "still_pinned", left)
		if left == 0 {
			delete(l.departures, id)
		}
	}
	// Free the slots of departed endpoints without pins (not only those
	// followed above: those that left with none too).
	ix := l.index.Load()
	for id, j := range ix.byID {
		if _, followed := l.departures[id]; followed {
			continue
		}
		w := &l.words[j]
		if v := w.Load(); v&loadDeparted != 0 && v&loadPinsMask == 0 && w.CompareAndSwap(v, 0) {
			freed = append(freed, id)
			l.free = append(l.free, j)
		}
	}
	if len(freed) > 0 {
		nx := &loadIndex{byID: maps.Clone(ix.byID), snap: ix.snap, bySP: ix.bySP}
		for _, id := range freed {
			delete(nx.byID, id)
		}
		// bySP still names the freed slots for the snapshot's ports, but
		// only for endpoints of an older snapshot (departed ones are not
		// in ix.snap), so no batch of ix.snap reads them.
		l.index.Store(nx)
	}
}

// connsOf sums slot j's new connections over the queues.
func (l *epLoad) connsOf(j int32, queues int) uint64 {
	var n uint64
	for q := range queues {
		n += l.conns[q*l.n+int(j)].Load()
	}
	return n
}

// SampleLoad updates every endpoint's new connections per second
// (EndpointLoad.ConnectionsPerSecond) over the time since its previous
// call, at now (the pipeline's clock). Housekeeping calls it every
// LoadSampleEvery.
func (p *Pipeline) SampleLoad(now int64) {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	l := &p.load
	secs := float64(now-l.sampledAt) / 1e9
	first := l.sampledAt == 0
	l.sampledAt = now
	for _, j := range l.index.Load().byID {
		n := l.connsOf(j, len(p.queues))
		if !first && secs > 0 && n >= l.prevConns[j] {
			l.rate[j].Store(math.Float64bits(float64(n-l.prevConns[j]) / secs))
		}
		l.prevConns[j] = n
	}
}

// EndpointLoad is one endpoint's load (Pipeline.EndpointLoads).
type EndpointLoad struct {
	ID uint32
	// Endpoint is "ip:port"; Departed is true for an endpoint that left
	// the snapshot and still has pinned clients.
	Endpoint string
	Departed bool
	// Pins counts the clients pinned to it (expired pins included until
	// they are swept, within AffinitySweepPeriod).
	Pins uint64
	// NewConnections counts the flows this gateway sent to it since it
	// got its slot (this process, or since it joined);
	// ConnectionsPerSecond is their rate between the last two SampleLoad
	// calls.
	NewConnections       uint64
	ConnectionsPerSecond float64
	// MovedIn counts clients that came to it from departed endpoints;
	// MovedOut, for a departed endpoint, those that left it.
	MovedIn, MovedOut uint64
}

// ServicePortLoad is the per-endpoint load of one ClientIP service port.
type ServicePortLoad struct {
	ServicePortLabels
	ID uint32
	// AffinitySeconds and MaxLoadPercent are the port's affinity timeout
	// and bounded-load setting (0: none), RebalanceOnScale its
	// AffinityRebalanceOnScale.
	AffinitySeconds, MaxLoadPercent uint32
	RebalanceOnScale                bool
	// Endpoints are the port's endpoints in snapshot order, then its
	// departed endpoints that still hold pins.
	Endpoints []EndpointLoad
}

// EndpointLoads returns the per-endpoint load of every ClientIP service
// port of the current snapshot, in snapshot order (each IP family its own
// entry). It allocates; call it at scrape or inspection time.
func (p *Pipeline) EndpointLoads() []ServicePortLoad {
	s := p.snap.Load()
	if s == nil {
		return nil
	}
	l := &p.load
	p.pubMu.Lock()
	gone := map[uint32][]*departure{}
	for _, d := range l.departures {
		gone[d.svcPort] = append(gone[d.svcPort], d)
	}
	p.pubMu.Unlock()
	ix := l.index.Load()
	read := func(id uint32, name string) EndpointLoad {
		e := EndpointLoad{ID: id, Endpoint: name}
		j := l.slot(ix, id)
		if j < 0 {
			return e
		}
		v := l.words[j].Load()
		if uint32(v>>32) != id {
			return e
		}
		e.Pins, e.Departed = v&loadPinsMask, v&loadDeparted != 0
		e.MovedIn, e.MovedOut = l.movedIn[j].Load(), l.movedOut[j].Load()
		e.NewConnections = l.connsOf(j, len(p.queues))
		e.ConnectionsPerSecond = math.Float64frombits(l.rate[j].Load())
		return e
	}
	var out []ServicePortLoad
	for i := range s.ServicePorts {
		sp := &s.ServicePorts[i]
		if sp.AffinitySeconds == 0 {
			continue
		}
		o := ServicePortLoad{ServicePortLabels: ServicePortLabels{sp.Namespace, sp.Name, sp.PortName, sp.Protocol.String()},
			ID: sp.ID, AffinitySeconds: sp.AffinitySeconds, MaxLoadPercent: sp.AffinityMaxLoadPercent,
			RebalanceOnScale: sp.AffinityRebalanceOnScale}
		for k := range sp.Endpoints {
			o.Endpoints = append(o.Endpoints, read(sp.Endpoints[k].ID, sp.Endpoints[k].AddrPort().String()))
		}
		ds := gone[sp.ID]
		slices.SortFunc(ds, func(a, b *departure) int { return int(a.id) - int(b.id) })
		for _, d := range ds {
			o.Endpoints = append(o.Endpoints, read(d.id, d.ep))
		}
		out = append(out, o)
	}
	return out
}
