package control

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

const (
	fwd    = snapshot.Forward
	reject = snapshot.Reject
	drop   = snapshot.Drop
	none   = snapshot.NotService
)

// flowObjects is the kube-proxy style fixture shared by the IPv4 packet
// flow tests: one Service per rule of the semantics document.
func flowObjects() objects {
	return objects{
		services: []*v1.Service{
			// Plain ClusterIP, one local and one remote endpoint.
			makeService("ns1", "svc1", clusterIPs("198.18.100.1")),
			// NodePort + LB + externalIP, ETP Cluster.
			makeService("ns2", "svc2", clusterIPs("198.18.100.2"), nodePort(30002), loadBalancer(0, "198.18.200.2"), externalIPs("198.18.201.2")),
			// LB with ETP Local and a local endpoint.
			makeService("ns3", "svc3", clusterIPs("198.18.100.3"), nodePort(30003), loadBalancer(31003, "198.18.200.3"), externalIPs("198.18.201.3"), etpLocal),
			// LB with ETP Local and endpoints only elsewhere.
			makeService("ns4", "svc4", clusterIPs("198.18.100.4"), nodePort(30004), loadBalancer(31004, "198.18.200.4"), externalIPs("198.18.201.4"), etpLocal),
			// No endpoints at all.
			makeService("ns5", "svc5", clusterIPs("198.18.100.5"), nodePort(30005), loadBalancer(0, "198.18.200.5"), externalIPs("198.18.201.5")),
			// ITP Local, no local endpoints.
			makeService("ns6", "svc6", clusterIPs("198.18.100.6"), itpLocal),
			// ITP Local with a local endpoint.
			makeService("ns7", "svc7", clusterIPs("198.18.100.7"), itpLocal),
			// loadBalancerSourceRanges.
			makeService("ns8", "svc8", clusterIPs("198.18.100.8"), nodePort(30008), loadBalancer(0, "198.18.200.8"), sourceRanges("198.18.60.0/24")),
			// loadBalancerSourceRanges containing the node IP: the LB VIP
			// itself is an allowed source.
			makeService("ns9", "svc9", clusterIPs("198.18.100.9"), loadBalancer(0, "198.18.200.9"), sourceRanges("198.18.0.0/24")),
			// Only serving-terminating endpoints (KEP-1669 fallback).
			makeService("ns10", "svc10", clusterIPs("198.18.100.10"), nodePort(30010)),
			// Only terminating, not serving endpoints: nothing usable.
			makeService("ns11", "svc11", clusterIPs("198.18.100.11")),
			// Not ready endpoints only: nothing usable.
			makeService("ns12", "svc12", clusterIPs("198.18.100.12")),
			// ipMode Proxy ingress is not a frontend.
			makeService("ns13", "svc13", clusterIPs("198.18.100.13"), loadBalancer(0), func(s *v1.Service) {
				p := v1.LoadBalancerIPModeProxy
				s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "198.18.200.13", IPMode: &p}}
			}),
			// Ignored services.
			makeService("ns14", "proxyname", clusterIPs("198.18.100.14"), label(LabelServiceProxyName, "foo-bar")),
			makeService("ns14", "headlesslabel", clusterIPs("198.18.100.15"), label(LabelHeadless, "")),
			makeService("ns14", "headless", clusterIPs(v1.ClusterIPNone)),
			makeService("ns14", "extname", func(s *v1.Service) {
				s.Spec.Type = v1.ServiceTypeExternalName
				s.Spec.ExternalName = "example.invalid"
				s.Spec.ClusterIP = "198.18.100.16"
			}),
			// UDP and SCTP.
			makeService("ns15", "udp", clusterIPs("198.18.100.17"), protocol(v1.ProtocolUDP), nodePort(30017)),
			makeService("ns15", "sctp", clusterIPs("198.18.100.18"), protocol(v1.ProtocolSCTP)),
			// ETP Local + ITP Local with local endpoint, NodePort only.
			makeService("ns16", "svc16", clusterIPs("198.18.100.19"), nodePort(30019), etpLocal, itpLocal),
			// Topology hints: zone-a hints only for one endpoint.
			makeService("ns17", "svc17", clusterIPs("198.18.100.20"), nodePort(30020), etpLocal),
			// Local terminating fallback for ETP Local.
			makeService("ns18", "svc18", clusterIPs("198.18.100.21"), nodePort(30021), etpLocal),
		},
		slices: []*discoveryv1.EndpointSlice{
			makeSlice("ns1", "svc1-a", "svc1", []endpointSpec{ep("198.19.1.1", testNode), ep("198.19.2.1", "node-b")}),
			makeSlice("ns2", "svc2-a", "svc2", []endpointSpec{ep("198.19.2.2", "node-b"), ep("198.19.3.2", "node-c")}),
			makeSlice("ns3", "svc3-a", "svc3", []endpointSpec{ep("198.19.1.3", testNode), ep("198.19.2.3", "node-b")}),
			makeSlice("ns4", "svc4-a", "svc4", []endpointSpec{ep("198.19.2.4", "node-b")}),
			makeSlice("ns5", "svc5-a", "svc5", nil),
			makeSlice("ns6", "svc6-a", "svc6", []endpointSpec{ep("198.19.2.6", "node-b")}),
			makeSlice("ns7", "svc7-a", "svc7", []endpointSpec{ep("198.19.1.7", testNode), ep("198.19.2.7", "node-b")}),
			makeSlice("ns8", "svc8-a", "svc8", []endpointSpec{ep("198.19.2.8", "node-b")}),
			makeSlice("ns9", "svc9-a", "svc9", []endpointSpec{ep("198.19.2.9", "node-b")}),
			makeSlice("ns10", "svc10-a", "svc10", []endpointSpec{
				ep("198.19.1.10", testNode).servingTerminating(), ep("198.19.2.10", "node-b").servingTerminating(),
				ep("198.19.3.10", "node-c").deadTerminating(), ep("198.19.4.10", "node-c").notReady()}),
			makeSlice("ns11", "svc11-a", "svc11", []endpointSpec{ep("198.19.2.11", "node-b").deadTerminating()}),
			makeSlice("ns12", "svc12-a", "svc12", []endpointSpec{ep("198.19.2.12", "node-b").notReady()}),
			makeSlice("ns13", "svc13-a", "svc13", []endpointSpec{ep("198.19.2.13", "node-b")}),
			makeSlice("ns14", "proxyname-a", "proxyname", []endpointSpec{ep("198.19.2.14", "node-b")}),
			makeSlice("ns14", "headlesslabel-a", "headlesslabel", []endpointSpec{ep("198.19.2.15", "node-b")}),
			makeSlice("ns15", "udp-a", "udp", []endpointSpec{ep("198.19.2.17", "node-b")}, sliceProtocol(v1.ProtocolUDP)),
			makeSlice("ns15", "sctp-a", "sctp", []endpointSpec{ep("198.19.2.18", "node-b")}, sliceProtocol(v1.ProtocolSCTP)),
			makeSlice("ns16", "svc16-a", "svc16", []endpointSpec{ep("198.19.1.19", testNode), ep("198.19.2.19", "node-b")}),
			makeSlice("ns17", "svc17-a", "svc17", []endpointSpec{
				ep("198.19.1.20", testNode).hintZones("zone-b"),
				ep("198.19.2.20", "node-b").hintZones("zone-a"),
				ep("198.19.3.20", "node-c").hintZones("zone-b")}),
			makeSlice("ns18", "svc18-a", "svc18", []endpointSpec{
				ep("198.19.1.21", testNode).servingTerminating(), ep("198.19.2.21", "node-b")}),
		},
		node: &v1.Node{},
	}
}

func flowNode() *v1.Node {
	n := &v1.Node{}
	n.Name = testNode
	n.Labels = map[string]string{v1.LabelTopologyZone: "zone-a"}
	return n
}

func TestPacketFlowsIPv4(t *testing.T) {
	objs := flowObjects()
	objs.node = flowNode()
	_, res := build(t, testOpts(), objs)
	for _, err := range res.NewErrors {
		t.Errorf("unexpected build error: %v", err)
	}
	s := res.Snapshot
	const (
		ext    = externalClnt
		pod    = localPod
		nodeIP = testNodeIP
	)
	runFlows(t, s, []flow{
		// ClusterIP
		{name: "pod to clusterIP", src: pod, dst: "198.18.100.1", port: 80, output: "198.19.1.1:8080, 198.19.2.1:8080"},
		{name: "external to clusterIP is masqueraded (cluster CIDR set)", src: ext, dst: "198.18.100.1", port: 80, output: "198.19.1.1:8080, 198.19.2.1:8080", masq: true},
		{name: "clusterIP wrong port", src: pod, dst: "198.18.100.1", port: 81, verdict: none},
		{name: "clusterIP wrong protocol", src: pod, dst: "198.18.100.1", port: 80, proto: nat.ProtoUDP, verdict: none},
		{name: "endpoint to own service: no SNAT unless it picks itself", src: "198.19.2.2", dst: "198.18.100.2", port: 80, output: "198.19.2.2:8080, 198.19.3.2:8080"},
		{name: "hairpin: single endpoint reaching itself is masqueraded", src: "198.19.2.4", dst: "198.18.100.4", port: 80, output: "198.19.2.4:8080", masq: true},

		// ETP Cluster: external destinations are masqueraded.
		{name: "ETP cluster: external to nodePort", src: ext, dst: nodeIP, port: 30002, output: "198.19.2.2:8080, 198.19.3.2:8080", masq: true},
		{name: "ETP cluster: external to LB IP", src: ext, dst: "198.18.200.2", port: 80, output: "198.19.2.2:8080, 198.19.3.2:8080", masq: true},
		{name: "ETP cluster: external to externalIP", src: ext, dst: "198.18.201.2", port: 80, output: "198.19.2.2:8080, 198.19.3.2:8080", masq: true},
		{name: "ETP cluster: pod to LB IP is masqueraded", src: pod, dst: "198.18.200.2", port: 80, output: "198.19.2.2:8080, 198.19.3.2:8080", masq: true},
		{name: "nodePort on a non-node address", src: ext, dst: "198.18.0.99", port: 30002, verdict: none},
		{name: "LB IP on the nodePort is not a frontend", src: ext, dst: "198.18.200.2", port: 30002, verdict: none},

		// ETP Local with local endpoints.
		{name: "ETP local: external to nodePort uses local endpoints, no SNAT", src: ext, dst: nodeIP, port: 30003, output: "198.19.1.3:8080", local: true},
		{name: "ETP local: external to LB IP", src: ext, dst: "198.18.200.3", port: 80, output: "198.19.1.3:8080", local: true},
		{name: "ETP local: external to externalIP", src: ext, dst: "198.18.201.3", port: 80, output: "198.19.1.3:8080", local: true},
		{name: "ETP local: pod to LB IP short-circuits to cluster chain", src: pod, dst: "198.18.200.3", port: 80, output: "198.19.1.3:8080, 198.19.2.3:8080"},
		{name: "ETP local: clusterIP ignores ETP", src: pod, dst: "198.18.100.3", port: 80, output: "198.19.1.3:8080, 198.19.2.3:8080"},

		// ETP Local without local endpoints.
		{name: "ETP local no local eps: external to nodePort drops", src: ext, dst: nodeIP, port: 30004, verdict: drop, cause: snapshot.CauseNoLocalEndpoints},
		{name: "ETP local no local eps: external to LB IP drops", src: ext, dst: "198.18.200.4", port: 80, verdict: drop, cause: snapshot.CauseNoLocalEndpoints},
		{name: "ETP local no local eps: external to externalIP drops", src: ext, dst: "198.18.201.4", port: 80, verdict: drop, cause: snapshot.CauseNoLocalEndpoints},
		{name: "ETP local no local eps: pod to LB IP short-circuits", src: pod, dst: "198.18.200.4", port: 80, output: "198.19.2.4:8080"},
		{name: "ETP local no local eps: pod to externalIP short-circuits", src: pod, dst: "198.18.201.4", port: 80, output: "198.19.2.4:8080"},
		{name: "ETP local no local eps: clusterIP works", src: pod, dst: "198.18.100.4", port: 80, output: "198.19.2.4:8080"},

		// No endpoints: reject everywhere.
		{name: "no endpoints: clusterIP rejects", src: pod, dst: "198.18.100.5", port: 80, verdict: reject, cause: snapshot.CauseNoEndpoints},
		{name: "no endpoints: nodePort rejects", src: ext, dst: nodeIP, port: 30005, verdict: reject, cause: snapshot.CauseNoEndpoints},
		{name: "no endpoints: LB IP rejects", src: ext, dst: "198.18.200.5", port: 80, verdict: reject, cause: snapshot.CauseNoEndpoints},
		{name: "no endpoints: externalIP rejects", src: ext, dst: "198.18.201.5", port: 80, verdict: reject, cause: snapshot.CauseNoEndpoints},

		// ITP Local.
		{name: "ITP local no local eps: clusterIP drops", src: pod, dst: "198.18.100.6", port: 80, verdict: drop, cause: snapshot.CauseNoLocalEndpoints},
		{name: "ITP local: clusterIP uses local endpoints only", src: pod, dst: "198.18.100.7", port: 80, output: "198.19.1.7:8080", local: true},
		{name: "ITP local: external to clusterIP masqueraded, local chain", src: ext, dst: "198.18.100.7", port: 80, output: "198.19.1.7:8080", local: true, masq: true},

		// loadBalancerSourceRanges.
		{name: "source range allows", src: "198.18.60.7", dst: "198.18.200.8", port: 80, output: "198.19.2.8:8080", masq: true},
		{name: "source range drops others", src: ext, dst: "198.18.200.8", port: 80, verdict: drop, cause: snapshot.CauseSourceRange},
		{name: "source range does not apply to nodePort", src: ext, dst: nodeIP, port: 30008, output: "198.19.2.8:8080", masq: true},
		{name: "source range does not apply to clusterIP", src: pod, dst: "198.18.100.8", port: 80, output: "198.19.2.8:8080"},
		{name: "source range with node IP admits the LB VIP as source", src: "198.18.200.9", dst: "198.18.200.9", port: 80, output: "198.19.2.9:8080", masq: true},
		{name: "source range with node IP admits node", src: nodeIP, dst: "198.18.200.9", port: 80, output: "198.19.2.9:8080", masq: true},
		{name: "source range with node IP drops outsiders", src: ext, dst: "198.18.200.9", port: 80, verdict: drop, cause: snapshot.CauseSourceRange},

		// Terminating endpoints.
		{name: "serving-terminating fallback on clusterIP", src: pod, dst: "198.18.100.10", port: 80, output: "198.19.1.10:8080, 198.19.2.10:8080"},
		{name: "serving-terminating fallback on nodePort", src: ext, dst: nodeIP, port: 30010, output: "198.19.1.10:8080, 198.19.2.10:8080", masq: true},
		{name: "terminating not serving is never used", src: pod, dst: "198.18.100.11", port: 80, verdict: reject, cause: snapshot.CauseNoEndpoints},
		{name: "not ready is never used", src: pod, dst: "198.18.100.12", port: 80, verdict: reject, cause: snapshot.CauseNoEndpoints},
		{name: "ETP local: local terminating fallback for external", src: ext, dst: nodeIP, port: 30021, output: "198.19.1.21:8080", local: true},
		{name: "ETP local: cluster chain prefers ready over terminating", src: pod, dst: "198.18.100.21", port: 80, output: "198.19.2.21:8080"},

		// ipMode Proxy, ignored services.
		{name: "ipMode Proxy ingress is not captured", src: ext, dst: "198.18.200.13", port: 80, verdict: none},
		{name: "ipMode Proxy: clusterIP still works", src: pod, dst: "198.18.100.13", port: 80, output: "198.19.2.13:8080"},
		{name: "service-proxy-name label ignored", src: pod, dst: "198.18.100.14", port: 80, verdict: none},
		{name: "headless label ignored", src: pod, dst: "198.18.100.15", port: 80, verdict: none},
		{name: "ExternalName ignored", src: pod, dst: "198.18.100.16", port: 80, verdict: none},

		// Protocols.
		{name: "UDP clusterIP", src: pod, dst: "198.18.100.17", port: 80, proto: nat.ProtoUDP, output: "198.19.2.17:8080"},
		{name: "UDP nodePort", src: ext, dst: nodeIP, port: 30017, proto: nat.ProtoUDP, output: "198.19.2.17:8080", masq: true},
		{name: "UDP nodePort over TCP is not a service", src: ext, dst: nodeIP, port: 30017, verdict: none},
		{name: "SCTP clusterIP", src: pod, dst: "198.18.100.18", port: 80, proto: nat.ProtoSCTP, output: "198.19.2.18:8080"},

		// ITP+ETP Local.
		{name: "ITP+ETP local: pod to clusterIP local chain", src: pod, dst: "198.18.100.19", port: 80, output: "198.19.1.19:8080", local: true},
		{name: "ITP+ETP local: external nodePort local chain", src: ext, dst: nodeIP, port: 30019, output: "198.19.1.19:8080", local: true},

		// Topology hints (Cluster chain only).
		{name: "hints: clusterIP uses same-zone endpoints", src: pod, dst: "198.18.100.20", port: 80, output: "198.19.2.20:8080"},
		{name: "hints: pod short-circuit uses hinted cluster chain", src: pod, dst: nodeIP, port: 30020, output: "198.19.2.20:8080"},
		{name: "hints: ETP local ignores hints", src: ext, dst: nodeIP, port: 30020, output: "198.19.1.20:8080", local: true},
	})
}
