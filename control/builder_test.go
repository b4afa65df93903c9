package control

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// portOf returns the service port of ns/name (IPv4 unless v6) or fails.
func portOf(t *testing.T, s *snapshot.Snapshot, ns, name string, v6 bool) *snapshot.ServicePort {
	t.Helper()
	for i := range s.ServicePorts {
		sp := &s.ServicePorts[i]
		if sp.Namespace == ns && sp.Name == name && sp.ClusterIPs[0].Is6() == v6 {
			return sp
		}
	}
	t.Fatalf("service port %s/%s (v6=%v) not in snapshot", ns, name, v6)
	return nil
}

func hasPort(s *snapshot.Snapshot, ns, name string) bool {
	for i := range s.ServicePorts {
		if s.ServicePorts[i].Namespace == ns && s.ServicePorts[i].Name == name {
			return true
		}
	}
	return false
}

// epStates renders the endpoints as "ip:port/R S T" flags for comparison.
func epStates(sp *snapshot.ServicePort) string {
	var out []string
	for _, e := range sp.Endpoints {
		f := ""
		for _, b := range []struct {
			on bool
			c  string
		}{{e.Ready, "R"}, {e.Serving, "S"}, {e.Terminating, "T"}, {e.Local, "L"}} {
			if b.on {
				f += b.c
			}
		}
		out = append(out, e.AddrPort().String()+"/"+f)
	}
	return strings.Join(out, " ")
}

func TestSliceMerging(t *testing.T) {
	tests := []struct {
		name   string
		slices []*discoveryv1.EndpointSlice
		want   string
	}{
		{
			name:   "missing conditions mean ready, serving, not terminating",
			slices: []*discoveryv1.EndpointSlice{makeSlice("ns", "s-a", "svc", []endpointSpec{ep("198.19.2.1", "node-b")})},
			want:   "198.19.2.1:8080/RS",
		},
		{
			name: "endpoints from several slices are merged and sorted by ip:port string",
			slices: []*discoveryv1.EndpointSlice{
				makeSlice("ns", "s-a", "svc", []endpointSpec{ep("198.19.2.10", "node-b")}),
				makeSlice("ns", "s-b", "svc", []endpointSpec{ep("198.19.2.9", testNode), ep("198.19.2.1", "")}),
			},
			want: "198.19.2.10:8080/RS 198.19.2.1:8080/RS 198.19.2.9:8080/RSL",
		},
		{
			name: "duplicate: later non-terminating wins",
			slices: []*discoveryv1.EndpointSlice{
				makeSlice("ns", "s-a", "svc", []endpointSpec{ep("198.19.2.1", "node-b").servingTerminating()}),
				makeSlice("ns", "s-b", "svc", []endpointSpec{ep("198.19.2.1", testNode)}),
			},
			want: "198.19.2.1:8080/RSL",
		},
		{
			name: "duplicate: earlier non-terminating kept over later terminating",
			slices: []*discoveryv1.EndpointSlice{
				makeSlice("ns", "s-a", "svc", []endpointSpec{ep("198.19.2.1", testNode)}),
				makeSlice("ns", "s-b", "svc", []endpointSpec{ep("198.19.2.1", "node-b").servingTerminating()}),
			},
			want: "198.19.2.1:8080/RSL",
		},
		{
			name: "duplicate: the last non-terminating of three wins",
			slices: []*discoveryv1.EndpointSlice{
				makeSlice("ns", "s-a", "svc", []endpointSpec{ep("198.19.2.1", "node-b").servingTerminating()}),
				makeSlice("ns", "s-b", "svc", []endpointSpec{ep("198.19.2.1", "node-b"), ep("198.19.2.1", testNode)}),
				makeSlice("ns", "s-c", "svc", []endpointSpec{ep("198.19.2.1", "node-b").deadTerminating()}),
			},
			want: "198.19.2.1:8080/RSL",
		},
		{
			name: "duplicate: all terminating keeps the first",
			slices: []*discoveryv1.EndpointSlice{
				makeSlice("ns", "s-a", "svc", []endpointSpec{ep("198.19.2.1", testNode).servingTerminating()}),
				makeSlice("ns", "s-b", "svc", []endpointSpec{ep("198.19.2.1", "node-b").deadTerminating()}),
			},
			want: "198.19.2.1:8080/STL",
		},
		{
			name: "port matched by name and protocol",
			slices: []*discoveryv1.EndpointSlice{
				makeSlice("ns", "s-a", "svc", []endpointSpec{ep("198.19.2.1", "")}, func(s *discoveryv1.EndpointSlice) { s.Ports[0].Name = ptr.To("other") }),
				makeSlice("ns", "s-b", "svc", []endpointSpec{ep("198.19.2.2", "")}, sliceProtocol(v1.ProtocolUDP)),
				makeSlice("ns", "s-c", "svc", []endpointSpec{ep("198.19.2.3", "")}),
			},
			want: "198.19.2.3:8080/RS",
		},
		{
			name: "nil port name, nil port and port 0 are ignored",
			slices: []*discoveryv1.EndpointSlice{
				makeSlice("ns", "s-a", "svc", []endpointSpec{ep("198.19.2.1", "")}, func(s *discoveryv1.EndpointSlice) { s.Ports[0].Name = nil }),
				makeSlice("ns", "s-b", "svc", []endpointSpec{ep("198.19.2.2", "")}, func(s *discoveryv1.EndpointSlice) { s.Ports[0].Port = nil }),
				makeSlice("ns", "s-c", "svc", []endpointSpec{ep("198.19.2.3", "")}, func(s *discoveryv1.EndpointSlice) { s.Ports[0].Port = ptr.To[int32](0) }),
			},
			want: "",
		},
		{
			name: "nil protocol means TCP",
			slices: []*discoveryv1.EndpointSlice{
				makeSlice("ns", "s-a", "svc", []endpointSpec{ep("198.19.2.1", "")}, func(s *discoveryv1.EndpointSlice) { s.Ports[0].Protocol = nil }),
			},
			want: "198.19.2.1:8080/RS",
		},
		{
			name: "FQDN slices, endpoints without addresses and other families are ignored",
			slices: []*discoveryv1.EndpointSlice{
				makeSlice("ns", "s-a", "svc", []endpointSpec{ep("198.19.2.1", "")}, func(s *discoveryv1.EndpointSlice) {
					s.AddressType = discoveryv1.AddressTypeFQDN
					s.Endpoints[0].Addresses = []string{"pod.example.invalid"}
				}),
				makeSlice("ns", "s-b", "svc", []endpointSpec{ep("198.19.2.2", "")}, func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = nil }),
				makeSlice("ns", "s-c", "svc", []endpointSpec{ep("2001:2:0:2::1", "")}),
			},
			want: "",
		},
		{
			name: "only the first address is used",
			slices: []*discoveryv1.EndpointSlice{
				makeSlice("ns", "s-a", "svc", []endpointSpec{ep("198.19.2.1", "")}, func(s *discoveryv1.EndpointSlice) {
					s.Endpoints[0].Addresses = append(s.Endpoints[0].Addresses, "198.19.2.2")
				}),
			},
			want: "198.19.2.1:8080/RS",
		},
		{
			name: "slices with the service-proxy-name or headless label are ignored",
			slices: []*discoveryv1.EndpointSlice{
				makeSlice("ns", "s-a", "svc", []endpointSpec{ep("198.19.2.1", "")}, func(s *discoveryv1.EndpointSlice) { s.Labels[LabelServiceProxyName] = "x" }),
				makeSlice("ns", "s-b", "svc", []endpointSpec{ep("198.19.2.2", "")}, func(s *discoveryv1.EndpointSlice) { s.Labels[LabelHeadless] = "" }),
			},
			want: "",
		},
		{
			name: "slices of another namespace or service are not merged",
			slices: []*discoveryv1.EndpointSlice{
				makeSlice("other", "s-a", "svc", []endpointSpec{ep("198.19.2.1", "")}),
				makeSlice("ns", "s-b", "svc2", []endpointSpec{ep("198.19.2.2", "")}),
			},
			want: "",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, res := build(t, testOpts(), objects{
				services: []*v1.Service{makeService("ns", "svc", clusterIPs("198.18.100.1"))},
				slices:   tc.slices,
			})
			if got := epStates(portOf(t, res.Snapshot, "ns", "svc", false)); got != tc.want {
				t.Errorf("endpoints = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTopologyHints(t *testing.T) {
	zoneNode := flowNode() // zone-a
	tests := []struct {
		name string
		eps  []endpointSpec
		node *v1.Node
		want string // cluster chain
	}{
		{"no hints: all", []endpointSpec{ep("198.19.2.1", "n1"), ep("198.19.2.2", "n2")}, zoneNode,
			"198.19.2.1:8080, 198.19.2.2:8080"},
		{"zone hints: same zone only", []endpointSpec{ep("198.19.2.1", "n1").hintZones("zone-a"), ep("198.19.2.2", "n2").hintZones("zone-b")}, zoneNode,
			"198.19.2.1:8080"},
		{"one ready endpoint without hints: all", []endpointSpec{ep("198.19.2.1", "n1").hintZones("zone-a"), ep("198.19.2.2", "n2")}, zoneNode,
			"198.19.2.1:8080, 198.19.2.2:8080"},
		{"unready endpoint without hints does not matter", []endpointSpec{ep("198.19.2.1", "n1").hintZones("zone-a"), ep("198.19.2.2", "n2").hintZones("zone-b"), ep("198.19.2.3", "n3").notReady()}, zoneNode,
			"198.19.2.1:8080"},
		{"no hint for this zone: all", []endpointSpec{ep("198.19.2.1", "n1").hintZones("zone-c"), ep("198.19.2.2", "n2").hintZones("zone-b")}, zoneNode,
			"198.19.2.1:8080, 198.19.2.2:8080"},
		{"node without zone label: all", []endpointSpec{ep("198.19.2.1", "n1").hintZones("zone-a"), ep("198.19.2.2", "n2").hintZones("zone-b")}, nil,
			"198.19.2.1:8080, 198.19.2.2:8080"},
		{"node hints before zone hints", []endpointSpec{
			ep("198.19.2.1", "n1").hintZones("zone-a").hintNodes("node-x"),
			ep("198.19.2.2", "n2").hintZones("zone-a").hintNodes(testNode)}, zoneNode,
			"198.19.2.2:8080"},
		{"node hints not for this node: zone hints", []endpointSpec{
			ep("198.19.2.1", "n1").hintZones("zone-a").hintNodes("node-x"),
			ep("198.19.2.2", "n2").hintZones("zone-b").hintNodes("node-y")}, zoneNode,
			"198.19.2.1:8080"},
		{"hinted endpoints not ready: terminating fallback ignores topology", []endpointSpec{
			ep("198.19.2.1", "n1").hintZones("zone-b").servingTerminating(),
			ep("198.19.2.2", "n2").hintZones("zone-a").servingTerminating()}, zoneNode,
			"198.19.2.1:8080, 198.19.2.2:8080"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, res := build(t, testOpts(), objects{
				services: []*v1.Service{makeService("ns", "svc", clusterIPs("198.18.100.1"))},
				slices:   []*discoveryv1.EndpointSlice{makeSlice("ns", "s", "svc", tc.eps)},
				node:     tc.node,
			})
			_, got, _ := trace(res.Snapshot, flow{src: localPod, dst: "198.18.100.1", port: 80})
			if got != tc.want {
				t.Errorf("cluster chain = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBadObjectsAreSkipped(t *testing.T) {
	good := makeService("ok", "good", clusterIPs("198.18.100.1"))
	goodSlice := makeSlice("ok", "good-a", "good", []endpointSpec{ep("198.19.2.1", "")})
	tests := []struct {
		name    string
		svc     *v1.Service
		slice   *discoveryv1.EndpointSlice
		errPart string // substring of the error: object and field
		skipped bool   // the bad Service has no service port at all
		check   func(t *testing.T, s *snapshot.Snapshot)
	}{
		{name: "unparsable clusterIP", svc: makeService("bad", "svc", clusterIPs("198.18.100.999")),
			errPart: "Service bad/svc: spec.clusterIPs[0]", skipped: true},
		{name: "port out of range", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), func(s *v1.Service) { s.Spec.Ports[0].Port = 70000 }),
			errPart: "Service bad/svc: spec.ports[0].port", skipped: true},
		{name: "nodePort out of range", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), nodePort(-1)),
			errPart: "Service bad/svc: spec.ports[0].nodePort", skipped: true},
		{name: "unknown protocol", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), protocol("ICMP")),
			errPart: "Service bad/svc: spec.ports[0].protocol", skipped: true},
		{name: "affinity timeout 0", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), clientIPAffinity(0)),
			errPart: "Service bad/svc: spec.sessionAffinityConfig.clientIP.timeoutSeconds", skipped: true},
		{name: "affinity timeout above a day", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), clientIPAffinity(86401)),
			errPart: "spec.sessionAffinityConfig.clientIP.timeoutSeconds", skipped: true},
		{name: "bad source range fails closed", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), loadBalancer(0, "198.18.200.2"), sourceRanges("198.18.60.0/33")),
			errPart: "spec.loadBalancerSourceRanges[0]", skipped: true},
		{name: "bad externalIP skips only that entry", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), externalIPs("nope", "198.18.201.2")),
			errPart: "Service bad/svc: spec.externalIPs[0]",
			check: func(t *testing.T, s *snapshot.Snapshot) {
				if d := s.Classify(netip.MustParseAddr(externalClnt), netip.MustParseAddr("198.18.201.2"), 80, nat.ProtoTCP); d.Verdict != snapshot.Reject {
					t.Errorf("Classify(good externalIP) = %s, want reject (service kept, no endpoints)", d.Verdict)
				}
			}},
		{name: "bad ingress IP skips only that entry", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), loadBalancer(0, "x.y")),
			errPart: "status.loadBalancer.ingress[0].ip"},
		{name: "LB ETP Local without healthCheckNodePort", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), loadBalancer(0, "198.18.200.2"), etpLocal),
			errPart: "spec.healthCheckNodePort"},
		{name: "frontend claimed twice: same age, first in order keeps it", svc: makeService("a-first", "svc", clusterIPs("198.18.100.1")),
			errPart: "Service ok/good: spec.clusterIPs: conflict: ClusterIP 198.18.100.1:80/TCP is kept by Service a-first/svc",
			check: func(t *testing.T, s *snapshot.Snapshot) {
				d := s.Classify(netip.MustParseAddr(localPod), netip.MustParseAddr("198.18.100.1"), 80, nat.ProtoTCP)
				if d.ServicePort < 0 || s.ServicePorts[d.ServicePort].Namespace != "a-first" {
					t.Errorf("Classify(shared clusterIP) went to %d, want a-first/svc", d.ServicePort)
				}
			}},
		{name: "unparsable endpoint address", slice: makeSlice("ok", "good-b", "good", []endpointSpec{ep("198.19.2.300", "")}),
			errPart: "EndpointSlice ok/good-b: endpoints[0].addresses[0]"},
		{name: "endpoint address of the wrong family", slice: makeSlice("ok", "good-b", "good", []endpointSpec{ep("198.19.2.7", "")}, func(s *discoveryv1.EndpointSlice) {
			s.AddressType = discoveryv1.AddressTypeIPv6
		}), errPart: "EndpointSlice ok/good-b: endpoints[0].addresses[0]"},
		{name: "endpoint port out of range", slice: makeSlice("ok", "good-b", "good", []endpointSpec{ep("198.19.2.7", "")}, func(s *discoveryv1.EndpointSlice) {
			s.Ports[0].Port = ptr.To[int32](65536)
		}), errPart: "EndpointSlice ok/good-b: ports[0].port"},
		{name: "bad affinity-max-load keeps the Service, plain choice", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), clientIPAffinity(60), annotate(AnnotationAffinityMaxLoad, "0.5")),
			errPart: "Service bad/svc: metadata.annotations[xdpgate.io/affinity-max-load]: invalid value: \"0.5\"",
			check:   maxLoadIs("bad", "svc", 60, 0)},
		{name: "affinity-max-load not a number", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), clientIPAffinity(60), annotate(AnnotationAffinityMaxLoad, "lots")),
			errPart: "metadata.annotations[xdpgate.io/affinity-max-load]", check: maxLoadIs("bad", "svc", 60, 0)},
		{name: "affinity-max-load without ClientIP", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), annotate(AnnotationAffinityMaxLoad, "1.25")),
			errPart: "needs sessionAffinity ClientIP", check: maxLoadIs("bad", "svc", 0, 0)},
		{name: "bad affinity-rebalance-on-scale", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), clientIPAffinity(60), annotate(AnnotationAffinityRebalanceOnScale, "sure")),
			errPart: "Service bad/svc: metadata.annotations[xdpgate.io/affinity-rebalance-on-scale]: invalid value: \"sure\"",
			check: func(t *testing.T, s *snapshot.Snapshot) {
				if sp := portOf(t, s, "bad", "svc", false); sp.AffinityRebalanceOnScale || sp.AffinitySeconds != 60 {
					t.Errorf("rebalance %t, affinity %d; want off, 60", sp.AffinityRebalanceOnScale, sp.AffinitySeconds)
				}
			}},
		{name: "affinity-rebalance-on-scale without ClientIP", svc: makeService("bad", "svc", clusterIPs("198.18.100.2"), annotate(AnnotationAffinityRebalanceOnScale, "true")),
			errPart: "needs sessionAffinity ClientIP", check: maxLoadIs("bad", "svc", 0, 0)},
		{name: "slice without service-name label", slice: makeSlice("ok", "orphan", "", []endpointSpec{ep("198.19.2.7", "")}),
			errPart: "EndpointSlice ok/orphan: metadata.labels[kubernetes.io/service-name]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs := objects{services: []*v1.Service{good}, slices: []*discoveryv1.EndpointSlice{goodSlice}}
			if tc.svc != nil {
				objs.services = append(objs.services, tc.svc)
			}
			if tc.slice != nil {
				objs.slices = append(objs.slices, tc.slice)
			}
			_, res := build(t, testOpts(), objs)
			var msgs []string
			found := false
			for _, err := range res.NewErrors {
				msgs = append(msgs, err.Error())
				if strings.Contains(err.Error(), tc.errPart) {
					found = true
				}
				if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrConflict) {
					t.Errorf("error %q wraps neither ErrInvalid nor ErrConflict", err)
				}
			}
			if !found {
				t.Errorf("Build errors = %q, want one containing %q", msgs, tc.errPart)
			}
			if res.Errors != len(res.NewErrors) {
				t.Errorf("Build Errors = %d, want %d", res.Errors, len(res.NewErrors))
			}
			// The good service keeps working.
			_, out, _ := trace(res.Snapshot, flow{src: localPod, dst: "198.18.100.1", port: 80})
			if tc.svc == nil || tc.svc.Namespace != "a-first" {
				if out != "198.19.2.1:8080" {
					t.Errorf("good service endpoints = %q, want 198.19.2.1:8080", out)
				}
			}
			if tc.svc != nil && tc.skipped && hasPort(res.Snapshot, tc.svc.Namespace, tc.svc.Name) {
				t.Errorf("bad service %s/%s is in the snapshot, want it skipped", tc.svc.Namespace, tc.svc.Name)
			}
			if tc.check != nil {
				tc.check(t, res.Snapshot)
			}
		})
	}
}

func TestAffinitySeconds(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*v1.Service)
		want uint32
	}{
		{"None", func(*v1.Service) {}, 0},
		{"ClientIP default", func(s *v1.Service) { s.Spec.SessionAffinity = v1.ServiceAffinityClientIP }, 10800},
		{"ClientIP 1", clientIPAffinity(1), 1},
		{"ClientIP 86400 accepted", clientIPAffinity(86400), 86400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, res := build(t, testOpts(), objects{services: []*v1.Service{makeService("ns", "svc", clusterIPs("198.18.100.1"), tc.mod)}})
			if got := portOf(t, res.Snapshot, "ns", "svc", false).AffinitySeconds; got != tc.want {
				t.Errorf("AffinitySeconds = %d, want %d", got, tc.want)
			}
		})
	}
}

// maxLoadIs checks a Service kept its port with the given affinity
// timeout and bounded-load percentage.
func maxLoadIs(ns, name string, seconds, pct uint32) func(t *testing.T, s *snapshot.Snapshot) {
	return func(t *testing.T, s *snapshot.Snapshot) {
		sp := portOf(t, s, ns, name, false)
		if sp.AffinitySeconds != seconds || sp.AffinityMaxLoadPercent != pct {
			t.Errorf("%s/%s: AffinitySeconds, AffinityMaxLoadPercent = %d, %d, want %d, %d", ns, name, sp.AffinitySeconds, sp.AffinityMaxLoadPercent, seconds, pct)
		}
	}
}

func TestAffinityMaxLoad(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  uint32
	}{{"1.25", 125}, {"1", 100}, {" 2.5 ", 250}, {"100", 10000}, {"1.005", 0}, {"0.99", 0}, {"101", 0}, {"NaN", 0}, {"", 0}} {
		t.Run(tc.value, func(t *testing.T) {
			objs := objects{services: []*v1.Service{makeService("ns", "svc", clusterIPs("198.18.100.1"), clientIPAffinity(60), annotate(AnnotationAffinityMaxLoad, tc.value))}}
			_, res := build(t, testOpts(), objs)
			maxLoadIs("ns", "svc", 60, tc.want)(t, res.Snapshot)
			if bad := len(res.NewErrors) > 0; bad != (tc.want == 0) {
				t.Errorf("errors %v, want some only for a refused value", res.NewErrors)
			}
		})
	}
}

func TestAffinityRebalanceOnScale(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
	}{{"true", true}, {"false", false}, {"1", true}} {
		objs := objects{services: []*v1.Service{makeService("ns", "svc", clusterIPs("198.18.100.1"), clientIPAffinity(60), annotate(AnnotationAffinityRebalanceOnScale, tc.value))}}
		_, res := build(t, testOpts(), objs)
		if got := portOf(t, res.Snapshot, "ns", "svc", false).AffinityRebalanceOnScale; got != tc.want || len(res.NewErrors) > 0 {
			t.Errorf("%q: rebalance %t, errors %v; want %t, none", tc.value, got, res.NewErrors, tc.want)
		}
	}
}

func TestMasqueradeOptions(t *testing.T) {
	objs := objects{
		services: []*v1.Service{makeService("ns", "svc", clusterIPs("198.18.100.1"))},
		slices:   []*discoveryv1.EndpointSlice{makeSlice("ns", "s", "svc", []endpointSpec{ep("198.19.2.1", "")})},
	}
	tests := []struct {
		name   string
		opts   func(*BuildOptions)
		src    string
		masq   bool
		verdit snapshot.Verdict
	}{
		{"cluster CIDR: pod not masqueraded", func(*BuildOptions) {}, localPod, false, fwd},
		{"cluster CIDR: outsider masqueraded", func(*BuildOptions) {}, externalClnt, true, fwd},
		{"no detector: outsider not masqueraded", func(o *BuildOptions) { o.ClusterCIDRs = nil }, externalClnt, false, fwd},
		{"masqueradeAll: pod masqueraded", func(o *BuildOptions) { o.MasqueradeAll = true }, localPod, true, fwd},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testOpts()
			tc.opts(&o)
			_, res := build(t, o, objs)
			_, _, masq := trace(res.Snapshot, flow{src: tc.src, dst: "198.18.100.1", port: 80})
			if masq != tc.masq {
				t.Errorf("masquerade = %v, want %v", masq, tc.masq)
			}
		})
	}
}

func TestNodePortAddresses(t *testing.T) {
	node := &v1.Node{}
	node.Name = testNode
	node.Status.Addresses = []v1.NodeAddress{
		{Type: v1.NodeHostName, Address: "node-a"},
		{Type: v1.NodeInternalIP, Address: "198.18.0.20"},
		{Type: v1.NodeInternalIP, Address: "198.18.0.21"},
		{Type: v1.NodeExternalIP, Address: "198.18.9.20"},
		{Type: v1.NodeInternalIP, Address: "2001:2::20"},
	}
	tests := []struct {
		name    string
		nodeIPs []netip.Addr
		list    []string
		want    string
	}{
		{"unset is all node IPs from the Node", nil, nil, "198.18.0.20 198.18.0.21 198.18.9.20 2001:2::20"},
		{"all", nil, []string{"all"}, "198.18.0.20 198.18.0.21 198.18.9.20 2001:2::20"},
		{"primary: first InternalIP per family", nil, []string{"primary"}, "198.18.0.20 2001:2::20"},
		{"CIDR", nil, []string{"198.18.9.0/24"}, "198.18.9.20"},
		{"CIDR and primary", nil, []string{"198.18.9.0/24", "primary"}, "198.18.0.20 198.18.9.20 2001:2::20"},
		{"explicit node IPs override the Node", []netip.Addr{netip.MustParseAddr("198.18.0.77")}, nil, "198.18.0.77"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testOpts()
			o.NodeIPs, o.NodePortAddresses = tc.nodeIPs, tc.list
			_, res := build(t, o, objects{node: node})
			var got []string
			for _, a := range res.Snapshot.NodePortAddrs {
				got = append(got, a.String())
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("NodePortAddrs = %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
	if _, err := NewBuilder(BuildOptions{NodePortAddresses: []string{"nonsense"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewBuilder(nodePortAddresses nonsense) = %v, want ErrInvalid", err)
	}
}

func TestHealthChecks(t *testing.T) {
	twoPorts := func(s *v1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: "p443", Port: 443, Protocol: v1.ProtocolTCP})
	}
	slice443 := func(s *discoveryv1.EndpointSlice) {
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr.To("p443"), Port: ptr.To[int32](8443), Protocol: ptr.To(v1.ProtocolTCP)})
	}
	_, res := build(t, testOpts(), objects{
		services: []*v1.Service{
			makeService("ns", "lb-local", clusterIPs("198.18.100.1"), loadBalancer(31001, "198.18.200.1"), etpLocal, twoPorts),
			makeService("ns", "lb-cluster", clusterIPs("198.18.100.2"), loadBalancer(31002, "198.18.200.2")),
			makeService("ns", "np-local", clusterIPs("198.18.100.3"), nodePort(30003), etpLocal),
			makeService("ns", "lb-terminating", clusterIPs("198.18.100.4"), loadBalancer(31004, "198.18.200.4"), etpLocal),
		},
		slices: []*discoveryv1.EndpointSlice{
			makeSlice("ns", "lb-local-a", "lb-local", []endpointSpec{ep("198.19.1.1", testNode), ep("198.19.1.2", testNode), ep("198.19.1.3", testNode).notReady(), ep("198.19.2.1", "node-b")}, slice443),
			makeSlice("ns", "lb-terminating-a", "lb-terminating", []endpointSpec{ep("198.19.1.4", testNode).servingTerminating(), ep("198.19.2.4", "node-b")}),
		},
	})
	want := []HealthCheck{
		{Namespace: "ns", Name: "lb-local", Port: 31001, LocalEndpoints: 2},
		{Namespace: "ns", Name: "lb-terminating", Port: 31004, LocalEndpoints: 0},
	}
	if len(res.HealthChecks) != len(want) {
		t.Fatalf("HealthChecks = %+v, want %+v", res.HealthChecks, want)
	}
	for i := range want {
		if res.HealthChecks[i] != want[i] {
			t.Errorf("HealthChecks[%d] = %+v, want %+v", i, res.HealthChecks[i], want[i])
		}
	}
	// Terminating local endpoint still serves traffic while HC says 0.
	_, out, _ := trace(res.Snapshot, flow{src: externalClnt, dst: "198.18.200.4", port: 80})
	if out != "198.19.1.4:8080" {
		t.Errorf("lb-terminating external endpoints = %q, want the terminating local one", out)
	}
	if res.NoLocalExternal != 0 || res.NoLocalInternal != 0 {
		t.Errorf("NoLocal = %d/%d, want 0/0", res.NoLocalInternal, res.NoLocalExternal)
	}
}
