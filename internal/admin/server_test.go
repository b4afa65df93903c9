package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/internal/cli"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/pipeline"
	"github.com/xdpgate/xdpgate/snapshot"
)

var (
	testVIP    = netip.MustParseAddr("198.18.100.1")
	testEP1    = netip.MustParseAddr("198.19.1.10")
	testEP2    = netip.MustParseAddr("198.19.1.11")
	testClient = netip.MustParseAddr("198.18.0.5")
	testOther  = netip.MustParseAddr("198.18.0.6")
)

// testSource builds a snapshot with one ClientIP service (two
// endpoints, one terminating) and one plain service, a flow table with one
// flow per service and one affinity entry.
func testSource(t *testing.T) Source {
	t.Helper()
	s, errs := snapshot.New(snapshot.Snapshot{
		Generation: 7, NodeName: "gw1",
		ServicePorts: []snapshot.ServicePort{
			{ID: 1, Namespace: "default", Name: "web", PortName: "http", Protocol: nat.ProtoTCP, Port: 80,
				ClusterIPs: []netip.Addr{testVIP}, AffinitySeconds: 600, ExternalPolicyLocal: true,
				Endpoints: []snapshot.Endpoint{
					{ID: 11, Addr: testEP1, Port: 8080, NodeName: "gw1", Local: true, Ready: true, Serving: true},
					{ID: 12, Addr: testEP2, Port: 8080, NodeName: "n2", Serving: true, Terminating: true},
				},
				Cluster: []int32{0}, Local: []int32{0}, HasEndpoints: true},
			{ID: 2, Namespace: "kube-system", Name: "dns", Protocol: nat.ProtoUDP, Port: 53,
				ClusterIPs: []netip.Addr{netip.MustParseAddr("198.18.100.2")},
				Endpoints:  []snapshot.Endpoint{{ID: 21, Addr: testEP2, Port: 5353, Ready: true, Serving: true}},
				Cluster:    []int32{0}, HasEndpoints: true},
		},
	})
	if len(errs) != 0 {
		t.Fatalf("snapshot.New: %v", errs)
	}
	ct, err := conntrack.New(conntrack.Config{MaxFlows: 1024})
	if err != nil {
		t.Fatal(err)
	}
	now := int64(time.Hour)
	ins := func(src netip.Addr, sport uint16, dst netip.AddrPort, ep netip.AddrPort, proto nat.Proto, svc, epID uint32) {
		orig := conntrack.MakeTuple(src, dst.Addr(), sport, dst.Port(), proto)
		if _, r := ct.Insert(orig, conntrack.MakeTranslation(ep, netip.AddrPort{}), svc, epID, now-int64(2*time.Second)); r != conntrack.Inserted {
			t.Fatalf("Insert(%v) = %v", orig, r)
		}
	}
	ins(testClient, 40000, netip.AddrPortFrom(testVIP, 80), netip.AddrPortFrom(testEP1, 8080), nat.ProtoTCP, 1, 11)
	ins(testOther, 40001, netip.AddrPortFrom(testVIP, 80), netip.AddrPortFrom(testEP1, 8080), nat.ProtoTCP, 1, 11)
	ins(testClient, 5000, netip.MustParseAddrPort("198.18.100.2:53"), netip.AddrPortFrom(testEP2, 5353), nat.ProtoUDP, 2, 21)
	aff, err := affinity.New(affinity.Config{Capacity: 64})
	if err != nil {
		t.Fatal(err)
	}
	aff.Pin(1, testClient, 11, 600, now-int64(100*time.Second))
	return Source{
		Snapshot: func() *snapshot.Snapshot { return s }, Conntrack: ct, Affinity: aff,
		Now: func() int64 { return now },
		Queues: func() []dataplane.QueueStats {
			q := dataplane.QueueStats{Ifname: "eth1", QueueID: 0, RxFrames: 10, TxFrames: 8}
			q.Drops[pipeline.DropParseL2] = 2
			return []dataplane.QueueStats{q, {Ifname: "eth1", QueueID: 1, RxFrames: 1}}
		},
		Pipeline: func() []pipeline.QueueStats { return []pipeline.QueueStats{{NewFlows: 3}, {Forwarded: 1}} },
		Loads: func() []pipeline.ServicePortLoad {
			return []pipeline.ServicePortLoad{{
				ServicePortLabels: pipeline.ServicePortLabels{Namespace: "default", Name: "web", PortName: "http", Protocol: "TCP"},
				ID:                1, AffinitySeconds: 600, MaxLoadPercent: 125,
				Endpoints: []pipeline.EndpointLoad{
					{ID: 11, Endpoint: "198.19.1.10:8080", Pins: 3, NewConnections: 40, ConnectionsPerSecond: 2.5, MovedIn: 1},
					{ID: 12, Endpoint: "198.19.1.11:8080", Pins: 1, NewConnections: 7},
					{ID: 13, Endpoint: "198.19.1.12:8080", Departed: true, Pins: 2, MovedOut: 1},
				},
			}}
		},
		Heavy: func(id uint32, k int) (pipeline.HeavyClients, bool) {
			if id != 1 {
				return pipeline.HeavyClients{}, false
			}
			return pipeline.HeavyClients{
				Connections: []pipeline.HeavyClient{{Client: testOther, Count: 30, Err: 2}, {Client: testClient, Count: 5}}[:min(k, 2)],
				Packets:     []pipeline.HeavyClient{{Client: testOther, Count: 900, Spill: 10}}, Lost: 1,
			}, true
		},
	}
}

func getJSON(t *testing.T, h http.Handler, url string, v any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", url, nil))
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			t.Fatalf("GET %s: decode %q: %v", url, rec.Body.String(), err)
		}
	}
	return rec.Code
}

func TestAdminServices(t *testing.T) {
	h := Handler(testSource(t))
	var got Services
	if code := getJSON(t, h, "/v1/services", &got); code != 200 {
		t.Fatalf("GET /v1/services = %d, want 200", code)
	}
	if got.Generation != 7 || len(got.Services) != 2 {
		t.Fatalf("services = gen %d, %d services, want gen 7, 2 services", got.Generation, len(got.Services))
	}
	web := got.Services[0]
	if web.Name != "web" || web.Protocol != "TCP" || web.AffinitySeconds != 600 || web.ExternalPolicy != "Local" || web.InternalPolicy != "Cluster" {
		t.Errorf("web = %+v, want TCP, affinity 600, Local/Cluster", web)
	}
	want := []Endpoint{
		{ID: 11, Addr: netip.AddrPortFrom(testEP1, 8080), Node: "gw1", Local: true, Ready: true, Serving: true, InCluster: true, InLocal: true},
		{ID: 12, Addr: netip.AddrPortFrom(testEP2, 8080), Node: "n2", Serving: true, Terminating: true},
	}
	if len(web.Endpoints) != 2 || web.Endpoints[0] != want[0] || web.Endpoints[1] != want[1] {
		t.Errorf("web endpoints = %+v, want %+v", web.Endpoints, want)
	}
}

func TestAdminConntrack(t *testing.T) {
	h := Handler(testSource(t))
	for _, tc := range []struct {
		name      string
		query     string
		wantFlows int
		wantMatch int
		wantTrunc bool
	}{
		{"all", "", 3, 3, false},
		{"host", "?host=198.18.0.5", 2, 2, false},
		{"reply side host", "?host=198.19.1.11", 1, 1, false},
		{"port", "?port=40001", 1, 1, false},
		{"endpoint port", "?port=8080", 2, 2, false},
		{"proto", "?proto=udp", 1, 1, false},
		{"service", "?service=default/web", 2, 2, false},
		{"service and host", "?service=default/web&host=198.18.0.6", 1, 1, false},
		{"limit", "?limit=1", 1, 3, true},
		{"no match", "?host=198.18.9.9", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Conntrack
			if code := getJSON(t, h, "/v1/conntrack"+tc.query, &got); code != 200 {
				t.Fatalf("GET %s = %d, want 200", tc.query, code)
			}
			if len(got.Flows) != tc.wantFlows || got.Matched != tc.wantMatch || got.Truncated != tc.wantTrunc {
				t.Errorf("GET %s = %d flows, matched %d, truncated %t; want %d, %d, %t",
					tc.query, len(got.Flows), got.Matched, got.Truncated, tc.wantFlows, tc.wantMatch, tc.wantTrunc)
			}
		})
	}
	var got Conntrack
	getJSON(t, h, "/v1/conntrack?proto=udp", &got)
	f := got.Flows[0]
	if f.Proto != "udp" || f.Service != "kube-system/dns:/UDP" || f.Orig.Dst.String() != "198.18.100.2:53" ||
		f.Reply.Src != netip.AddrPortFrom(testEP2, 5353) || f.Reply.Dst != netip.AddrPortFrom(testClient, 5000) || f.IdleMilli != 2000 {
		t.Errorf("udp flow = %+v", f)
	}
	for _, bad := range []string{"?host=nope", "?port=0", "?port=70000", "?proto=gre", "?service=web", "?service=default/nope", "?limit=-1"} {
		if code := getJSON(t, h, "/v1/conntrack"+bad, &got); code != http.StatusBadRequest {
			t.Errorf("GET /v1/conntrack%s = %d, want 400", bad, code)
		}
	}
}

func TestAdminAffinity(t *testing.T) {
	h := Handler(testSource(t))
	var got []Affinity
	if code := getJSON(t, h, "/v1/affinity", &got); code != 200 || len(got) != 1 {
		t.Fatalf("GET /v1/affinity = %d, %d entries, want 200, 1", code, len(got))
	}
	want := Affinity{Service: "default/web:http/TCP", ServicePortID: 1, Client: testClient, EndpointID: 11,
		Endpoint: "198.19.1.10:8080", RemainingMilli: 500_000, TimeoutSeconds: 600}
	if got[0] != want {
		t.Errorf("affinity = %+v, want %+v", got[0], want)
	}
	if getJSON(t, h, "/v1/affinity?service=kube-system/dns", &got); len(got) != 0 {
		t.Errorf("affinity of dns = %+v, want none", got)
	}
	if getJSON(t, h, "/v1/affinity?host=198.18.0.6", &got); len(got) != 0 {
		t.Errorf("affinity of other client = %+v, want none", got)
	}
}

func TestAdminStats(t *testing.T) {
	h := Handler(testSource(t))
	var got Stats
	if code := getJSON(t, h, "/v1/stats", &got); code != 200 {
		t.Fatalf("GET /v1/stats = %d", code)
	}
	if len(got.Queues) != 2 || got.Queues[0].RxFrames != 10 || got.Queues[0].Drops[pipeline.DropParseL2.String()] != 2 {
		t.Errorf("queues = %+v", got.Queues)
	}
	if got.Drops[pipeline.DropParseL2.String()] != 2 || len(got.Pipeline) != 2 || got.Pipeline[0].NewFlows != 3 {
		t.Errorf("drops = %v, pipeline = %+v", got.Drops, got.Pipeline)
	}
	if got.Conntrack == nil || got.Conntrack.Inserts != 3 {
		t.Errorf("conntrack stats = %+v, want 3 inserts", got.Conntrack)
	}
}

// TestAdminSocketInspect runs the admin server on a unix socket in a temp
// directory and `xdpgate inspect` against it.
func TestAdminSocketInspect(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "admin.sock")
	a, err := Start(path, Handler(testSource(t)), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("startAdmin: %v", err)
	}
	if _, err := Start(path, http.NotFoundHandler(), slog.New(slog.DiscardHandler)); err == nil {
		t.Errorf("second Start on a live socket succeeded, want error")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, %v; want 0700", di.Mode().Perm(), err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"services"}, []string{"default/web:http", "198.19.1.10:8080(local,ready)", "198.19.1.11:8080(serving,terminating)", "10m0s", "Local/Cluster"}},
		{[]string{"conntrack", "--service", "default/web"}, []string{"198.18.0.6:40001", "2 flows"}},
		{[]string{"conntrack", "--limit", "1"}, []string{"1 of 3 matching flows"}},
		{[]string{"affinity"}, []string{"198.18.0.5", "198.19.1.10:8080", "8m20s"}},
		{[]string{"stats"}, []string{"eth1", "new flows 3", pipeline.DropParseL2.String()}},
		{[]string{"-o", "json", "stats"}, []string{`"rxFrames": 10`}},
		{[]string{"affinity", "--service", "default/web", "--top", "2"}, []string{
			"default/web:http/TCP  affinity 10m0s  max-load 1.25  imbalance 1.50 (max/mean pinned)",
			"198.19.1.10:8080             3       2      40         2.5      1         0",
			"198.19.1.12:8080 (departed)", "TOP CLIENTS BY CONNECTIONS", "198.18.0.6                  30           28-31",
			"TOP CLIENTS BY PACKETS", "198.18.0.6              900      900-911",
			"SERVICE", "198.18.0.5", "8m20s"}},
		{[]string{"-o", "json", "affinity", "--service", "default/web", "--top", "1"}, []string{`"imbalance": 1.5`, `"flows": 2`, `"connections": [`, `"client": "198.18.0.6"`}},
	} {
		args := append(tc.args, "--socket", path)
		var out, errb bytes.Buffer
		if code := exitCode(Inspect, args, &out, &errb); code != 0 {
			t.Errorf("inspect %q = exit %d, stderr %q", args, code, errb.String())
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("inspect %q output lacks %q:\n%s", args, w, out.String())
			}
		}
	}
	var errb bytes.Buffer
	if code := exitCode(Inspect, []string{"conntrack", "--service", "x/y", "--socket", path}, &bytes.Buffer{}, &errb); code != 1 || !strings.Contains(errb.String(), "not found") {
		t.Errorf("inspect unknown service = exit %d, %q; want 1, not found", code, errb.String())
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket after Close: %v, want removed", err)
	}
	if code := exitCode(Inspect, []string{"stats", "--socket", path}, &bytes.Buffer{}, &errb); code != 1 {
		t.Errorf("inspect without server = exit %d, want 1", code)
	}
}

func TestParseInspectFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"services"}, true},
		{[]string{"-o", "json", "conntrack", "--host", "198.18.0.1"}, true},
		{nil, false},
		{[]string{"flows"}, false},
		{[]string{"stats", "-o", "yaml"}, false},
		{[]string{"conntrack", "--port", "70000"}, false},
		{[]string{"stats", "extra"}, false},
		{[]string{"affinity", "--service", "ns/svc", "--top", "20"}, true},
		{[]string{"affinity", "--top", "20"}, false},
		{[]string{"conntrack", "--service", "ns/svc", "--top", "20"}, false},
		{[]string{"affinity", "--service", "ns/svc", "--top", "-1"}, false},
	} {
		_, err := parseInspectFlags(tc.args, &bytes.Buffer{})
		if (err == nil) != tc.ok {
			t.Errorf("parseInspectFlags(%q) error = %v, want ok %t", tc.args, err, tc.ok)
		}
	}
}

// exitCode runs a command and returns its exit status as cmd/xdpgate does.
func exitCode(cmd func(args []string, stdout, stderr io.Writer) error, args []string, stdout, stderr io.Writer) int {
	return cli.ExitCode("xdpgate", cmd(args, stdout, stderr), stderr)
}
