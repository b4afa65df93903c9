package control

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/xdpgate/xdpgate/nat"
)

// epInfo is one endpoint of one service port after merging the slices
// (kube-proxy's BaseEndpointInfo).
type epInfo struct {
	ap          netip.AddrPort
	str         string // "ip:port", the sort and dedup key
	nodeName    string
	zone        string
	local       bool
	ready       bool
	serving     bool
	terminating bool
	zoneHints   []string
	nodeHints   []string
}

// slicePortKey is kube-proxy's ServicePortName within one service, plus the
// family: slice ports match service ports by (name, protocol).
type slicePortKey struct {
	name  string
	proto nat.Proto
	v6    bool
}

// serviceKeyOfSlice returns the namespace/name of the Service a slice
// belongs to (the kubernetes.io/service-name label), or an error.
func serviceKeyOfSlice(s *discoveryv1.EndpointSlice) (nsName, error) {
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nsName{}, &ObjectError{Kind: "EndpointSlice", Namespace: s.Namespace, Name: s.Name,
			Field: "metadata.labels[" + discoveryv1.LabelServiceName + "]", Err: invalidf("missing or empty")}
	}
	return nsName{s.Namespace, name}, nil
}

// mergeSlices merges the EndpointSlices of one service into per-port,
// per-family endpoint lists sorted by "ip:port", as kube-proxy's
// EndpointSliceCache does: FQDN slices and ports with a nil name or a nil or
// zero port are ignored, only addresses[0] is used, missing conditions mean
// ready, serving and not terminating, and duplicates of one ip:port across
// slices keep the first unless a later one is not terminating. slices must be
// in a deterministic order (by name).
func mergeSlices(eps []*discoveryv1.EndpointSlice, nodeName string) (map[slicePortKey][]epInfo, []error) {
	var errs []error
	out := make(map[slicePortKey][]epInfo)
	for _, s := range eps {
		bad := func(field string, err error) {
			errs = append(errs, &ObjectError{Kind: "EndpointSlice", Namespace: s.Namespace, Name: s.Name, Field: field, Err: err})
		}
		var v6 bool
		switch s.AddressType {
		case discoveryv1.AddressTypeIPv4:
		case discoveryv1.AddressTypeIPv6:
			v6 = true
		default:
			continue // FQDN slices are never used (kube-proxy ignores them)
		}
		type portRef struct {
			key  slicePortKey
			port uint16
		}
		ports := make([]portRef, 0, len(s.Ports))
		for i, p := range s.Ports {
			if p.Name == nil || p.Port == nil || *p.Port == 0 {
				continue // kube-proxy: "Ignoring port with nil name" / "invalid endpoint port"
			}
			if *p.Port < 0 || *p.Port > 65535 {
				bad(fmt.Sprintf("ports[%d].port", i), invalidf("%d out of range 1-65535", *p.Port))
				continue
			}
			proto := nat.ProtoTCP
			if p.Protocol != nil {
				var ok bool
				if proto, ok = parseProto(*p.Protocol); !ok {
					bad(fmt.Sprintf("ports[%d].protocol", i), invalidf("unsupported protocol %q", *p.Protocol))
					continue
				}
			}
			ports = append(ports, portRef{slicePortKey{*p.Name, proto, v6}, uint16(*p.Port)})
		}
		if len(ports) == 0 {
			continue
		}
		for i := range s.Endpoints {
			e := &s.Endpoints[i]
			if len(e.Addresses) == 0 {
				continue
			}
			a, err := parseAddr(e.Addresses[0])
			if err != nil {
				bad(fmt.Sprintf("endpoints[%d].addresses[0]", i), err)
				continue
			}
			if a.Is6() != v6 {
				bad(fmt.Sprintf("endpoints[%d].addresses[0]", i), invalidf("%s does not match addressType %s", a, s.AddressType))
				continue
			}
			base := epInfo{
				ready:       e.Conditions.Ready == nil || *e.Conditions.Ready,
				serving:     e.Conditions.Serving == nil || *e.Conditions.Serving,
				terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
			}
			if e.NodeName != nil {
				base.nodeName = *e.NodeName
				base.local = nodeName != "" && *e.NodeName == nodeName
			}
			if e.Zone != nil {
				base.zone = *e.Zone
			}
			if e.Hints != nil {
				for _, z := range e.Hints.ForZones {
					base.zoneHints = append(base.zoneHints, z.Name)
				}
				for _, n := range e.Hints.ForNodes {
					base.nodeHints = append(base.nodeHints, n.Name)
				}
			}
			for _, p := range ports {
				ep := base
				ep.ap = netip.AddrPortFrom(a, p.port)
				ep.str = ep.ap.String()
				out[p.key] = append(out[p.key], ep)
			}
		}
	}
	for k, list := range out {
		out[k] = sortDedup(list)
	}
	return out, errs
}

// sortDedup sorts endpoints by "ip:port" and removes duplicates the way
// kube-proxy's EndpointSliceCache does when it walks the slices in order
// ("if _, exists := set[key]; !exists || !terminating { set[key] = ep }"):
// of several entries for one ip:port the last non-terminating one wins, or
// the first when all are terminating. The sort is stable, so each run of
// equal keys is in slice order.
func sortDedup(list []epInfo) []epInfo {
	slices.SortStableFunc(list, func(a, b epInfo) int { return cmp.Compare(a.str, b.str) })
	out := list[:0]
	for i := 0; i < len(list); {
		j := i + 1
		for j < len(list) && list[j].str == list[i].str {
			j++
		}
		pick := i
		for k := i; k < j; k++ {
			if !list[k].terminating {
				pick = k
			}
		}
		out = append(out, list[pick])
		i = j
	}
	return out
}
