package admin

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/xdpgate/xdpgate/internal/config"
	"github.com/xdpgate/xdpgate/pipeline"
)

// TestCollectorServices: the per-service-port counters are exported with
// the service port's labels, drops only for the reasons that happened, and
// the affinity families only for ClientIP service ports.
func TestCollectorServices(t *testing.T) {
	src := testSource(t)
	web := pipeline.ServicePortStats{
		ServicePortLabels: pipeline.ServicePortLabels{Namespace: "default", Name: "web", PortName: "http", Protocol: "TCP"},
		IDs:               []uint32{1}, AffinitySeconds: 600,
		Packets: [2]uint64{10, 8}, Bytes: [2]uint64{1000, 4000}, NewConnections: 2,
		AffinityCounters: pipeline.AffinityCounters{Hits: 1, Misses: 1, NewPins: 1},
	}
	web.Drops[pipeline.SvcSNATExhausted] = 3
	dns := pipeline.ServicePortStats{
		ServicePortLabels: pipeline.ServicePortLabels{Namespace: "kube-system", Name: "dns", PortName: "", Protocol: "UDP"},
		IDs:               []uint32{2},
	}
	dns.Drops[pipeline.SvcReject] = 4
	src.Services = func() []pipeline.ServicePortStats { return []pipeline.ServicePortStats{web, dns} }
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src))
	c := NewCollector(Source{})
	help := func(d *prometheus.Desc, name, typ string) string {
		// The help text is the Desc's; only the samples are compared here.
		s := d.String()
		i := strings.Index(s, `help: "`) + len(`help: "`)
		return "# HELP " + name + " " + s[i:strings.Index(s[i:], `", `)+i] + "\n# TYPE " + name + " " + typ + "\n"
	}
	want := help(c.svcPackets, "xdpgate_service_packets_total", "counter") + `xdpgate_service_packets_total{direction="original",namespace="default",port="http",protocol="TCP",service="web"} 10
xdpgate_service_packets_total{direction="original",namespace="kube-system",port="",protocol="UDP",service="dns"} 0
xdpgate_service_packets_total{direction="reply",namespace="default",port="http",protocol="TCP",service="web"} 8
xdpgate_service_packets_total{direction="reply",namespace="kube-system",port="",protocol="UDP",service="dns"} 0
` + help(c.svcBytes, "xdpgate_service_bytes_total", "counter") + `xdpgate_service_bytes_total{direction="original",namespace="default",port="http",protocol="TCP",service="web"} 1000
xdpgate_service_bytes_total{direction="original",namespace="kube-system",port="",protocol="UDP",service="dns"} 0
xdpgate_service_bytes_total{direction="reply",namespace="default",port="http",protocol="TCP",service="web"} 4000
xdpgate_service_bytes_total{direction="reply",namespace="kube-system",port="",protocol="UDP",service="dns"} 0
` + help(c.svcNew, "xdpgate_service_new_connections_total", "counter") + `xdpgate_service_new_connections_total{namespace="default",port="http",protocol="TCP",service="web"} 2
xdpgate_service_new_connections_total{namespace="kube-system",port="",protocol="UDP",service="dns"} 0
` + help(c.svcDrops, "xdpgate_service_drops_total", "counter") + `xdpgate_service_drops_total{namespace="default",port="http",protocol="TCP",reason="snat_exhausted",service="web"} 3
xdpgate_service_drops_total{namespace="kube-system",port="",protocol="UDP",reason="reject",service="dns"} 4
` + help(c.affSvcEntries, "xdpgate_affinity_service_entries", "gauge") + `xdpgate_affinity_service_entries{namespace="default",port="http",protocol="TCP",service="web"} 1
` + help(c.affSvcEvents, "xdpgate_affinity_service_events_total", "counter") + `xdpgate_affinity_service_events_total{event="departed_pin",namespace="default",port="http",protocol="TCP",service="web"} 0
xdpgate_affinity_service_events_total{event="eviction",namespace="default",port="http",protocol="TCP",service="web"} 0
xdpgate_affinity_service_events_total{event="expiry",namespace="default",port="http",protocol="TCP",service="web"} 0
xdpgate_affinity_service_events_total{event="hit",namespace="default",port="http",protocol="TCP",service="web"} 1
xdpgate_affinity_service_events_total{event="miss",namespace="default",port="http",protocol="TCP",service="web"} 1
xdpgate_affinity_service_events_total{event="new_pin",namespace="default",port="http",protocol="TCP",service="web"} 1
xdpgate_affinity_service_events_total{event="rebalanced",namespace="default",port="http",protocol="TCP",service="web"} 0
xdpgate_affinity_service_events_total{event="scale_expiry",namespace="default",port="http",protocol="TCP",service="web"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"xdpgate_service_packets_total", "xdpgate_service_bytes_total", "xdpgate_service_new_connections_total",
		"xdpgate_service_drops_total", "xdpgate_affinity_service_entries", "xdpgate_affinity_service_events_total"); err != nil {
		t.Error(err)
	}
}

// TestCollectorLoadEndpointBack: an endpoint that left with pinned clients
// and came back (a new ID, the same address) is one series, summed, not
// two with the same labels (which would fail the whole scrape).
func TestCollectorLoadEndpointBack(t *testing.T) {
	src := testSource(t)
	src.MaxEndpointSeries = config.DefaultMetricsMaxEndpoints
	src.Loads = func() []pipeline.ServicePortLoad {
		return []pipeline.ServicePortLoad{{
			ServicePortLabels: pipeline.ServicePortLabels{Namespace: "default", Name: "web", PortName: "http", Protocol: "TCP"},
			ID:                1, AffinitySeconds: 600,
			Endpoints: []pipeline.EndpointLoad{
				{ID: 14, Endpoint: "198.19.1.10:8080", Pins: 3, NewConnections: 5},
				{ID: 11, Endpoint: "198.19.1.10:8080", Departed: true, Pins: 2, NewConnections: 40},
			},
		}}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src))
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got, err := testutil.CollectAndFormat(NewCollector(src), expfmt.TypeTextPlain, "xdpgate_affinity_endpoint_pinned_clients", "xdpgate_affinity_endpoint_new_connections_total")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`xdpgate_affinity_endpoint_pinned_clients{endpoint="198.19.1.10:8080",namespace="default",port="http",protocol="TCP",service="web"} 5`,
		`xdpgate_affinity_endpoint_new_connections_total{endpoint="198.19.1.10:8080",namespace="default",port="http",protocol="TCP",service="web"} 45`} {
		if !strings.Contains(string(got), w) {
			t.Errorf("metrics lack %s:\n%s", w, got)
		}
	}
}

// TestCollectorLoad: per-endpoint series up to MaxEndpointSeries
// endpoints, quantiles over the endpoints beyond, the imbalance always.
func TestCollectorLoad(t *testing.T) {
	l := `default",port="http",protocol="TCP",service="web"`
	for _, tc := range []struct {
		max   int
		names []string
		want  string
	}{
		{config.DefaultMetricsMaxEndpoints, []string{"xdpgate_affinity_endpoint_pinned_clients", "xdpgate_affinity_endpoint_flows", "xdpgate_affinity_imbalance", "xdpgate_affinity_endpoint_load_distribution"}, `
# HELP xdpgate_affinity_endpoint_flows x
# TYPE xdpgate_affinity_endpoint_flows gauge
xdpgate_affinity_endpoint_flows{endpoint="198.19.1.10:8080",namespace="` + l + `} 2
xdpgate_affinity_endpoint_flows{endpoint="198.19.1.11:8080",namespace="` + l + `} 0
xdpgate_affinity_endpoint_flows{endpoint="198.19.1.12:8080",namespace="` + l + `} 0
# HELP xdpgate_affinity_endpoint_pinned_clients x
# TYPE xdpgate_affinity_endpoint_pinned_clients gauge
xdpgate_affinity_endpoint_pinned_clients{endpoint="198.19.1.10:8080",namespace="` + l + `} 3
xdpgate_affinity_endpoint_pinned_clients{endpoint="198.19.1.11:8080",namespace="` + l + `} 1
xdpgate_affinity_endpoint_pinned_clients{endpoint="198.19.1.12:8080",namespace="` + l + `} 2
# HELP xdpgate_affinity_imbalance x
# TYPE xdpgate_affinity_imbalance gauge
xdpgate_affinity_imbalance{namespace="` + l + `} 1.5
`},
		{2, []string{"xdpgate_affinity_endpoint_pinned_clients", "xdpgate_affinity_endpoint_load_distribution"}, `
xdpgate_affinity_endpoint_load_distribution{measure="pinned",namespace="default",port="http",protocol="TCP",quantile="0",service="web"} 1
xdpgate_affinity_endpoint_load_distribution{measure="connections_per_second",namespace="default",port="http",protocol="TCP",quantile="1",service="web"} 2.5
`},
	} {
		src := testSource(t)
		src.MaxEndpointSeries = tc.max
		got, err := testutil.CollectAndFormat(NewCollector(src), expfmt.TypeTextPlain, tc.names...)
		if err != nil {
			t.Fatal(err)
		}
		text := string(got)
		for _, line := range strings.Split(strings.TrimSpace(tc.want), "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			if !strings.Contains(text, line) {
				t.Errorf("max %d: metrics lack %q:\n%s", tc.max, line, text)
			}
		}
		if tc.max == 2 {
			for _, w := range []string{`measure="pinned"`, `quantile="0.5"`, `quantile="1"`, `measure="flows"`} {
				if !strings.Contains(text, w) {
					t.Errorf("distribution lacks %s:\n%s", w, text)
				}
			}
			if strings.Contains(text, "xdpgate_affinity_endpoint_pinned_clients{") {
				t.Errorf("per-endpoint series above MaxEndpointSeries:\n%s", text)
			}
		}
	}
}
