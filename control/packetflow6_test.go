package control

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/xdpgate/xdpgate/snapshot"
)

func TestPacketFlowsIPv6AndDualStack(t *testing.T) {
	objs := objects{
		services: []*v1.Service{
			// Single-stack IPv6.
			makeService("v6", "plain", clusterIPs("2001:2:0:100::1"), nodePort(30101), loadBalancer(0, "2001:2:0:200::1"), externalIPs("2001:2:0:201::1")),
			makeService("v6", "local", clusterIPs("2001:2:0:100::2"), nodePort(30102), loadBalancer(31102, "2001:2:0:200::2"), etpLocal),
			makeService("v6", "empty", clusterIPs("2001:2:0:100::3"), nodePort(30103)),
			makeService("v6", "ranges", clusterIPs("2001:2:0:100::4"), loadBalancer(0, "2001:2:0:200::4"), sourceRanges("2001:2:0:60::/64")),
			// Dual-stack: both families' frontends, v4 endpoints only.
			makeService("ds", "v4only", clusterIPs("198.18.100.50", "2001:2:0:100::50"), nodePort(30150),
				loadBalancer(0, "198.18.200.50", "2001:2:0:200::50"), externalIPs("198.18.201.50", "2001:2:0:201::50")),
			// Dual-stack with endpoints of both families.
			makeService("ds", "both", clusterIPs("2001:2:0:100::51", "198.18.100.51"), nodePort(30151)),
		},
		slices: []*discoveryv1.EndpointSlice{
			makeSlice("v6", "plain-a", "plain", []endpointSpec{ep("2001:2:0:1::1", testNode), ep("2001:2:0:2::1", "node-b")}),
			makeSlice("v6", "local-a", "local", []endpointSpec{ep("2001:2:0:2::2", "node-b")}),
			makeSlice("v6", "ranges-a", "ranges", []endpointSpec{ep("2001:2:0:2::4", "node-b")}),
			makeSlice("ds", "v4only-a", "v4only", []endpointSpec{ep("198.19.2.50", "node-b")}),
			makeSlice("ds", "both-4", "both", []endpointSpec{ep("198.19.2.51", "node-b")}),
			makeSlice("ds", "both-6", "both", []endpointSpec{ep("2001:2:0:2::51", "node-b")}),
		},
		node: flowNode(),
	}
	_, res := build(t, testOpts(), objs)
	for _, err := range res.NewErrors {
		t.Errorf("unexpected build error: %v", err)
	}
	const (
		ext   = externalClnt6
		pod   = localPod6
		node6 = testNodeIP6
	)
	runFlows(t, res.Snapshot, []flow{
		{name: "v6 pod to clusterIP", src: pod, dst: "2001:2:0:100::1", port: 80, output: "[2001:2:0:1::1]:8080, [2001:2:0:2::1]:8080"},
		{name: "v6 external to clusterIP masqueraded", src: ext, dst: "2001:2:0:100::1", port: 80, output: "[2001:2:0:1::1]:8080, [2001:2:0:2::1]:8080", masq: true},
		{name: "v6 nodePort", src: ext, dst: node6, port: 30101, output: "[2001:2:0:1::1]:8080, [2001:2:0:2::1]:8080", masq: true},
		{name: "v6 nodePort not served on the v4 node IP", src: externalClnt, dst: testNodeIP, port: 30101, verdict: none},
		{name: "v6 LB IP", src: ext, dst: "2001:2:0:200::1", port: 80, output: "[2001:2:0:1::1]:8080, [2001:2:0:2::1]:8080", masq: true},
		{name: "v6 externalIP", src: ext, dst: "2001:2:0:201::1", port: 80, output: "[2001:2:0:1::1]:8080, [2001:2:0:2::1]:8080", masq: true},
		{name: "v6 ETP local no local eps drops", src: ext, dst: "2001:2:0:200::2", port: 80, verdict: drop, cause: snapshot.CauseNoLocalEndpoints},
		{name: "v6 ETP local pod short-circuit", src: pod, dst: "2001:2:0:200::2", port: 80, output: "[2001:2:0:2::2]:8080"},
		{name: "v6 no endpoints rejects", src: pod, dst: "2001:2:0:100::3", port: 80, verdict: reject, cause: snapshot.CauseNoEndpoints},
		{name: "v6 no endpoints nodePort rejects", src: ext, dst: node6, port: 30103, verdict: reject, cause: snapshot.CauseNoEndpoints},
		{name: "v6 source range allows", src: "2001:2:0:60::9", dst: "2001:2:0:200::4", port: 80, output: "[2001:2:0:2::4]:8080", masq: true},
		{name: "v6 source range drops", src: ext, dst: "2001:2:0:200::4", port: 80, verdict: drop, cause: snapshot.CauseSourceRange},

		{name: "dual-stack v4 clusterIP uses v4 endpoints", src: localPod, dst: "198.18.100.50", port: 80, output: "198.19.2.50:8080"},
		{name: "dual-stack v6 clusterIP without v6 endpoints rejects", src: pod, dst: "2001:2:0:100::50", port: 80, verdict: reject, cause: snapshot.CauseNoEndpoints},
		{name: "dual-stack v4 nodePort", src: externalClnt, dst: testNodeIP, port: 30150, output: "198.19.2.50:8080", masq: true},
		{name: "dual-stack v6 nodePort rejects", src: ext, dst: node6, port: 30150, verdict: reject, cause: snapshot.CauseNoEndpoints},
		{name: "dual-stack v4 LB IP", src: externalClnt, dst: "198.18.200.50", port: 80, output: "198.19.2.50:8080", masq: true},
		{name: "dual-stack v6 LB IP rejects", src: ext, dst: "2001:2:0:200::50", port: 80, verdict: reject, cause: snapshot.CauseNoEndpoints},
		{name: "dual-stack v6 externalIP rejects", src: ext, dst: "2001:2:0:201::50", port: 80, verdict: reject, cause: snapshot.CauseNoEndpoints},
		{name: "dual-stack both: v4", src: localPod, dst: "198.18.100.51", port: 80, output: "198.19.2.51:8080"},
		{name: "dual-stack both: v6", src: pod, dst: "2001:2:0:100::51", port: 80, output: "[2001:2:0:2::51]:8080"},
		{name: "dual-stack both: v4 nodePort", src: externalClnt, dst: testNodeIP, port: 30151, output: "198.19.2.51:8080", masq: true},
		{name: "dual-stack both: v6 nodePort", src: ext, dst: node6, port: 30151, output: "[2001:2:0:2::51]:8080", masq: true},
	})
}
