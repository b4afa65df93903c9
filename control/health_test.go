package control

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakeClock is a manually advanced Clock.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

// Step advances the clock and fires due timers.
func (c *fakeClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func freePort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func TestServiceHealthServer(t *testing.T) {
	healthy := true
	var mu sync.Mutex
	h := newServiceHealth([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return healthy
	}, discardLogger())
	defer h.closeAll()
	port := freePort(t)
	url := "http://127.0.0.1:" + strconv.Itoa(int(port)) + "/any/path"
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() (*http.Response, string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}
	body := func(n int, ok bool) string {
		return "{\n\t\"service\": {\n\t\t\"namespace\": \"ns\",\n\t\t\"name\": \"lb\"\n\t},\n\t\"localEndpoints\": " +
			strconv.Itoa(n) + ",\n\t\"serviceProxyHealthy\": " + strconv.FormatBool(ok) + "\n}"
	}
	tests := []struct {
		name      string
		endpoints int
		healthy   bool
		code      int
	}{
		{"local endpoints", 2, true, 200},
		{"no local endpoints", 0, true, 503},
		{"proxy unhealthy", 3, false, 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			healthy = tc.healthy
			mu.Unlock()
			h.sync([]HealthCheck{{Namespace: "ns", Name: "lb", Port: port, LocalEndpoints: tc.endpoints}})
			resp, got, err := get()
			if err != nil {
				t.Fatalf("GET %s: %v", url, err)
			}
			if resp.StatusCode != tc.code {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.code)
			}
			for k, want := range map[string]string{
				"Content-Type":                     "application/json",
				"X-Content-Type-Options":           "nosniff",
				"X-Load-Balancing-Endpoint-Weight": strconv.Itoa(tc.endpoints),
			} {
				if v := resp.Header.Get(k); v != want {
					t.Errorf("header %s = %q, want %q", k, v, want)
				}
			}
			if want := body(tc.endpoints, tc.healthy); got != want {
				t.Errorf("body = %q, want %q", got, want)
			}
		})
	}
	// The service stops needing a health check: the listener closes.
	h.sync(nil)
	if _, _, err := get(); err == nil {
		t.Errorf("GET after the health check was removed succeeded, want connection refused")
	}
	if n := len(h.ports()); n != 0 {
		t.Errorf("open health checks = %d, want 0", n)
	}
	// Port change: the old port closes, the new one opens.
	port2 := freePort(t)
	h.sync([]HealthCheck{{Namespace: "ns", Name: "lb", Port: port, LocalEndpoints: 1}})
	h.sync([]HealthCheck{{Namespace: "ns", Name: "lb", Port: port2, LocalEndpoints: 1}})
	if _, _, err := get(); err == nil {
		t.Errorf("GET on the old port succeeded after a port change")
	}
	if p := h.ports()["ns/lb"]; p != port2 {
		t.Errorf("health check port = %d, want %d", p, port2)
	}
}

func TestProxyHealth(t *testing.T) {
	clock := newFakeClock()
	h := &proxyHealth{clock: clock, timeout: time.Minute, families: []string{"IPv4", "IPv6"}, m: newMetrics()}
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}}
	deleting := node.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: clock.Now()}
	tainted := node.DeepCopy()
	tainted.Spec.Taints = []v1.Taint{{Key: toBeDeletedTaint, Effect: v1.TaintEffectNoSchedule}}

	steps := []struct {
		name    string
		do      func()
		healthz int
		livez   int
		dpErr   bool // the dataplane reports an error: /healthz's body is unhealthy
	}{
		{"node unknown", func() {}, 503, 200, false},
		{"node known, never synced", func() { h.setNode(node) }, 200, 200, false},
		{"synced", func() { h.Updated() }, 200, 200, false},
		{"queued, within timeout", func() { h.QueuedUpdate(); clock.Step(59 * time.Second) }, 200, 200, false},
		{"queued beyond timeout", func() { clock.Step(2 * time.Second) }, 503, 503, false},
		{"published again", func() { h.Updated() }, 200, 200, false},
		{"dataplane cannot program everything", func() { h.setDataplaneErr(errors.New("2 service ports do not fit")) }, 503, 200, true},
		{"dataplane programs everything again", func() { h.setDataplaneErr(nil) }, 200, 200, false},
		{"node being deleted", func() { h.setNode(deleting) }, 503, 200, false},
		{"node tainted by autoscaler", func() { h.setNode(tainted) }, 503, 200, false},
		{"node deleted", func() { h.setNode(nil) }, 503, 200, false},
	}
	for _, st := range steps {
		st.do()
		for _, tc := range []struct {
			path string
			want int
		}{{"/healthz", st.healthz}, {"/livez", st.livez}} {
			rec := httptest.NewRecorder()
			h.handler().ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			if rec.Code != tc.want {
				t.Errorf("%s: GET %s = %d, want %d (body %s)", st.name, tc.path, rec.Code, tc.want, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s: Content-Type = %q", st.name, ct)
			}
			if v := rec.Header().Get("X-Content-Type-Options"); v != "nosniff" {
				t.Errorf("%s: X-Content-Type-Options = %q", st.name, v)
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("%s: body %q: %v", st.name, rec.Body, err)
			}
			if _, has := body["dataplaneError"]; has != (st.dpErr) {
				t.Errorf("%s: GET %s dataplaneError present = %v, want %v", st.name, tc.path, has, st.dpErr)
			}
			_, hasElig := body["nodeEligible"]
			if hasElig != (tc.path == "/healthz") {
				t.Errorf("%s: GET %s nodeEligible present = %v", st.name, tc.path, hasElig)
			}
			if body["healthy"] != (tc.path == "/livez" && tc.want == 200 || tc.path == "/healthz" && st.livez == 200 && !st.dpErr) {
				t.Errorf("%s: GET %s healthy = %v", st.name, tc.path, body["healthy"])
			}
		}
	}
	rec := httptest.NewRecorder()
	h.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/other", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /other = %d, want 404", rec.Code)
	}
}
