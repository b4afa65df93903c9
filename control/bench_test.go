package control

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

// scaleObjects returns nSvc Services with two ports each and one
// EndpointSlice of nEp endpoints per Service (spread over 10 nodes, one of
// them this node). Endpoint addresses come from 198.19.0.0/16 and repeat
// across Services after 64,000 (a pod backing several Services is normal;
// endpoint identity is per service port).
func scaleObjects(nSvc, nEp int) ([]*v1.Service, []*discoveryv1.EndpointSlice) {
	svcs := make([]*v1.Service, 0, nSvc)
	sls := make([]*discoveryv1.EndpointSlice, 0, nSvc)
	for i := 0; i < nSvc; i++ {
		name := fmt.Sprintf("svc-%05d", i)
		svcs = append(svcs, makeService("bench", name,
			clusterIPs(fmt.Sprintf("198.18.%d.%d", 128+i/250, 1+i%250)),
			func(s *v1.Service) {
				s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: "p443", Port: 443, Protocol: v1.ProtocolTCP})
			}))
		sls = append(sls, benchSlice(name, i, nEp, 0))
	}
	return svcs, sls
}

// benchSlice is the slice of service i; variant shifts the addresses.
func benchSlice(name string, i, nEp, variant int) *discoveryv1.EndpointSlice {
	var eps []endpointSpec
	for j := 0; j < nEp; j++ {
		n := (i*nEp + j + variant) % 64000 // addresses repeat across Services beyond 64,000
		node := fmt.Sprintf("node-%d", j%10)
		if j%10 == 0 {
			node = testNode
		}
		eps = append(eps, ep(fmt.Sprintf("198.19.%d.%d", n/250, 1+n%250), node))
	}
	return makeSlice("bench", name+"-1", name, eps, func(s *discoveryv1.EndpointSlice) {
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr.To("p443"), Port: ptr.To[int32](8443), Protocol: ptr.To(v1.ProtocolTCP)})
	})
}

func newScaleBuilder(b *testing.B, svcs []*v1.Service, sls []*discoveryv1.EndpointSlice) *Builder {
	bl, err := NewBuilder(testOpts())
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range svcs {
		bl.SetService(s.Namespace, s.Name, s)
	}
	for _, s := range sls {
		bl.SetEndpointSlice(s.Namespace, s.Name, s)
	}
	bl.SetNode(flowNode())
	return bl
}

// BenchmarkFullBuild: 10,000 Services x 2 ports x 10 endpoints built from
// scratch (new Builder: every Maglev table computed).
func BenchmarkFullBuild(b *testing.B) {
	svcs, sls := scaleObjects(10000, 10)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		bl := newScaleBuilder(b, svcs, sls)
		b.StartTimer()
		res := bl.Build()
		if len(res.Snapshot.ServicePorts) != 20000 || res.Snapshot.NumEndpoints() != 200000 || res.Errors != 0 {
			b.Fatalf("built %d ports, %d endpoints", len(res.Snapshot.ServicePorts), res.Snapshot.NumEndpoints())
		}
	}
}

// BenchmarkRebuildAll: the same after a node change (every Service
// recomputed) with warm ID and Maglev caches.
func BenchmarkRebuildAll(b *testing.B) {
	svcs, sls := scaleObjects(10000, 10)
	bl := newScaleBuilder(b, svcs, sls)
	bl.Build()
	b.ReportAllocs()
	for b.Loop() {
		bl.allDirty = true
		bl.Build()
	}
}

// BenchmarkIncrementalSliceChange: one EndpointSlice of the 10,000-Service
// state changes (one endpoint replaced), then Build.
func BenchmarkIncrementalSliceChange(b *testing.B) {
	svcs, sls := scaleObjects(10000, 10)
	bl := newScaleBuilder(b, svcs, sls)
	bl.Build()
	alt := []*discoveryv1.EndpointSlice{benchSlice("svc-05000", 5000, 10, 0), benchSlice("svc-05000", 5000, 10, 1)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		s := alt[i%2]
		bl.SetEndpointSlice(s.Namespace, s.Name, s)
		res := bl.Build()
		if res.Rebuilt != 1 {
			b.Fatalf("rebuilt %d services, want 1", res.Rebuilt)
		}
	}
}
