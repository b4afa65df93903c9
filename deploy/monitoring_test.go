package deploy

// deploy/monitoring: the alert rules through promtool (syntax, and the unit
// tests in alerts_test.yaml), the dashboard's shape. That every query names
// metrics the gateway exports is checked against a live gateway and a real
// Prometheus by e2e's TestPrivPrometheus.

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	monitoringDir = "monitoring"
	dashboardJSON = "monitoring/grafana-dashboard.json"
	alertsYAML    = "monitoring/alerts.yaml"
)

// promtool returns promtool's path; without it the test fails where the
// environment says the tools are installed (CI, make test), else skips.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("XDPGATE_REQUIRE_PRIV") == "1" {
			t.Fatalf("promtool not found (hack/install-deps.sh installs Debian's prometheus): %v", err)
		}
		t.Skipf("promtool not found (apt-get install prometheus): %v", err)
	}
	return p
}

func TestAlertRulesPromtool(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "alerts.yaml"},
		{"test", "rules", "alerts_test.yaml"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = monitoringDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertRulesShape: every alert is unit-tested, carries a severity and
// says what to do, and selects the xdpgate job.
func TestAlertRulesShape(t *testing.T) {
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For    string
				Labels, Annotations map[string]string
			}
		}
	}
	b, err := os.ReadFile(alertsYAML)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &rules); err != nil {
		t.Fatalf("%s: %v", alertsYAML, err)
	}
	tests, err := os.ReadFile("monitoring/alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: want a summary and a description", r.Alert)
			}
			if !strings.Contains(r.Expr, `job="xdpgate"`) {
				t.Errorf("alert %s: expr does not select job=\"xdpgate\": %s", r.Alert, r.Expr)
			}
			if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
				t.Errorf("alert %s: no unit test in alerts_test.yaml", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatalf("%s: no rules", alertsYAML)
	}
}

// TestDashboardShape: the dashboard imports anywhere (its data source is a
// variable), every panel has a unique id and a place, and every query goes
// through the job and gateway selection.
func TestDashboardShape(t *testing.T) {
	b, err := os.ReadFile(dashboardJSON)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID, Title string
		Panels     []struct {
			ID         int
			Type       string
			Title      string
			GridPos    *struct{ H, W, X, Y int }
			Datasource *struct{ Type, UID string }
			Targets    []struct {
				RefID, Expr string
				Datasource  *struct{ Type, UID string }
			}
		}
		Templating struct {
			List []struct{ Name, Type string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardJSON, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q, title %q: want both", d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Errorf("dashboard variables %v, want datasource (datasource) and instance (query)", vars)
	}
	ids := map[int]bool{}
	exprs := 0
	jobAndInstance := regexp.MustCompile(`\{job="xdpgate", instance=~"\$instance"[,}]`)
	for _, p := range d.Panels {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d zero or used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: grid position %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
		for _, tg := range p.Targets {
			exprs++
			sel := regexp.MustCompile(`[a-z_:]+\{[^}]*\}|[a-z_:]+\[`).FindAllString(tg.Expr, -1)
			for _, s := range sel {
				if strings.HasSuffix(s, "[") {
					t.Errorf("panel %q %s: selector %s without {job=..., instance=...}", p.Title, tg.RefID, s)
				}
			}
			if n := len(jobAndInstance.FindAllString(tg.Expr, -1)); n == 0 || n != len(sel) {
				t.Errorf("panel %q %s: every selector must start {job=\"xdpgate\", instance=~\"$instance\"}: %s", p.Title, tg.RefID, tg.Expr)
			}
		}
	}
	if exprs < 20 {
		t.Errorf("%d queries in the dashboard, want the fleet view's 20 or more", exprs)
	}
}
