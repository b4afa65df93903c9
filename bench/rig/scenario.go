package rig

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/bench/report"
	"github.com/xdpgate/xdpgate/control"
	"github.com/xdpgate/xdpgate/snapshot"
)

// Addresses of the rig (RFC 2544 benchmarking range only).
const (
	gw0Addr   = "198.18.1.1"
	genAddr   = "198.18.1.2"
	gw1Addr   = "198.18.2.1"
	sinkAddr  = "198.18.2.2"
	vipAddr   = "198.18.3.1"
	clusterIP = "198.18.4.1"
	// clientBase is the first client (frame source) address; clients run
	// up to 198.19.255.255 at most (114,688 addresses).
	clientBase = "198.18.64.0"
	// nsPrefix names every namespace the rig creates, so `xdpgate-bench
	// --cleanup` can find leftovers of an interrupted run.
	nsPrefix = "xgb-"
)

// Service layout shared by every scenario: one LoadBalancer Service with
// numEndpoints endpoints, all on the gateway's node.
const (
	nodeName       = "gw"
	servicePort    = 80
	targetPort     = 8080
	nodePort       = 30080
	hcNodePort     = 30999
	numEndpoints   = 4
	maxEndpoints   = 16
	affinityTTL    = affinity.DefaultTimeoutSeconds
	benchNamespace = "bench"
)

// The dataplanes the rig compares, named as the report knows them.
const (
	DataplaneXDPGate = report.DataplaneXDPGate
	// DataplaneXDPGateFastPath is xdpgate with --fast-path xdp, its best
	// configuration where flows get established (reply scenarios; see
	// Scenario.Measures).
	DataplaneXDPGateFastPath = report.DataplaneXDPGateFastPath
	DataplaneNFTables        = report.DataplaneNFTables
	DataplaneIPTables        = report.DataplaneIPTables
	DataplaneForwarder       = report.DataplaneForwarder
	// DataplaneXDPRedirect is the kernel's own XDP forwarding (bench/xdpfwd):
	// the ceiling of the rig itself.
	DataplaneXDPRedirect = report.DataplaneXDPRedirect
)

// Dataplanes lists them in measurement order: the raw forwarder first, so
// a sweep can be scaled to the ceiling it measures.
var Dataplanes = []string{DataplaneForwarder, DataplaneXDPRedirect, DataplaneXDPGate, DataplaneXDPGateFastPath,
	DataplaneNFTables, DataplaneIPTables}

// untranslated reports whether dataplane dp forwards without translation
// (the raw forwarder, the kernel's XDP forwarding): the sink counts its
// frames at the VIP, not at the endpoints.
func untranslated(dp string) bool {
	return dp == DataplaneForwarder || dp == DataplaneXDPRedirect
}

// isXDPGate reports whether dp runs the xdpgate binary.
func isXDPGate(dp string) bool {
	return dp == DataplaneXDPGate || dp == DataplaneXDPGateFastPath
}

// fastPathOnlyReply is why xdpgate-fastpath runs only in reply scenarios
// by default (the report's note).
const fastPathOnlyReply = "the fast path takes a UDP flow once a reply establishes it; one-way UDP flows " +
	"and TCP SYNs, every frame a first packet, stay in userspace as with xdpgate"

// Measures reports whether the rig measures dataplane dp in the scenario:
// those in Dataplanes when that is set; otherwise all of them, except that
// xdpgate-fastpath runs only in reply scenarios (fastPathOnlyReply).
func (s Scenario) Measures(dp string) bool {
	if s.Dataplanes != nil {
		return slices.Contains(s.Dataplanes, dp)
	}
	return dp != DataplaneXDPGateFastPath || s.Reply
}

// endpoint is the i-th endpoint address: 198.18.2.10 + i behind the
// gateway's second interface, or 198.18.1.10 + i on the generator's side
// in one-arm scenarios.
func (s Scenario) endpoint(i int) netip.Addr {
	if s.OneArm {
		return netip.AddrFrom4([4]byte{198, 18, 1, byte(10 + i)})
	}
	return netip.AddrFrom4([4]byte{198, 18, 2, byte(10 + i)})
}

// Scenario is one traffic pattern the rig measures every dataplane with.
type Scenario struct {
	// Name is the key in results and plots.
	Name string
	// Description says what the scenario measures, for the report.
	Description string
	// TCP selects TCP (SYNs); otherwise UDP.
	TCP bool
	// Clients and PortsPerClient give the flow count (their product).
	Clients, PortsPerClient int
	// Affinity enables sessionAffinity ClientIP.
	Affinity bool
	// Reply makes the sink reflect every frame back to its client, so
	// the gateway's reverse translation is exercised in the same run;
	// Delivered then counts replies that made it back to the generator's
	// interface (complete round trips, two gateway passes each).
	Reply bool
	// OneArm runs the gateway with one interface: it forwards back out
	// of the interface it received on (the one-arm topology). The sink is
	// then on the generator's interface; with Reply it both reflects the
	// frames to the endpoints and counts the replies from the VIP.
	OneArm bool
	// Local sets externalTrafficPolicy Local (no SNAT, client address
	// preserved); otherwise Cluster (masqueraded).
	Local bool
	// Count bounds the measured burst by frames instead of by time
	// (0: the run's duration).
	Count uint64
	// Sweep also measures delivered vs offered rate at several rates.
	Sweep bool
	// Prefill sends this many frames over distinct flows before the
	// measurement (a large conntrack table); the measured traffic then
	// uses the scenario's own flows.
	Prefill uint64
	// Dataplanes limits the dataplanes (nil: all), with the reason the
	// others are left out.
	Dataplanes []string
	Skipped    string
}

// Scenarios are the scenarios, in report order.
var Scenarios = []Scenario{
	{Name: "udp64-1-flow", Description: "64-byte UDP, one flow (one client, one port), externalTrafficPolicy Cluster (SNAT)",
		Clients: 1, PortsPerClient: 1},
	{Name: "udp64-1k-flows", Description: "64-byte UDP, 1,000 flows (1,000 clients), externalTrafficPolicy Cluster (SNAT); also swept over offered rates",
		Clients: 1000, PortsPerClient: 1, Sweep: true},
	{Name: "udp64-1k-flows-reply", Description: "as udp64-1k-flows with the sink reflecting every frame: delivered counts replies back at the generator (round trips through the gateway's DNAT+SNAT and reverse NAT; both sinks in generic XDP mode)",
		Clients: 1000, PortsPerClient: 1, Reply: true},
	{Name: "udp64-1k-flows-one-arm", Description: "as udp64-1k-flows, one-arm: the gateway forwards back out of its only interface",
		Clients: 1000, PortsPerClient: 1, OneArm: true},
	{Name: "udp64-1k-flows-one-arm-reply", Description: "as udp64-1k-flows-reply, one-arm: the gateway forwards both ways out of its only interface, and one sink on the generator's interface reflects the frames to the endpoints and counts the replies from the VIP (generic XDP mode, native for xdpgate-fastpath and xdp-redirect)",
		Clients: 1000, PortsPerClient: 1, Reply: true, OneArm: true},
	{Name: "udp64-100k-flows", Description: "64-byte UDP, 100,000 flows (1,000 clients x 100 ports), externalTrafficPolicy Cluster (SNAT)",
		Clients: 1000, PortsPerClient: 100},
	{Name: "tcp-syn", Description: "TCP SYNs over 4M distinct flows (every frame a new connection), externalTrafficPolicy Local (no SNAT: the new-flow path, not SNAT port exhaustion)",
		TCP: true, Clients: 65536, PortsPerClient: 64, Local: true},
	{Name: "affinity-100k", Description: "sessionAffinity ClientIP, 100,000 clients x 2 source ports, each flow sent twice (400k frames), externalTrafficPolicy Local; retention = share of clients seen at one endpoint only",
		Clients: 100000, PortsPerClient: 2, Affinity: true, Local: true, Count: 400000,
		Dataplanes: []string{DataplaneXDPGate, DataplaneNFTables, DataplaneIPTables},
		Skipped:    "the raw forwarder does not balance"},
	{Name: "conntrack-1m", Description: "64-byte UDP, 1,000 flows measured while the flow table holds 1M prefilled entries and the sweeper runs; externalTrafficPolicy Local (with SNAT, 1M flows would exhaust the SNAT ports instead)",
		Clients: 1000, PortsPerClient: 1, Prefill: 1 << 20, Local: true,
		Dataplanes: []string{DataplaneXDPGate, DataplaneNFTables, DataplaneIPTables},
		Skipped:    "the raw forwarder has no flow table"},
}

// maxClients is how many client addresses fit from clientBase to the end
// of 198.18.0.0/15.
const maxClients = 131072 - 16384

func (s Scenario) validate() error {
	switch {
	case s.Name == "":
		return fmt.Errorf("scenario without a name")
	case s.Clients < 1 || s.Clients > maxClients:
		return fmt.Errorf("scenario %s: Clients %d: want 1..%d", s.Name, s.Clients, maxClients)
	case s.PortsPerClient < 1 || s.PortsPerClient > 50000:
		return fmt.Errorf("scenario %s: PortsPerClient %d: want 1..50000", s.Name, s.PortsPerClient)
	}
	return nil
}

// ScenarioByName looks a scenario up.
func ScenarioByName(name string) (Scenario, bool) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// objects returns the Service and EndpointSlice of a scenario.
func (s Scenario) objects() (*v1.Service, *discoveryv1.EndpointSlice) {
	proto := v1.ProtocolUDP
	if s.TCP {
		proto = v1.ProtocolTCP
	}
	svc := &v1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: benchNamespace},
		Spec: v1.ServiceSpec{
			Type:                  v1.ServiceTypeLoadBalancer,
			ClusterIP:             clusterIP,
			ClusterIPs:            []string{clusterIP},
			IPFamilies:            []v1.IPFamily{v1.IPv4Protocol},
			ExternalTrafficPolicy: v1.ServiceExternalTrafficPolicyCluster,
			SessionAffinity:       v1.ServiceAffinityNone,
			Ports: []v1.ServicePort{{Name: "p", Port: servicePort, Protocol: proto,
				TargetPort: intstr.FromInt32(targetPort), NodePort: nodePort}},
		},
		Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: vipAddr}}}},
	}
	if s.Local {
		svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		svc.Spec.HealthCheckNodePort = hcNodePort
	}
	if s.Affinity {
		ttl := int32(affinityTTL)
		svc.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		svc.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: &ttl}}
	}
	yes, no := true, false
	name, port := "p", int32(targetPort)
	node := nodeName
	slice := &discoveryv1.EndpointSlice{
		TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta: metav1.ObjectMeta{Name: "bench-1", Namespace: benchNamespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: "bench"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}
	for i := range numEndpoints {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{s.endpoint(i).String()},
			NodeName:   &node,
			Conditions: discoveryv1.EndpointConditions{Ready: &yes, Serving: &yes, Terminating: &no},
		})
	}
	return svc, slice
}

// Manifest renders the scenario's objects as the YAML stream `xdpgate run
// --manifests` reads.
func (s Scenario) Manifest() ([]byte, error) {
	svc, slice := s.objects()
	var b bytes.Buffer
	fmt.Fprintf(&b, "# xdpgate-bench scenario %s: %s\n", s.Name, s.Description)
	for i, o := range []any{svc, slice} {
		y, err := yaml.Marshal(o)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

// Snapshot builds, with xdpgate's own builder, the snapshot xdpgate
// programs for the scenario; the kernel baselines render the same one.
func (s Scenario) Snapshot() (*snapshot.Snapshot, error) {
	b, err := control.NewBuilder(control.BuildOptions{NodeName: nodeName,
		NodeIPs: []netip.Addr{netip.MustParseAddr(gw0Addr), netip.MustParseAddr(gw1Addr)}})
	if err != nil {
		return nil, err
	}
	svc, slice := s.objects()
	b.SetService(svc.Namespace, svc.Name, svc)
	b.SetEndpointSlice(slice.Namespace, slice.Name, slice)
	res := b.Build()
	if len(res.NewErrors) > 0 {
		return nil, fmt.Errorf("scenario %s: %v", s.Name, res.NewErrors)
	}
	if len(res.Snapshot.ServicePorts) == 0 {
		return nil, fmt.Errorf("scenario %s: the builder produced no service port", s.Name)
	}
	return res.Snapshot, nil
}

// expectSrc is what the sink accepts as a translated frame's source: the
// clients with externalTrafficPolicy Local, the gateway's addresses
// (masquerade) otherwise.
func (s Scenario) expectSrc() []netip.Prefix {
	if s.Local {
		return []netip.Prefix{netip.MustParsePrefix("198.18.64.0/18"), netip.MustParsePrefix("198.18.128.0/17"),
			netip.MustParsePrefix("198.19.0.0/16")}
	}
	return []netip.Prefix{netip.MustParsePrefix(gw0Addr + "/32"), netip.MustParsePrefix(gw1Addr + "/32")}
}

// settle is how long the rig waits after a burst for frames still in
// flight before reading the sink.
const settle = 300 * time.Millisecond
