package control

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are kube-proxy's sync metrics (pkg/proxy/metrics, where they
// apply) and xdpgate's own snapshot metrics, in a private registry.
type metrics struct {
	registry *prometheus.Registry

	syncDuration        prometheus.Histogram
	networkProgramming  prometheus.Histogram
	lastSync            prometheus.Gauge
	lastQueued          prometheus.Gauge
	endpointChangesPend prometheus.Gauge
	endpointChangesTot  prometheus.Counter
	serviceChangesPend  prometheus.Gauge
	serviceChangesTot   prometheus.Counter
	noLocalEndpoints    *prometheus.GaugeVec
	healthzTotal        *prometheus.CounterVec
	livezTotal          *prometheus.CounterVec

	snapServices     prometheus.Gauge
	snapServicePorts prometheus.Gauge
	snapEndpoints    prometheus.Gauge
	snapErrors       prometheus.Gauge
	snapGeneration   prometheus.Gauge
	snapBuilds       prometheus.Counter
	refusedFrontends *prometheus.GaugeVec
}

// Values of the reason label of xdpgate_snapshot_refused_frontends.
const (
	reasonNodeAddress = "node_address"
	reasonConflict    = "conflict"
)

// networkProgrammingBuckets are kube-proxy's: 0.25 s, 0.5 s, 1..59 s by 1,
// 60..115 s by 5, 120..300 s by 30.
func networkProgrammingBuckets() []float64 {
	b := []float64{0.25, 0.5}
	b = append(b, prometheus.LinearBuckets(1, 1, 59)...)
	b = append(b, prometheus.LinearBuckets(60, 5, 12)...)
	b = append(b, prometheus.LinearBuckets(120, 30, 7)...)
	return b
}

func newMetrics() *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	const kp = "kubeproxy"
	m.syncDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: kp, Subsystem: "sync_proxy_rules", Name: "duration_seconds",
		Help:    "SyncProxyRules latency in seconds: one snapshot build and publish.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
	})
	m.networkProgramming = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: kp, Name: "network_programming_duration_seconds",
		Help:    "In Cluster Network Programming Latency in seconds (from the EndpointSlice last-change-trigger-time annotation to publish).",
		Buckets: networkProgrammingBuckets(),
	})
	m.lastSync = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: kp, Subsystem: "sync_proxy_rules", Name: "last_timestamp_seconds",
		Help: "The last time a snapshot was successfully published.",
	})
	m.lastQueued = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: kp, Subsystem: "sync_proxy_rules", Name: "last_queued_timestamp_seconds",
		Help: "The last time a sync was queued.",
	})
	m.endpointChangesPend = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: kp, Subsystem: "sync_proxy_rules", Name: "endpoint_changes_pending",
		Help: "Pending EndpointSlice changes.",
	})
	m.endpointChangesTot = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: kp, Subsystem: "sync_proxy_rules", Name: "endpoint_changes_total",
		Help: "Cumulative EndpointSlice changes.",
	})
	m.serviceChangesPend = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: kp, Subsystem: "sync_proxy_rules", Name: "service_changes_pending",
		Help: "Pending Service changes.",
	})
	m.serviceChangesTot = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: kp, Subsystem: "sync_proxy_rules", Name: "service_changes_total",
		Help: "Cumulative Service changes.",
	})
	m.noLocalEndpoints = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: kp, Subsystem: "sync_proxy_rules", Name: "no_local_endpoints_total",
		Help: "Number of service ports with a Local traffic policy and no local endpoints (but endpoints elsewhere).",
	}, []string{"traffic_policy"})
	m.healthzTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: kp, Subsystem: "proxy", Name: "healthz_total",
		Help: "Cumulative proxy healthz HTTP status.",
	}, []string{"code"})
	m.livezTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: kp, Subsystem: "proxy", Name: "livez_total",
		Help: "Cumulative proxy livez HTTP status.",
	}, []string{"code"})

	const xg = "xdpgate"
	m.snapServices = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: xg, Subsystem: "snapshot", Name: "services",
		Help: "Services programmed in the published snapshot.",
	})
	m.snapServicePorts = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: xg, Subsystem: "snapshot", Name: "service_ports",
		Help: "Service ports (one per port and IP family) in the published snapshot.",
	})
	m.snapEndpoints = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: xg, Subsystem: "snapshot", Name: "endpoints",
		Help: "Endpoints in the published snapshot.",
	})
	m.snapErrors = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: xg, Subsystem: "snapshot", Name: "build_errors",
		Help: "Problems (bad fields, frontend conflicts) in the current objects; the objects concerned are skipped.",
	})
	m.snapGeneration = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: xg, Subsystem: "snapshot", Name: "generation",
		Help: "Generation of the published snapshot.",
	})
	m.snapBuilds = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: xg, Subsystem: "snapshot", Name: "builds_total",
		Help: "Snapshots built and published.",
	})
	m.refusedFrontends = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: xg, Subsystem: "snapshot", Name: "refused_frontends",
		Help: "Frontends of the current objects that are not served: reason node_address (an externalIP or LoadBalancer IP that is a node address), conflict (a frontend or NodePort an older Service claims).",
	}, []string{"reason"})
	m.refusedFrontends.WithLabelValues(reasonNodeAddress)
	m.refusedFrontends.WithLabelValues(reasonConflict)
	m.noLocalEndpoints.WithLabelValues("internal")
	m.noLocalEndpoints.WithLabelValues("external")
	m.registry.MustRegister(
		m.syncDuration, m.networkProgramming, m.lastSync, m.lastQueued,
		m.endpointChangesPend, m.endpointChangesTot, m.serviceChangesPend, m.serviceChangesTot,
		m.noLocalEndpoints, m.healthzTotal, m.livezTotal,
		m.snapServices, m.snapServicePorts, m.snapEndpoints, m.snapErrors, m.snapGeneration, m.snapBuilds,
		m.refusedFrontends,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}
