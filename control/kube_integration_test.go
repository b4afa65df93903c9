package control

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/xdpgate/xdpgate/internal/kubetest"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// webPort returns the IPv4 service port of ns/web, or nil.
func webPort(s *snapshot.Snapshot, ns string) *snapshot.ServicePort {
	for i := range s.ServicePorts {
		if sp := &s.ServicePorts[i]; sp.Namespace == ns && sp.Name == "web" {
			return sp
		}
	}
	return nil
}

// webEndpoints renders ns/web's endpoints ("ip:port" sorted, space
// separated), "absent" when the service is not in the snapshot.
func webEndpoints(s *snapshot.Snapshot, ns string) string {
	sp := webPort(s, ns)
	if sp == nil {
		return "absent"
	}
	var out []string
	for _, i := range sp.Cluster {
		out = append(out, sp.Endpoints[i].AddrPort().String())
	}
	slices.Sort(out)
	return fmt.Sprint(out)
}

func sliceWith(ns string, ips ...string) *discoveryv1.EndpointSlice {
	var eps []endpointSpec
	for _, ip := range ips {
		eps = append(eps, ep(ip, testNode))
	}
	s := makeSlice(ns, "web-1", "web", eps)
	s.TypeMeta = metav1.TypeMeta{}
	return s
}

func TestKubeIntegration(t *testing.T) {
	env := kubetest.Start(t)
	ctx := t.Context()
	cs := env.Client
	ns := fmt.Sprintf("xdpgate-it-%d", time.Now().UnixNano()%1e9)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, Labels: map[string]string{v1.LabelTopologyZone: "zone-a"}}}
	created, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: testNodeIP}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	c, err := New(Config{
		Build:       BuildOptions{NodeName: testNode, ClusterCIDRs: testOpts().ClusterCIDRs},
		HealthzAddr: Disabled, MetricsAddr: Disabled, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := newSnapRecorder()
	c.Subscribe(rec.publish)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx, &KubeSource{Client: cs, NodeName: testNode, Logger: discardLogger()}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	first := rec.waitFor(t, "after the caches synced", func(s *snapshot.Snapshot) bool { return true })
	if len(first.NodeIPs) == 0 {
		// The Node may arrive in a later build.
		rec.waitFor(t, "with the node address", func(s *snapshot.Snapshot) bool { return len(s.NodeIPs) == 1 })
	}

	svc := makeService(ns, "web", nodePort(0))
	svc.TypeMeta = metav1.TypeMeta{}
	svc, err = cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vip := svc.Spec.ClusterIP
	np := uint16(svc.Spec.Ports[0].NodePort)
	slice, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, sliceWith(ns, "198.19.1.1", "198.19.1.2"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := rec.waitFor(t, "with the created service", func(s *snapshot.Snapshot) bool {
		return webEndpoints(s, ns) == "[198.19.1.1:8080 198.19.1.2:8080]"
	})
	if got := classifyOut(s, localPod, vip, 80); got != "198.19.1.1:8080, 198.19.1.2:8080" {
		t.Errorf("clusterIP %s endpoints = %q", vip, got)
	}
	if got := classifyOut(s, externalClnt, testNodeIP, np); got != "198.19.1.1:8080, 198.19.1.2:8080" {
		t.Errorf("nodePort %d endpoints = %q", np, got)
	}

	update := func(ips ...string) {
		t.Helper()
		next := sliceWith(ns, ips...)
		next.ResourceVersion = slice.ResourceVersion
		var err error
		if slice, err = cs.DiscoveryV1().EndpointSlices(ns).Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Scale up, then to zero (reject), then back.
	update("198.19.1.1", "198.19.1.2", "198.19.1.3")
	rec.waitFor(t, "after scale up", func(s *snapshot.Snapshot) bool {
		return webEndpoints(s, ns) == "[198.19.1.1:8080 198.19.1.2:8080 198.19.1.3:8080]"
	})
	update()
	s = rec.waitFor(t, "after scale to zero", func(s *snapshot.Snapshot) bool { return webEndpoints(s, ns) == "[]" })
	if d := s.Classify(netip.MustParseAddr(localPod), netip.MustParseAddr(vip), 80, nat.ProtoTCP); d.Verdict != snapshot.Reject {
		t.Errorf("Classify(no endpoints) = %s, want reject", d.Verdict)
	}
	update("198.19.1.4")
	rec.waitFor(t, "after scale to one", func(s *snapshot.Snapshot) bool { return webEndpoints(s, ns) == "[198.19.1.4:8080]" })

	// The service-proxy-name label takes the service away and back.
	svc.Labels = map[string]string{LabelServiceProxyName: "foo-bar"}
	if svc, err = cs.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "without the labelled service", func(s *snapshot.Snapshot) bool { return webEndpoints(s, ns) == "absent" })
	svc.Labels = nil
	if _, err = cs.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "with the unlabelled service", func(s *snapshot.Snapshot) bool { return webEndpoints(s, ns) == "[198.19.1.4:8080]" })

	// Restart the API server: the last snapshot is kept, and the next change
	// still arrives.
	before := c.Current()
	env.StopAPIServer()
	if cur := c.Current(); cur != before && webEndpoints(cur, ns) != "[198.19.1.4:8080]" {
		t.Errorf("snapshot changed while the API server was down: %s", webEndpoints(cur, ns))
	}
	if err := env.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if cur := c.Current(); webEndpoints(cur, ns) != "[198.19.1.4:8080]" {
		t.Errorf("snapshot after the restart = %s, want the last state", webEndpoints(cur, ns))
	}
	// The client reconnects by itself; retry the write until the API
	// server accepts it.
	for attempt := 0; ; attempt++ {
		next := sliceWith(ns, "198.19.1.5")
		cur, err := cs.DiscoveryV1().EndpointSlices(ns).Get(ctx, "web-1", metav1.GetOptions{})
		if err == nil {
			next.ResourceVersion = cur.ResourceVersion
			if slice, err = cs.DiscoveryV1().EndpointSlices(ns).Update(ctx, next, metav1.UpdateOptions{}); err == nil {
				break
			}
		}
		if attempt > 100 {
			t.Fatalf("update after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rec.waitFor(t, "after the restart", func(s *snapshot.Snapshot) bool {
		if w := webEndpoints(s, ns); w == "absent" || w == "[]" {
			t.Errorf("generation %d lost the service after the restart: %s", s.Generation, w)
		}
		return webEndpoints(s, ns) == "[198.19.1.5:8080]"
	})

	t.Run("latency", func(t *testing.T) {
		if testing.Short() {
			t.Skip("200 sequential updates; skipped under -short")
		}
		// Back to back: each update follows the previous publish at once,
		// so the runner's MinSyncInterval (10 ms) bounds the latency.
		// Spaced: 25 ms between updates, so no update waits for the
		// interval; this is the API server + watch + build + publish path.
		slice = measureLatency(t, cs, rec, ns, slice, "back-to-back", 0, 0)
		slice = measureLatency(t, cs, rec, ns, slice, "spaced 25ms", 25*time.Millisecond, 1)
	})

	// Delete: gone.
	if err := cs.CoreV1().Services(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "without the deleted service", func(s *snapshot.Snapshot) bool { return webEndpoints(s, ns) == "absent" })
}

// measureLatency logs (never asserts) the time from an EndpointSlice Update
// call to the publish of a snapshot reflecting it, over 200 updates.
func measureLatency(t *testing.T, cs kubernetes.Interface, rec *snapRecorder, ns string, slice *discoveryv1.EndpointSlice,
	what string, gap time.Duration, block int) *discoveryv1.EndpointSlice {
	ctx := t.Context()
	const n = 200
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		time.Sleep(gap)
		ip := fmt.Sprintf("198.19.%d.%d", 10+block, 1+i)
		next := sliceWith(ns, ip)
		next.ResourceVersion = slice.ResourceVersion
		start := time.Now()
		var err error
		if slice, err = cs.DiscoveryV1().EndpointSlices(ns).Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		want := "[" + ip + ":8080]"
		rec.waitFor(t, "with "+ip, func(s *snapshot.Snapshot) bool { return webEndpoints(s, ns) == want })
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("%s: EndpointSlice Update -> snapshot published over %d updates: p50 %v, p90 %v, p99 %v, max %v",
		what, n, lat[n/2], lat[n*90/100], lat[n*99/100], lat[n-1])
	return slice
}
