package baseline

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/xdpgate/xdpgate/control"
	"github.com/xdpgate/xdpgate/snapshot"
)

// Test layout; every address is from 198.18.0.0/15 or 2001:2::/48.
const (
	testNS        = "bench"
	testNode      = "gw"
	gwClientSide  = "198.18.1.1" // gateway address towards the client
	clientAddr    = "198.18.1.2"
	gwBackendSide = "198.18.2.1" // gateway address towards the backends
	backendPort   = 8080
	udpBackend    = 5353
	affinityTTL   = 300
	affNodePort   = 30080
)

// backendAddrs are the endpoint addresses, all in the backend namespace.
var backendAddrs = []string{"198.18.2.10", "198.18.2.11", "198.18.2.12"}

// Service VIPs (LoadBalancer or external IPs) reached from the client.
const (
	vipAffinity = "198.18.3.1" // ClientIP affinity, ETP Cluster, NodePort
	vipSpread   = "198.18.3.2" // no affinity, ETP Cluster (external IP)
	vipLocal    = "198.18.3.3" // ETP Local (LoadBalancer)
	vipUDP      = "198.18.3.4" // UDP, external IP
	vipEmpty    = "198.18.3.5" // no endpoints (external IP)
	vipFirewall = "198.18.3.6" // loadBalancerSourceRanges 198.18.1.0/24
	vipTwo      = "198.18.3.7" // ClientIP affinity over two endpoints
)

type svcMod func(*v1.Service)

func makeService(name, clusterIP string, mods ...svcMod) *v1.Service {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name},
		Spec: v1.ServiceSpec{
			Type:            v1.ServiceTypeClusterIP,
			ClusterIP:       clusterIP,
			ClusterIPs:      []string{clusterIP},
			SessionAffinity: v1.ServiceAffinityNone,
			Ports: []v1.ServicePort{{
				Name: "p", Port: 80, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(backendPort),
			}},
		},
	}
	for _, m := range mods {
		m(svc)
	}
	return svc
}

func loadBalancer(hcnp int32, ip string) svcMod {
	return func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.HealthCheckNodePort = hcnp
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: ip}}
	}
}

func externalIP(ip string) svcMod { return func(s *v1.Service) { s.Spec.ExternalIPs = []string{ip} } }

func nodePort(p int32) svcMod {
	return func(s *v1.Service) { s.Spec.Ports[0].NodePort = p }
}

func etpLocal(s *v1.Service) {
	s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
}

func clientIP(timeout int32) svcMod {
	return func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(timeout)}}
	}
}

func udp(s *v1.Service) {
	s.Spec.Ports[0].Protocol = v1.ProtocolUDP
	s.Spec.Ports[0].Port = 53
	s.Spec.Ports[0].TargetPort = intstr.FromInt32(udpBackend)
}

func sourceRanges(r ...string) svcMod {
	return func(s *v1.Service) { s.Spec.LoadBalancerSourceRanges = r }
}

// makeSlice returns the EndpointSlice of service svc: addrs on this node,
// port "p" with the given port and protocol.
func makeSlice(svc string, proto v1.Protocol, port int32, addrs ...string) *discoveryv1.EndpointSlice {
	at := discoveryv1.AddressTypeIPv4
	if len(addrs) > 0 && strings.Contains(addrs[0], ":") {
		at = discoveryv1.AddressTypeIPv6
	}
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: svc + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: at,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("p"), Port: ptr.To(port), Protocol: ptr.To(proto)}},
	}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{a},
			NodeName:   ptr.To(testNode),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	return s
}

// testObjects are the services every test uses.
func testObjects(withV6 bool) ([]*v1.Service, []*discoveryv1.EndpointSlice) {
	svcs := []*v1.Service{
		makeService("aff", "198.18.4.1", loadBalancer(0, vipAffinity), nodePort(affNodePort), clientIP(affinityTTL)),
		makeService("spread", "198.18.4.2", externalIP(vipSpread)),
		makeService("local", "198.18.4.3", loadBalancer(30999, vipLocal), nodePort(30081), etpLocal),
		makeService("dns", "198.18.4.4", externalIP(vipUDP), udp),
		makeService("empty", "198.18.4.5", externalIP(vipEmpty)),
		makeService("fw", "198.18.4.6", loadBalancer(0, vipFirewall), nodePort(30082), sourceRanges("198.18.1.0/24")),
		makeService("two", "198.18.4.7", externalIP(vipTwo), clientIP(affinityTTL)),
	}
	slices := []*discoveryv1.EndpointSlice{
		makeSlice("aff", v1.ProtocolTCP, backendPort, backendAddrs...),
		makeSlice("spread", v1.ProtocolTCP, backendPort, backendAddrs...),
		makeSlice("local", v1.ProtocolTCP, backendPort, backendAddrs...),
		makeSlice("dns", v1.ProtocolUDP, udpBackend, backendAddrs...),
		makeSlice("fw", v1.ProtocolTCP, backendPort, backendAddrs...),
		makeSlice("two", v1.ProtocolTCP, backendPort, backendAddrs[:2]...),
	}
	if withV6 {
		svcs = append(svcs, makeService("six", "2001:2:0:4::1", externalIP("2001:2:0:3::1"), nodePort(30083), clientIP(affinityTTL)))
		slices = append(slices, makeSlice("six", v1.ProtocolTCP, backendPort, "2001:2:0:2::10", "2001:2:0:2::11"))
	}
	return svcs, slices
}

// buildSnapshot builds the snapshot of the objects with control.Builder,
// as xdpgate's controller would.
func buildSnapshot(t testing.TB, svcs []*v1.Service, slices []*discoveryv1.EndpointSlice) *snapshot.Snapshot {
	t.Helper()
	nodeIPs := []netip.Addr{netip.MustParseAddr(gwClientSide), netip.MustParseAddr(gwBackendSide)}
	b, err := control.NewBuilder(control.BuildOptions{NodeName: testNode, NodeIPs: nodeIPs})
	if err != nil {
		t.Fatalf("NewBuilder: %v", err)
	}
	for _, s := range svcs {
		b.SetService(s.Namespace, s.Name, s)
	}
	for _, s := range slices {
		b.SetEndpointSlice(s.Namespace, s.Name, s)
	}
	res := b.Build()
	if len(res.NewErrors) > 0 {
		t.Fatalf("Build errors: %v", res.NewErrors)
	}
	return res.Snapshot
}

// testSnapshot is the snapshot of testObjects.
func testSnapshot(t testing.TB, withV6 bool) *snapshot.Snapshot {
	svcs, slices := testObjects(withV6)
	return buildSnapshot(t, svcs, slices)
}

// servicePort returns the snapshot's service port of Service name.
func servicePort(t testing.TB, s *snapshot.Snapshot, name string, v6 bool) *snapshot.ServicePort {
	t.Helper()
	for i := range s.ServicePorts {
		sp := &s.ServicePorts[i]
		if sp.Name == name && sp.ClusterIPs[0].Is6() == v6 {
			return sp
		}
	}
	t.Fatalf("no service port for %s", name)
	return nil
}

// lines splits a rendered ruleset into its lines.
func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

// count returns how many lines contain all of the substrings.
func count(ls []string, subs ...string) int {
	n := 0
next:
	for _, l := range ls {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		n++
	}
	return n
}

// mustHave fails t unless exactly want lines contain all of subs.
func mustHave(t *testing.T, ls []string, want int, subs ...string) {
	t.Helper()
	if got := count(ls, subs...); got != want {
		t.Errorf("lines containing %q = %d, want %d", subs, got, want)
	}
}

func quoteList(ss []string) string { return fmt.Sprintf("%q", ss) }
