package control

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/xdpgate/xdpgate/snapshot"
)

// render describes a snapshot without its IDs: per service port, its
// frontends, flags and chains, and every endpoint lookup by ID resolving to
// the right endpoint.
func render(t *testing.T, s *snapshot.Snapshot) string {
	t.Helper()
	var b strings.Builder
	n := 0
	for i := range s.ServicePorts {
		sp := &s.ServicePorts[i]
		fmt.Fprintf(&b, "%s v%v ext%v np=%d has=%v aff=%d:", sp.Key(), sp.ClusterIPs, sp.ExternalIPs, sp.NodePort, sp.HasEndpoints, sp.AffinitySeconds)
		for j, e := range sp.Endpoints {
			fmt.Fprintf(&b, " %s/%v%v%v", e.AddrPort(), e.Ready, e.InCluster, e.InLocal)
			got, spi, ok := s.Endpoint(e.ID)
			if !ok || spi != int32(i) || got != &sp.Endpoints[j] {
				t.Fatalf("Endpoint(%d) of %s does not resolve to itself", e.ID, sp.Key())
			}
			n++
		}
		fmt.Fprintf(&b, " c=%v l=%v cm=%d lm=%d\n", sp.Cluster, sp.Local, len(sp.ClusterMaglev), len(sp.LocalMaglev))
	}
	if n != s.NumEndpoints() {
		t.Fatalf("NumEndpoints = %d, want %d", s.NumEndpoints(), n)
	}
	return b.String()
}

// TestIncrementalMatchesFull applies random changes to one Builder (mostly
// incremental builds) and compares every result with a fresh Builder that
// builds the same objects from scratch.
func TestIncrementalMatchesFull(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	svcs := map[string]*v1.Service{}
	sls := map[string]*discoveryv1.EndpointSlice{}
	b, err := NewBuilder(testOpts())
	if err != nil {
		t.Fatal(err)
	}
	incremental := 0
	for step := 0; step < 300; step++ {
		i := r.IntN(12)
		name := fmt.Sprintf("svc%d", i)
		switch r.IntN(10) {
		case 0: // service change (sometimes frontends)
			mods := []func(*v1.Service){clusterIPs(fmt.Sprintf("198.18.100.%d", i))}
			if r.IntN(2) == 0 {
				mods = append(mods, nodePort(int32(30000+i)))
			}
			if r.IntN(2) == 0 {
				mods = append(mods, clientIPAffinity(int32(1+r.IntN(100))))
			}
			if r.IntN(2) == 0 { // contested by age
				mods = append(mods, externalIPs("198.18.201.1"), created(r.IntN(3)))
			}
			svcs[name] = makeService("ns", name, mods...)
			b.SetService("ns", name, svcs[name])
		case 1:
			delete(svcs, name)
			b.SetService("ns", name, nil)
		default: // slice change
			sn := fmt.Sprintf("%s-%d", name, r.IntN(2))
			var eps []endpointSpec
			for j := 0; j < r.IntN(6); j++ {
				e := ep(fmt.Sprintf("198.19.%d.%d", i, r.IntN(8)), []string{testNode, "node-b"}[r.IntN(2)])
				switch r.IntN(4) {
				case 0:
					e = e.notReady()
				case 1:
					e = e.servingTerminating()
				}
				eps = append(eps, e)
			}
			sls[sn] = makeSlice("ns", sn, name, eps)
			b.SetEndpointSlice("ns", sn, sls[sn])
		}
		res := b.Build()
		if res.Incremental {
			incremental++
		}
		fresh, err := NewBuilder(testOpts())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range svcs {
			fresh.SetService(s.Namespace, s.Name, s)
		}
		for _, s := range sls {
			fresh.SetEndpointSlice(s.Namespace, s.Name, s)
		}
		want := fresh.Build()
		if got, w := render(t, res.Snapshot), render(t, want.Snapshot); got != w {
			t.Fatalf("step %d (incremental %v): snapshot\n%s\nwant\n%s", step, res.Incremental, got, w)
		}
		if res.Errors != want.Errors {
			t.Fatalf("step %d: Errors = %d, want %d", step, res.Errors, want.Errors)
		}
		gotHC, wantHC := fmt.Sprint(res.HealthChecks), fmt.Sprint(want.HealthChecks)
		if gotHC != wantHC {
			t.Fatalf("step %d: HealthChecks = %s, want %s", step, gotHC, wantHC)
		}
	}
	if incremental < 100 {
		t.Errorf("incremental builds = %d of 300, want most slice changes incremental", incremental)
	}
}
