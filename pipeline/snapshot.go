package pipeline

import (
	"slices"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"

	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/snapshot"
)

// SnapshotChange reports what Publish cleaned up for one new snapshot.
type SnapshotChange struct {
	// RemovedEndpoints counts endpoints of the old snapshot absent from the
	// new one.
	RemovedEndpoints int
	// FlowsDeleted counts UDP and SCTP flows removed (endpoint gone or not
	// serving).
	FlowsDeleted int
	// AffinityDeleted counts affinity entries removed because their service
	// port no longer uses ClientIP affinity (or left).
	AffinityDeleted int
}

// Publish makes s the snapshot every poller uses from its next batch on,
// then reconciles the flow and affinity tables with the change from the
// previous one (OnSnapshot). Call it from the control loop; it may scan
// the tables (milliseconds per million entries) but never blocks pollers.
func (p *Pipeline) Publish(s *snapshot.Snapshot) SnapshotChange {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	if s != nil {
		p.svc.update(s)    // before the snapshot: its ClientIP ports need counters,
		p.assignLoad(s)    // their endpoints load slots
		p.heavySketches(s) // and sketches
	}
	old := p.snap.Swap(s)
	ch := p.OnSnapshot(old, s)
	if s != nil {
		p.departLoad(old, s)
		p.rebalanceOnScale(old, s)
	}
	if ch.FlowsDeleted > 0 && p.fast != nil {
		p.fastSync(p.cfg.Now(), true) // the deleted flows leave XDP now
	}
	return ch
}

// heavySketches gives every ClientIP service port of s heavy-client
// sketches. The caller holds pubMu, after svc.update(s).
func (p *Pipeline) heavySketches(s *snapshot.Snapshot) {
	ix := p.svc.index.Load()
	aff := map[int32]bool{}
	for i := range s.ServicePorts {
		if sp := &s.ServicePorts[i]; sp.AffinitySeconds > 0 {
			if j, ok := ix.lookup(sp.ID); ok {
				aff[j] = true
			}
		}
	}
	p.heavy.update(ix, aff)
}

// OnSnapshot reconciles conntrack and affinity state with a snapshot
// change from old to new (either may be nil). It is called by Publish; it
// is exported for wirings that publish the snapshot themselves.
//
// Flows (kube-proxy's UDP conntrack reconciler, kubernetes/kubernetes
// pkg/proxy/conntrack/cleanup.go; TCP entries are never flushed):
//   - TCP flows are kept, even to endpoints that left the EndpointSlice:
//     "when an endpoint leaves, its clients are re-balanced on their next
//     connection, other clients keep their open connections". The new
//     snapshot no longer offers the endpoint to new flows, and an
//     established flow to a deleted pod ends with the pod (RST/timeout).
//   - UDP: kube-proxy's reconciler. For every UDP service port with at
//     least one serving endpoint whose serving set changed (or that is
//     new), delete its flows whose endpoint is not serving; UDP ports that
//     left lose all their flows. Flows are never created for rejected or
//     dropped packets, so there are no "black hole" entries to clean when
//     a service goes from 0 to 1 endpoint.
//   - SCTP: flows to endpoints that left are deleted (like UDP; SCTP
//     associations survive address changes only at the endpoints' will).
//
// Affinity: a service port whose affinity was switched off (or that left)
// loses its entries, so switching it back on starts empty, as kube-proxy's
// recent lists and nft sets are recreated empty. Entries naming departed
// endpoints need no flush: endpoint IDs are never reused and Lookup's
// caller checks snapshot.Usable.
func (p *Pipeline) OnSnapshot(old, new *snapshot.Snapshot) SnapshotChange {
	var ch SnapshotChange
	if old == nil || new == nil || old == new {
		return ch
	}
	newByID := make(map[uint32]int32, len(new.ServicePorts))
	for i := range new.ServicePorts {
		newByID[new.ServicePorts[i].ID] = int32(i)
	}
	var affOff []uint32
	for i := range old.ServicePorts {
		osp := &old.ServicePorts[i]
		j, still := newByID[osp.ID]
		var nsp *snapshot.ServicePort
		if still {
			nsp = &new.ServicePorts[j]
		}
		if osp.AffinitySeconds > 0 && (nsp == nil || nsp.AffinitySeconds == 0) {
			affOff = append(affOff, osp.ID)
		}
		for k := range osp.Endpoints {
			e := &osp.Endpoints[k]
			if _, _, ok := new.Endpoint(e.ID); ok {
				continue
			}
			ch.RemovedEndpoints++
			switch osp.Protocol {
			case nat.ProtoSCTP:
				ch.FlowsDeleted += p.ct.DeleteByEndpoint(e.ID)
			case nat.ProtoTCP:
				p.retained[dataplane.L4Addr{Addr: e.Addr.Unmap(), Port: e.Port, Proto: uint8(osp.Protocol)}] = e.ID
			}
		}
		if osp.Protocol == nat.ProtoUDP && nsp == nil {
			ch.FlowsDeleted += p.ct.DeleteUDPByServicePort(osp.ID, func(uint32) bool { return false })
		}
	}
	for i := range new.ServicePorts {
		nsp := &new.ServicePorts[i]
		if nsp.Protocol != nat.ProtoUDP {
			continue
		}
		now := servingSet(nsp)
		if len(now) == 0 {
			continue // kube-proxy skips services without serving endpoints
		}
		var before []uint32
		if oi := findPort(old, nsp.ID); oi >= 0 {
			before = servingSet(&old.ServicePorts[oi])
		}
		if slices.Equal(before, now) {
			continue
		}
		ch.FlowsDeleted += p.ct.DeleteUDPByServicePort(nsp.ID, func(ep uint32) bool {
			_, found := slices.BinarySearch(now, ep)
			return found
		})
	}
	if len(affOff) > 0 {
		ch.AffinityDeleted = p.aff.DeleteServicePorts(affOff)
	}
	if ch != (SnapshotChange{}) {
		p.log.Info("snapshot reconciled", "generation", new.Generation, "removed_endpoints", ch.RemovedEndpoints,
			"flows_deleted", ch.FlowsDeleted, "affinity_deleted", ch.AffinityDeleted)
	}
	return ch
}

// PruneRetained forgets retained endpoints that no flow uses any more
// (and those that came back into the snapshot) and reports whether the
// set changed, in which case the caller updates the classifier with
// dataplane.Rules. It reads the whole flow table (milliseconds per million flows of
// capacity); call it every few seconds at most, from housekeeping.
func (p *Pipeline) PruneRetained() bool {
	p.pubMu.Lock()
	if len(p.retained) == 0 {
		p.pubMu.Unlock()
		return false
	}
	ids := make(map[uint32]bool, len(p.retained))
	for _, id := range p.retained {
		ids[id] = false
	}
	p.pubMu.Unlock()
	p.ct.Range(func(e *conntrack.Entry) bool {
		if _, ok := ids[e.Endpoint]; ok {
			ids[e.Endpoint] = true
		}
		return true
	})
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	s := p.snap.Load()
	changed := false
	for a, id := range p.retained {
		back := false
		if s != nil {
			_, _, back = s.Endpoint(id)
		}
		if live, known := ids[id]; (known && !live) || back {
			delete(p.retained, a)
			changed = true
		}
	}
	return changed
}

// servingSet returns the sorted IDs of the serving endpoints of sp.
func servingSet(sp *snapshot.ServicePort) []uint32 {
	var ids []uint32
	for k := range sp.Endpoints {
		if sp.Endpoints[k].Serving {
			ids = append(ids, sp.Endpoints[k].ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func findPort(s *snapshot.Snapshot, id uint32) int {
	for i := range s.ServicePorts {
		if s.ServicePorts[i].ID == id {
			return i
		}
	}
	return -1
}

// Housekeep runs one round of table upkeep at now (the pipeline's clock):
// it sweeps up to ctBudget conntrack records and affBudget affinity slots
// and returns how many entries each removed. The wiring calls it from one
// goroutine every tick, with budgets that cover each table every few
// seconds.
func (p *Pipeline) Housekeep(now int64, ctBudget, affBudget int) (flows, affinities int) {
	if p.fast != nil {
		p.fastSync(now, false) // before the sweep: credit XDP's last-seen times
	}
	return p.ct.Sweep(now, ctBudget), p.aff.Sweep(now, affBudget)
}

// Now returns the pipeline's clock (monotonic nanoseconds).
func (p *Pipeline) Now() int64 { return p.cfg.Now() }
