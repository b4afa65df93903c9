package control

import (
	"errors"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// created sets the creationTimestamp to a fixed base plus sec seconds.
func created(sec int) func(*v1.Service) {
	return func(s *v1.Service) {
		s.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(sec) * time.Second))
	}
}

func uid(u string) func(*v1.Service) {
	return func(s *v1.Service) { s.UID = types.UID(u) }
}

// portOn names the ServicePort ports 22 (SSH-like).
func portOn(p int32) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.Ports[0].Port = p }
}

func errorsWith(errs []error, target error) []string {
	var out []string
	for _, err := range errs {
		if errors.Is(err, target) {
			out = append(out, err.Error())
		}
	}
	return out
}

// TestNodeAddressFrontendsRefused: an externalIP or LoadBalancer IP equal
// to a node address (the options' NodeIPs or the Node object's addresses)
// is not a frontend; the node's own port stays with the kernel, the
// Service's other frontends keep working, and the refusal is reported once,
// naming the Service, the field and the address.
func TestNodeAddressFrontendsRefused(t *testing.T) {
	node := flowNode()
	node.Status.Addresses = []v1.NodeAddress{
		{Type: v1.NodeInternalIP, Address: "198.18.0.11"},
		{Type: v1.NodeExternalIP, Address: "198.18.0.12"},
	}
	opts := testOpts() // NodeIPs 198.18.0.10, 2001:2::10
	hijack := makeService("evil", "ssh", clusterIPs("198.18.100.1", "2001:2:0:100::1"), portOn(22),
		externalIPs(testNodeIP, "198.18.201.1", "198.18.0.12"), loadBalancer(0, "198.18.0.11", testNodeIP6, "198.18.200.1"))
	hijack.Spec.IPFamilies = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}
	slice := makeSlice("evil", "ssh-a", "ssh", []endpointSpec{ep("198.19.2.1", "node-b")})
	slice6 := makeSlice("evil", "ssh-b", "ssh", []endpointSpec{ep("2001:2:0:2::1", "node-b")})
	b, res := build(t, opts, objects{services: []*v1.Service{hijack}, slices: []*discoveryv1.EndpointSlice{slice, slice6}, node: node})

	runFlows(t, res.Snapshot, []flow{
		{name: "options node IP stays with the host", src: externalClnt, dst: testNodeIP, port: 22, verdict: none},
		{name: "Node InternalIP stays with the host", src: externalClnt, dst: "198.18.0.11", port: 22, verdict: none},
		{name: "Node ExternalIP stays with the host", src: externalClnt, dst: "198.18.0.12", port: 22, verdict: none},
		{name: "IPv6 node IP stays with the host", src: externalClnt6, dst: testNodeIP6, port: 22, verdict: none},
		{name: "other externalIP served", src: externalClnt, dst: "198.18.201.1", port: 22, output: "198.19.2.1:8080", masq: true},
		{name: "other LB IP served", src: externalClnt, dst: "198.18.200.1", port: 22, output: "198.19.2.1:8080", masq: true},
		{name: "clusterIP served", src: localPod, dst: "198.18.100.1", port: 22, output: "198.19.2.1:8080"},
	})
	want := []string{
		"Service evil/ssh: spec.externalIPs[0]: node address refused: 198.18.0.10 is an address of this node",
		"Service evil/ssh: spec.externalIPs[2]: node address refused: 198.18.0.12 is an address of this node",
		"Service evil/ssh: status.loadBalancer.ingress[0].ip: node address refused: 198.18.0.11 is an address of this node",
		"Service evil/ssh: status.loadBalancer.ingress[1].ip: node address refused: 2001:2::10 is an address of this node",
	}
	got := errorsWith(res.NewErrors, ErrNodeAddress)
	if len(got) != len(want) {
		t.Fatalf("Build node-address errors = %q, want %d: %q", got, len(want), want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("Build error %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
	if res.RefusedNodeAddress != 4 {
		t.Errorf("RefusedNodeAddress = %d, want 4", res.RefusedNodeAddress)
	}

	// An endpoint change rebuilds the Service: the refusal stays and is
	// counted, but not logged again.
	b.SetEndpointSlice("evil", "ssh-a", makeSlice("evil", "ssh-a", "ssh", []endpointSpec{ep("198.19.2.2", "node-b")}))
	res = b.Build()
	if got := errorsWith(res.NewErrors, ErrNodeAddress); len(got) != 0 || res.RefusedNodeAddress != 4 {
		t.Errorf("after an endpoint change: new node-address errors %q, refused %d, want none and 4", got, res.RefusedNodeAddress)
	}
	// The node loses an address: that one becomes a frontend.
	node2 := node.DeepCopy()
	node2.Status.Addresses = node2.Status.Addresses[:1]
	b.SetNode(node2)
	res = b.Build()
	if d := res.Snapshot.Classify(netip.MustParseAddr(externalClnt), netip.MustParseAddr("198.18.0.12"), 22, nat.ProtoTCP); d.Verdict != snapshot.Forward {
		t.Errorf("after the node dropped 198.18.0.12: Classify = %s, want forward", d.Verdict)
	}
	if res.RefusedNodeAddress != 3 {
		t.Errorf("after the node dropped an address: RefusedNodeAddress = %d, want 3", res.RefusedNodeAddress)
	}
}

// TestFrontendConflictOlderWins: when two Services claim one frontend, the
// older (creationTimestamp, then UID) keeps it whatever their names; only
// Services of the same or unknown age fall back to namespace/name order.
func TestFrontendConflictOlderWins(t *testing.T) {
	const shared = "198.18.201.1"
	tests := []struct {
		name       string
		a, z       []func(*v1.Service) // "ns/a-svc" sorts first by name
		winner     string              // namespace of the Service that keeps it
		field      string
		dst        string
		port       uint16
		errPartWhy string
	}{
		{name: "externalIP: older z keeps it", a: []func(*v1.Service){created(10), externalIPs(shared)}, z: []func(*v1.Service){created(0), externalIPs(shared)},
			winner: "z", field: "Service a/svc: spec.externalIPs: conflict: externalIP 198.18.201.1:80/TCP is kept by Service z/svc", dst: shared, port: 80, errPartWhy: "(older)"},
		{name: "externalIP: older a keeps it", a: []func(*v1.Service){created(0), externalIPs(shared)}, z: []func(*v1.Service){created(10), externalIPs(shared)},
			winner: "a", field: "Service z/svc: spec.externalIPs: conflict", dst: shared, port: 80, errPartWhy: "(older)"},
		{name: "LB IP: older z keeps it", a: []func(*v1.Service){created(10), loadBalancer(0, shared)}, z: []func(*v1.Service){created(0), loadBalancer(0, shared)},
			winner: "z", field: "Service a/svc: status.loadBalancer.ingress: conflict: LoadBalancer IP 198.18.201.1:80/TCP", dst: shared, port: 80, errPartWhy: "(older)"},
		{name: "externalIP on another's LB IP", a: []func(*v1.Service){created(10), externalIPs(shared)}, z: []func(*v1.Service){created(0), loadBalancer(0, shared)},
			winner: "z", field: "Service a/svc: spec.externalIPs: conflict", dst: shared, port: 80, errPartWhy: "(older)"},
		{name: "same second: lower UID keeps it", a: []func(*v1.Service){created(0), uid("bbbb"), externalIPs(shared)}, z: []func(*v1.Service){created(0), uid("aaaa"), externalIPs(shared)},
			winner: "z", field: "Service a/svc: spec.externalIPs: conflict", dst: shared, port: 80, errPartWhy: "(same creationTimestamp, first by UID)"},
		{name: "unknown age is younger than any known age", a: []func(*v1.Service){externalIPs(shared)}, z: []func(*v1.Service){created(1000), externalIPs(shared)},
			winner: "z", field: "Service a/svc: spec.externalIPs: conflict", dst: shared, port: 80, errPartWhy: "(older)"},
		{name: "both unknown: namespace/name", a: []func(*v1.Service){externalIPs(shared)}, z: []func(*v1.Service){externalIPs(shared)},
			winner: "a", field: "Service z/svc: spec.externalIPs: conflict", dst: shared, port: 80, errPartWhy: "(same or unknown age, first by namespace/name)"},
		{name: "NodePort: older z keeps it", a: []func(*v1.Service){created(10), nodePort(30080)}, z: []func(*v1.Service){created(0), nodePort(30080)},
			winner: "z", field: `Service a/svc: spec.ports[name="p80"].nodePort: conflict: nodePort 30080/TCP is kept by Service z/svc`, dst: testNodeIP, port: 30080, errPartWhy: "(older)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := makeService("a", "svc", append([]func(*v1.Service){clusterIPs("198.18.100.1")}, tc.a...)...)
			z := makeService("z", "svc", append([]func(*v1.Service){clusterIPs("198.18.100.2")}, tc.z...)...)
			objs := objects{
				services: []*v1.Service{a, z},
				slices: []*discoveryv1.EndpointSlice{
					makeSlice("a", "svc-1", "svc", []endpointSpec{ep("198.19.2.1", "node-b")}),
					makeSlice("z", "svc-1", "svc", []endpointSpec{ep("198.19.2.26", "node-b")}),
				},
			}
			b, res := build(t, testOpts(), objs)
			epOf := map[string]string{"a": "198.19.2.1:8080", "z": "198.19.2.26:8080"}
			runFlows(t, res.Snapshot, []flow{
				{name: "shared frontend", src: externalClnt, dst: tc.dst, port: tc.port, output: epOf[tc.winner], masq: true},
				{name: "a's clusterIP", src: localPod, dst: "198.18.100.1", port: 80, output: epOf["a"]},
				{name: "z's clusterIP", src: localPod, dst: "198.18.100.2", port: 80, output: epOf["z"]},
			})
			got := errorsWith(res.NewErrors, ErrConflict)
			if len(got) != 1 || !strings.Contains(got[0], tc.field) || !strings.Contains(got[0], tc.errPartWhy) {
				t.Errorf("Build conflicts = %q, want one containing %q and %q", got, tc.field, tc.errPartWhy)
			}
			if res.Conflicts != 1 || res.Errors != 1 {
				t.Errorf("Conflicts, Errors = %d, %d, want 1, 1", res.Conflicts, res.Errors)
			}

			// A newer Service sorting first by name claims it too: nothing
			// moves, only its conflict is reported. (Against a winner of
			// unknown age, a Service with a timestamp is the older one.)
			newer := makeService("0-newer", "svc", clusterIPs("198.18.100.3"), created(5000), uid("0000"), externalIPs(shared), nodePort(30080))
			winner := map[string]*v1.Service{"a": a, "z": z}[tc.winner]
			if !winner.CreationTimestamp.IsZero() {
				b.SetService(newer.Namespace, newer.Name, newer)
				res = b.Build()
				runFlows(t, res.Snapshot, []flow{{name: "after a newer claimant", src: externalClnt, dst: tc.dst, port: tc.port, output: epOf[tc.winner], masq: true}})
				for _, err := range errorsWith(res.NewErrors, ErrConflict) {
					if !strings.HasPrefix(err, "Service 0-newer/svc:") {
						t.Errorf("after adding 0-newer/svc: new conflict %q, want only 0-newer/svc's", err)
					}
				}
			}
			// An endpoint change of the losing Service is incremental and
			// keeps the winner.
			loser := map[string]string{"a": "z", "z": "a"}[tc.winner]
			b.SetEndpointSlice(loser, "svc-1", makeSlice(loser, "svc-1", "svc", []endpointSpec{ep("198.19.2.99", "node-b")}))
			res = b.Build()
			if !res.Incremental {
				t.Errorf("endpoint change of the losing Service: Incremental = false, want true")
			}
			if len(res.NewErrors) != 0 {
				t.Errorf("endpoint change: NewErrors = %q, want none (conflicts reported once)", res.NewErrors)
			}
			runFlows(t, res.Snapshot, []flow{{name: "after the loser's endpoint change", src: externalClnt, dst: tc.dst, port: tc.port, output: epOf[tc.winner], masq: true}})
			// The winner goes: the next oldest takes over.
			b.SetService(tc.winner, "svc", nil)
			res = b.Build()
			next := loser
			if !winner.CreationTimestamp.IsZero() && compareAge(ageOf(map[string]*v1.Service{"a": a, "z": z}[loser]), ageOf(newer)) > 0 {
				next = newer.Namespace
			}
			sp, _ := res.Snapshot.Frontend(netip.MustParseAddr(tc.dst), tc.port, nat.ProtoTCP)
			if tc.port == 30080 {
				sp = res.Snapshot.NodePortFor(netip.MustParseAddr(tc.dst), tc.port, nat.ProtoTCP)
			}
			if sp < 0 || res.Snapshot.ServicePorts[sp].Namespace != next {
				t.Errorf("after deleting the winner: frontend owned by service port %d, want %s/svc's", sp, next)
			}
		})
	}
}

// TestControllerRefusedFrontendsMetric: the controller publishes the
// refusals as xdpgate_snapshot_refused_frontends{reason}.
func TestControllerRefusedFrontendsMetric(t *testing.T) {
	c, rec := runController(t)
	sink := c.Sink()
	sink.UpsertService(makeService("ns", "old", clusterIPs("198.18.100.1"), created(0), externalIPs("198.18.201.1")))
	sink.UpsertService(makeService("ns", "new", clusterIPs("198.18.100.2"), created(1), externalIPs("198.18.201.1", testNodeIP)))
	sink.Synced()
	rec.waitFor(t, "both services", func(s *snapshot.Snapshot) bool { return len(s.ServicePorts) == 2 })
	want := map[string]float64{reasonNodeAddress: 1, reasonConflict: 1}
	var got map[string]float64
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		got = gaugeValues(t, c, "xdpgate_snapshot_refused_frontends")
		if maps.Equal(got, want) {
			return
		}
	}
	t.Errorf("xdpgate_snapshot_refused_frontends = %v, want %v", got, want)
}
