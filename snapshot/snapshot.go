package snapshot

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/xdpgate/xdpgate/maglev"
	"github.com/xdpgate/xdpgate/nat"
)

// Snapshot is the complete, immutable desired state of the dataplane.
//
// Build one with New. The exported fields may be read freely by any number of
// goroutines; they must not be written after New returns.
type Snapshot struct {
	// Generation increases by one with every published snapshot.
	Generation uint64
	// NodeName is the node this xdpgate runs as (endpoint locality).
	NodeName string
	// NodeIPs are the node's own addresses (from the Node object or the
	// options), used for loadBalancerSourceRanges and SNAT.
	NodeIPs []netip.Addr
	// NodePortAddrs are the addresses NodePorts are served on, after
	// nodePortAddresses selection.
	NodePortAddrs []netip.Addr
	// ClusterCIDRs recognise pod-originated traffic (kube-proxy's
	// ClusterCIDR detector). Empty means no detector.
	ClusterCIDRs []netip.Prefix
	// MasqueradeAll masquerades all traffic to ClusterIPs.
	MasqueradeAll bool
	// ServicePorts are sorted by namespace, name, port name, protocol.
	ServicePorts []ServicePort

	// keys holds the frontends, NodePorts and node addresses
	// (keytable.go).
	keys      keyTable
	endpoints *epIndex
}

// ServicePort is one port of one Service with everything the dataplane
// needs to forward to it.
type ServicePort struct {
	// ID is stable for (Namespace, Name, PortName, Protocol); never 0.
	ID        uint32
	Namespace string
	Name      string
	PortName  string
	Protocol  nat.Proto
	// Port is the service port on ClusterIPs, ExternalIPs and
	// LoadBalancerIPs.
	Port uint16
	// NodePort is 0 when the service has none.
	NodePort        uint16
	ClusterIPs      []netip.Addr
	ExternalIPs     []netip.Addr
	LoadBalancerIPs []netip.Addr
	// SourceRanges is loadBalancerSourceRanges; it applies to
	// LoadBalancerIPs only (never to NodePorts).
	SourceRanges []netip.Prefix
	// SourceRangesAllowVIP admits traffic whose source is one of the
	// service's LoadBalancerIPs (kube-proxy does so when a range contains a
	// node IP).
	SourceRangesAllowVIP bool
	ExternalPolicyLocal  bool
	InternalPolicyLocal  bool
	// HealthCheckNodePort is the service's healthCheckNodePort, 0 if none.
	HealthCheckNodePort uint16
	// AffinitySeconds is the ClientIP affinity timeout; 0 means no
	// affinity (sessionAffinity: None).
	AffinitySeconds uint32
	// AffinityMaxLoadPercent, when not 0, bounds the pinned clients of
	// each endpoint of a ClientIP chain: a new pin goes to the session
	// choice only while that endpoint holds less than this percentage of
	// the chain's mean (with the new client counted), else to the next
	// endpoint in the client's rendezvous order (PickSessionBounded).
	// Existing pins never move. At least 100; 0 means Kubernetes' plain
	// choice. From the xdpgate.io/affinity-max-load annotation.
	AffinityMaxLoadPercent uint32
	// AffinityRebalanceOnScale: when endpoints are added, pins on
	// endpoints above the bound (AffinityMaxLoadPercent of the new mean,
	// or the mean itself when that is 0) expire early, the oldest first,
	// at most the excess; new pins are then bounded the same way, so the
	// freed clients go to the endpoints with room. From the
	// xdpgate.io/affinity-rebalance-on-scale annotation.
	AffinityRebalanceOnScale bool

	// Endpoints are all endpoints of the port, usable or not, sorted by
	// "IP:port" like kube-proxy.
	Endpoints []Endpoint
	// Cluster and Local are the usable endpoints of each chain, as indices
	// into Endpoints (kube-proxy's CategorizeEndpoints).
	Cluster []int32
	Local   []int32
	// HasEndpoints is kube-proxy's hasAnyEndpoints: some endpoint is Ready,
	// or Serving and Terminating, anywhere.
	HasEndpoints bool
	// ClusterMaglev and LocalMaglev map a Maglev slot to an index into
	// Cluster or Local. Empty when the chain is empty.
	ClusterMaglev []uint16
	LocalMaglev   []uint16

	// clusterKeys and localKeys are maglev.BackendID of each endpoint of
	// the Cluster and Local chains, in chain order, for PickSession. New
	// and Update compute them.
	clusterKeys, localKeys []uint64
}

// Key returns "namespace/name:port/PROTO", the service port's name in logs.
func (sp *ServicePort) Key() string {
	return fmt.Sprintf("%s/%s:%s/%s", sp.Namespace, sp.Name, sp.PortName, sp.Protocol)
}

// Endpoint is one backend address of a service port.
type Endpoint struct {
	// ID is stable while the endpoint exists and never reused; never 0.
	ID       uint32
	Addr     netip.Addr
	Port     uint16
	NodeName string
	Zone     string
	// Local is true when NodeName is this node.
	Local       bool
	Ready       bool
	Serving     bool
	Terminating bool
	// InCluster and InLocal say whether the endpoint is usable in the
	// cluster and local chains. New sets them from ServicePort.Cluster and
	// ServicePort.Local.
	InCluster bool
	InLocal   bool
}

// AddrPort returns the endpoint's address and port.
func (e *Endpoint) AddrPort() netip.AddrPort { return netip.AddrPortFrom(e.Addr, e.Port) }

// FrontendKind says how a flow reached its service port.
type FrontendKind uint8

// Frontend kinds.
const (
	KindNone FrontendKind = iota
	KindClusterIP
	KindExternalIP
	KindLoadBalancerIP
	KindNodePort
)

var kindNames = [...]string{"none", "ClusterIP", "ExternalIP", "LoadBalancerIP", "NodePort"}

// String names the kind.
func (k FrontendKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// External reports whether the kind is subject to externalTrafficPolicy.
func (k FrontendKind) External() bool { return k >= KindExternalIP }

type frontendKey struct {
	addr  netip.Addr
	port  uint16
	proto nat.Proto
}

type frontendRef struct {
	sp   int32
	kind FrontendKind
}

// portKey keys NodePorts by family too: a dual-stack Service is two
// service ports (one per family) sharing one nodePort number.
type portKey struct {
	port  uint16
	proto nat.Proto
	v6    bool
}

// families returns the IP families a service port serves: those of its
// frontend addresses (the first ClusterIP decides), or both when it has none.
func (sp *ServicePort) families() (v4, v6 bool) {
	for _, list := range [][]netip.Addr{sp.ClusterIPs, sp.ExternalIPs, sp.LoadBalancerIPs} {
		if len(list) > 0 {
			a := list[0].Unmap()
			return a.Is4(), a.Is6()
		}
	}
	return true, true
}

type endpointRef struct {
	sp, ep int32
}

// New indexes the service ports and returns the finished, immutable
// snapshot. ServicePorts must be sorted and have unique non-zero IDs, and
// endpoint IDs must be unique and non-zero; violations are returned as
// errors after which the offending entries are left out. When two service
// ports claim the same frontend (address, port, protocol) or the same
// NodePort, the first in ServicePorts order keeps it and an error naming
// both is returned; everything else keeps working.
func New(s Snapshot) (*Snapshot, []error) {
	var errs []error
	out := s
	frontends := make(map[frontendKey]frontendRef)
	nodePorts := make(map[portKey]int32)
	nodeAddrs := make(map[netip.Addr]struct{}, len(s.NodePortAddrs))
	out.endpoints = newEPIndex()
	for _, a := range s.NodePortAddrs {
		nodeAddrs[a.Unmap()] = struct{}{}
	}
	out.ServicePorts = slices.Clone(s.ServicePorts)
	seen := make(map[uint32]int, len(out.ServicePorts))
	for i := range out.ServicePorts {
		sp := &out.ServicePorts[i]
		if sp.ID == 0 {
			errs = append(errs, fmt.Errorf("service port %s: id 0", sp.Key()))
			continue
		}
		if j, dup := seen[sp.ID]; dup {
			errs = append(errs, fmt.Errorf("service port %s: id %d already used by %s", sp.Key(), sp.ID, out.ServicePorts[j].Key()))
			continue
		}
		seen[sp.ID] = i
		claim := func(a netip.Addr, kind FrontendKind) {
			k := frontendKey{a.Unmap(), sp.Port, sp.Protocol}
			if prev, ok := frontends[k]; ok {
				errs = append(errs, fmt.Errorf("service port %s: %s %s already claimed by %s", sp.Key(), kind, netip.AddrPortFrom(a, sp.Port), out.ServicePorts[prev.sp].Key()))
				return
			}
			frontends[k] = frontendRef{int32(i), kind}
		}
		for _, a := range sp.ClusterIPs {
			claim(a, KindClusterIP)
		}
		for _, a := range sp.ExternalIPs {
			claim(a, KindExternalIP)
		}
		for _, a := range sp.LoadBalancerIPs {
			claim(a, KindLoadBalancerIP)
		}
		if sp.NodePort != 0 {
			v4, v6 := sp.families()
			for _, fam6 := range []bool{false, true} {
				if (fam6 && !v6) || (!fam6 && !v4) {
					continue
				}
				k := portKey{sp.NodePort, sp.Protocol, fam6}
				if prev, ok := nodePorts[k]; ok {
					errs = append(errs, fmt.Errorf("service port %s: nodePort %d/%s already claimed by %s", sp.Key(), sp.NodePort, sp.Protocol, out.ServicePorts[prev].Key()))
				} else {
					nodePorts[k] = int32(i)
				}
			}
		}
		errs = append(errs, out.indexEndpoints(int32(i), out.endpoints)...)
	}
	entries := make([]keyEntry, 0, len(frontends)+len(nodePorts)+len(nodeAddrs))
	for k, r := range frontends {
		entries = append(entries, keyEntry{addr: k.addr, meta: keyMeta(spaceFrontend, false, k.port, k.proto), sp: r.sp, kind: r.kind})
	}
	for k, sp := range nodePorts {
		entries = append(entries, keyEntry{meta: keyMeta(spaceNodePort, k.v6, k.port, k.proto), sp: sp, kind: KindNodePort})
	}
	for a := range nodeAddrs {
		entries = append(entries, keyEntry{addr: a, meta: keyMeta(spaceNodeAddr, false, 0, 0)})
	}
	out.keys = newKeyTable(entries)
	return &out, errs
}

// indexEndpoints copies the endpoints of service port i (so the flags never
// write into a slice the caller or a previous snapshot holds), sets their
// chain flags, adds their IDs to idx and checks the chains and tables.
func (out *Snapshot) indexEndpoints(i int32, idx *epIndex) []error {
	var errs []error
	sp := &out.ServicePorts[i]
	sp.Endpoints = slices.Clone(sp.Endpoints)
	for _, k := range sp.Cluster {
		if k >= 0 && int(k) < len(sp.Endpoints) {
			sp.Endpoints[k].InCluster = true
		}
	}
	for _, k := range sp.Local {
		if k >= 0 && int(k) < len(sp.Endpoints) {
			sp.Endpoints[k].InLocal = true
		}
	}
	for j := range sp.Endpoints {
		ep := &sp.Endpoints[j]
		if ep.ID == 0 {
			errs = append(errs, fmt.Errorf("service port %s: endpoint %s has id 0", sp.Key(), ep.AddrPort()))
			continue
		}
		if prev, dup := idx.get(ep.ID); dup {
			errs = append(errs, fmt.Errorf("service port %s: endpoint %s id %d already used in %s", sp.Key(), ep.AddrPort(), ep.ID, out.ServicePorts[prev.sp].Key()))
			continue
		}
		idx.put(ep.ID, endpointRef{i, int32(j)})
	}
	if err := checkChain(sp, sp.Cluster, sp.ClusterMaglev, "cluster"); err != nil {
		errs = append(errs, err)
		sp.ClusterMaglev = nil
	}
	if err := checkChain(sp, sp.Local, sp.LocalMaglev, "local"); err != nil {
		errs = append(errs, err)
		sp.LocalMaglev = nil
	}
	sp.clusterKeys, sp.localKeys = nil, nil
	if sp.AffinitySeconds > 0 {
		sp.clusterKeys = chainKeys(sp, sp.Cluster)
		sp.localKeys = chainKeys(sp, sp.Local)
	}
	return errs
}

// chainKeys returns maglev.BackendID of each endpoint of chain (indices
// into sp.Endpoints; an index out of range, which New reports, gets 0).
func chainKeys(sp *ServicePort, chain []int32) []uint64 {
	if len(chain) == 0 {
		return nil
	}
	keys := make([]uint64, len(chain))
	for i, k := range chain {
		if k >= 0 && int(k) < len(sp.Endpoints) {
			keys[i] = maglev.BackendID(sp.Endpoints[k].AddrPort())
		}
	}
	return keys
}

func checkChain(sp *ServicePort, chain []int32, table []uint16, name string) error {
	for _, idx := range chain {
		if idx < 0 || int(idx) >= len(sp.Endpoints) {
			return fmt.Errorf("service port %s: %s chain index %d out of range", sp.Key(), name, idx)
		}
	}
	for _, slot := range table {
		if int(slot) >= len(chain) {
			return fmt.Errorf("service port %s: %s maglev slot names endpoint %d of %d", sp.Key(), name, slot, len(chain))
		}
	}
	return nil
}

// Endpoint returns the endpoint with the given ID and the index of its
// service port, or ok false when no such endpoint exists in this snapshot.
func (s *Snapshot) Endpoint(id uint32) (ep *Endpoint, sp int32, ok bool) {
	r, ok := s.endpoints.get(id)
	if !ok {
		return nil, -1, false
	}
	return &s.ServicePorts[r.sp].Endpoints[r.ep], r.sp, true
}

// IsNodePortAddr reports whether NodePorts are served on a.
func (s *Snapshot) IsNodePortAddr(a netip.Addr) bool {
	return s.keys.get(a, keyMeta(spaceNodeAddr, false, 0, 0)) != nil
}

// Frontend returns the service port index and kind for a frontend address,
// port and protocol (ClusterIP, externalIP or LB IP), or -1.
func (s *Snapshot) Frontend(dst netip.Addr, port uint16, proto nat.Proto) (int32, FrontendKind) {
	if r := s.keys.get(dst, keyMeta(spaceFrontend, false, port, proto)); r != nil {
		return r.sp, r.kind
	}
	return -1, KindNone
}

// NodePort returns the service port index serving NodePort port/proto, or -1.
// For a dual-stack Service (one service port per family sharing the
// nodePort) it returns the IPv4 one; use NodePortFor to choose by the
// destination's family.
func (s *Snapshot) NodePort(port uint16, proto nat.Proto) int32 {
	if r := s.keys.get(netip.Addr{}, keyMeta(spaceNodePort, false, port, proto)); r != nil {
		return r.sp
	}
	if r := s.keys.get(netip.Addr{}, keyMeta(spaceNodePort, true, port, proto)); r != nil {
		return r.sp
	}
	return -1
}

// NodePortFor returns the service port index serving NodePort port/proto
// for a destination address of dst's family, or -1.
func (s *Snapshot) NodePortFor(dst netip.Addr, port uint16, proto nat.Proto) int32 {
	if r := s.keys.get(netip.Addr{}, keyMeta(spaceNodePort, dst.Unmap().Is6(), port, proto)); r != nil {
		return r.sp
	}
	return -1
}

// NumEndpoints returns the number of endpoints indexed by the snapshot.
func (s *Snapshot) NumEndpoints() int { return s.endpoints.len() }
