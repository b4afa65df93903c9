package control

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/xdpgate/xdpgate/snapshot"
)

func epIDs(sp *snapshot.ServicePort) map[string]uint32 {
	m := make(map[string]uint32)
	for _, e := range sp.Endpoints {
		m[e.AddrPort().String()] = e.ID
	}
	return m
}

func TestStableIDs(t *testing.T) {
	b, err := NewBuilder(testOpts())
	if err != nil {
		t.Fatal(err)
	}
	svc := makeService("ns", "svc", clusterIPs("198.18.100.1", "2001:2:0:100::1"))
	other := makeService("ns", "other", clusterIPs("198.18.100.2"))
	b.SetService("ns", "svc", svc)
	b.SetService("ns", "other", other)
	three := makeSlice("ns", "s", "svc", []endpointSpec{ep("198.19.2.1", ""), ep("198.19.2.2", ""), ep("198.19.2.3", "")})
	b.SetEndpointSlice("ns", "s", three)
	s1 := b.Build().Snapshot
	v4, v6 := portOf(t, s1, "ns", "svc", false), portOf(t, s1, "ns", "svc", true)
	if v4.ID == v6.ID {
		t.Errorf("v4 and v6 service ports share ID %d, want distinct", v4.ID)
	}
	ids1 := epIDs(v4)
	table1 := v4.ClusterMaglev

	// An unrelated change keeps every ID and reuses the Maglev table.
	b.SetService("ns", "other", makeService("ns", "other", clusterIPs("198.18.100.2"), clientIPAffinity(30)))
	s2 := b.Build().Snapshot
	v4b := portOf(t, s2, "ns", "svc", false)
	if v4b.ID != v4.ID {
		t.Errorf("service port ID after unrelated change = %d, want %d", v4b.ID, v4.ID)
	}
	for k, id := range epIDs(v4b) {
		if ids1[k] != id {
			t.Errorf("endpoint %s ID = %d, want %d", k, id, ids1[k])
		}
	}
	if &v4b.ClusterMaglev[0] != &table1[0] {
		t.Errorf("Maglev table rebuilt for an unchanged chain, want reused")
	}

	// Endpoint 2 leaves, then returns: it gets a new ID, never its old one.
	b.SetEndpointSlice("ns", "s", makeSlice("ns", "s", "svc", []endpointSpec{ep("198.19.2.1", ""), ep("198.19.2.3", "")}))
	s3 := b.Build().Snapshot
	ids3 := epIDs(portOf(t, s3, "ns", "svc", false))
	if ids3["198.19.2.1:8080"] != ids1["198.19.2.1:8080"] || ids3["198.19.2.3:8080"] != ids1["198.19.2.3:8080"] {
		t.Errorf("remaining endpoint IDs changed: %v, want as in %v", ids3, ids1)
	}
	if _, _, ok := s3.Endpoint(ids1["198.19.2.2:8080"]); ok {
		t.Errorf("Endpoint(departed id) found, want gone")
	}
	b.SetEndpointSlice("ns", "s", three)
	s4 := b.Build().Snapshot
	ids4 := epIDs(portOf(t, s4, "ns", "svc", false))
	if ids4["198.19.2.2:8080"] == ids1["198.19.2.2:8080"] {
		t.Errorf("returning endpoint reused ID %d, want a new one", ids1["198.19.2.2:8080"])
	}
	seen := map[uint32]bool{}
	for _, s := range []*snapshot.Snapshot{s1, s3, s4} {
		for _, sp := range s.ServicePorts {
			for _, e := range sp.Endpoints {
				seen[e.ID] = true
			}
		}
	}
	// Not-ready endpoints keep their ID (established flows stay valid).
	b.SetEndpointSlice("ns", "s", makeSlice("ns", "s", "svc", []endpointSpec{ep("198.19.2.1", "").notReady(), ep("198.19.2.2", ""), ep("198.19.2.3", "")}))
	s5 := b.Build().Snapshot
	if got := epIDs(portOf(t, s5, "ns", "svc", false))["198.19.2.1:8080"]; got != ids1["198.19.2.1:8080"] {
		t.Errorf("endpoint ID after becoming not ready = %d, want %d", got, ids1["198.19.2.1:8080"])
	}

	// Deleting and recreating the Service gives new service port IDs.
	b.SetService("ns", "svc", nil)
	if s := b.Build().Snapshot; hasPort(s, "ns", "svc") {
		t.Fatalf("deleted service still in snapshot")
	}
	b.SetService("ns", "svc", svc)
	s6 := b.Build().Snapshot
	if got := portOf(t, s6, "ns", "svc", false).ID; got == v4.ID || got == v6.ID {
		t.Errorf("recreated service port ID = %d, want a new one", got)
	}
	for _, e := range portOf(t, s6, "ns", "svc", false).Endpoints {
		if seen[e.ID] {
			t.Errorf("endpoint %s of the recreated service reuses ID %d", e.AddrPort(), e.ID)
		}
	}
	if g := s6.Generation; g != 7 {
		t.Errorf("Generation = %d, want 7 (seven builds)", g)
	}
}

func TestIDAllocatorWrap(t *testing.T) {
	a := newIDAllocator()
	a.nextEP = ^uint32(0) - 1 // next is the last ID
	k1 := epKey{1, netip.MustParseAddrPort("198.19.0.1:80")}
	k2 := epKey{1, netip.MustParseAddrPort("198.19.0.2:80")}
	k3 := epKey{1, netip.MustParseAddrPort("198.19.0.3:80")}
	if id := a.endpoint(k1); id != ^uint32(0) {
		t.Fatalf("endpoint(k1) = %d, want %d", id, ^uint32(0))
	}
	a.nextEP = 0
	a.epInUse[1] = struct{}{} // 1 in use: skipped
	if id := a.endpoint(k2); id != 2 {
		t.Errorf("endpoint(k2) after wrap = %d, want 2 (0 and in-use 1 skipped)", id)
	}
	if id := a.endpoint(k3); id != 3 {
		t.Errorf("endpoint(k3) = %d, want 3", id)
	}
}

// TestBuilderNeverPanics builds random, often invalid, objects: every build
// must return a snapshot without panicking.
func TestBuilderNeverPanics(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pick := func(s ...string) string { return s[r.IntN(len(s))] }
	ips := []string{"", "None", "198.18.100.1", "198.18.100.2", "2001:2:0:100::1", "::ffff:198.18.1.1", "garbage", "198.18.100.1%eth0", "1.2.3"}
	for iter := 0; iter < 300; iter++ {
		b, err := NewBuilder(testOpts())
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 8; i++ {
			svc := makeService("ns", pick("a", "b", "c"), func(s *v1.Service) {
				s.Spec.Type = v1.ServiceType(pick("ClusterIP", "NodePort", "LoadBalancer", "ExternalName", "Weird"))
				s.Spec.ClusterIP = pick(ips...)
				if r.IntN(2) == 0 {
					s.Spec.ClusterIPs = []string{pick(ips...), pick(ips...)}
				}
				s.Spec.ExternalIPs = []string{pick(ips...)}
				s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicy(pick("Local", "Cluster", ""))
				s.Spec.HealthCheckNodePort = int32(r.IntN(70000) - 100)
				s.Spec.LoadBalancerSourceRanges = []string{pick("198.18.0.0/16", "x", "0.0.0.0/0", "2001:2::/48", "")}
				s.Spec.SessionAffinity = v1.ServiceAffinity(pick("ClientIP", "None", ""))
				if r.IntN(2) == 0 {
					s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{}
				}
				s.Spec.Ports[0].Port = int32(r.IntN(70000) - 100)
				s.Spec.Ports[0].NodePort = int32(r.IntN(70000) - 100)
				s.Spec.Ports[0].Protocol = v1.Protocol(pick("TCP", "UDP", "SCTP", "", "ICMP"))
				s.Spec.Ports = append(s.Spec.Ports, s.Spec.Ports[0])
				s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: pick(ips...)}, {Hostname: "x"}}
			})
			b.SetService(svc.Namespace, svc.Name, svc)
			sl := makeSlice("ns", pick("s1", "s2", "s3"), pick("a", "b", "c", ""), []endpointSpec{ep(pick(ips...), pick("", testNode)), ep(pick(ips...), "n")}, func(s *discoveryv1.EndpointSlice) {
				s.AddressType = discoveryv1.AddressType(pick("IPv4", "IPv6", "FQDN", ""))
				if r.IntN(3) == 0 {
					s.Ports = append(s.Ports, discoveryv1.EndpointPort{})
				}
				if r.IntN(3) == 0 {
					s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{})
				}
			})
			if r.IntN(4) == 0 {
				b.SetEndpointSlice(sl.Namespace, sl.Name, nil)
			} else {
				b.SetEndpointSlice(sl.Namespace, sl.Name, sl)
			}
			if r.IntN(5) == 0 {
				b.SetNode(&v1.Node{Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: pick(ips...)}}}})
			}
			if res := b.Build(); res.Snapshot == nil {
				t.Fatalf("Build returned a nil snapshot")
			}
		}
	}
}

// TestIDJournalRestart: a Builder with an ID journal, then a new Builder
// (the next process) replaying it, see the same service port and endpoint
// IDs for the same objects, including an endpoint that left and came back
// (its second ID); what left while no Builder ran is released, a torn last
// line is ignored, and new IDs never repeat old ones.
func TestIDJournalRestart(t *testing.T) {
	opts := testOpts()
	opts.IDFile = filepath.Join(t.TempDir(), "ids")
	a, err := NewBuilder(opts)
	if err != nil {
		t.Fatal(err)
	}
	svc := makeService("ns", "svc", clusterIPs("198.18.100.1", "2001:2:0:100::1"))
	gone := makeService("ns", "gone", clusterIPs("198.18.100.2"))
	three := makeSlice("ns", "s", "svc", []endpointSpec{ep("198.19.2.1", ""), ep("198.19.2.2", ""), ep("198.19.2.3", "")})
	a.SetService("ns", "svc", svc)
	a.SetService("ns", "gone", gone)
	a.SetEndpointSlice("ns", "s", three)
	a.SetEndpointSlice("ns", "g", makeSlice("ns", "g", "gone", []endpointSpec{ep("198.19.3.1", "")}))
	first := a.Build().Snapshot
	a.SetEndpointSlice("ns", "s", makeSlice("ns", "s", "svc", []endpointSpec{ep("198.19.2.1", ""), ep("198.19.2.3", "")}))
	a.Build()
	a.SetEndpointSlice("ns", "s", three)
	before := a.Build().Snapshot
	ids := epIDs(portOf(t, before, "ns", "svc", false))
	if ids["198.19.2.2:8080"] == epIDs(portOf(t, first, "ns", "svc", false))["198.19.2.2:8080"] {
		t.Fatal("returning endpoint kept its ID within one process")
	}
	goneEP := portOf(t, before, "ns", "gone", false).Endpoints[0].ID
	// A crash while writing: half a record at the end.
	f, err := os.OpenFile(opts.IDFile, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`E 999 1 198.19.`)
	f.Close()

	// The next process: "gone" left while no xdpgate ran.
	b, err := NewBuilder(opts)
	if err != nil {
		t.Fatal(err)
	}
	b.SetService("ns", "svc", svc)
	b.SetEndpointSlice("ns", "s", three)
	after := b.Build().Snapshot
	for _, v6 := range []bool{false, true} {
		p, q := portOf(t, before, "ns", "svc", v6), portOf(t, after, "ns", "svc", v6)
		if p.ID != q.ID {
			t.Errorf("service port ID after restart = %d, want %d", q.ID, p.ID)
		}
		want, got := epIDs(p), epIDs(q)
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("endpoint %s ID after restart = %d, want %d", k, got[k], want[k])
			}
		}
	}
	// "gone" comes back: new IDs, never the old ones or any in use.
	b.SetService("ns", "gone", gone)
	b.SetEndpointSlice("ns", "g", makeSlice("ns", "g", "gone", []endpointSpec{ep("198.19.3.1", "")}))
	again := b.Build().Snapshot
	if id := portOf(t, again, "ns", "gone", false).Endpoints[0].ID; id == goneEP || id == 999 || id <= ids["198.19.2.2:8080"] {
		t.Errorf("endpoint that left while down, back: ID %d, want a new one (old %d)", id, goneEP)
	}
	// A third process replays the second's journal (compacted at open).
	c, err := NewBuilder(opts)
	if err != nil {
		t.Fatal(err)
	}
	c.SetService("ns", "svc", svc)
	c.SetService("ns", "gone", gone)
	c.SetEndpointSlice("ns", "s", three)
	c.SetEndpointSlice("ns", "g", makeSlice("ns", "g", "gone", []endpointSpec{ep("198.19.3.1", "")}))
	third := c.Build().Snapshot
	for _, name := range []string{"svc", "gone"} {
		p, q := portOf(t, again, "ns", name, false), portOf(t, third, "ns", name, false)
		if p.ID != q.ID || !reflect.DeepEqual(epIDs(p), epIDs(q)) {
			t.Errorf("%s after a second restart: port %d endpoints %v, want %d %v", name, q.ID, epIDs(q), p.ID, epIDs(p))
		}
	}
}
