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
		{name: "json", in: `{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"clusterIP":"198.18.100.1"}}`, services: 1},
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
	dup := "apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: a}\n"
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
	deadline := time.After(60 * time.Second)
	for {
		select {
		case s := <-r.ch:
			if ok(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("no published snapshot %s", what)
			return nil
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

	s := rec.waitFor(t, "from the initial manifest", func(s *snapshot.Snapshot) bool { return len(s.ServicePorts) == 1 })
	if got := classifyOut(s, externalClnt, "198.18.200.10", 80); got != "198.19.1.1:8080" {
		t.Errorf("LB IP endpoints = %q, want the local endpoint", got)
	}
	if want := []netip.Addr{netip.MustParseAddr("198.18.0.10")}; len(s.NodeIPs) != 1 || s.NodeIPs[0] != want[0] {
		t.Errorf("NodeIPs = %v, want %v (from the Node object)", s.NodeIPs, want)
	}

	// Change: the list form with a different endpoint.
	write(manifestList)
	clock.Step(time.Second)
	s = rec.waitFor(t, "after the reload", func(s *snapshot.Snapshot) bool {
		return classifyOut(s, localPod, "198.18.100.10", 80) == "198.19.3.1:8080"
	})
	last := s.Generation

	write(strings.Replace(manifestList, "198.19.3.1", "198.19.3.2", 1))
	clock.Step(time.Second)
	s = rec.waitFor(t, "after the second change", func(s *snapshot.Snapshot) bool {
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
