package pipeline

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/maglev"
	"github.com/xdpgate/xdpgate/snapshot"
)

// rebalanceOnScale implements snapshot.ServicePort.AffinityRebalanceOnScale:
// for every such ClientIP port of s that gained endpoints since old, each
// endpoint of its cluster chain holding more than the bound,
// ceil(c·total/n) pinned clients (c = AffinityMaxLoadPercent/100, at least
// 1; n the chain's endpoints, the new ones counted), loses the excess: its
// least recently pinned clients' entries are removed (expired pins first,
// being the oldest), so their next connection chooses afresh, bounded the
// same way (flow.go), and lands on an endpoint with room, a new one. Pins
// within the bound and every open connection stay. It costs one walk of the
// affinity table, only when such a port gained endpoints. The caller holds
// pubMu, after the load slots of s are assigned.
func (p *Pipeline) rebalanceOnScale(old, s *snapshot.Snapshot) {
	if old == nil {
		return
	}
	l := &p.load
	ix := l.index.Load()
	excess := map[uint32]uint64{} // endpoint ID -> pins to expire
	type portWork struct {
		sp           *snapshot.ServicePort
		limit, total uint64
	}
	var ports []portWork
	for i := range s.ServicePorts {
		sp := &s.ServicePorts[i]
		if !sp.AffinityRebalanceOnScale || sp.AffinitySeconds == 0 || len(sp.Cluster) == 0 {
			continue
		}
		oi := findPort(old, sp.ID)
		if oi < 0 {
			continue
		}
		before := map[uint32]bool{}
		for _, e := range old.ServicePorts[oi].Endpoints {
			before[e.ID] = true
		}
		added := false
		var total uint64
		for _, k := range sp.Cluster {
			id := sp.Endpoints[k].ID
			added = added || !before[id]
			total += l.pins(l.slot(ix, id))
		}
		if !added || total == 0 {
			continue
		}
		limit := maglev.BoundedLimit(total-1, len(sp.Cluster), sp.AffinityMaxLoadPercent) // ceil(c·total/n)
		for _, k := range sp.Cluster {
			id := sp.Endpoints[k].ID
			if n := l.pins(l.slot(ix, id)); n > limit {
				excess[id] = n - limit
			}
		}
		ports = append(ports, portWork{sp, limit, total})
	}
	if len(excess) == 0 {
		return
	}
	type pin struct {
		svc    uint32
		client netip.Addr
		last   int64
	}
	oldest := map[uint32][]pin{}
	p.aff.Range(-1<<62, func(e affinity.Entry) bool { // expired entries too: they count as pinned
		if _, ok := excess[e.Endpoint]; ok {
			oldest[e.Endpoint] = append(oldest[e.Endpoint], pin{e.ServicePort, e.Client, e.LastPin})
		}
		return true
	})
	for _, pw := range ports {
		var expired uint64
		for _, k := range pw.sp.Cluster {
			id := pw.sp.Endpoints[k].ID
			ps := oldest[id]
			slices.SortFunc(ps, func(a, b pin) int { return cmp.Compare(a.last, b.last) })
			for _, x := range ps[:min(uint64(len(ps)), excess[id])] {
				if p.aff.Unpin(x.svc, x.client, id) {
					expired++
				}
			}
		}
		p.svc.add(pw.sp.ID, svcScaleExpiries, expired)
		p.log.Info("endpoints added: pins above the bound expired early; those clients choose again on their next connection",
			"service", pw.sp.Key(), "endpoints", len(pw.sp.Cluster), "pinned_clients", pw.total, "bound", pw.limit, "expired", expired)
	}
}
