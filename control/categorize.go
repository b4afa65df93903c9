package control

import "slices"

// chainPolicy is what categorize needs to know about a service port.
type chainPolicy struct {
	internalLocal, externalLocal, externallyAccessible bool
}

// usesCluster is kube-proxy's UsesClusterEndpoints: the cluster chain is
// needed for Cluster internal policy, and for any externally accessible
// port (short-circuit of pod traffic under externalTrafficPolicy Local).
func (p chainPolicy) usesCluster() bool { return !p.internalLocal || p.externallyAccessible }

// usesLocal is kube-proxy's UsesLocalEndpoints.
func (p chainPolicy) usesLocal() bool {
	return p.internalLocal || (p.externalLocal && p.externallyAccessible)
}

// Topology modes (kube-proxy topologyModeFromHints).
const (
	topoNone = iota
	topoSameNode
	topoSameZone
)

// categorize is kube-proxy's CategorizeEndpoints (pkg/proxy/topology.go):
// it returns the indices of the cluster and local chains in eps and whether
// any endpoint is usable anywhere. The PreferSameTrafficDistribution gate is
// treated as enabled (node hints are honoured).
func categorize(eps []epInfo, p chainPolicy, nodeName, zone string) (cluster, local []int32, hasAny bool) {
	if len(eps) == 0 {
		return nil, nil, false
	}
	if p.usesCluster() {
		mode := topologyMode(eps, nodeName, zone)
		for i := range eps {
			if eps[i].ready && availableForTopology(&eps[i], mode, nodeName, zone) {
				cluster = append(cluster, int32(i))
			}
		}
		if len(cluster) == 0 {
			for i := range eps {
				if eps[i].serving && eps[i].terminating {
					cluster = append(cluster, int32(i))
				}
			}
		}
		if len(cluster) > 0 {
			hasAny = true
		}
	}
	if !p.usesLocal() {
		return cluster, nil, hasAny
	}
	var localReady, localServingTerminating bool
	for i := range eps {
		e := &eps[i]
		if e.ready {
			hasAny = true
			localReady = localReady || e.local
		} else if e.serving && e.terminating {
			hasAny = true
			localServingTerminating = localServingTerminating || e.local
		}
	}
	switch {
	case localReady:
		for i := range eps {
			if eps[i].local && eps[i].ready {
				local = append(local, int32(i))
			}
		}
	case localServingTerminating:
		for i := range eps {
			if eps[i].local && eps[i].serving && eps[i].terminating {
				local = append(local, int32(i))
			}
		}
	}
	return cluster, local, hasAny
}

// topologyMode is kube-proxy's topologyModeFromHints: all-or-nothing over
// the ready endpoints, same-node before same-zone.
func topologyMode(eps []epInfo, nodeName, zone string) int {
	hasReady, forNode, allNode, forZone, allZone := false, false, true, false, true
	for i := range eps {
		e := &eps[i]
		if !e.ready {
			continue
		}
		hasReady = true
		if len(e.nodeHints) == 0 {
			allNode = false
		} else if slices.Contains(e.nodeHints, nodeName) {
			forNode = true
		}
		if len(e.zoneHints) == 0 {
			allZone = false
		} else if slices.Contains(e.zoneHints, zone) {
			forZone = true
		}
	}
	switch {
	case !hasReady:
		return topoNone
	case allNode && forNode:
		return topoSameNode
	case allZone && forZone:
		return topoSameZone
	}
	return topoNone
}

func availableForTopology(e *epInfo, mode int, nodeName, zone string) bool {
	switch mode {
	case topoSameNode:
		return slices.Contains(e.nodeHints, nodeName)
	case topoSameZone:
		return slices.Contains(e.zoneHints, zone)
	}
	return true
}
