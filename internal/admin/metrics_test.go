package admin

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

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
` + help(c.affSvcEvents, "xdpgate_affinity_service_events_total", "counter") + `xdpgate_affinity_service_events_total{event="eviction",namespace="default",port="http",protocol="TCP",service="web"} 0
xdpgate_affinity_service_events_total{event="expiry",namespace="default",port="http",protocol="TCP",service="web"} 0
xdpgate_affinity_service_events_total{event="hit",namespace="default",port="http",protocol="TCP",service="web"} 1
xdpgate_affinity_service_events_total{event="miss",namespace="default",port="http",protocol="TCP",service="web"} 1
xdpgate_affinity_service_events_total{event="new_pin",namespace="default",port="http",protocol="TCP",service="web"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"xdpgate_service_packets_total", "xdpgate_service_bytes_total", "xdpgate_service_new_connections_total",
		"xdpgate_service_drops_total", "xdpgate_affinity_service_entries", "xdpgate_affinity_service_events_total"); err != nil {
		t.Error(err)
	}
}
