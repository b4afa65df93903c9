package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/pipeline" // also registers the pipeline's drop reasons
)

// The queries xdpgate ships (deploy/monitoring) against a real Prometheus
// scraping a live gateway: the dashboard's and the alert rules'.
const (
	dashboardFile = "../deploy/monitoring/grafana-dashboard.json"
	alertsFile    = "../deploy/monitoring/alerts.yaml"
	promAddr      = "127.0.0.1:19090" // inside the gateway namespace
)

// TestPrivPrometheus runs Prometheus (Debian's prometheus) inside the
// gateway namespace, scraping the gateway every second and evaluating
// deploy/monitoring/alerts.yaml, while traffic fills a deliberately small
// flow table, affinity table and SNAT range and one service does not fit
// the classifier. It then checks through Prometheus' HTTP API that:
//   - every rule evaluates without error;
//   - every metric and label the dashboard and the rules select exists in
//     what the gateway exports (each selector queried alone, so a rate()
//     over a misspelt metric cannot pass as "no traffic"), and label
//     values are either exported or known values (drop reasons);
//   - every dashboard query returns series, with the values the traffic
//     implies;
//   - the alerts this gateway should raise are pending or firing, and the
//     others are not.
func TestPrivPrometheus(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not installed (hack/install-deps.sh installs Debian's prometheus): %v", err)
	}
	dash, alerts := loadShippedQueries(t)

	const nClients = 80
	w := newWorld(t, nClients, 2, 1)
	sticky := svc{name: "sticky", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(2), affinity: 300}
	masq := svc{name: "masq", family: "IPv4", clusterIP: netip.MustParseAddr("198.18.100.2"), nodePort: 30090, endpoints: endpoints4(1)}
	overflow := svc{name: "zz-overflow", family: "IPv4", clusterIP: netip.MustParseAddr("198.18.100.3"), endpoints: endpoints4(1), withoutUDPPort: true}
	w.writeManifest(manifest(sticky, masq, overflow))
	// sticky and masq hold 4 frontends (TCP and UDP each): zz-overflow's
	// does not fit. Tiny tables and SNAT range so that traffic fills them.
	w.start("--max-frontends", "4", "--conntrack-max", "64", "--affinity-max", "64", "--snat-ports", "20000-20001")
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	w.waitMetric("xdpgate_classifier_skipped_service_ports 1", 10*time.Second)

	p := startPrometheus(t, w, promBin)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	loop := func(every time.Duration, fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				fn(i)
				select {
				case <-ctx.Done():
				case <-time.After(every):
				}
			}
		}()
	}
	// The kubelet's readiness probe: /healthz once a second (503 here:
	// zz-overflow is not served).
	loop(time.Second, func(int) { w.httpGetErr("http://127.0.0.1:10256/healthz", w.g) })
	// ClientIP affinity and flows from every client: more clients than
	// either table holds.
	loop(20*time.Millisecond, func(i int) {
		c := client4(i % nClients)
		if i%2 == 0 {
			w.udpQuery(c, ap(vip4, 80))
		} else {
			w.tcpQueryTimeout(c, ap(vip4, 80), time.Second)
		}
	})
	// Masqueraded UDP from six source ports through a SNAT range of two:
	// the others are dropped as snat_exhausted.
	var socks []net.PacketConn
	for i := 0; i < 6; i++ {
		err := w.c.Do(func() (err error) {
			pc, err := net.ListenPacket("udp", netip.AddrPortFrom(client4(i), 0).String())
			socks = append(socks, pc)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		defer socks[i].Close()
	}
	loop(20*time.Millisecond, func(i int) {
		socks[i%len(socks)].WriteTo([]byte("who"), net.UDPAddrFromAddrPort(ap(gwClientSide4, 30090)))
	})

	// The selector check must be able to fail: a misspelt metric, label or
	// value is an error.
	if err := within(ctx, 15*time.Second, func() error {
		_, err := p.query("xdpgate_rx_frames_total")
		return err
	}); err != nil {
		t.Fatalf("prometheus has no xdpgate samples: %v", err)
	}
	for _, bad := range []string{
		`rate(xdpgate_rx_frame_total[1m])`,
		`sum(xdpgate_drops_total{reason="no_such_reason"})`,
		`xdpgate_rx_frames_total{no_such_label="x"}`,
	} {
		if err := p.checkSelectors(bad); err == nil {
			t.Errorf("checkSelectors(%s) = nil, want an error", bad)
		}
	}

	// Alerts: wait (at most 25 s) until the expected ones are pending or
	// firing; the rate windows need a few scrapes.
	wantAlerts := []string{
		"XdpgateServicePortsSkipped", "XdpgateUnhealthy", "XdpgateSNATPortsExhausted",
		`XdpgateDropsRising{reason="snat_exhausted"}`, `XdpgateConntrackNearlyFull{family="IPv4"}`,
		"XdpgateConntrackEvicting", "XdpgateAffinityNearlyFull", `XdpgateClassifierNearlyFull{kind="frontends"}`,
		`XdpgateServiceDropping{service="masq"}`, `XdpgateServiceDropping{reason="snat_exhausted"}`,
	}
	quiet := []string{"XdpgateDown", "XdpgateClassifierUpdateRefused", "XdpgateSnapshotBuildErrors"}
	var active []string
	err = within(ctx, 25*time.Second, func() error {
		active, err = p.activeAlerts()
		if err != nil {
			return err
		}
		var missing []string
		for _, a := range wantAlerts {
			if !slices.Contains(active, a) {
				missing = append(missing, a)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not pending or firing: %v", missing)
		}
		return nil
	})
	if err != nil {
		t.Errorf("alerts: %v (active: %v)", err, active)
	}
	for _, a := range quiet {
		for _, got := range active {
			if got == a || strings.HasPrefix(got, a+"{") {
				t.Errorf("alert %s is active on a gateway that is up, programs its classifier and has no invalid objects", got)
			}
		}
	}

	// Every rule evaluated without error, every selector names what
	// exists.
	rules, err := p.ruleHealth()
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != len(alerts) {
		t.Errorf("prometheus loaded %d rules, alerts.yaml has %d", len(rules), len(alerts))
	}
	for name, lastErr := range rules {
		if lastErr != "" {
			t.Errorf("rule %s: %s", name, lastErr)
		}
	}
	for _, a := range alerts {
		if _, err := p.query(a.expr); err != nil {
			t.Errorf("alert %s: %v", a.name, err)
		}
		if err := p.checkSelectors(a.expr); err != nil {
			t.Errorf("alert %s: %v", a.name, err)
		}
	}

	// Dashboard: every query returns series; some have known values.
	expect := map[string]func(v float64, labels map[string]string) error{
		"Gateways up/A":              equal(1),
		"Gateways up/B":              equal(1),
		"Service ports not served/A": equal(1),
		"/healthz answers by code/A": labelIs("code", "503"),
		"Received frames/s/A":        positive,
		"Transmitted frames/s/A":     positive,
		"Throughput/A":               positive,
		"New flows/s/A":              positive,
		"Affinity hits and misses/s/A": func(v float64, l map[string]string) error {
			return labelIn("event", "affinity_hit", "affinity_miss")(v, l)
		},
		"Conntrack fill/A": func(v float64, l map[string]string) error {
			if l["family"] == "IPv4" && (v <= 0.9 || v > 1) {
				return fmt.Errorf("IPv4 fill %v, want (0.9, 1]", v)
			}
			return nil
		},
		"Affinity fill/A": func(v float64, _ map[string]string) error {
			if v <= 0.9 {
				return fmt.Errorf("fill %v, want > 0.9", v)
			}
			return nil
		},
		"Classifier fill/A": func(v float64, l map[string]string) error {
			if l["kind"] == "frontends" && v != 1 {
				return fmt.Errorf("frontends fill %v, want 1", v)
			}
			return nil
		},
	}
	// sticky's pinned clients over its two endpoints: at least the mean.
	expect["Affinity imbalance per service/A"] = func(v float64, _ map[string]string) error {
		if v < 1 || v > 2 {
			return fmt.Errorf("imbalance %v, want 1 to 2 (two endpoints)", v)
		}
		return nil
	}
	// The snapshot holds every service port, served or not: 2+2+1.
	expect["Snapshot size/A"] = equal(5)
	var sawSNATDrops bool
	// Per service: sticky carries the client traffic (ClientIP), masq the
	// SNAT-exhausted UDP.
	sawService := map[string]bool{
		"Service throughput/A": false, "Service packets/s/A": false, "Service new connections/s/A": false,
		"Service drops/s by reason/A": false, "Affinity entries per service/A": false, "Affinity events/s per service/A": false,
		"Affinity imbalance per service/A": false,
	}
	for _, q := range dash {
		res, err := p.query(q.expr)
		if err != nil {
			t.Errorf("dashboard %s: %v", q.name, err)
			continue
		}
		if len(res) == 0 {
			t.Errorf("dashboard %s: %s returns no series", q.name, q.expr)
		}
		if err := p.checkSelectors(q.expr); err != nil {
			t.Errorf("dashboard %s: %v", q.name, err)
		}
		for _, s := range res {
			if math.IsNaN(s.value) && !strings.Contains(q.expr, "histogram_quantile") {
				t.Errorf("dashboard %s: %v is NaN", q.name, s.labels)
			}
			if s.value < 0 {
				t.Errorf("dashboard %s: %v = %v, want >= 0", q.name, s.labels, s.value)
			}
			if f := expect[q.name]; f != nil {
				if err := f(s.value, s.labels); err != nil {
					t.Errorf("dashboard %s %v: %v", q.name, s.labels, err)
				}
			}
			if q.name == "Drops/s by reason/A" && s.labels["reason"] == "snat_exhausted" && s.value > 0 {
				sawSNATDrops = true
			}
			if _, ok := sawService[q.name]; ok && s.value > 0 && s.labels["namespace"] == "e2e" {
				switch {
				case q.name == "Service drops/s by reason/A":
					sawService[q.name] = sawService[q.name] || s.labels["service"] == "masq" && s.labels["reason"] == "snat_exhausted"
				default:
					sawService[q.name] = sawService[q.name] || s.labels["service"] == "sticky"
				}
			}
		}
	}
	if !sawSNATDrops {
		t.Errorf("dashboard: Drops/s by reason shows no snat_exhausted drops")
	}
	for name, saw := range sawService {
		if !saw {
			t.Errorf("dashboard %s: no positive series of e2e/sticky (drops: e2e/masq snat_exhausted)", name)
		}
	}
	if t.Failed() {
		t.Logf("prometheus log (tail):\n%s", p.logTail())
	}
}

func equal(want float64) func(float64, map[string]string) error {
	return func(v float64, _ map[string]string) error {
		if v != want {
			return fmt.Errorf("%v, want %v", v, want)
		}
		return nil
	}
}

func positive(v float64, _ map[string]string) error {
	if !(v > 0) {
		return fmt.Errorf("%v, want > 0", v)
	}
	return nil
}

func labelIs(name, want string) func(float64, map[string]string) error {
	return labelIn(name, want)
}

func labelIn(name string, want ...string) func(float64, map[string]string) error {
	return func(_ float64, l map[string]string) error {
		if !slices.Contains(want, l[name]) {
			return fmt.Errorf("%s=%q, want one of %q", name, l[name], want)
		}
		return nil
	}
}

// shippedQuery is one query of the dashboard ("panel title/refId", Grafana
// variables replaced) or of the rules (alert name).
type shippedQuery struct{ name, expr string }

// grafanaVars replaces the dashboard's variables with what Grafana would
// send for "All" gateways and a short rate window (the test scrapes every
// second).
var grafanaVars = strings.NewReplacer("$__rate_interval", "10s", "$instance", ".*", "${datasource}", "")

func loadShippedQueries(t *testing.T) (dash, alerts []shippedQuery) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ RefID, Expr string }
		}
		Templating struct {
			List []struct {
				Name, Definition string
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			dash = append(dash, shippedQuery{p.Title + "/" + tg.RefID, grafanaVars.Replace(tg.Expr)})
		}
	}
	// label_values(SELECTOR, label): the selector must return series
	// carrying the label.
	lv := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	for _, v := range d.Templating.List {
		if m := lv.FindStringSubmatch(v.Definition); m != nil {
			dash = append(dash, shippedQuery{"variable " + v.Name, fmt.Sprintf(`count by (%s) (%s)`, m[2], m[1])})
		} else if strings.HasPrefix(v.Definition, "label_values") {
			t.Errorf("dashboard variable %s: %q: the test understands label_values(SELECTOR, label) only", v.Name, v.Definition)
		}
	}
	if b, err = os.ReadFile(alertsFile); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Record, Expr, For string
				Labels, Annotations      map[string]string
			}
		}
	}
	if err := yaml.UnmarshalStrict(b, &r); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	for _, g := range r.Groups {
		for _, rule := range g.Rules {
			alerts = append(alerts, shippedQuery{rule.Alert + rule.Record, rule.Expr})
		}
	}
	if len(dash) < 20 || len(alerts) < 8 {
		t.Fatalf("%d dashboard and %d alert queries: the files were not read as expected", len(dash), len(alerts))
	}
	return dash, alerts
}

// prom is a Prometheus server running in the gateway namespace.
type prom struct {
	t      *testing.T
	client *http.Client
	log    string
}

// startPrometheus runs prometheus in w's gateway namespace with a 1 s
// scrape and evaluation interval, the gateway as job xdpgate and the
// shipped rules; cleanup stops it (also when the test fails) and waits.
func startPrometheus(t *testing.T, w *world, bin string) *prom {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
- job_name: xdpgate
  static_configs:
  - targets: ["127.0.0.1:10249"]
`, rules)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prom{t: t, log: filepath.Join(dir, "prometheus.log")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	// ip netns exec execs prometheus: the PID is prometheus'.
	cmd := exec.Command("ip", "netns", "exec", w.g.Name, bin, "--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	p.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := w.g.Do(func() (err error) {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		DisableKeepAlives: true,
	}}
	err = within(context.Background(), 20*time.Second, func() error {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("prometheus exited: %v: %s", err, p.logTail())
		default:
		}
		resp, err := p.client.Get("http://" + promAddr + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("prometheus not ready: %v", err)
	}
	return p
}

func (p *prom) logTail() string { return demoTail(readFile(p.log), 3000) }

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// api GETs /api/v1/<path> and decodes data into v.
func (p *prom) api(path string, q url.Values, v any) error {
	u := "http://" + promAddr + "/api/v1/" + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := p.client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Status, Error string
		Data          json.RawMessage
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("%s: %s: %w", path, resp.Status, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", path, r.Error)
	}
	return json.Unmarshal(r.Data, v)
}

// sample is one series of an instant query.
type sample struct {
	labels map[string]string
	value  float64
}

// query evaluates expr now; a scalar result is one sample without labels.
func (p *prom) query(expr string) ([]sample, error) {
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.api("query", url.Values{"query": {expr}}, &d); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	parse := func(v [2]any) float64 {
		s, _ := v[1].(string)
		f, _ := strconv.ParseFloat(s, 64)
		return f
	}
	switch d.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string
			Value  [2]any
		}
		if err := json.Unmarshal(d.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]sample, len(vec))
		for i, s := range vec {
			out[i] = sample{s.Metric, parse(s.Value)}
		}
		return out, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(d.Result, &v); err != nil {
			return nil, err
		}
		return []sample{{nil, parse(v)}}, nil
	}
	return nil, fmt.Errorf("query %s: result type %s", expr, d.ResultType)
}

// activeAlerts lists pending and firing alerts as NAME and, for each of
// their labels other than the usual ones, NAME{label="value"}.
func (p *prom) activeAlerts() ([]string, error) {
	var d struct {
		Alerts []struct {
			Labels map[string]string
			State  string
		}
	}
	if err := p.api("alerts", nil, &d); err != nil {
		return nil, err
	}
	var out []string
	for _, a := range d.Alerts {
		if a.State != "pending" && a.State != "firing" {
			continue
		}
		name := a.Labels["alertname"]
		out = append(out, name)
		for k, v := range a.Labels {
			switch k {
			case "alertname", "severity", "job", "instance":
			default:
				out = append(out, fmt.Sprintf("%s{%s=%q}", name, k, v))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ruleHealth returns every loaded rule's last evaluation error ("" when
// healthy) by name, once every rule has been evaluated.
func (p *prom) ruleHealth() (map[string]string, error) {
	var out map[string]string
	err := within(context.Background(), 10*time.Second, func() error {
		var d struct {
			Groups []struct {
				Rules []struct {
					Name, Health, LastError string
				}
			}
		}
		if err := p.api("rules", nil, &d); err != nil {
			return err
		}
		out = map[string]string{}
		for _, g := range d.Groups {
			for _, r := range g.Rules {
				if r.Health == "unknown" {
					return fmt.Errorf("rule %s not evaluated yet", r.Name)
				}
				out[r.Name] = r.LastError
				if r.Health != "ok" && r.LastError == "" {
					out[r.Name] = "health " + r.Health
				}
			}
		}
		return nil
	})
	return out, err
}

// knownValues are label values a selector may name although the gateway
// exports them only once they occur: drop reasons (a counter appears at
// its first drop; per service, also reject) and /healthz answer codes.
func knownValues(label string) []string {
	switch label {
	case "reason":
		var out []string
		for r := dataplane.DropReason(0); r < dataplane.NumDropReasons; r++ {
			if s := r.String(); !strings.HasPrefix(s, "reason_") {
				out = append(out, s)
			}
		}
		return append(out, pipeline.ServiceDropName(pipeline.SvcReject))
	case "code":
		return []string{"200", "503"}
	}
	return nil
}

// checkSelectors checks each metric selector of expr alone: the metric
// must have series, every label a matcher names must be on them, and every
// value an = or =~ matcher lists (plain alternatives) must be exported or
// a known value.
func (p *prom) checkSelectors(expr string) error {
	sels, err := promSelectors(expr)
	if err != nil {
		return err
	}
	var errs []error
	count := func(q string) float64 {
		res, err := p.query(q)
		if err != nil {
			errs = append(errs, err)
			return 0
		}
		if len(res) == 0 {
			return 0
		}
		return res[0].value
	}
	for _, s := range sels {
		if count(fmt.Sprintf("count(%s)", s.metric)) == 0 {
			errs = append(errs, fmt.Errorf("metric %s: no series", s.metric))
			continue
		}
		for _, m := range s.matchers {
			if count(fmt.Sprintf(`count(%s{%s!=""})`, s.metric, m.label)) == 0 {
				errs = append(errs, fmt.Errorf("%s: no series with label %s", s.metric, m.label))
				continue
			}
			if m.op != "=" && m.op != "=~" && m.op != "!~" && m.op != "!=" {
				continue
			}
			values := []string{m.value}
			if strings.HasSuffix(m.op, "~") {
				if !regexp.MustCompile(`^[\w|]+$`).MatchString(m.value) {
					continue // a real regular expression: nothing to enumerate
				}
				values = strings.Split(m.value, "|")
			}
			for _, v := range values {
				if slices.Contains(knownValues(m.label), v) {
					continue
				}
				if count(fmt.Sprintf(`count(%s{%s=%q})`, s.metric, m.label, v)) == 0 {
					errs = append(errs, fmt.Errorf("%s: no series with %s=%q, and it is not a known value", s.metric, m.label, v))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// selector is one metric selector of a PromQL expression.
type selector struct {
	metric   string
	matchers []matcher
}

type matcher struct{ label, op, value string }

// promTokens splits PromQL into identifiers, strings, numbers and
// durations, and single punctuation or operators.
var promTokens = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|[A-Za-z_:][A-Za-z0-9_:]*|[0-9][0-9.eE+a-z]*|=~|!~|!=|==|>=|<=|\S`)

// promKeywords are identifiers that are not metric names.
var promKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
}

// promSelectors returns the metric selectors of expr: identifiers that are
// not keywords, functions or aggregations (followed by "(") or label lists
// (after by, without, on, ignoring, group_left, group_right), with their
// {matchers}. It understands the PromQL the project ships; a selector
// without a metric name is an error.
func promSelectors(expr string) ([]selector, error) {
	tok := promTokens.FindAllString(expr, -1)
	var out []selector
	for i := 0; i < len(tok); i++ {
		id := tok[i]
		next := ""
		if i+1 < len(tok) {
			next = tok[i+1]
		}
		switch {
		case id == "{":
			return nil, fmt.Errorf("%s: a selector without a metric name", expr)
		case !regexp.MustCompile(`^[A-Za-z_:]`).MatchString(id):
			continue
		case promKeywords[strings.ToLower(id)]:
			if next == "(" { // a label list: skip it
				for i++; i < len(tok) && tok[i] != ")"; i++ {
				}
			}
			continue
		case next == "(" || next == "by" || next == "without":
			continue // function or aggregation
		}
		s := selector{metric: id}
		if next == "{" {
			i += 2
			for ; i < len(tok) && tok[i] != "}"; i++ {
				if tok[i] == "," {
					continue
				}
				if i+2 >= len(tok) {
					return nil, fmt.Errorf("%s: unterminated matchers", expr)
				}
				v, err := strconv.Unquote(tok[i+2])
				if err != nil {
					return nil, fmt.Errorf("%s: matcher value %s: %w", expr, tok[i+2], err)
				}
				s.matchers = append(s.matchers, matcher{tok[i], tok[i+1], v})
				i += 2
			}
		}
		out = append(out, s)
	}
	if len(out) == 0 && !strings.Contains(expr, "time()") {
		return nil, fmt.Errorf("%s: no metric selector found", expr)
	}
	return out, nil
}
