package snapshot

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/xdpgate/xdpgate/maglev"
	"github.com/xdpgate/xdpgate/nat"
)

var (
	vip     = netip.MustParseAddr("198.18.100.1")
	lbIP    = netip.MustParseAddr("198.18.200.1")
	extIP   = netip.MustParseAddr("198.18.201.1")
	nodeIP  = netip.MustParseAddr("198.18.0.2")
	client  = netip.MustParseAddr("198.19.5.5")
	podIP   = netip.MustParseAddr("198.18.64.9")
	podCIDR = netip.MustParsePrefix("198.18.64.0/18")
)

// makePort returns a service port with one local and one remote endpoint,
// both usable in the cluster chain and the local one in the local chain,
// after mutate has run.
func makePort(id uint32, name string, mutate func(*ServicePort)) ServicePort {
	sp := ServicePort{
		ID: id, Namespace: "ns", Name: name, PortName: "http", Protocol: nat.ProtoTCP, Port: 80,
		NodePort:        30000 + uint16(id),
		ClusterIPs:      []netip.Addr{vip.Next().Next().Prev().Prev()},
		LoadBalancerIPs: []netip.Addr{lbIP},
		ExternalIPs:     []netip.Addr{extIP},
		Endpoints: []Endpoint{
			{ID: id*100 + 1, Addr: netip.MustParseAddr("198.18.64.10"), Port: 8080, Local: true, Ready: true, Serving: true},
			{ID: id*100 + 2, Addr: netip.MustParseAddr("198.18.65.10"), Port: 8080, Ready: true, Serving: true},
		},
		Cluster:      []int32{0, 1},
		Local:        []int32{0},
		HasEndpoints: true,
	}
	if mutate != nil {
		mutate(&sp)
	}
	return sp
}

func build(t *testing.T, s Snapshot) *Snapshot {
	t.Helper()
	out, errs := New(s)
	for _, err := range errs {
		t.Errorf("New: %v", err)
	}
	return out
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name     string
		snap     Snapshot
		src, dst netip.Addr
		port     uint16
		want     Decision
	}{
		{"not a service", Snapshot{ServicePorts: []ServicePort{makePort(1, "a", nil)}}, client, nodeIP, 22,
			Decision{ServicePort: -1}},
		{"clusterIP, no detector: no masquerade", Snapshot{ServicePorts: []ServicePort{makePort(1, "a", nil)}}, client, vip, 80,
			Decision{Verdict: Forward, Kind: KindClusterIP}},
		{"clusterIP from outside the cluster CIDR: masquerade", Snapshot{ClusterCIDRs: []netip.Prefix{podCIDR}, ServicePorts: []ServicePort{makePort(1, "a", nil)}}, client, vip, 80,
			Decision{Verdict: Forward, Kind: KindClusterIP, Masquerade: true}},
		{"clusterIP from a pod: no masquerade", Snapshot{ClusterCIDRs: []netip.Prefix{podCIDR}, ServicePorts: []ServicePort{makePort(1, "a", nil)}}, podIP, vip, 80,
			Decision{Verdict: Forward, Kind: KindClusterIP}},
		{"clusterIP masqueradeAll", Snapshot{MasqueradeAll: true, ServicePorts: []ServicePort{makePort(1, "a", nil)}}, podIP, vip, 80,
			Decision{Verdict: Forward, Kind: KindClusterIP, Masquerade: true}},
		{"clusterIP ITP Local", Snapshot{ServicePorts: []ServicePort{makePort(1, "a", func(sp *ServicePort) { sp.InternalPolicyLocal = true })}}, client, vip, 80,
			Decision{Verdict: Forward, Kind: KindClusterIP, Local: true}},
		{"clusterIP ITP Local, no local endpoints: drop", Snapshot{ServicePorts: []ServicePort{makePort(1, "a", func(sp *ServicePort) { sp.InternalPolicyLocal = true; sp.Local = nil })}}, client, vip, 80,
			Decision{Verdict: Drop, Cause: CauseNoLocalEndpoints, Kind: KindClusterIP, Local: true}},
		{"no endpoints: reject", Snapshot{ServicePorts: []ServicePort{makePort(1, "a", func(sp *ServicePort) { sp.HasEndpoints = false; sp.Cluster, sp.Local = nil, nil })}}, client, vip, 80,
			Decision{Verdict: Reject, Cause: CauseNoEndpoints, Kind: KindClusterIP}},
		{"LB IP, ETP Cluster: masquerade", Snapshot{ServicePorts: []ServicePort{makePort(1, "a", nil)}}, client, lbIP, 80,
			Decision{Verdict: Forward, Kind: KindLoadBalancerIP, Masquerade: true}},
		{"externalIP, ETP Local: local chain, client kept", Snapshot{ServicePorts: []ServicePort{makePort(1, "a", func(sp *ServicePort) { sp.ExternalPolicyLocal = true })}}, client, extIP, 80,
			Decision{Verdict: Forward, Kind: KindExternalIP, Local: true}},
		{"LB IP, ETP Local, no local endpoints: drop", Snapshot{ServicePorts: []ServicePort{makePort(1, "a", func(sp *ServicePort) { sp.ExternalPolicyLocal = true; sp.Local = nil })}}, client, lbIP, 80,
			Decision{Verdict: Drop, Cause: CauseNoLocalEndpoints, Kind: KindLoadBalancerIP, Local: true}},
		{"LB IP, ETP Local, from a pod: short-circuit to cluster", Snapshot{ClusterCIDRs: []netip.Prefix{podCIDR}, ServicePorts: []ServicePort{makePort(1, "a", func(sp *ServicePort) { sp.ExternalPolicyLocal = true; sp.Local = nil })}}, podIP, lbIP, 80,
			Decision{Verdict: Forward, Kind: KindLoadBalancerIP}},
		{"NodePort on a NodePort address", Snapshot{NodePortAddrs: []netip.Addr{nodeIP}, ServicePorts: []ServicePort{makePort(1, "a", nil)}}, client, nodeIP, 30001,
			Decision{Verdict: Forward, Kind: KindNodePort, Masquerade: true}},
		{"NodePort on another address: not a service", Snapshot{NodePortAddrs: []netip.Addr{nodeIP}, ServicePorts: []ServicePort{makePort(1, "a", nil)}}, client, nodeIP.Next(), 30001,
			Decision{ServicePort: -1}},
		{"source range denies", Snapshot{ServicePorts: []ServicePort{makePort(1, "a", func(sp *ServicePort) { sp.SourceRanges = []netip.Prefix{netip.MustParsePrefix("198.19.9.0/24")} })}}, client, lbIP, 80,
			Decision{Verdict: Drop, Cause: CauseSourceRange, Kind: KindLoadBalancerIP}},
		{"source range admits", Snapshot{ServicePorts: []ServicePort{makePort(1, "a", func(sp *ServicePort) { sp.SourceRanges = []netip.Prefix{netip.MustParsePrefix("198.19.5.0/24")} })}}, client, lbIP, 80,
			Decision{Verdict: Forward, Kind: KindLoadBalancerIP, Masquerade: true}},
		{"source ranges never apply to NodePorts", Snapshot{NodePortAddrs: []netip.Addr{nodeIP}, ServicePorts: []ServicePort{makePort(1, "a", func(sp *ServicePort) { sp.SourceRanges = []netip.Prefix{netip.MustParsePrefix("198.19.9.0/24")} })}}, client, nodeIP, 30001,
			Decision{Verdict: Forward, Kind: KindNodePort, Masquerade: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := build(t, tc.snap)
			got := s.Classify(tc.src, tc.dst, tc.port, nat.ProtoTCP)
			if tc.want.Verdict != NotService {
				tc.want.ServicePort = 0
			}
			if got != tc.want {
				t.Errorf("Classify(%v, %v:%d) = %+v, want %+v", tc.src, tc.dst, tc.port, got, tc.want)
			}
		})
	}
}

func TestNewConflicts(t *testing.T) {
	a := makePort(1, "a", nil)
	b := makePort(2, "b", nil) // same VIP, LB IP and externalIP as a
	out, errs := New(Snapshot{ServicePorts: []ServicePort{a, b}})
	if len(errs) != 3 {
		t.Fatalf("New(conflicting) errors = %d (%v), want 3", len(errs), errs)
	}
	for _, err := range errs {
		if !strings.Contains(err.Error(), "ns/b:http/TCP") || !strings.Contains(err.Error(), "ns/a:http/TCP") {
			t.Errorf("error %q does not name both service ports", err)
		}
	}
	if sp, _ := out.Frontend(vip, 80, nat.ProtoTCP); sp != 0 {
		t.Errorf("Frontend(vip) = %d, want 0 (first claimant)", sp)
	}
	if sp := out.NodePort(30002, nat.ProtoTCP); sp != 1 {
		t.Errorf("NodePort(30002) = %d, want 1", sp)
	}
}

func TestPickAndUsable(t *testing.T) {
	s := build(t, Snapshot{ServicePorts: []ServicePort{makePort(1, "a", func(sp *ServicePort) {
		sp.ClusterMaglev = []uint16{1, 0, 1}
	})}})
	d := s.Classify(client, vip, 80, nat.ProtoTCP)
	for hash, want := range map[uint64]uint32{0: 102, 1: 101, 2: 102, 4: 101} {
		if ep := s.Pick(d, hash); ep == nil || ep.ID != want {
			t.Errorf("Pick(hash %d) = %v, want endpoint %d", hash, ep, want)
		}
	}
	if _, ok := s.Usable(d, 102); !ok {
		t.Errorf("Usable(cluster, 102) = false, want true")
	}
	d.Local = true
	if _, ok := s.Usable(d, 102); ok {
		t.Errorf("Usable(local, remote endpoint 102) = true, want false")
	}
	if _, ok := s.Usable(d, 999); ok {
		t.Errorf("Usable(unknown endpoint) = true, want false")
	}
}

func TestClassifyNoAllocs(t *testing.T) {
	s := build(t, Snapshot{NodePortAddrs: []netip.Addr{nodeIP}, ServicePorts: []ServicePort{makePort(1, "a", nil)}})
	allocs := testing.AllocsPerRun(1000, func() {
		d := s.Classify(client, nodeIP, 30001, nat.ProtoTCP)
		_ = s.Pick(d, 7)
	})
	if allocs != 0 {
		t.Errorf("Classify+Pick allocs = %v, want 0", allocs)
	}
}

// TestPickSession: the ClientIP choice is rendezvous hashing over the
// chain's endpoints by "ip:port" identity, on the decision's chain, after
// New and after Update, and nothing for service ports without affinity.
func TestPickSession(t *testing.T) {
	withAff := func(sp *ServicePort) {
		sp.AffinitySeconds = 10
		sp.Endpoints = append(sp.Endpoints, Endpoint{ID: sp.ID*100 + 3, Addr: netip.MustParseAddr("198.18.66.10"), Port: 8080, Ready: true, Serving: true})
		sp.Cluster = []int32{0, 1, 2}
	}
	s := build(t, Snapshot{ServicePorts: []ServicePort{makePort(1, "a", withAff), makePort(2, "b", func(sp *ServicePort) {
		sp.ClusterIPs, sp.LoadBalancerIPs, sp.ExternalIPs = []netip.Addr{netip.MustParseAddr("198.18.100.2")}, nil, nil
	})}})
	d := s.Classify(client, vip, 80, nat.ProtoTCP)
	sp := &s.ServicePorts[d.ServicePort]
	ids := []uint64{
		maglev.BackendID(sp.Endpoints[0].AddrPort()),
		maglev.BackendID(sp.Endpoints[1].AddrPort()),
		maglev.BackendID(sp.Endpoints[2].AddrPort()),
	}
	for h := range uint64(200) {
		h *= 0x9E3779B97F4A7C15
		want := sp.Endpoints[maglev.Rendezvous(ids, h)].ID
		if ep := s.PickSession(d, h); ep == nil || ep.ID != want {
			t.Fatalf("PickSession(%#x) = %v, want endpoint %d", h, ep, want)
		}
	}
	dl := d
	dl.Local = true
	if ep := s.PickSession(dl, 5); ep == nil || ep.ID != 101 {
		t.Errorf("PickSession(local chain) = %v, want endpoint 101", ep)
	}
	// Update keeps the keys right for a replaced port.
	rep := makePort(1, "a", withAff)
	rep.Cluster = []int32{2}
	u, errs, err := s.Update(2, map[int32]ServicePort{d.ServicePort: rep})
	if err != nil || len(errs) > 0 {
		t.Fatalf("Update: %v %v", err, errs)
	}
	if ep := u.PickSession(d, 5); ep == nil || ep.ID != 103 {
		t.Errorf("PickSession after Update = %v, want endpoint 103", ep)
	}
	other := s.Classify(client, netip.MustParseAddr("198.18.100.2"), 80, nat.ProtoTCP)
	if ep := s.PickSession(other, 5); ep != nil {
		t.Errorf("PickSession(service port without affinity) = %v, want nil", ep)
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = s.PickSession(d, 7) }); allocs != 0 {
		t.Errorf("PickSession allocs = %v, want 0", allocs)
	}
}
