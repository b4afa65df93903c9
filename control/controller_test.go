package control

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/xdpgate/xdpgate/snapshot"
)

func TestBoundedRunnerCoalesces(t *testing.T) {
	clock := newFakeClock()
	var runs atomic.Int32
	started := make(chan struct{}, 16)
	release := make(chan struct{})
	r := newBoundedRunner(func() {
		if runs.Add(1) == 1 {
			started <- struct{}{}
			<-release // first run blocks while changes pile up
			return
		}
		started <- struct{}{}
	}, time.Second, clock)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.loop(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	r.Notify()
	<-started
	for i := 0; i < 50; i++ {
		r.Notify() // a burst while the first run is busy
	}
	close(release)
	// The second run waits for minInterval on the fake clock.
	waitWaiter(t, clock)
	clock.Step(time.Second)
	<-started
	if got := runs.Load(); got != 2 {
		t.Fatalf("runs after a burst of 50 = %d, want 2 (coalesced)", got)
	}
	// Nothing pending: one more Notify gives exactly one more run.
	r.Notify()
	waitWaiter(t, clock)
	clock.Step(time.Second)
	<-started
	if got := runs.Load(); got != 3 {
		t.Errorf("runs = %d, want 3", got)
	}
}

// waitWaiter waits until the runner sleeps on the fake clock.
func waitWaiter(t *testing.T, c *fakeClock) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		n := len(c.waiters)
		c.mu.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("runner never waited on the clock")
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestControllerEndToEnd(t *testing.T) {
	hcPort := freePort(t)
	c, err := New(Config{
		Build:            testOpts(),
		HealthzAddr:      "127.0.0.1:0",
		MetricsAddr:      "127.0.0.1:0",
		HealthCheckAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Logger:           discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := newSnapRecorder()
	c.Subscribe(rec.publish)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	sink := c.Sink()
	node := flowNode()
	sink.SetNode(node)
	svc := makeService("ns", "lb", clusterIPs("198.18.100.1"), loadBalancer(int32(hcPort), "198.18.200.1"), etpLocal)
	sink.UpsertService(svc)
	sl := makeSlice("ns", "lb-a", "lb", []endpointSpec{ep("198.19.1.1", testNode), ep("198.19.2.1", "node-b")})
	sl.Annotations = map[string]string{v1.EndpointsLastChangeTriggerTime: time.Now().Add(-time.Second).Format(time.RFC3339Nano)}
	sink.UpsertEndpointSlice(sl)
	if c.Current() != nil {
		t.Fatalf("published before the source synced")
	}
	sink.Synced()
	s := rec.waitFor(t, "after sync", func(s *snapshot.Snapshot) bool { return len(s.ServicePorts) == 1 })
	if got := classifyOut(s, externalClnt, "198.18.200.1", 80); got != "198.19.1.1:8080" {
		t.Errorf("LB endpoints = %q, want the local one", got)
	}
	if c.Current() != s && c.Current().Generation < s.Generation {
		t.Errorf("Current() older than the published snapshot")
	}

	hcURL := "http://127.0.0.1:" + strconv.Itoa(int(hcPort)) + "/healthz"
	eventually(t, "HCNP 200 with 1 local endpoint", func() bool {
		resp, err := http.Get(hcURL)
		if err != nil {
			return false // not opened yet
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), `"localEndpoints": 1`)
	})
	if code, _ := httpGet(t, "http://"+c.HealthzAddr().String()+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200", code)
	}
	if code, _ := httpGet(t, "http://"+c.HealthzAddr().String()+"/livez"); code != 200 {
		t.Errorf("/livez = %d, want 200", code)
	}

	// Local endpoint moves away: HCNP answers 503 with 0.
	sink.UpsertEndpointSlice(makeSlice("ns", "lb-a", "lb", []endpointSpec{ep("198.19.2.1", "node-b")}))
	rec.waitFor(t, "after the endpoint moved", func(s *snapshot.Snapshot) bool {
		return classifyOut(s, localPod, "198.18.100.1", 80) == "198.19.2.1:8080"
	})
	// The health servers are updated right after the subscribers.
	eventually(t, "HCNP 503 with 0 local endpoints", func() bool {
		code, body := httpGet(t, hcURL)
		return code == 503 && strings.Contains(body, `"localEndpoints": 0`)
	})

	// ETP becomes Cluster: the listener closes.
	sink.UpsertService(makeService("ns", "lb", clusterIPs("198.18.100.1"), loadBalancer(int32(hcPort), "198.18.200.1")))
	rec.waitFor(t, "after ETP Cluster", func(s *snapshot.Snapshot) bool {
		return len(s.ServicePorts) == 1 && !s.ServicePorts[0].ExternalPolicyLocal
	})
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	eventually(t, "HCNP listener closed after ETP Cluster", func() bool {
		resp, err := hc.Get(hcURL)
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})

	// Metrics are served. The subscribers run before the metrics of the
	// same sync are set, so poll until the last sync's values show.
	want := []string{
		"kubeproxy_sync_proxy_rules_duration_seconds_bucket",
		"kubeproxy_network_programming_duration_seconds_count 1",
		"kubeproxy_sync_proxy_rules_last_timestamp_seconds",
		"kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
		"kubeproxy_sync_proxy_rules_endpoint_changes_total 2",
		"kubeproxy_sync_proxy_rules_service_changes_total 2",
		"kubeproxy_sync_proxy_rules_endpoint_changes_pending 0",
		`kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="external"} 0`,
		`kubeproxy_proxy_healthz_total{code="200"} 1`,
		`kubeproxy_proxy_livez_total{code="200"} 1`,
		"xdpgate_snapshot_services 1",
		"xdpgate_snapshot_service_ports 1",
		"xdpgate_snapshot_endpoints 1",
		"xdpgate_snapshot_build_errors 0",
		"xdpgate_snapshot_generation",
	}
	var missing []string
	var body string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		_, body = httpGet(t, "http://"+c.MetricsAddr().String()+"/metrics")
		missing = missing[:0]
		for _, name := range want {
			if !strings.Contains(body, name) {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			break
		}
	}
	for _, name := range missing {
		t.Errorf("/metrics lacks %q in\n%s", name, grepLines(body, "kubeproxy"))
	}
}

// runController runs a controller with the test options and no servers
// until the test ends, recording what it publishes.
func runController(t *testing.T) (*Controller, *snapRecorder) {
	t.Helper()
	c, err := New(Config{Build: testOpts(), HealthzAddr: Disabled, MetricsAddr: Disabled, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rec := newSnapRecorder()
	c.Subscribe(rec.publish)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, rec
}

// gaugeValues gathers the gauge name from c's registry: the first label's
// value -> the sample (the empty label for an unlabelled gauge).
func gaugeValues(t *testing.T, c *Controller, name string) map[string]float64 {
	t.Helper()
	mfs, err := c.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			label := ""
			if len(m.GetLabel()) > 0 {
				label = m.GetLabel()[0].GetValue()
			}
			got[label] = m.GetGauge().GetValue()
		}
	}
	return got
}

func TestControllerBadObjectsMetric(t *testing.T) {
	c, rec := runController(t)
	sink := c.Sink()
	sink.UpsertService(makeService("ns", "bad", clusterIPs("not-an-ip")))
	sink.UpsertService(makeService("ns", "good", clusterIPs("198.18.100.1")))
	sink.UpsertEndpointSlice(makeSlice("ns", "good-a", "good", []endpointSpec{ep("198.19.2.1", "")}))
	sink.Synced()
	rec.waitFor(t, "with the good service", func(s *snapshot.Snapshot) bool {
		return classifyOut(s, localPod, "198.18.100.1", 80) == "198.19.2.1:8080"
	})
	var got float64
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = gaugeValues(t, c, "xdpgate_snapshot_build_errors")[""]; got == 1 {
			return
		}
	}
	t.Errorf("xdpgate_snapshot_build_errors = %v, want 1", got)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") && !strings.Contains(l, "_bucket") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// eventually polls cond until it holds, failing after a generous liveness
// bound (not a performance expectation).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("never: %s", what)
}
