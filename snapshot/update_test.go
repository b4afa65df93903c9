package snapshot

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdpgate/xdpgate/nat"
)

// randomPort returns service port number id with n random endpoints whose
// IDs come from *next (monotonic, as the control plane allocates them).
func randomPort(r *rand.Rand, id uint32, n int, next *uint32) ServicePort {
	sp := ServicePort{
		ID: id, Namespace: "ns", Name: string(rune('a' + id)), PortName: "p", Protocol: nat.ProtoTCP, Port: 80,
		NodePort:   uint16(30000 + id),
		ClusterIPs: []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 100, byte(id)})},
	}
	for j := 0; j < n; j++ {
		*next++
		sp.Endpoints = append(sp.Endpoints, Endpoint{ID: *next, Addr: netip.AddrFrom4([4]byte{198, 19, byte(id), byte(j)}), Port: 8080,
			Local: r.IntN(2) == 0, Ready: true, Serving: true})
		if r.IntN(4) != 0 {
			sp.Cluster = append(sp.Cluster, int32(j))
		}
		if sp.Endpoints[j].Local {
			sp.Local = append(sp.Local, int32(j))
		}
	}
	sp.HasEndpoints = len(sp.Cluster) > 0
	return sp
}

// TestUpdateMatchesNew compares Update against New (the oracle) over
// random replacements: every endpoint lookup, Usable and Classify agree, and
// the previous snapshot is left untouched.
func TestUpdateMatchesNew(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	var next uint32 = 1000 // spans several index shards
	var ports []ServicePort
	for id := uint32(1); id <= 20; id++ {
		ports = append(ports, randomPort(r, id, r.IntN(40), &next))
	}
	cur := build(t, Snapshot{ServicePorts: ports})
	for round := 0; round < 50; round++ {
		prev := cur
		prevIDs := map[uint32]int32{}
		for i := range prev.ServicePorts {
			for _, e := range prev.ServicePorts[i].Endpoints {
				prevIDs[e.ID] = int32(i)
			}
		}
		replace := map[int32]ServicePort{}
		for k := 0; k < 1+r.IntN(3); k++ {
			i := int32(r.IntN(len(ports)))
			sp := randomPort(r, ports[i].ID, r.IntN(40), &next)
			if r.IntN(3) == 0 && len(ports[i].Endpoints) > 0 { // keep some old endpoints
				sp.Endpoints = append(sp.Endpoints, ports[i].Endpoints[0])
				sp.Endpoints[len(sp.Endpoints)-1].InCluster = false
			}
			replace[i] = sp
			ports[i] = sp
		}
		got, errs, err := prev.Update(uint64(round+1), replace)
		if err != nil || len(errs) != 0 {
			t.Fatalf("round %d: Update = %v, %v", round, errs, err)
		}
		want := build(t, Snapshot{ServicePorts: ports})
		if got.NumEndpoints() != want.NumEndpoints() {
			t.Fatalf("round %d: NumEndpoints = %d, want %d", round, got.NumEndpoints(), want.NumEndpoints())
		}
		for id := uint32(1); id <= next; id++ {
			ge, gsp, gok := got.Endpoint(id)
			we, wsp, wok := want.Endpoint(id)
			if gok != wok || gsp != wsp || (gok && *ge != *we) {
				t.Fatalf("round %d: Endpoint(%d) = %v %d %v, want %v %d %v", round, id, ge, gsp, gok, we, wsp, wok)
			}
			for _, local := range []bool{false, true} {
				d := Decision{ServicePort: wsp, Local: local}
				_, gu := got.Usable(d, id)
				_, wu := want.Usable(d, id)
				if gu != wu {
					t.Fatalf("round %d: Usable(%d, local=%v) = %v, want %v", round, id, local, gu, wu)
				}
			}
		}
		for i := range ports {
			dst := ports[i].ClusterIPs[0]
			if g, w := got.Classify(client, dst, 80, nat.ProtoTCP), want.Classify(client, dst, 80, nat.ProtoTCP); g != w {
				t.Fatalf("round %d: Classify(%s) = %+v, want %+v", round, dst, g, w)
			}
		}
		// The previous snapshot still resolves its own endpoints.
		for id, spi := range prevIDs {
			if _, sp, ok := prev.Endpoint(id); !ok || sp != spi {
				t.Fatalf("round %d: previous snapshot lost endpoint %d", round, id)
			}
		}
		cur = got
	}
}

func TestUpdateRejectsFrontendChanges(t *testing.T) {
	s := build(t, Snapshot{ServicePorts: []ServicePort{makePort(1, "a", nil)}})
	tests := []struct {
		name   string
		i      int32
		mutate func(*ServicePort)
	}{
		{"index out of range", 5, func(*ServicePort) {}},
		{"ID", 0, func(sp *ServicePort) { sp.ID = 9 }},
		{"port", 0, func(sp *ServicePort) { sp.Port = 81 }},
		{"nodePort", 0, func(sp *ServicePort) { sp.NodePort = 31111 }},
		{"clusterIP", 0, func(sp *ServicePort) { sp.ClusterIPs = []netip.Addr{netip.MustParseAddr("198.18.100.9")} }},
		{"LB IP", 0, func(sp *ServicePort) { sp.LoadBalancerIPs = nil }},
	}
	for _, tc := range tests {
		sp := makePort(1, "a", tc.mutate)
		if got, _, err := s.Update(2, map[int32]ServicePort{tc.i: sp}); !errors.Is(err, ErrNotIncremental) || got != nil {
			t.Errorf("Update(%s changed) = %v, %v; want nil, ErrNotIncremental", tc.name, got, err)
		}
	}
}
