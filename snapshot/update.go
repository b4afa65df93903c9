package snapshot

import (
	"errors"
	"fmt"
	"slices"
)

// ErrNotIncremental: Update cannot apply a replacement because it changes
// what the frontend indexes depend on; build the snapshot with New instead.
var ErrNotIncremental = errors.New("replacement changes frontends; use New")

// Update returns a new snapshot equal to s except for Generation and the
// service ports at the indices in replace, without rebuilding the frontend
// and NodePort indexes, which it shares with s. The endpoint index is
// copied on write per shard, so the cost is one copy of the ServicePorts
// array plus the replaced ports' endpoints, not a rebuild of every index.
// s itself is not modified and stays valid.
//
// A replacement must keep the identity and frontends of the port it
// replaces: ID, Namespace, Name, PortName, Protocol, Port, NodePort,
// ClusterIPs, ExternalIPs and LoadBalancerIPs. Everything else (endpoints,
// chains, Maglev tables, policies, source ranges, affinity, health check
// port) may change. If any replacement breaks this, or an index is out of
// range, Update returns an error wrapping ErrNotIncremental and nothing
// else. The []error reports the same per-endpoint problems New would.
func (s *Snapshot) Update(generation uint64, replace map[int32]ServicePort) (*Snapshot, []error, error) {
	for i, sp := range replace {
		if i < 0 || int(i) >= len(s.ServicePorts) {
			return nil, nil, fmt.Errorf("%w: index %d out of range", ErrNotIncremental, i)
		}
		if !sameFrontends(&s.ServicePorts[i], &sp) {
			return nil, nil, fmt.Errorf("%w: service port %s", ErrNotIncremental, sp.Key())
		}
	}
	out := *s
	out.Generation = generation
	out.ServicePorts = slices.Clone(s.ServicePorts)
	out.endpoints = s.endpoints.cow()
	// Remove every replaced port's old endpoints first, so an endpoint
	// moving between two replaced ports is no duplicate.
	for i := range replace {
		for _, ep := range s.ServicePorts[i].Endpoints {
			if r, ok := out.endpoints.get(ep.ID); ok && r.sp == i {
				out.endpoints.del(ep.ID)
			}
		}
	}
	var errs []error
	keys := make([]int32, 0, len(replace))
	for i := range replace {
		keys = append(keys, i)
	}
	slices.Sort(keys) // deterministic duplicate reports
	for _, i := range keys {
		out.ServicePorts[i] = replace[i]
		errs = append(errs, out.indexEndpoints(i, out.endpoints)...)
	}
	return &out, errs, nil
}

func sameFrontends(a, b *ServicePort) bool {
	return a.ID == b.ID && a.Namespace == b.Namespace && a.Name == b.Name && a.PortName == b.PortName &&
		a.Protocol == b.Protocol && a.Port == b.Port && a.NodePort == b.NodePort &&
		slices.Equal(a.ClusterIPs, b.ClusterIPs) && slices.Equal(a.ExternalIPs, b.ExternalIPs) &&
		slices.Equal(a.LoadBalancerIPs, b.LoadBalancerIPs)
}
