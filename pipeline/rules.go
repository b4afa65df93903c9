package pipeline

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/snapshot"
)

// RuleSet is a classifier rule set computed for one snapshot, and which
// service ports it holds.
type RuleSet struct {
	// Rules is what the classifier is programmed with.
	Rules dataplane.Rules
	// Placed holds the IDs of the service ports whose rules are in Rules.
	Placed map[uint32]bool
	// Skipped names the service ports ("namespace/name:port/protocol")
	// left out because their rules did not fit the limits.
	Skipped []string
}

// Rules computes the classifier rules for s: every frontend (ClusterIPs,
// externalIPs, LB IPs with the service port), every NodePort with the
// NodePort addresses, every endpoint (replies of unmasqueraded flows), the
// retained endpoints (TCP endpoints that left the snapshot but still have
// flows, whose replies must keep coming through until those flows end), and
// nodeAddrs as SNAT and local addresses with the pipeline's SNAT port range.
// Frontends of service ports without endpoints are included: their new
// connections must be rejected. Lists are sorted and deduplicated. A nil s
// gives only the node part.
//
// The rules stay within limits (zero fields: no limit): a service port
// whose rules would not fit is left out whole and named in Skipped, so
// what is programmed is always complete per service port. The retained
// endpoints are placed before anything, then the service ports in seniority
// (those the classifier holds, in the order they were first programmed:
// lower first), then the others in snapshot order, so a new Service, or one
// that grew, can never push out one that was served before it.
func (p *Pipeline) Rules(s *snapshot.Snapshot, nodeAddrs []netip.Addr, limits dataplane.ClassifierConfig, seniority map[uint32]uint64) RuleSet {
	b := newRuleBuilder(limits)
	p.pubMu.Lock()
	for a := range p.retained {
		b.endpoint(a)
	}
	p.pubMu.Unlock()
	rs := RuleSet{Placed: make(map[uint32]bool)}
	r := &rs.Rules
	r.SNATAddrs, r.LocalAddrs = sortedAddrs(nodeAddrs), sortedAddrs(nodeAddrs)
	r.SNATPortMin, r.SNATPortMax = p.cfg.SNATPortMin, p.cfg.SNATPortMax
	if s != nil {
		r.NodePortAddrs = sortedAddrs(s.NodePortAddrs)
		order := make([]int, 0, len(s.ServicePorts))
		for i := range s.ServicePorts {
			order = append(order, i)
		}
		slices.SortStableFunc(order, func(i, j int) int {
			ri, seniorI := seniority[s.ServicePorts[i].ID]
			rj, seniorJ := seniority[s.ServicePorts[j].ID]
			switch {
			case seniorI && seniorJ:
				return cmp.Compare(ri, rj)
			case seniorI:
				return -1
			case seniorJ:
				return 1
			}
			return 0
		})
		for _, i := range order {
			sp := &s.ServicePorts[i]
			if b.servicePort(sp) {
				rs.Placed[sp.ID] = true
			} else {
				rs.Skipped = append(rs.Skipped, sp.Key())
			}
		}
	}
	r.Frontends, r.Endpoints, r.NodePorts = sortedKeys(b.fe, compareL4), sortedKeys(b.ep, compareL4), sortedKeys(b.np, comparePortProto)
	slices.Sort(rs.Skipped)
	return rs
}

// ruleBuilder accumulates rules within limits; the address sets count
// against the same limits as the maps keyed by them (the classifier sizes
// them so).
type ruleBuilder struct {
	limits           dataplane.ClassifierConfig
	fe, ep           map[dataplane.L4Addr]struct{}
	feAddrs, epAddrs map[netip.Addr]struct{}
	np               map[dataplane.PortProto]struct{}
}

func newRuleBuilder(limits dataplane.ClassifierConfig) *ruleBuilder {
	return &ruleBuilder{limits: limits,
		fe: map[dataplane.L4Addr]struct{}{}, ep: map[dataplane.L4Addr]struct{}{},
		feAddrs: map[netip.Addr]struct{}{}, epAddrs: map[netip.Addr]struct{}{},
		np: map[dataplane.PortProto]struct{}{}}
}

// fits reports whether n entries fit a map with limit (0: unlimited).
func fits(n, limit int) bool { return limit == 0 || n <= limit }

// endpoint adds one endpoint rule if it fits.
func (b *ruleBuilder) endpoint(a dataplane.L4Addr) {
	_, have := b.ep[a]
	_, haveAddr := b.epAddrs[a.Addr]
	if have || !fits(len(b.ep)+1, b.limits.MaxEndpoints) || (!haveAddr && !fits(len(b.epAddrs)+1, b.limits.MaxEndpoints)) {
		return
	}
	b.ep[a], b.epAddrs[a.Addr] = struct{}{}, struct{}{}
}

// servicePort adds every rule of sp, or none when they would not all fit.
func (b *ruleBuilder) servicePort(sp *snapshot.ServicePort) bool {
	proto := uint8(sp.Protocol)
	var fe, ep []dataplane.L4Addr
	for _, list := range [][]netip.Addr{sp.ClusterIPs, sp.ExternalIPs, sp.LoadBalancerIPs} {
		for _, a := range list {
			fe = append(fe, dataplane.L4Addr{Addr: a.Unmap(), Port: sp.Port, Proto: proto})
		}
	}
	for k := range sp.Endpoints {
		e := &sp.Endpoints[k]
		ep = append(ep, dataplane.L4Addr{Addr: e.Addr.Unmap(), Port: e.Port, Proto: proto})
	}
	newFE, newFEAddrs := countNew(b.fe, b.feAddrs, fe)
	newEP, newEPAddrs := countNew(b.ep, b.epAddrs, ep)
	newNP := 0
	np := dataplane.PortProto{Port: sp.NodePort, Proto: proto}
	if _, have := b.np[np]; sp.NodePort != 0 && !have {
		newNP = 1
	}
	if !fits(len(b.fe)+newFE, b.limits.MaxFrontends) || !fits(len(b.feAddrs)+newFEAddrs, b.limits.MaxFrontends) ||
		!fits(len(b.ep)+newEP, b.limits.MaxEndpoints) || !fits(len(b.epAddrs)+newEPAddrs, b.limits.MaxEndpoints) ||
		!fits(len(b.np)+newNP, b.limits.MaxNodePorts) {
		return false
	}
	for _, a := range fe {
		b.fe[a], b.feAddrs[a.Addr] = struct{}{}, struct{}{}
	}
	for _, a := range ep {
		b.ep[a], b.epAddrs[a.Addr] = struct{}{}, struct{}{}
	}
	if sp.NodePort != 0 {
		b.np[np] = struct{}{}
	}
	return true
}

// countNew counts the rules of list, and their addresses, not yet in have
// and haveAddrs (a rule repeated inside list counts once).
func countNew(have map[dataplane.L4Addr]struct{}, haveAddrs map[netip.Addr]struct{}, list []dataplane.L4Addr) (rules, addrs int) {
	seen := make(map[dataplane.L4Addr]struct{}, len(list))
	seenAddrs := make(map[netip.Addr]struct{}, len(list))
	for _, a := range list {
		if _, ok := have[a]; !ok {
			seen[a] = struct{}{}
		}
		if _, ok := haveAddrs[a.Addr]; !ok {
			seenAddrs[a.Addr] = struct{}{}
		}
	}
	return len(seen), len(seenAddrs)
}

func sortedKeys[K comparable](m map[K]struct{}, cmp func(a, b K) int) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, cmp)
	return out
}

func sortedAddrs(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.Unmap())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func compareL4(a, b dataplane.L4Addr) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
}

func comparePortProto(a, b dataplane.PortProto) int {
	return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
}

// staging returns the rules to program before a new snapshot is published,
// given what the classifier holds (cur) and what it will hold (next): the
// reply side of both (endpoints, node addresses), so replies of flows the
// new snapshot creates are redirected from their first packet, and the
// frontends and NodePorts of both only (a new frontend is redirected only
// once the pollers know it; one that leaves stops being redirected at once).
func staging(cur, next dataplane.Rules) dataplane.Rules {
	return dataplane.Rules{
		Frontends:     intersect(cur.Frontends, next.Frontends, compareL4),
		NodePorts:     intersect(cur.NodePorts, next.NodePorts, comparePortProto),
		NodePortAddrs: intersect(cur.NodePortAddrs, next.NodePortAddrs, netip.Addr.Compare),
		Endpoints:     union(cur.Endpoints, next.Endpoints, compareL4),
		SNATAddrs:     union(cur.SNATAddrs, next.SNATAddrs, netip.Addr.Compare),
		LocalAddrs:    union(cur.LocalAddrs, next.LocalAddrs, netip.Addr.Compare),
		SNATPortMin:   next.SNATPortMin,
		SNATPortMax:   next.SNATPortMax,
	}
}

// union and intersect combine two sorted, deduplicated lists.
func union[T any](a, b []T, cmp func(x, y T) int) []T {
	out := slices.Concat(a, b)
	slices.SortFunc(out, cmp)
	return slices.CompactFunc(out, func(x, y T) bool { return cmp(x, y) == 0 })
}

func intersect[T any](a, b []T, cmp func(x, y T) int) []T {
	var out []T
	for _, x := range a {
		if _, found := slices.BinarySearchFunc(b, x, cmp); found {
			out = append(out, x)
		}
	}
	return out
}
