package control

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// Test addresses: everything from 198.18.0.0/15 and 2001:2::/48.
const (
	testNode      = "node-a"
	testNodeIP    = "198.18.0.10"
	testNodeIP6   = "2001:2::10"
	testPodCIDR   = "198.19.0.0/16"
	testPodCIDR6  = "2001:2:0:1::/64"
	externalClnt  = "198.18.50.1"
	externalClnt6 = "2001:2:0:50::1"
	localPod      = "198.19.1.5"
	localPod6     = "2001:2:0:1::5"
)

func testOpts() BuildOptions {
	return BuildOptions{
		NodeName:     testNode,
		NodeIPs:      []netip.Addr{netip.MustParseAddr(testNodeIP), netip.MustParseAddr(testNodeIP6)},
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix(testPodCIDR), netip.MustParsePrefix(testPodCIDR6)},
	}
}

// makeService returns a ClusterIP Service with one TCP port "p80" (80 ->
// 8080) after applying the mutators.
func makeService(ns, name string, mods ...func(*v1.Service)) *v1.Service {
	svc := &v1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ServiceSpec{
			Type:            v1.ServiceTypeClusterIP,
			SessionAffinity: v1.ServiceAffinityNone,
			Ports: []v1.ServicePort{{
				Name: "p80", Port: 80, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(8080),
			}},
		},
	}
	for _, m := range mods {
		m(svc)
	}
	if len(svc.Spec.ClusterIPs) == 0 && svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != v1.ClusterIPNone {
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}
	return svc
}

// endpointSpec is a compact endpoint for makeSlice: "ip" plus options.
type endpointSpec struct {
	ip          string
	node        string
	ready       *bool
	serving     *bool
	terminating *bool
	zones       []string
	nodeHints   []string
}

func ep(ip, node string) endpointSpec { return endpointSpec{ip: ip, node: node} }

func (e endpointSpec) notReady() endpointSpec { e.ready = ptr.To(false); return e }

// servingTerminating marks the endpoint terminating but serving.
func (e endpointSpec) servingTerminating() endpointSpec {
	e.ready, e.serving, e.terminating = ptr.To(false), ptr.To(true), ptr.To(true)
	return e
}

// deadTerminating marks the endpoint terminating and not serving.
func (e endpointSpec) deadTerminating() endpointSpec {
	e.ready, e.serving, e.terminating = ptr.To(false), ptr.To(false), ptr.To(true)
	return e
}

func (e endpointSpec) hintZones(z ...string) endpointSpec { e.zones = z; return e }
func (e endpointSpec) hintNodes(n ...string) endpointSpec { e.nodeHints = n; return e }

// makeSlice returns an EndpointSlice for Service svc with one port "p80"
// TCP 8080, address type from the first endpoint, after the mutators.
func makeSlice(ns, name, svc string, eps []endpointSpec, mods ...func(*discoveryv1.EndpointSlice)) *discoveryv1.EndpointSlice {
	at := discoveryv1.AddressTypeIPv4
	if len(eps) > 0 && strings.Contains(eps[0].ip, ":") {
		at = discoveryv1.AddressTypeIPv6
	}
	s := &discoveryv1.EndpointSlice{
		TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: at,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("p80"), Port: ptr.To[int32](8080), Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	for _, e := range eps {
		x := discoveryv1.Endpoint{Addresses: []string{e.ip}}
		if e.node != "" {
			x.NodeName = ptr.To(e.node)
		}
		x.Conditions = discoveryv1.EndpointConditions{Ready: e.ready, Serving: e.serving, Terminating: e.terminating}
		if len(e.zones) > 0 || len(e.nodeHints) > 0 {
			x.Hints = &discoveryv1.EndpointHints{}
			for _, z := range e.zones {
				x.Hints.ForZones = append(x.Hints.ForZones, discoveryv1.ForZone{Name: z})
			}
			for _, n := range e.nodeHints {
				x.Hints.ForNodes = append(x.Hints.ForNodes, discoveryv1.ForNode{Name: n})
			}
		}
		s.Endpoints = append(s.Endpoints, x)
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

// Mutators.
func clusterIPs(ips ...string) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.ClusterIP = ips[0]; s.Spec.ClusterIPs = ips }
}

func nodePort(p int32) func(*v1.Service) {
	return func(s *v1.Service) {
		if s.Spec.Type == v1.ServiceTypeClusterIP {
			s.Spec.Type = v1.ServiceTypeNodePort
		}
		s.Spec.Ports[0].NodePort = p
	}
}

func loadBalancer(hcnp int32, ingress ...string) func(*v1.Service) {
	return func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.HealthCheckNodePort = hcnp
		for _, ip := range ingress {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip})
		}
	}
}

func externalIPs(ips ...string) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.ExternalIPs = ips }
}

func etpLocal(s *v1.Service) { s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal }
func itpLocal(s *v1.Service) {
	s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
}

func sourceRanges(r ...string) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.LoadBalancerSourceRanges = r }
}

func clientIPAffinity(timeout int32) func(*v1.Service) {
	return func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(timeout)}}
	}
}

func annotate(k, v string) func(*v1.Service) {
	return func(s *v1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func protocol(p v1.Protocol) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.Ports[0].Protocol = p }
}

func sliceProtocol(p v1.Protocol) func(*discoveryv1.EndpointSlice) {
	return func(s *discoveryv1.EndpointSlice) { s.Ports[0].Protocol = ptr.To(p) }
}

func label(k, v string) func(*v1.Service) {
	return func(s *v1.Service) {
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[k] = v
	}
}

// objects is a set of test objects.
type objects struct {
	services []*v1.Service
	slices   []*discoveryv1.EndpointSlice
	node     *v1.Node
}

// build builds a snapshot from objs with opts, failing on builder errors
// unless allowErrors.
func build(t *testing.T, opts BuildOptions, objs objects) (*Builder, BuildResult) {
	t.Helper()
	b, err := NewBuilder(opts)
	if err != nil {
		t.Fatalf("NewBuilder: %v", err)
	}
	for _, s := range objs.services {
		b.SetService(s.Namespace, s.Name, s)
	}
	for _, s := range objs.slices {
		b.SetEndpointSlice(s.Namespace, s.Name, s)
	}
	b.SetNode(objs.node)
	return b, b.Build()
}

// flow is one packet-flow test row (kube-proxy's packetFlowTest).
type flow struct {
	name     string
	src, dst string
	port     uint16
	proto    nat.Proto // 0 means TCP
	// output is the endpoint set ("ip:port, ip:port" sorted) for Forward.
	output  string
	verdict snapshot.Verdict
	cause   snapshot.Cause
	masq    bool
	local   bool
}

// trace classifies a flow and returns the verdict, the chain's endpoints
// and whether the flow is masqueraded. Masquerade includes the dataplane's
// hairpin rule (kube-proxy's per-endpoint "-s epIP -j KUBE-MARK-MASQ"): it
// is reported when the chain holds exactly one endpoint and that endpoint
// is the source.
func trace(s *snapshot.Snapshot, f flow) (snapshot.Decision, string, bool) {
	proto := f.proto
	if proto == 0 {
		proto = nat.ProtoTCP
	}
	d := s.Classify(netip.MustParseAddr(f.src), netip.MustParseAddr(f.dst), f.port, proto)
	if d.Verdict != snapshot.Forward {
		return d, "", false
	}
	idx, _ := s.Chain(d)
	sp := &s.ServicePorts[d.ServicePort]
	var out []string
	for _, i := range idx {
		out = append(out, sp.Endpoints[i].AddrPort().String())
	}
	slices.Sort(out)
	masq := d.Masquerade
	if len(idx) == 1 && sp.Endpoints[idx[0]].Addr == netip.MustParseAddr(f.src) {
		masq = true
	}
	return d, strings.Join(out, ", "), masq
}

func runFlows(t *testing.T, s *snapshot.Snapshot, flows []flow) {
	t.Helper()
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			d, out, masq := trace(s, f)
			want := f.verdict
			if want == snapshot.NotService && f.output != "" {
				want = snapshot.Forward
			}
			if d.Verdict != want || d.Cause != f.cause {
				t.Fatalf("Classify(%s -> %s:%d) = %s/%s, want %s/%s", f.src, f.dst, f.port, d.Verdict, d.Cause, want, f.cause)
			}
			if out != f.output {
				t.Errorf("Classify(%s -> %s:%d) endpoints = %q, want %q", f.src, f.dst, f.port, out, f.output)
			}
			if masq != f.masq {
				t.Errorf("Classify(%s -> %s:%d) masquerade = %v, want %v", f.src, f.dst, f.port, masq, f.masq)
			}
			if d.Verdict == snapshot.Forward && d.Local != f.local {
				t.Errorf("Classify(%s -> %s:%d) local chain = %v, want %v", f.src, f.dst, f.port, d.Local, f.local)
			}
		})
	}
}
