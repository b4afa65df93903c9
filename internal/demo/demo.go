package demo

import (
	"bytes"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/template"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/xdpgate/xdpgate/internal/admin"
)

// The portable parts (flags, manifest, live view) are here, the namespaces
// and processes in demo_linux.go.

//go:embed manifest.yaml.tmpl
var demoManifestTmpl string

var demoManifest = template.Must(template.New("manifest").Parse(demoManifestTmpl))

// demoOptions are the flags of `xdpgate demo`.
type demoOptions struct {
	duration time.Duration
	clients  int
	rate     int
	keep     bool
	cleanup  bool
}

// ErrUsage: bad flags or arguments; what was wrong has been written to
// stderr (or, for the backend helper, is in the error).
var ErrUsage = errors.New("usage")

// Summary is the demo command's one-line description.
const Summary = "run a self-contained demo in network namespaces (root)"

// BackendHelper is the hidden first argument after "demo" that makes the
// binary serve backends (ServeBackends) instead of running the demo.
const BackendHelper = "_serve-backends"

func parseDemoFlags(args []string, stderr io.Writer) (demoOptions, error) {
	var o demoOptions
	fs := flag.NewFlagSet("xdpgate demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long to drive traffic (one backend is removed halfway)")
	fs.IntVar(&o.clients, "clients", 64, "client addresses (198.19.0.1 and up, /32s on the client namespace's loopback)")
	fs.IntVar(&o.rate, "rate", 200, "HTTP connections per second, all clients together")
	fs.BoolVar(&o.keep, "keep", false, "leave the topology and the gateway running afterwards (remove with --cleanup)")
	fs.BoolVar(&o.cleanup, "cleanup", false, "remove a topology left by --keep (or by a killed demo) and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: xdpgate demo [--duration 30s] [--clients 64] [--rate 200] [--keep]
       xdpgate demo --cleanup

Builds network namespaces (clients, a gateway, backends on the gateway node
and on a remote node), runs "xdpgate run" of this binary on the gateway,
drives HTTP traffic through it and shows a live view. Needs root. Everything
it creates is removed at the end, on Ctrl-C and on error.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, ErrUsage
	}
	bad := func(format string, a ...any) (demoOptions, error) {
		fmt.Fprintf(stderr, "xdpgate demo: "+format+"\n", a...)
		return o, ErrUsage
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected arguments %q", fs.Args())
	case o.duration < 4*time.Second || o.duration > 24*time.Hour:
		return bad("--duration %v: want 4s to 24h", o.duration)
	case o.clients < 1 || o.clients > 250:
		return bad("--clients %d: want 1 to 250", o.clients)
	case o.rate < 1 || o.rate > 5000:
		return bad("--rate %d: want 1 to 5000", o.rate)
	case o.cleanup && o.keep:
		return bad("--cleanup and --keep exclude each other")
	}
	return o, nil
}

// demoBackend is one HTTP server of the demo: a pod of a service.
type demoBackend struct {
	Name    string // what it answers with, also the pod name
	Service string
	Node    string // "gw" (the gateway node) or "node2"
	Addr    netip.Addr
}

// The demo's services and addresses.
var (
	demoShopLB        = netip.MustParseAddr("198.18.200.1")
	demoShopClusterIP = netip.MustParseAddr("198.18.100.1")
	demoAPIClusterIP  = netip.MustParseAddr("198.18.100.2")
	demoGWClientSide  = netip.MustParseAddr("198.18.1.1")
)

const (
	demoShopNodePort   = 30080
	demoAPINodePort    = 30081
	demoHealthNodePort = 32000
	demoBackendPort    = 8080
	demoMetricsPort    = 10249
	// demoRemoved is the backend taken out of the manifest halfway.
	demoRemoved = "shop-b"
)

var demoBackends = []demoBackend{
	{"shop-a", "shop", "gw", netip.MustParseAddr("198.18.3.11")},
	{"shop-b", "shop", "gw", netip.MustParseAddr("198.18.3.12")},
	{"shop-c", "shop", "gw", netip.MustParseAddr("198.18.3.13")},
	{"shop-d", "shop", "node2", netip.MustParseAddr("198.18.5.11")},
	{"api-a", "api", "gw", netip.MustParseAddr("198.18.3.21")},
	{"api-b", "api", "node2", netip.MustParseAddr("198.18.5.21")},
	{"api-c", "api", "node2", netip.MustParseAddr("198.18.5.22")},
}

// demoService is a frontend the clients connect to.
type demoService struct {
	name, frontend, policy string
	dst                    netip.AddrPort
}

var demoServices = []demoService{
	{"shop", "LoadBalancer 198.18.200.1:80", "ETP Local, ClientIP affinity", netip.AddrPortFrom(demoShopLB, 80)},
	{"api", "NodePort 198.18.1.1:30081", "ETP Cluster (SNAT)", netip.AddrPortFrom(demoGWClientSide, demoAPINodePort)},
}

// renderDemoManifest returns the manifest with every backend except those
// named in without.
func renderDemoManifest(without ...string) ([]byte, error) {
	data := struct {
		ShopClusterIP, ShopLB, APIClusterIP            netip.Addr
		ShopNodePort, APINodePort, HealthCheckNodePort int
		Shop, API                                      []demoBackend
	}{
		ShopClusterIP: demoShopClusterIP, ShopLB: demoShopLB, APIClusterIP: demoAPIClusterIP,
		ShopNodePort: demoShopNodePort, APINodePort: demoAPINodePort, HealthCheckNodePort: demoHealthNodePort,
	}
	for _, b := range demoBackends {
		if containsString(without, b.Name) {
			continue
		}
		if b.Service == "shop" {
			data.Shop = append(data.Shop, b)
		} else {
			data.API = append(data.API, b)
		}
	}
	var buf bytes.Buffer
	if err := demoManifest.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render manifest: %w", err)
	}
	return buf.Bytes(), nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// promSamples is a parsed /metrics answer: metric family name -> family.
type promSamples map[string]*dto.MetricFamily

// parsePromText parses a Prometheus text exposition (expfmt's parser, the
// one Prometheus uses for the text format).
func parsePromText(text string) (promSamples, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return fams, nil
}

// sampleValue returns the value of a counter, gauge or untyped sample; the
// view reads no histograms or summaries, so they have none here.
func sampleValue(m *dto.Metric) (float64, bool) {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	case m.Untyped != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// labelValue returns the value of m's label name.
func labelValue(m *dto.Metric, name string) (string, bool) {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue(), true
		}
	}
	return "", false
}

// hasLabels reports whether m carries every `key="value"` pair in labels.
func hasLabels(m *dto.Metric, labels []string) bool {
	for _, l := range labels {
		k, quoted, _ := strings.Cut(l, "=")
		want, err := strconv.Unquote(quoted)
		if err != nil {
			want = quoted
		}
		if got, ok := labelValue(m, k); !ok || got != want {
			return false
		}
	}
	return true
}

// sum adds the samples of metric name whose labels contain every given
// `key="value"` pair.
func (p promSamples) sum(name string, labels ...string) float64 {
	var s float64
	for _, m := range p[name].GetMetric() {
		if v, ok := sampleValue(m); ok && hasLabels(m, labels) {
			s += v
		}
	}
	return s
}

// demoView is one frame's data: client-side counts and two samples of the
// gateway's admin API (/v1/top) one interval apart.
type demoView struct {
	elapsed, total time.Duration
	gatewayPID     int
	clients        int
	interval       time.Duration // between two frames
	// topPrev and topCur are the gateway's previous and current samples,
	// drawn by admin.RenderTop exactly as `xdpgate top` draws them;
	// topCur is nil when the sample failed (topErr).
	topPrev, topCur *admin.Top
	topErr          error
	health          string // healthCheckNodePort answer, one line
	svc             map[string]demoSvcCounts
	svcPrev         map[string]demoSvcCounts
	backends        map[string]demoBackendCounts
	removed         map[string]time.Duration // backend -> when it left the manifest
	events          []string
	final           bool
}

// demoSvcCounts are client-side counts per service.
type demoSvcCounts struct {
	ok, failed uint64
	segments   uint64 // TCP segments in+out of the client sockets (TCP_INFO)
}

// demoBackendCounts are client-side counts per backend (from the
// X-Backend header of the answers).
type demoBackendCounts struct {
	conns      uint64
	sawClient  uint64 // answers whose X-Peer was the client's own address
	lastOf     int    // clients whose latest answer came from this backend
	lastPeerIP netip.Addr
}

// render writes one frame of the live view.
func (v *demoView) render(w io.Writer) {
	title := "live"
	if v.final {
		title = "final"
	}
	fmt.Fprintf(w, "xdpgate demo (%s)  t=%.0fs of %.0fs  gateway pid %d  %d clients  Ctrl-C stops and cleans up\n\n",
		title, v.elapsed.Seconds(), v.total.Seconds(), v.gatewayPID, v.clients)

	fmt.Fprintf(w, "%-6s %-30s %-29s %7s %8s %8s %7s\n", "SERVICE", "FRONTEND", "POLICY", "CONN/S", "PKTS/S", "OK", "FAILED")
	secs := v.interval.Seconds()
	for _, s := range demoServices {
		c, p := v.svc[s.name], v.svcPrev[s.name]
		var cps, pps float64
		if secs > 0 {
			cps = float64(c.ok+c.failed-p.ok-p.failed) / secs
			pps = float64(c.segments-p.segments) / secs
		}
		fmt.Fprintf(w, "%-6s %-30s %-29s %7.0f %8.0f %8d %7d\n", s.name, s.frontend, s.policy, cps, pps, c.ok, c.failed)
	}
	fmt.Fprintf(w, "  (client side: connections answered per second, TCP segments in+out of the client sockets)\n\n")

	fmt.Fprintf(w, "%-7s %-6s %-12s %8s %8s  %s\n", "BACKEND", "NODE", "ADDRESS", "CONNS", "CLIENTS", "NOTE")
	for _, b := range demoBackends {
		c := v.backends[b.Name]
		clients := "-"
		if b.Service == "shop" {
			clients = strconv.Itoa(c.lastOf)
		}
		var note string
		switch {
		case v.removed[b.Name] > 0:
			note = fmt.Sprintf("removed at %.0fs", v.removed[b.Name].Seconds())
		case b.Service == "shop" && b.Node != "gw":
			note = "remote node: no external traffic (ETP Local)"
		case c.conns > 0 && c.sawClient == c.conns:
			note = "sees the client address"
		case c.conns > 0 && c.lastPeerIP.IsValid():
			note = "sees " + c.lastPeerIP.String() + " (SNAT)"
		}
		fmt.Fprintf(w, "%-7s %-6s %-12s %8d %8s  %s\n", b.Name, b.Node, b.Addr, c.conns, clients, note)
	}
	fmt.Fprintf(w, "  (CLIENTS: client addresses whose latest shop answer came from this backend)\n\n")

	fmt.Fprintf(w, "gateway (xdpgate top, from its admin socket):\n")
	if v.topCur == nil {
		fmt.Fprintf(w, "  not available: %v\n", v.topErr)
	} else {
		admin.RenderTop(w, v.topPrev, v.topCur)
	}
	if v.health != "" {
		fmt.Fprintf(w, "  shop healthCheckNodePort %d: %s\n", demoHealthNodePort, v.health)
	}
	if len(v.events) > 0 {
		fmt.Fprintf(w, "\nevents:\n")
		for _, e := range v.events {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}
