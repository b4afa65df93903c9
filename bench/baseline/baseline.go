package baseline

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// Kind selects which kernel ruleset a baseline installs.
type Kind uint8

// Kinds of kernel baseline.
const (
	// NFTables is kube-proxy's nftables mode (table ip/ip6 kube-proxy).
	NFTables Kind = iota + 1
	// IPTables is kube-proxy's iptables mode (KUBE-* chains, IPv4 only).
	IPTables
)

// String returns "nftables" or "iptables".
func (k Kind) String() string {
	switch k {
	case NFTables:
		return "nftables"
	case IPTables:
		return "iptables"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// DefaultMasqueradeMark is kube-proxy's default masquerade mark
// (--iptables-masquerade-bit 14).
const DefaultMasqueradeMark uint32 = 1 << 14

// Options configure the rendered rulesets.
type Options struct {
	// MasqueradeMark marks packets for SNAT in postrouting; 0 means
	// DefaultMasqueradeMark. It must have exactly one bit set, as
	// kube-proxy's --iptables-masquerade-bit does.
	MasqueradeMark uint32
}

// Errors.
var (
	// ErrInvalid wraps every problem found in a snapshot or the options.
	ErrInvalid = errors.New("invalid input")
	// ErrNotSupported is returned by Install on systems other than Linux.
	ErrNotSupported = errors.New("not supported on this system")
)

func (o Options) withDefaults() (Options, error) {
	if o.MasqueradeMark == 0 {
		o.MasqueradeMark = DefaultMasqueradeMark
	}
	if o.MasqueradeMark&(o.MasqueradeMark-1) != 0 {
		return o, fmt.Errorf("%w: MasqueradeMark %#x must have exactly one bit set", ErrInvalid, o.MasqueradeMark)
	}
	return o, nil
}

// markString formats the mark as kube-proxy does (fmt "%#08x", which Go
// pads to eight hex digits: 0x00004000).
func (o Options) markString() string { return fmt.Sprintf("%#08x", o.MasqueradeMark) }

// portView is one service port as both renderers see it: kube-proxy's
// per-service-port decisions from syncProxyRules, computed once from the
// snapshot so that the nftables and iptables rulesets cannot disagree.
type portView struct {
	sp    *snapshot.ServicePort
	v6    bool
	proto string // "tcp", "udp", "sctp"
	// name is kube-proxy's ServicePortName.String(): "ns/name:port", or
	// "ns/name" for an unnamed port.
	name string

	clusterIP netip.Addr
	// cluster and local are the usable endpoints of each policy chain,
	// nil when kube-proxy would not write that chain.
	cluster, local []*snapshot.Endpoint
	// reachable is allLocallyReachableEndpoints: the endpoints that get
	// an endpoint chain (and an affinity list or set).
	reachable []*snapshot.Endpoint

	hasEndpoints         bool // some usable endpoint anywhere
	hasInternal          bool // ClusterIP traffic has a chain to go to
	hasExternal          bool // external traffic has a policy chain to go to
	externallyAccessible bool
	externalLocal        bool
	internalLocal        bool
	usesExternal         bool // the external chain is written
}

func (v *portView) usesCluster() bool { return len(v.cluster) > 0 }
func (v *portView) usesLocal() bool   { return len(v.local) > 0 }

// policyChains picks, from the renderer's cluster and local chain names,
// the chain internal traffic and external traffic go to (the traffic
// policies).
func (v *portView) policyChains(cluster, local string) (internal, external string) {
	internal, external = cluster, cluster
	if v.internalLocal {
		internal = local
	}
	if v.externalLocal {
		external = local
	}
	return internal, external
}

// protoName is the lower-case protocol kube-proxy puts in names and rules.
func protoName(p nat.Proto) (string, bool) {
	switch p {
	case nat.ProtoTCP:
		return "tcp", true
	case nat.ProtoUDP:
		return "udp", true
	case nat.ProtoSCTP:
		return "sctp", true
	}
	return "", false
}

// servicePortName is kube-proxy's ServicePortName.String().
func servicePortName(sp *snapshot.ServicePort) string {
	if sp.PortName == "" {
		return sp.Namespace + "/" + sp.Name
	}
	return sp.Namespace + "/" + sp.Name + ":" + sp.PortName
}

// views validates s and computes the view of every service port. Each error
// names the service port (its Key) and the field.
func views(s *snapshot.Snapshot) ([]portView, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil snapshot", ErrInvalid)
	}
	out := make([]portView, 0, len(s.ServicePorts))
	for i := range s.ServicePorts {
		v, err := newView(&s.ServicePorts[i])
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func newView(sp *snapshot.ServicePort) (portView, error) {
	bad := func(format string, args ...any) (portView, error) {
		return portView{}, fmt.Errorf("%w: service port %s: %s", ErrInvalid, sp.Key(), fmt.Sprintf(format, args...))
	}
	proto, ok := protoName(sp.Protocol)
	if !ok {
		return bad("protocol %s not supported", sp.Protocol)
	}
	if sp.Port == 0 {
		return bad("port 0")
	}
	if !validName(sp.Namespace) || !validName(sp.Name) || (sp.PortName != "" && !validName(sp.PortName)) {
		// Names go into chain names, comments and set names unquoted.
		return bad("namespace, name and port name must be DNS labels ([a-z0-9.-], at most 63 characters)")
	}
	if len(sp.ClusterIPs) == 0 || !sp.ClusterIPs[0].IsValid() {
		return bad("clusterIPs: no ClusterIP")
	}
	v := portView{sp: sp, proto: proto, name: servicePortName(sp), clusterIP: sp.ClusterIPs[0].Unmap()}
	v.v6 = v.clusterIP.Is6()
	check := func(field string, list []netip.Addr) error {
		for j, a := range list {
			if !a.IsValid() || a.Unmap().Is6() != v.v6 {
				return fmt.Errorf("%w: service port %s: %s[%d] %s is not an address of the ClusterIP's family", ErrInvalid, sp.Key(), field, j, a)
			}
		}
		return nil
	}
	for _, f := range []struct {
		name string
		list []netip.Addr
	}{{"clusterIPs", sp.ClusterIPs}, {"externalIPs", sp.ExternalIPs}, {"loadBalancerIPs", sp.LoadBalancerIPs}} {
		if err := check(f.name, f.list); err != nil {
			return portView{}, err
		}
	}
	for j, p := range sp.SourceRanges {
		if !p.IsValid() || p.Addr().Unmap().Is6() != v.v6 {
			return bad("sourceRanges[%d] %s is not a prefix of the ClusterIP's family", j, p)
		}
	}
	for j := range sp.Endpoints {
		ep := &sp.Endpoints[j]
		if !ep.Addr.IsValid() || ep.Addr.Unmap().Is6() != v.v6 {
			return bad("endpoints[%d] %s is not an address of the ClusterIP's family", j, ep.Addr)
		}
		if ep.Port == 0 {
			return bad("endpoints[%d] %s has port 0", j, ep.Addr)
		}
	}
	pick := func(field string, idx []int32) ([]*snapshot.Endpoint, error) {
		var eps []*snapshot.Endpoint
		for j, k := range idx {
			if k < 0 || int(k) >= len(sp.Endpoints) {
				return nil, fmt.Errorf("%w: service port %s: %s[%d] = %d, out of range of %d endpoints", ErrInvalid, sp.Key(), field, j, k, len(sp.Endpoints))
			}
			eps = append(eps, &sp.Endpoints[k])
		}
		return eps, nil
	}
	cluster, err := pick("cluster", sp.Cluster)
	if err != nil {
		return portView{}, err
	}
	local, err := pick("local", sp.Local)
	if err != nil {
		return portView{}, err
	}

	// kube-proxy's BaseServicePortInfo / CategorizeEndpoints decisions.
	v.externallyAccessible = sp.NodePort != 0 || len(sp.LoadBalancerIPs) > 0 || len(sp.ExternalIPs) > 0
	v.externalLocal = sp.ExternalPolicyLocal && v.externallyAccessible
	v.internalLocal = sp.InternalPolicyLocal
	usesClusterEndpoints := !v.internalLocal || v.externallyAccessible
	usesLocalEndpoints := v.internalLocal || v.externalLocal
	if usesClusterEndpoints {
		v.cluster = cluster
	}
	if usesLocalEndpoints {
		v.local = local
	}
	v.hasEndpoints = sp.HasEndpoints && (len(v.cluster) > 0 || len(v.local) > 0)
	seen := make(map[*snapshot.Endpoint]bool)
	for j := range sp.Endpoints {
		ep := &sp.Endpoints[j]
		for _, list := range [][]*snapshot.Endpoint{v.cluster, v.local} {
			for _, e := range list {
				if e == ep && !seen[ep] {
					seen[ep] = true
					v.reachable = append(v.reachable, ep)
				}
			}
		}
	}
	if v.internalLocal {
		v.hasInternal = v.hasEndpoints && len(v.local) > 0
	} else {
		v.hasInternal = v.hasEndpoints && len(v.cluster) > 0
	}
	if v.externalLocal {
		v.hasExternal = v.hasEndpoints && len(v.local) > 0
	} else {
		v.hasExternal = v.hasEndpoints && len(v.cluster) > 0
	}
	v.usesExternal = v.hasEndpoints && v.externallyAccessible
	return v, nil
}

// validName reports whether s is a DNS label as Kubernetes names are.
func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// epString is kube-proxy's BaseEndpointInfo.String(): "ip:port", with
// brackets for IPv6.
func epString(ep *snapshot.Endpoint) string {
	return netip.AddrPortFrom(ep.Addr.Unmap(), ep.Port).String()
}

// hash16 is kube-proxy's iptables chain-name hash: the first 16 characters
// of base32(sha256(s)).
func hash16(s string) string {
	h := sha256.Sum256([]byte(s))
	return base32.StdEncoding.EncodeToString(h[:])[:16]
}

// nodePortAddrs returns the NodePort addresses of one family, without
// loopback addresses (kube-proxy's nftables mode does not support
// localhost NodePorts, and we leave them out of iptables mode too).
func nodePortAddrs(s *snapshot.Snapshot, v6 bool) []netip.Addr {
	var out []netip.Addr
	for _, a := range s.NodePortAddrs {
		a = a.Unmap()
		if a.IsValid() && a.Is6() == v6 && !a.IsLoopback() {
			out = append(out, a)
		}
	}
	return out
}

// clusterCIDRs returns the pod CIDRs of one family (the local traffic
// detector).
func clusterCIDRs(s *snapshot.Snapshot, v6 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s.ClusterCIDRs {
		if p.IsValid() && p.Addr().Unmap().Is6() == v6 {
			out = append(out, p.Masked())
		}
	}
	return out
}

// joinAddrs formats addresses or prefixes as a comma-separated list.
func joinAddrs[T fmt.Stringer](list []T) string {
	s := make([]string, len(list))
	for i, a := range list {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
