package control

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/xdpgate/xdpgate/snapshot"
)

const manifestV1 = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  type: LoadBalancer
  clusterIP: 198.18.100.10
  clusterIPs: [198.18.100.10]
  externalTrafficPolicy: Local
  healthCheckNodePort: 31999
  ports:
  - name: http
    port: 80
    protocol: TCP
    targetPort: 8080
    nodePort: 30080
status:
  loadBalancer:
    ingress:
    - ip: 198.18.200.10
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: demo
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
- name: http
  port: 8080
  protocol: TCP
endpoints:
- addresses: [198.19.1.1]
  nodeName: node-a
  conditions: {ready: true}
- addresses: [198.19.2.1]
  nodeName: node-b
---
apiVersion: v1
kind: Node
metadata:
  name: node-a
  labels:
    topology.kubernetes.io/zone: zone-a
status:
  addresses:
  - type: InternalIP
    address: 198.18.0.10
---
apiVersion: v1
kind: Node
metadata:
  name: node-b
`

// manifestList is what `kubectl get -o yaml` prints for several objects.
const manifestList = `apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: v1
  kind: Service
  metadata:
    name: web
    namespace: demo
  spec:
    clusterIP: 198.18.100.10
    clusterIPs: [198.18.100.10]
    ports:
    - name: http
      port: 80
      protocol: TCP
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata:
    name: web-abc
    namespace: demo
    labels:
      kubernetes.io/service-name: web
  addressType: IPv4
  ports:
  - name: http
    port: 8080
    protocol: TCP
  endpoints:
  - addresses: [198.19.3.1]
`

func TestDecodeManifest(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		services int
		slices   int
		node     bool
		errPart  string
	}{
		{name: "stream", in: manifestV1, services: 1, slices: 1, node: true},
		{name: "list", in: manifestList, services: 1, slices: 1},
		{name: "empty documents", in: "---\n---\n" + manifestList + "\n---\n", services: 1, slices: 1},
		{name: "json", in: `{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"clusterIP":"198.18.100.1","ports":[{"port":80}]}}`, services: 1},
		{name: "bad yaml", in: manifestV1 + "---\nkind: [\n", errPart: "document 4"},
		{name: "unknown kind", in: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n", errPart: `document 0: unsupported apiVersion "apps/v1" kind "Deployment"`},
		{name: "wrong field type", in: "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports:\n  - port: eighty\n", errPart: "spec.ports.port"},
		{name: "missing name", in: "apiVersion: v1\nkind: Service\nspec: {}\n", errPart: "metadata.name"},
		{name: "list item", in: strings.Replace(manifestList, "port: 8080", "port: {}", 1), errPart: "document 0: items[1]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := decodeManifest(strings.NewReader(tc.in), testNode)
			if tc.errPart != "" {
				if err == nil || !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("decodeManifest error = %v, want ErrManifest containing %q", err, tc.errPart)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeManifest: %v", err)
			}
			if len(st.services) != tc.services || len(st.slices) != tc.slices || (st.node != nil) != tc.node {
				t.Errorf("decodeManifest = %d services, %d slices, node %v; want %d, %d, %v",
					len(st.services), len(st.slices), st.node != nil, tc.services, tc.slices, tc.node)
			}
		})
	}
	dup := "apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: a}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: a}\nspec: {ports: [{port: 80}]}\n"
	if _, err := decodeManifest(strings.NewReader(dup), testNode); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("decodeManifest(duplicate) = %v, want a duplicate error", err)
	}
}

// snapRecorder collects published snapshots.
type snapRecorder struct {
	mu   sync.Mutex
	ch   chan *snapshot.Snapshot
	last *snapshot.Snapshot
}

func newSnapRecorder() *snapRecorder { return &snapRecorder{ch: make(chan *snapshot.Snapshot, 1024)} }

func (r *snapRecorder) publish(s *snapshot.Snapshot) {
	r.mu.Lock()
	r.last = s
	r.mu.Unlock()
	r.ch <- s
}

// waitFor returns the first published snapshot satisfying ok, failing after
// a generous liveness bound (not a performance expectation).
func (r *snapRecorder) waitFor(t *testing.T, what string, ok func(*snapshot.Snapshot) bool) *snapshot.Snapshot {
	t.Helper()
	return r.await(t, what, ok, nil)
}

// stepUntil advances clock by a second whenever something sleeps on it
// (the manifest source between polls) until a published snapshot
// satisfies ok, failing after a generous liveness bound.
func stepUntil(t *testing.T, clock *fakeClock, r *snapRecorder, what string, ok func(*snapshot.Snapshot) bool) *snapshot.Snapshot {
	t.Helper()
	return r.await(t, what, ok, func() {
		clock.mu.Lock()
		n := len(clock.waiters)
		clock.mu.Unlock()
		if n > 0 {
			clock.Step(time.Second)
		}
	})
}

// await returns the first published snapshot satisfying ok; while waiting
// it calls idle (if not nil) every few milliseconds.
func (r *snapRecorder) await(t *testing.T, what string, ok func(*snapshot.Snapshot) bool, idle func()) *snapshot.Snapshot {
	t.Helper()
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case s := <-r.ch:
			if ok(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("no published snapshot %s", what)
			return nil
		case <-tick.C:
			if idle != nil {
				idle()
			}
		}
	}
}

func classifyOut(s *snapshot.Snapshot, src, dst string, port uint16) string {
	_, out, _ := trace(s, flow{src: src, dst: dst, port: port})
	return out
}

func TestManifestSourceReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "objects.yaml")
	write := func(content string) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(manifestV1)
	clock := newFakeClock()
	c, err := New(Config{
		Build:       BuildOptions{NodeName: testNode, ClusterCIDRs: testOpts().ClusterCIDRs},
		HealthzAddr: Disabled, MetricsAddr: Disabled, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := newSnapRecorder()
	c.Subscribe(rec.publish)
	src := &ManifestSource{Path: path, NodeName: testNode, Interval: time.Second, Clock: clock, Logger: discardLogger()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, src) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	s := stepUntil(t, clock, rec, "from the initial manifest", func(s *snapshot.Snapshot) bool { return len(s.ServicePorts) == 1 })
	if got := classifyOut(s, externalClnt, "198.18.200.10", 80); got != "198.19.1.1:8080" {
		t.Errorf("LB IP endpoints = %q, want the local endpoint", got)
	}
	if want := []netip.Addr{netip.MustParseAddr("198.18.0.10")}; len(s.NodeIPs) != 1 || s.NodeIPs[0] != want[0] {
		t.Errorf("NodeIPs = %v, want %v (from the Node object)", s.NodeIPs, want)
	}

	// Change: the list form with a different endpoint.
	write(manifestList)
	s = stepUntil(t, clock, rec, "after the reload", func(s *snapshot.Snapshot) bool {
		return classifyOut(s, localPod, "198.18.100.10", 80) == "198.19.3.1:8080"
	})
	last := s.Generation

	write(strings.Replace(manifestList, "198.19.3.1", "198.19.3.2", 1))
	s = stepUntil(t, clock, rec, "after the second change", func(s *snapshot.Snapshot) bool {
		return classifyOut(s, localPod, "198.18.100.10", 80) == "198.19.3.2:8080"
	})
	if s.Generation <= last {
		t.Errorf("Generation = %d, want > %d", s.Generation, last)
	}
}

// sinkLog records Sink calls as strings.
type sinkLog struct{ calls []string }

func (s *sinkLog) UpsertService(svc *v1.Service) {
	s.calls = append(s.calls, "svc "+svc.Namespace+"/"+svc.Name)
}
func (s *sinkLog) DeleteService(ns, name string) { s.calls = append(s.calls, "-svc "+ns+"/"+name) }
func (s *sinkLog) UpsertEndpointSlice(e *discoveryv1.EndpointSlice) {
	s.calls = append(s.calls, "slice "+e.Namespace+"/"+e.Name)
}
func (s *sinkLog) DeleteEndpointSlice(ns, name string) {
	s.calls = append(s.calls, "-slice "+ns+"/"+name)
}
func (s *sinkLog) SetNode(n *v1.Node) {
	if n == nil {
		s.calls = append(s.calls, "node nil")
		return
	}
	s.calls = append(s.calls, "node "+n.Name)
}
func (s *sinkLog) Synced() { s.calls = append(s.calls, "synced") }

func TestManifestLoaderKeepsLastGoodState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.yaml")
	l := (&ManifestSource{Path: path, NodeName: testNode, Logger: discardLogger()}).loader()
	sink := &sinkLog{}
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		mtime = mtime.Add(time.Second) // a distinct mtime for every write
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name    string
		content string // "" = delete the file
		applied bool
		calls   string
	}{
		{"missing file: nothing", "", false, ""},
		{"invalid before any good state: nothing", "kind: [", false, ""},
		{"first good file", manifestV1, true, "node node-a|svc demo/web|slice demo/web-abc|synced"},
		{"invalid file keeps last good state", "apiVersion: v1\nkind: Service\nmetadata: {name: broken}\nspec:\n  ports: nope\n", false, ""},
		{"same content again: nothing to apply", manifestV1, false, ""},
		{"file removed: state kept", "", false, ""},
		{"list replaces the stream: node gone, slice changed", manifestList, true, "node nil|svc demo/web|slice demo/web-abc"},
		{"everything removed", "apiVersion: v1\nkind: List\nitems: []\n", true, "-svc demo/web|-slice demo/web-abc"},
	}
	for _, st := range steps {
		sink.calls = nil
		if st.content == "" {
			os.Remove(path)
		} else {
			write(st.content)
		}
		applied := l.check(sink)
		if applied != st.applied || strings.Join(sink.calls, "|") != st.calls {
			t.Errorf("%s: check = %v, calls %q; want %v, %q", st.name, applied, strings.Join(sink.calls, "|"), st.applied, st.calls)
		}
	}
}

// TestManifestLoaderIncompleteFile: a manifest rewritten in place is seen
// empty, cut after a document, inside a document or inside a line; none of
// these states is applied, even when it stays for several polls, and the
// last good state is kept (no Service is deleted and re-created with new
// IDs). A change is applied only once it is settled, and an explicit empty
// List removes everything.
func TestManifestLoaderIncompleteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.yaml")
	l := (&ManifestSource{Path: path, NodeName: testNode, Logger: discardLogger()}).loader()
	sink := &sinkLog{}
	old := time.Now().Add(-time.Hour)
	write := func(content string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write(manifestV1, time.Now())
	if !l.check(sink) {
		t.Fatalf("first good file not applied at once (nothing to lose yet)")
	}
	cutAt := func(s, marker string) string { return s[:strings.Index(s, marker)] }
	incomplete := []struct{ name, content string }{
		{"empty", ""},
		{"blank", "\n  \n"},
		{"only comments and separators", "# services\n---\n---\n"},
		{"cut inside a line", cutAt(manifestV1, "80\n    nodePort: 30080")},
		{"cut inside a line, JSON", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"ports":[{"port":80}]`},
		{"cut after a document, inside the next one's header", cutAt(manifestV1, "metadata:\n  name: web-abc")},
		{"cut inside a document before its name", cutAt(manifestV1, "  name: web-abc")},
		{"cut inside a Service before its ports", cutAt(manifestV1, "  ports:\n  - name: http\n    port: 80")},
		{"cut inside an EndpointSlice before its addressType", cutAt(manifestV1, "addressType: IPv4")},
		{"cut inside a Node before its name", cutAt(manifestV1, "  name: node-b")},
		{"List cut before its items", cutAt(manifestList, "items:")},
		{"List cut inside the first item", cutAt(manifestList, "    clusterIP: 198.18.100.10")},
	}
	for _, tc := range incomplete {
		t.Run(tc.name, func(t *testing.T) {
			sink.calls = nil
			for _, mtime := range []time.Time{time.Now(), old} { // being written, then left for a long time
				write(tc.content, mtime)
				for poll := 0; poll < 3; poll++ {
					if l.check(sink) || len(sink.calls) != 0 {
						t.Fatalf("check(%q) applied it: calls %q", tc.content, sink.calls)
					}
				}
			}
		})
	}

	// A fresh change is read again before it is applied; one that keeps
	// changing is never applied.
	sink.calls = nil
	changed := strings.Replace(manifestV1, "198.19.2.1", "198.19.2.2", 1)
	write(changed, time.Now())
	if l.check(sink) {
		t.Errorf("fresh change applied at once, want it read again first")
	}
	write(strings.Replace(manifestV1, "198.19.2.1", "198.19.2.3", 1), time.Now())
	if l.check(sink) {
		t.Errorf("change that changed again applied, want it to wait")
	}
	if !l.check(sink) || strings.Join(sink.calls, "|") != "slice demo/web-abc" {
		t.Errorf("settled change: calls %q, want slice demo/web-abc", sink.calls)
	}

	// An explicit empty list removes everything.
	sink.calls = nil
	write("apiVersion: v1\nkind: List\nitems: []\n", old)
	if !l.check(sink) || strings.Join(sink.calls, "|") != "node nil|-svc demo/web|-slice demo/web-abc" {
		t.Errorf("explicit empty list: calls %q, want everything removed", sink.calls)
	}
}
