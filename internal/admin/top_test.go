package admin

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/pipeline"
)

// topTestSource is testSource with packets on web's flows and one flow of
// a service port the snapshot no longer has.
func topTestSource(t *testing.T) Source {
	t.Helper()
	src := testSource(t)
	now := src.Now()
	src.Conntrack.Range(func(e *conntrack.Entry) bool {
		if e.ServicePort == 1 {
			src.Conntrack.Touch(e.Handle, conntrack.Original, 0, 100, now)
			src.Conntrack.Touch(e.Handle, conntrack.Reply, 0, 1000, now)
		}
		return true
	})
	orig := conntrack.MakeTuple(testOther, netip.MustParseAddr("198.18.100.9"), 40002, 443, nat.ProtoTCP)
	if _, r := src.Conntrack.Insert(orig, conntrack.MakeTranslation(netip.AddrPortFrom(testEP1, 443), netip.AddrPort{}), 99, 991, now-int64(time.Minute)); r != conntrack.Inserted {
		t.Fatalf("Insert = %v", r)
	}
	return src
}

func TestAdminTop(t *testing.T) {
	h := Handler(topTestSource(t))
	var got Top
	if code := getJSON(t, h, "/v1/top", &got); code != 200 {
		t.Fatalf("GET /v1/top = %d, want 200", code)
	}
	if got.Generation != 7 || len(got.Services) != 3 {
		t.Fatalf("top = generation %d, %d services; want 7, 3 (web, dns, gone)", got.Generation, len(got.Services))
	}
	want := []TopService{
		{ID: 1, Namespace: "default", Name: "web", PortName: "http", Protocol: "TCP", Port: 80, Endpoints: 2, Ready: 1,
			Flows: 2, Active: 2, Unreplied: 0, Packets: [2]uint64{2, 2}, Bytes: [2]uint64{200, 2000}, Affinity: 1, AffinitySeconds: 600,
			Load: []TopEndpoint{{ID: 11, Endpoint: "198.19.1.10:8080", Pinned: 3, Flows: 2, NewConnections: 40},
				{ID: 12, Endpoint: "198.19.1.11:8080", Pinned: 1, NewConnections: 7},
				{ID: 13, Endpoint: "198.19.1.12:8080", Departed: true, Pinned: 2}}},
		{ID: 2, Namespace: "kube-system", Name: "dns", Protocol: "UDP", Port: 53, Endpoints: 1, Ready: 1,
			Flows: 1, Active: 1, Unreplied: 1},
		{Name: "(gone)", Flows: 1, Unreplied: 1},
	}
	for i, w := range want {
		if !reflect.DeepEqual(got.Services[i], w) {
			t.Errorf("top service %d = %+v, want %+v", i, got.Services[i], w)
		}
	}
	if got.Totals.RxFrames != 11 || got.Totals.TxFrames != 8 || got.Totals.NewFlows != 3 || got.Totals.Forwarded != 1 || got.Totals.Drops != 2 {
		t.Errorf("totals = %+v, want rx 11, tx 8, new flows 3, forwarded 1, drops 2", got.Totals)
	}
	if got.Drops[pipeline.DropParseL2.String()] != 2 {
		t.Errorf("drops = %v, want %s 2", got.Drops, pipeline.DropParseL2)
	}
	if got.Conntrack.Entries != 4 || got.Conntrack.Capacity < 1024 || got.Affinity.Entries != 1 || got.Affinity.Capacity != 64 {
		t.Errorf("tables = conntrack %+v, affinity %+v; want 4 entries of >= 1024, 1 of 64", got.Conntrack, got.Affinity)
	}
	if got.Clock != int64(time.Hour) {
		t.Errorf("clock = %d, want the source's %d", got.Clock, int64(time.Hour))
	}
}

func TestAdminTopEmpty(t *testing.T) {
	var got Top
	if code := getJSON(t, Handler(Source{}), "/v1/top", &got); code != 200 || len(got.Services) != 0 || got.Conntrack.Capacity != 0 {
		t.Errorf("GET /v1/top of an empty source = %d, %+v; want 200, nothing", code, got)
	}
}

func TestRenderTop(t *testing.T) {
	svc := func(pkts, bytes uint64) TopService {
		return TopService{ID: 1, Namespace: "demo", Name: "shop", PortName: "http", Protocol: "TCP", Port: 80, Endpoints: 4, Ready: 3,
			Flows: 5, Active: 4, Packets: [2]uint64{pkts, pkts}, Bytes: [2]uint64{bytes, bytes}, Affinity: 7, AffinitySeconds: 600}
	}
	prev := &Top{Clock: int64(10 * time.Second), Services: []TopService{svc(100, 10_000)},
		Totals: TopTotals{RxFrames: 1000, NewFlows: 10, AffinityHits: 5, Drops: 1}, Drops: map[string]uint64{"no_route": 1}}
	cur := &Top{Clock: int64(12 * time.Second), Services: []TopService{svc(300, 50_000), {ID: 2, Name: "api", Namespace: "demo", Protocol: "TCP", Port: 80}},
		Totals:    TopTotals{RxFrames: 3000, NewFlows: 30, AffinityHits: 9, Drops: 5},
		Drops:     map[string]uint64{"no_route": 5},
		Conntrack: TopTable{Entries: 5, Capacity: 100}, Affinity: TopTable{Entries: 7, Capacity: 1000}}
	var b strings.Builder
	RenderTop(&b, prev, cur)
	out := b.String()
	for _, w := range []string{
		"rx 1000 ", "new flows/s 10", "drops/s 2", // (3000-1000)/2 s, (30-10)/2, (5-1)/2
		"hits 9 (2/s)", "entries 7 of 1000 (0.7%)", "entries 5 of 100 (5.0%)",
		"demo/shop:http", "80/TCP", "3/4", "20.0k", // bytes (50000-10000)/2
		"no_route", "AFFINITY",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("RenderTop output lacks %q:\n%s", w, out)
		}
	}
	// api first appears in cur: no rate yet.
	if l := lineWith(out, "demo/api"); !strings.Contains(l, "-") {
		t.Errorf("api row %q, want '-' rates", l)
	}
	// A counter going down (flows ended) is a rate of 0, not negative.
	down := *cur
	down.Services = []TopService{svc(50, 1000)}
	b.Reset()
	RenderTop(&b, cur, &down)
	if l := lineWith(b.String(), "demo/shop"); strings.Contains(l, "-") {
		t.Errorf("shop row after counters went down = %q, want zero rates", l)
	}
	// The first sample has no rates.
	b.Reset()
	RenderTop(&b, nil, cur)
	if !strings.Contains(b.String(), "rx - ") {
		t.Errorf("first sample: want '-' rates:\n%s", b.String())
	}
}

// TestRenderTopEndpointLoad: a ClientIP service's endpoints are listed
// with their pinned clients, live flows and new connections per second.
func TestRenderTopEndpointLoad(t *testing.T) {
	svc := func(conns uint64) TopService {
		return TopService{ID: 1, Namespace: "demo", Name: "shop", Protocol: "TCP", Port: 80, AffinitySeconds: 600,
			Load: []TopEndpoint{{ID: 5, Endpoint: "198.18.2.1:80", Pinned: 412, Flows: 30, NewConnections: conns},
				{ID: 6, Endpoint: "198.18.2.2:80", Departed: true, Pinned: 3}}}
	}
	prev := &Top{Clock: int64(10 * time.Second), Services: []TopService{svc(100)}}
	cur := &Top{Clock: int64(12 * time.Second), Services: []TopService{svc(150)}}
	var b strings.Builder
	RenderTop(&b, prev, cur)
	out := b.String()
	for _, w := range []string{"CLIENTIP SERVICE", "198.18.2.2:80 (departed)"} {
		if !strings.Contains(out, w) {
			t.Errorf("RenderTop output lacks %q:\n%s", w, out)
		}
	}
	if l := strings.Fields(lineWith(out, "198.18.2.1:80")); !slices.Equal(l, []string{"demo/shop", "198.18.2.1:80", "412", "30", "25"}) {
		t.Errorf("endpoint row = %q, want demo/shop 198.18.2.1:80 412 30 25 ((150-100)/2 s)", l)
	}
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// TestTopCommand runs `xdpgate top` against an admin socket.
func TestTopCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	a, err := Start(path, Handler(topTestSource(t)), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var out, errb bytes.Buffer
	if code := exitCode(TopCommand, []string{"--socket", path, "-o", "json"}, &out, &errb); code != 0 {
		t.Fatalf("top -o json = exit %d, %s", code, errb.String())
	}
	var one Top
	if err := json.Unmarshal(out.Bytes(), &one); err != nil || len(one.Services) != 3 {
		t.Errorf("top -o json = %v, %d services; want one sample of 3", err, len(one.Services))
	}
	out.Reset()
	if code := exitCode(TopCommand, []string{"--socket", path, "--count", "2", "--interval", "100ms"}, &out, &errb); code != 0 {
		t.Fatalf("top --count 2 = exit %d, %s", code, errb.String())
	}
	if n := strings.Count(out.String(), "xdpgate top "); n != 2 || !strings.Contains(out.String(), "default/web:http") {
		t.Errorf("top --count 2: %d frames, want 2 with default/web:http:\n%s", n, out.String())
	}
	if code := exitCode(TopCommand, []string{"--socket", filepath.Join(t.TempDir(), "none.sock"), "-o", "json"}, &out, &errb); code != 1 {
		t.Errorf("top without a gateway = exit %d, want 1", code)
	}
}

func TestParseTopFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"-o", "json"}, true},
		{[]string{"--interval", "2s", "--count", "3"}, true},
		{[]string{"-o", "yaml"}, false},
		{[]string{"--interval", "1ms"}, false},
		{[]string{"--count", "-1"}, false},
		{[]string{"extra"}, false},
	} {
		_, err := parseTopFlags(tc.args, &bytes.Buffer{})
		if (err == nil) != tc.ok {
			t.Errorf("parseTopFlags(%q) error = %v, want ok %t", tc.args, err, tc.ok)
		}
	}
}

// TestCollectorCapacity: the tables' sizes are exported next to their
// entries, so that dashboards and alerts compute fill.
func TestCollectorCapacity(t *testing.T) {
	src := testSource(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src))
	v4, v6 := src.Conntrack.Capacity()
	want := strings.NewReader(`# HELP xdpgate_affinity_capacity ClientIP affinity table capacity in clients (--affinity-max).
# TYPE xdpgate_affinity_capacity gauge
xdpgate_affinity_capacity 64
# HELP xdpgate_conntrack_capacity Flow table capacity by IP family (--conntrack-max; IPv6 an eighth of it).
# TYPE xdpgate_conntrack_capacity gauge
xdpgate_conntrack_capacity{family="IPv4"} ` + strconv.Itoa(v4) + `
xdpgate_conntrack_capacity{family="IPv6"} ` + strconv.Itoa(v6) + `
`)
	if err := testutil.GatherAndCompare(reg, want, "xdpgate_affinity_capacity", "xdpgate_conntrack_capacity"); err != nil {
		t.Error(err)
	}
}
