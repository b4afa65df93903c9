package control

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/nat"
)

// Labels that make kube-proxy ignore a Service or EndpointSlice
// (cmd/kube-proxy/app/server.go informer label selector).
const (
	LabelServiceProxyName = "service.kubernetes.io/service-proxy-name"
	LabelHeadless         = "service.kubernetes.io/headless"
)

// ignoredByLabels reports whether kube-proxy's informer label selector
// would filter the object out.
func ignoredByLabels(labels map[string]string) bool {
	_, p := labels[LabelServiceProxyName]
	_, h := labels[LabelHeadless]
	return p || h
}

// skipReason says why a Service is not programmed at all, or "" when it is.
func skipReason(svc *v1.Service) string {
	switch {
	case ignoredByLabels(svc.Labels):
		return "service-proxy-name or headless label"
	case svc.Spec.Type == v1.ServiceTypeExternalName:
		return "type ExternalName"
	case svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == v1.ClusterIPNone:
		return "headless"
	}
	return ""
}

// svcSpec is the family-independent part of a Service, parsed and checked.
type svcSpec struct {
	ns, name string
	// clusterIPs holds at most one address per family: [0] v4, [1] v6.
	clusterIPs          [2]netip.Addr
	externalIPs         []netip.Addr
	lbIPs               []netip.Addr
	sourceRanges        []netip.Prefix
	externalPolicyLocal bool
	internalPolicyLocal bool
	healthCheckNodePort uint16
	affinitySeconds     uint32
	// affinityMaxLoad is AnnotationAffinityMaxLoad in percent (0: none);
	// affinityRebalance AnnotationAffinityRebalanceOnScale.
	affinityMaxLoad   uint32
	affinityRebalance bool
	ports             []portSpec
}

type portSpec struct {
	name     string
	proto    nat.Proto
	port     uint16
	nodePort uint16
}

func fam(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, invalidf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, invalidf("%q has a zone", s)
	}
	return a.Unmap(), nil
}

func parseProto(p v1.Protocol) (nat.Proto, bool) {
	switch p {
	case v1.ProtocolTCP, "":
		return nat.ProtoTCP, true
	case v1.ProtocolUDP:
		return nat.ProtoUDP, true
	case v1.ProtocolSCTP:
		return nat.ProtoSCTP, true
	}
	return 0, false
}

// AnnotationAffinityMaxLoad bounds the pinned clients of each endpoint of
// a ClientIP Service: a new pin never goes to an endpoint that would then
// hold more than this factor times the mean ("1.25"; 1 to 100, in
// hundredths), but to the next endpoint in the client's consistent-hash
// order (snapshot.ServicePort.AffinityMaxLoadPercent). A bad value is
// reported and ignored: the Service keeps Kubernetes' choice.
const AnnotationAffinityMaxLoad = "xdpgate.io/affinity-max-load"

// AnnotationAffinityRebalanceOnScale ("true") makes a ClientIP Service
// re-balance pinned clients when endpoints are added: pins above the bound
// (AnnotationAffinityMaxLoad's factor times the new mean, or the mean)
// expire early, the oldest first, so the new endpoints receive sessions at
// once instead of after timeoutSeconds
// (snapshot.ServicePort.AffinityRebalanceOnScale). A bad value is reported
// and ignored.
const AnnotationAffinityRebalanceOnScale = "xdpgate.io/affinity-rebalance-on-scale"

// parseMaxLoad parses AnnotationAffinityMaxLoad's value into percent.
func parseMaxLoad(v string) (uint32, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || f < 1 || f > 100 {
		return 0, invalidf("%q: want a factor from 1 to 100, such as 1.25", v)
	}
	pct := math.Round(f * 100)
	if math.Abs(pct-f*100) > 1e-6 {
		return 0, invalidf("%q: want at most two decimals", v)
	}
	return uint32(pct), nil
}

// parseService checks a Service and returns its spec. A fatal problem
// (unparsable cluster IP or source range, affinity timeout out of range)
// returns ok false: the whole Service is skipped. Problems confined to one
// port, externalIP or ingress IP skip only that entry. Every problem is
// returned as an *ObjectError.
func parseService(svc *v1.Service) (spec svcSpec, errs []error, ok bool) {
	spec = svcSpec{ns: svc.Namespace, name: svc.Name}
	bad := func(field string, err error) {
		errs = append(errs, &ObjectError{Kind: "Service", Namespace: svc.Namespace, Name: svc.Name, Field: field, Err: err})
	}
	ips := svc.Spec.ClusterIPs
	field := "spec.clusterIPs"
	if len(ips) == 0 {
		ips = []string{svc.Spec.ClusterIP}
		field = "spec.clusterIP"
	}
	for i, s := range ips {
		a, err := parseAddr(s)
		if err != nil {
			bad(fmt.Sprintf("%s[%d]", field, i), err)
			return spec, errs, false
		}
		if !spec.clusterIPs[fam(a)].IsValid() {
			spec.clusterIPs[fam(a)] = a
		}
	}

	for i, s := range svc.Spec.ExternalIPs {
		a, err := parseAddr(s)
		if err != nil {
			bad(fmt.Sprintf("spec.externalIPs[%d]", i), err)
			continue
		}
		spec.externalIPs = append(spec.externalIPs, a)
	}
	for i, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP == "" || (ing.IPMode != nil && *ing.IPMode != v1.LoadBalancerIPModeVIP) {
			continue // hostname-only ingress, or ipMode Proxy
		}
		a, err := parseAddr(ing.IP)
		if err != nil {
			bad(fmt.Sprintf("status.loadBalancer.ingress[%d].ip", i), err)
			continue
		}
		spec.lbIPs = append(spec.lbIPs, a)
	}
	for i, s := range svc.Spec.LoadBalancerSourceRanges {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			// Failing closed: ignoring a bad range could turn a
			// restricted service into an open one.
			bad(fmt.Sprintf("spec.loadBalancerSourceRanges[%d]", i), invalidf("%q is not a CIDR", s))
			return spec, errs, false
		}
		spec.sourceRanges = append(spec.sourceRanges, p.Masked())
	}

	accessible := svc.Spec.Type == v1.ServiceTypeLoadBalancer || svc.Spec.Type == v1.ServiceTypeNodePort || len(svc.Spec.ExternalIPs) > 0
	spec.externalPolicyLocal = accessible && svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal
	spec.internalPolicyLocal = svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal
	if svc.Spec.Type == v1.ServiceTypeLoadBalancer && spec.externalPolicyLocal {
		p := svc.Spec.HealthCheckNodePort
		switch {
		case p == 0:
			bad("spec.healthCheckNodePort", invalidf("LoadBalancer with externalTrafficPolicy Local has no healthCheckNodePort"))
		case p < 1 || p > 65535:
			bad("spec.healthCheckNodePort", invalidf("%d out of range 1-65535", p))
		default:
			spec.healthCheckNodePort = uint16(p)
		}
	}
	if svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
		t := int32(affinity.DefaultTimeoutSeconds)
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			t = *c.ClientIP.TimeoutSeconds
		}
		if affinity.ValidateTimeoutSeconds(t) != nil {
			bad("spec.sessionAffinityConfig.clientIP.timeoutSeconds", invalidf("%d: must be greater than 0 and at most %d", t, affinity.MaxTimeoutSeconds))
			return spec, errs, false
		}
		spec.affinitySeconds = uint32(t)
	}
	if v, ok := svc.Annotations[AnnotationAffinityMaxLoad]; ok {
		field := "metadata.annotations[" + AnnotationAffinityMaxLoad + "]"
		switch pct, err := parseMaxLoad(v); {
		case err != nil:
			bad(field, err)
		case spec.affinitySeconds == 0:
			bad(field, invalidf("%q: needs sessionAffinity ClientIP", v))
		default:
			spec.affinityMaxLoad = pct
		}
	}
	if v, ok := svc.Annotations[AnnotationAffinityRebalanceOnScale]; ok {
		field := "metadata.annotations[" + AnnotationAffinityRebalanceOnScale + "]"
		switch on, err := strconv.ParseBool(strings.TrimSpace(v)); {
		case err != nil:
			bad(field, invalidf("%q: want true or false", v))
		case on && spec.affinitySeconds == 0:
			bad(field, invalidf("%q: needs sessionAffinity ClientIP", v))
		default:
			spec.affinityRebalance = on
		}
	}

	seen := make(map[portSpec]bool, len(svc.Spec.Ports))
	for i, p := range svc.Spec.Ports {
		ps := portSpec{name: p.Name}
		var okp bool
		if ps.proto, okp = parseProto(p.Protocol); !okp {
			bad(fmt.Sprintf("spec.ports[%d].protocol", i), invalidf("unsupported protocol %q", p.Protocol))
			continue
		}
		if p.Port < 1 || p.Port > 65535 {
			bad(fmt.Sprintf("spec.ports[%d].port", i), invalidf("%d out of range 1-65535", p.Port))
			continue
		}
		if p.NodePort < 0 || p.NodePort > 65535 {
			bad(fmt.Sprintf("spec.ports[%d].nodePort", i), invalidf("%d out of range 1-65535", p.NodePort))
			continue
		}
		ps.port, ps.nodePort = uint16(p.Port), uint16(p.NodePort)
		key := portSpec{name: ps.name, proto: ps.proto}
		if seen[key] {
			bad(fmt.Sprintf("spec.ports[%d].name", i), invalidf("duplicate port name %q for %s", p.Name, ps.proto))
			continue
		}
		seen[key] = true
		spec.ports = append(spec.ports, ps)
	}
	return spec, errs, true
}

// family filters for one family.
func filterAddrs(in []netip.Addr, f int) []netip.Addr {
	var out []netip.Addr
	for _, a := range in {
		if fam(a) == f {
			out = append(out, a)
		}
	}
	return out
}

// familyRanges filters source ranges to one family; a zero-length prefix
// ("allow any") empties the list, as in kube-proxy.
func familyRanges(in []netip.Prefix, f int) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range in {
		if fam(p.Addr()) != f {
			continue
		}
		if p.Bits() == 0 {
			return nil
		}
		out = append(out, p)
	}
	return out
}
