package snapshot

import (
	"net/netip"
	"testing"

	"github.com/xdpgate/xdpgate/nat"
)

// TestNodePortDualStack: a dual-stack Service is one service port per
// family sharing one nodePort; each family's NodePort address must reach
// its own family's service port, and the pair is not a conflict.
func TestNodePortDualStack(t *testing.T) {
	node6 := netip.MustParseAddr("2001:2::2")
	v4 := makePort(1, "ds", func(sp *ServicePort) { sp.NodePort = 30100; sp.LoadBalancerIPs = nil; sp.ExternalIPs = nil })
	v6 := makePort(2, "ds", func(sp *ServicePort) {
		sp.NodePort = 30100
		sp.ClusterIPs = []netip.Addr{netip.MustParseAddr("2001:2:0:100::1")}
		sp.LoadBalancerIPs, sp.ExternalIPs = nil, nil
		sp.Endpoints = []Endpoint{{ID: 201, Addr: netip.MustParseAddr("2001:2:0:1::1"), Port: 8080, Ready: true, Serving: true}}
		sp.Cluster, sp.Local = []int32{0}, nil
	})
	s := build(t, Snapshot{NodePortAddrs: []netip.Addr{nodeIP, node6}, ServicePorts: []ServicePort{v4, v6}})
	tests := []struct {
		dst  netip.Addr
		want int32
	}{
		{nodeIP, 0},
		{node6, 1},
	}
	for _, tc := range tests {
		if got := s.NodePortFor(tc.dst, 30100, nat.ProtoTCP); got != tc.want {
			t.Errorf("NodePortFor(%s, 30100) = %d, want %d", tc.dst, got, tc.want)
		}
		if got := s.Classify(netip.MustParseAddr("198.19.5.5"), tc.dst, 30100, nat.ProtoTCP).ServicePort; tc.dst.Is4() && got != tc.want {
			t.Errorf("Classify(-> %s:30100).ServicePort = %d, want %d", tc.dst, got, tc.want)
		}
		if got := s.Classify(netip.MustParseAddr("2001:2:0:50::1"), tc.dst, 30100, nat.ProtoTCP).ServicePort; tc.dst.Is6() && got != tc.want {
			t.Errorf("Classify(-> %s:30100).ServicePort = %d, want %d", tc.dst, got, tc.want)
		}
	}
	if got := s.NodePort(30100, nat.ProtoTCP); got != 0 {
		t.Errorf("NodePort(30100) = %d, want 0 (the IPv4 one)", got)
	}
}
