package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpgate/xdpgate/pipeline"
)

// FastPathCollector exports the XDP fast path's counters
// (Pipeline.FastPathStats) at scrape time. It is registered only when the
// fast path is on.
type FastPathCollector struct {
	stats                         func() (pipeline.FastPathStats, bool)
	flows, capacity, events, pkts *prometheus.Desc
	slow                          *prometheus.Desc
}

// NewFastPathCollector returns a collector reading stats.
func NewFastPathCollector(stats func() (pipeline.FastPathStats, bool)) *FastPathCollector {
	return &FastPathCollector{
		stats:    stats,
		flows:    prometheus.NewDesc("xdpgate_fast_path_flows", "Flows the XDP program forwards itself now (both directions of each).", nil, nil),
		capacity: prometheus.NewDesc("xdpgate_fast_path_capacity", "The XDP fast path's flow capacity (--fast-path-flows).", nil, nil),
		events: prometheus.NewDesc("xdpgate_fast_path_flow_events_total",
			"Fast path flow events: install, removal, ineligible (an egress device cannot transmit XDP frames: the flow stays in userspace), no_slot (capacity reached: retried), error.", []string{"event"}, nil),
		pkts: prometheus.NewDesc("xdpgate_fast_path_packets_total",
			"Packets the XDP program forwarded itself, by action: tx (out of the receiving device), redirect (to another device).", []string{"action"}, nil),
		slow: prometheus.NewDesc("xdpgate_fast_path_slow_packets_total",
			"Packets of fast path flows the XDP program handed to userspace, by reason: tcp_flags (SYN, FIN, RST), ttl, mtu, stale, device.", []string{"reason"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *FastPathCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.flows, c.capacity, c.events, c.pkts, c.slow} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *FastPathCollector) Collect(ch chan<- prometheus.Metric) {
	s, ok := c.stats()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.flows, prometheus.GaugeValue, float64(s.Installed))
	ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(s.Capacity))
	for _, e := range []struct {
		name string
		v    uint64
	}{{"install", s.Installs}, {"removal", s.Removals}, {"ineligible", s.Ineligible}, {"no_slot", s.NoSlot}, {"error", s.Errors}} {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(e.v), e.name)
	}
	ch <- prometheus.MustNewConstMetric(c.pkts, prometheus.CounterValue, float64(s.XDP.TX), "tx")
	ch <- prometheus.MustNewConstMetric(c.pkts, prometheus.CounterValue, float64(s.XDP.Redirect), "redirect")
	for _, e := range []struct {
		name string
		v    uint64
	}{{"tcp_flags", s.XDP.SlowFlags}, {"ttl", s.XDP.SlowTTL}, {"mtu", s.XDP.SlowMTU}, {"stale", s.XDP.SlowStale}, {"device", s.XDP.SlowDevice}} {
		ch <- prometheus.MustNewConstMetric(c.slow, prometheus.CounterValue, float64(e.v), e.name)
	}
}
