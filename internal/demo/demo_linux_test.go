package demo

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/yaml"

	"github.com/xdpgate/xdpgate/internal/admin"
)

func TestParseDemoFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    demoOptions
		wantErr bool
	}{
		{"defaults", nil, demoOptions{duration: 30 * time.Second, clients: 64, rate: 200}, false},
		{"all", []string{"--duration", "12s", "--clients", "8", "--rate", "50", "--keep"},
			demoOptions{duration: 12 * time.Second, clients: 8, rate: 50, keep: true}, false},
		{"cleanup", []string{"--cleanup"}, demoOptions{duration: 30 * time.Second, clients: 64, rate: 200, cleanup: true}, false},
		{"too short", []string{"--duration", "1s"}, demoOptions{}, true},
		{"too many clients", []string{"--clients", "251"}, demoOptions{}, true},
		{"zero rate", []string{"--rate", "0"}, demoOptions{}, true},
		{"keep and cleanup", []string{"--keep", "--cleanup"}, demoOptions{}, true},
		{"argument", []string{"extra"}, demoOptions{}, true},
		{"unknown flag", []string{"--nope"}, demoOptions{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDemoFlags(tc.args, io.Discard)
			if tc.wantErr {
				if err != ErrUsage {
					t.Errorf("parseDemoFlags(%q) error = %v, want ErrUsage", tc.args, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("parseDemoFlags(%q) = %+v, %v, want %+v", tc.args, got, err, tc.want)
			}
		})
	}
}

// TestRenderDemoManifest decodes the rendered manifest strictly into the
// Kubernetes API types (an oracle independent of xdpgate's own decoder).
func TestRenderDemoManifest(t *testing.T) {
	for _, tc := range []struct {
		name      string
		without   []string
		shop, api int
	}{
		{"all", nil, 4, 3},
		{"shop-b removed", []string{"shop-b"}, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := renderDemoManifest(tc.without...)
			if err != nil {
				t.Fatal(err)
			}
			docs := strings.Split(string(b), "\n---\n")
			if len(docs) != 4 {
				t.Fatalf("%d documents, want 4 (2 Services, 2 EndpointSlices)", len(docs))
			}
			var shop, api v1.Service
			var shopEPs, apiEPs discoveryv1.EndpointSlice
			for i, out := range []any{&shop, &shopEPs, &api, &apiEPs} {
				if err := yaml.UnmarshalStrict([]byte(docs[i]), out); err != nil {
					t.Fatalf("document %d: %v\n%s", i, err, docs[i])
				}
			}
			if shop.Spec.Type != v1.ServiceTypeLoadBalancer || shop.Spec.SessionAffinity != v1.ServiceAffinityClientIP ||
				shop.Spec.ExternalTrafficPolicy != v1.ServiceExternalTrafficPolicyLocal || shop.Spec.HealthCheckNodePort != demoHealthNodePort ||
				len(shop.Status.LoadBalancer.Ingress) != 1 || shop.Status.LoadBalancer.Ingress[0].IP != demoShopLB.String() {
				t.Errorf("shop = %+v, want a LoadBalancer %s with ClientIP affinity, ETP Local, healthCheckNodePort %d", shop.Spec, demoShopLB, demoHealthNodePort)
			}
			if api.Spec.Type != v1.ServiceTypeNodePort || api.Spec.ExternalTrafficPolicy != v1.ServiceExternalTrafficPolicyCluster ||
				len(api.Spec.Ports) != 1 || api.Spec.Ports[0].NodePort != demoAPINodePort {
				t.Errorf("api = %+v, want a NodePort %d with ETP Cluster", api.Spec, demoAPINodePort)
			}
			if len(shopEPs.Endpoints) != tc.shop || len(apiEPs.Endpoints) != tc.api {
				t.Errorf("endpoints: shop %d, api %d, want %d and %d", len(shopEPs.Endpoints), len(apiEPs.Endpoints), tc.shop, tc.api)
			}
			for _, e := range append(shopEPs.Endpoints, apiEPs.Endpoints...) {
				for _, w := range tc.without {
					if e.TargetRef.Name == w {
						t.Errorf("endpoint %s still listed", w)
					}
				}
			}
		})
	}
}

func TestParsePromText(t *testing.T) {
	text := `# HELP xdpgate_drops_total Frames dropped, by reason.
# TYPE xdpgate_drops_total counter
xdpgate_drops_total{interface="gc",queue="0",reason="neigh_unresolved"} 3
xdpgate_drops_total{interface="gp",queue="0",reason="neigh_unresolved"} 2
xdpgate_drops_total{interface="gp",queue="0",reason="no_route"} 1
xdpgate_pipeline_packets_total{event="affinity_hit",queue="0"} 10
xdpgate_pipeline_packets_total{event="affinity_hit",queue="1"} 5
xdpgate_pipeline_packets_total{event="affinity_miss",queue="0"} 7
xdpgate_snapshot_generation 4
`
	p, err := parsePromText(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"xdpgate_drops_total", nil, 6},
		{"xdpgate_drops_total", []string{`interface="gp"`}, 3},
		{"xdpgate_pipeline_packets_total", []string{`event="affinity_hit"`}, 15},
		{"xdpgate_pipeline_packets_total", []string{`event="affinity_hit"`, `queue="1"`}, 5},
		{"xdpgate_snapshot_generation", nil, 4},
		{"xdpgate_snapshot", nil, 0},
	} {
		if got := p.sum(tc.name, tc.labels...); got != tc.want {
			t.Errorf("sum(%s, %q) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if _, err := parsePromText("novalue\n"); err == nil {
		t.Errorf("parsePromText(novalue) = nil error, want one")
	}
}

func TestDemoChangeSummary(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after []string
		final         bool
		want          string
		complete      bool
	}{
		{"waiting", []string{"shop-a", "shop-b"}, []string{"shop-a", ""}, false, "", false},
		{"complete", []string{"shop-a", "shop-b", "shop-c"}, []string{"shop-a", "shop-c", "shop-c"}, false,
			"backend shop-b removed at 6.0s: 1 clients moved, 2 stayed", true},
		{"other changed", []string{"shop-a", "shop-b"}, []string{"shop-c", "shop-a"}, false,
			"backend shop-b removed at 6.0s: 1 clients moved, 0 stayed, 1 others changed backend", true},
		{"final with pending", []string{"shop-a", "shop-b", ""}, []string{"", "shop-a", ""}, true,
			"backend shop-b removed at 6.0s: 1 clients moved, 0 stayed (1 clients not seen since)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &demoChange{backend: "shop-b", at: 6 * time.Second, before: tc.before, after: tc.after}
			got, complete := r.summary(tc.final)
			if got != tc.want || complete != tc.complete {
				t.Errorf("summary(%v) = %q, %v, want %q, %v", tc.final, got, complete, tc.want, tc.complete)
			}
		})
	}
}

func TestDemoViewRender(t *testing.T) {
	prev := &admin.Top{Clock: int64(8 * time.Second), Totals: admin.TopTotals{RxFrames: 100, AffinityHits: 10}}
	cur := &admin.Top{Clock: int64(10 * time.Second), Totals: admin.TopTotals{RxFrames: 300, AffinityHits: 30, Drops: 2},
		Conntrack: admin.TopTable{Entries: 42, Capacity: 65536}, Drops: map[string]uint64{"neigh_unresolved": 2},
		Services: []admin.TopService{{ID: 1, Namespace: "demo", Name: "shop", PortName: "http", Protocol: "TCP", Port: 80, Flows: 3}}}
	v := &demoView{
		elapsed: 10 * time.Second, total: 30 * time.Second, clients: 64, interval: 2 * time.Second,
		topPrev: prev, topCur: cur,
		svc:      map[string]demoSvcCounts{"shop": {ok: 40, segments: 320}},
		svcPrev:  map[string]demoSvcCounts{"shop": {ok: 20, segments: 160}},
		backends: map[string]demoBackendCounts{"shop-a": {conns: 40, sawClient: 40, lastOf: 12}},
		removed:  map[string]time.Duration{"shop-b": 5 * time.Second},
		events:   []string{"backend shop-b removed at 5.0s: 3 clients moved, 9 stayed"},
	}
	var b strings.Builder
	v.render(&b)
	out := b.String()
	for _, want := range []string{
		"rx 100 ", // (300-100)/2 s
		"hits 30 (10/s)",
		"conntrack  entries 42 of 65536",
		"neigh_unresolved  2",
		"demo/shop:http",
		"removed at 5s",
		"remote node: no external traffic (ETP Local)",
		"sees the client address",
		"backend shop-b removed at 5.0s: 3 clients moved, 9 stayed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("render lacks %q:\n%s", want, out)
		}
	}
	v.topCur, v.topErr = nil, errors.New("no socket")
	b.Reset()
	v.render(&b)
	if !strings.Contains(b.String(), "not available: no socket") {
		t.Errorf("render without a sample lacks the error:\n%s", b.String())
	}
	// shop: 20 connections and 160 segments in 2 s.
	if !strings.Contains(out, "10       80       40") {
		t.Errorf("render: shop row lacks 10 conn/s, 80 pkts/s, 40 ok:\n%s", out)
	}
}

// TestKeepText: the commands --keep prints name the gateway's admin
// socket (not the default one) and the demo's own binary.
func TestKeepText(t *testing.T) {
	out := keepText("/opt/bin/xdpgate", 42, "/run/xdpgate-demo/gateway.log")
	for _, cmd := range []string{"top", "inspect services", "inspect conntrack", "capture"} {
		l := ""
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "/opt/bin/xdpgate "+cmd) {
				l = line
				break
			}
		}
		if !strings.Contains(l, "--socket "+demoAdminSocket) {
			t.Errorf("keepText: %q command %q, want one with --socket %s:\n%s", cmd, l, demoAdminSocket, out)
		}
	}
}
