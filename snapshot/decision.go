package snapshot

import (
	"fmt"
	"net/netip"

	"github.com/xdpgate/xdpgate/maglev"
	"github.com/xdpgate/xdpgate/nat"
)

// Verdict is what happens to the first packet of a flow.
type Verdict uint8

// Verdicts.
const (
	// NotService: the packet is not for any frontend; the dataplane leaves
	// it alone (it should not have been redirected to it at all).
	NotService Verdict = iota
	// Forward: choose an endpoint of the decision's chain and translate.
	Forward
	// Reject: answer with ICMP/ICMPv6 port unreachable (no endpoints).
	Reject
	// Drop: silently drop (see Decision.Cause).
	Drop
)

var verdictNames = [...]string{"not-service", "forward", "reject", "drop"}

// String names the verdict.
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Cause says why a decision is Reject or Drop.
type Cause uint8

// Causes.
const (
	CauseNone Cause = iota
	// CauseNoEndpoints: the service port has no usable endpoint anywhere
	// (kube-proxy REJECT).
	CauseNoEndpoints
	// CauseNoLocalEndpoints: a Local traffic policy applies and the node has
	// no usable local endpoint (kube-proxy DROP, issue #121371).
	CauseNoLocalEndpoints
	// CauseSourceRange: loadBalancerSourceRanges does not admit the source.
	CauseSourceRange
)

var causeNames = [...]string{"none", "no-endpoints", "no-local-endpoints", "source-range"}

// String names the cause.
func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return fmt.Sprintf("cause(%d)", uint8(c))
}

// Decision is the service decision for the first packet of a flow.
type Decision struct {
	Verdict Verdict
	Cause   Cause
	// ServicePort indexes Snapshot.ServicePorts; -1 for NotService.
	ServicePort int32
	Kind        FrontendKind
	// Local selects the local chain (ServicePort.Local, LocalMaglev);
	// otherwise the cluster chain is used.
	Local bool
	// Masquerade: SNAT the flow to a node address. The dataplane must also
	// masquerade when the chosen endpoint's address equals the source
	// (hairpin), which Classify cannot know before the choice.
	Masquerade bool
}

// Classify decides the first packet of a flow from src to dst:dport over
// proto that arrived on a managed interface. It never allocates.
//
// The rules are kube-proxy's (iptables and nftables modes):
//   - ClusterIP: internalTrafficPolicy picks the chain; Local with no local
//     endpoints drops; masquerade when MasqueradeAll, or when ClusterCIDRs
//     are configured and src is outside them.
//   - externalIP, LB IP, NodePort on a NodePort address: LB IPs first check
//     loadBalancerSourceRanges (drop). externalTrafficPolicy Cluster uses the
//     cluster chain with masquerade; Local keeps the client address and uses
//     the local chain (drop when empty), except that pod-originated traffic
//     (src in ClusterCIDRs) is short-circuited to the cluster chain without
//     masquerade.
//   - No usable endpoint anywhere: reject, for every frontend kind.
func (s *Snapshot) Classify(src, dst netip.Addr, dport uint16, proto nat.Proto) Decision {
	spi, kind := s.Frontend(dst, dport, proto)
	if spi < 0 {
		if spi = s.NodePortFor(dst, dport, proto); spi < 0 || !s.IsNodePortAddr(dst) {
			return Decision{ServicePort: -1}
		}
		kind = KindNodePort
	}
	sp := &s.ServicePorts[spi]
	d := Decision{Verdict: Forward, ServicePort: spi, Kind: kind}
	if kind == KindLoadBalancerIP && len(sp.SourceRanges) > 0 && !sourceAllowed(sp, src) {
		d.Verdict, d.Cause = Drop, CauseSourceRange
		return d
	}
	if !sp.HasEndpoints {
		d.Verdict, d.Cause = Reject, CauseNoEndpoints
		return d
	}
	fromPod := s.fromPod(src)
	if kind == KindClusterIP {
		d.Local = sp.InternalPolicyLocal
		d.Masquerade = s.MasqueradeAll || len(s.ClusterCIDRs) > 0 && !fromPod
	} else if sp.ExternalPolicyLocal && !fromPod {
		d.Local = true
	} else {
		d.Masquerade = !sp.ExternalPolicyLocal
	}
	if d.Local && len(sp.Local) == 0 {
		d.Verdict, d.Cause = Drop, CauseNoLocalEndpoints
		return d
	}
	if !d.Local && len(sp.Cluster) == 0 {
		// Only a Local chain has endpoints (internalTrafficPolicy Local
		// without external access computes no cluster chain): nothing to
		// forward to on this path.
		d.Verdict, d.Cause = Drop, CauseNoLocalEndpoints
	}
	return d
}

func (s *Snapshot) fromPod(src netip.Addr) bool {
	src = src.Unmap()
	for _, p := range s.ClusterCIDRs {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

func sourceAllowed(sp *ServicePort, src netip.Addr) bool {
	src = src.Unmap()
	for _, p := range sp.SourceRanges {
		if p.Contains(src) {
			return true
		}
	}
	if sp.SourceRangesAllowVIP {
		for _, a := range sp.LoadBalancerIPs {
			if a.Unmap() == src {
				return true
			}
		}
	}
	return false
}

// Chain returns the usable endpoints (indices into ServicePort.Endpoints)
// and the Maglev table of the decision's chain.
func (s *Snapshot) Chain(d Decision) (eps []int32, maglev []uint16) {
	sp := &s.ServicePorts[d.ServicePort]
	if d.Local {
		return sp.Local, sp.LocalMaglev
	}
	return sp.Cluster, sp.ClusterMaglev
}

// Pick returns the endpoint of the decision's chain that the Maglev table
// assigns to hash (a client-IP hash for ClientIP affinity, a 5-tuple hash
// otherwise), with maglev.Pick: without a table it falls back to hash
// modulo the chain length. It returns nil when the chain is empty.
func (s *Snapshot) Pick(d Decision, hash uint64) *Endpoint {
	eps, table := s.Chain(d)
	i := maglev.Pick(table, len(eps), hash)
	if i < 0 {
		return nil
	}
	return &s.ServicePorts[d.ServicePort].Endpoints[eps[i]]
}

// PickSession returns the endpoint of the decision's chain that rendezvous
// hashing (maglev.Rendezvous over the endpoints' maglev.BackendID) assigns
// to a session hash (maglev.HashSession of a ClientIP client and its
// epoch). It is the choice for a ClientIP client without a valid affinity
// entry: minimally disruptive (adding an endpoint moves only the clients
// it wins, removing one only its own) and the same on every gateway with
// the same endpoints. It returns nil when the chain is empty or the
// service port has no ClientIP affinity. It costs O(chain length).
func (s *Snapshot) PickSession(d Decision, hash uint64) *Endpoint {
	sp, eps, keys := s.sessionChain(d)
	return sp.chainEndpoint(eps, maglev.Rendezvous(keys, hash))
}

// sessionChain returns the decision's service port, its chain (indices
// into Endpoints) and the chain's rendezvous keys; eps is nil when the
// keys do not match the chain (no ClientIP affinity).
func (s *Snapshot) sessionChain(d Decision) (sp *ServicePort, eps []int32, keys []uint64) {
	sp = &s.ServicePorts[d.ServicePort]
	eps, keys = sp.Cluster, sp.clusterKeys
	if d.Local {
		eps, keys = sp.Local, sp.localKeys
	}
	if len(keys) != len(eps) {
		return sp, nil, nil
	}
	return sp, eps, keys
}

// chainEndpoint returns the endpoint at chain position i, nil for i < 0.
func (sp *ServicePort) chainEndpoint(eps []int32, i int) *Endpoint {
	if i < 0 {
		return nil
	}
	return &sp.Endpoints[eps[i]]
}

// Usable returns the endpoint with ID id if it is usable in the decision's
// chain of the same service port: the affinity check ("an entry whose
// endpoint is no longer eligible is ignored").
func (s *Snapshot) Usable(d Decision, id uint32) (*Endpoint, bool) {
	ep, spi, ok := s.Endpoint(id)
	if !ok || spi != d.ServicePort {
		return nil, false
	}
	if d.Local {
		return ep, ep.InLocal
	}
	return ep, ep.InCluster
}

// PickSessionBounded is PickSession with bounded loads
// (ServicePort.AffinityMaxLoadPercent, maglev.RendezvousBounded): the
// rendezvous choice unless that endpoint already holds its share of the
// chain's load times maxLoadPercent/100, else the next endpoint in the
// hash's preference order that does not. load(k) is the load (pinned
// clients) of sp.Endpoints[k]. It returns nil when PickSession would.
func (s *Snapshot) PickSessionBounded(d Decision, hash uint64, maxLoadPercent uint32, load func(k int32) uint64) *Endpoint {
	sp, eps, keys := s.sessionChain(d)
	return sp.chainEndpoint(eps, maglev.RendezvousBounded(keys, hash, maxLoadPercent, func(i int) uint64 { return load(eps[i]) }))
}
