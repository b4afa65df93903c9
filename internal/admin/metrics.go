package admin

import (
	"errors"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/pipeline"
)

// Collector exports the dataplane counters at scrape time (no per-packet
// work: the pollers keep their own counters, this reads them).
type Collector struct {
	src Source

	rxFrames, rxBytes, txFrames, txBytes, drops   *prometheus.Desc
	pipe, natDrops, ctEntries, ctOps              *prometheus.Desc
	affEntries, affOps                            *prometheus.Desc
	affSvcEntries, affSvcEvents                   *prometheus.Desc
	svcPackets, svcBytes, svcNew, svcDrops        *prometheus.Desc
	clsRules, clsCapacity, clsSkipped, clsRefused *prometheus.Desc
	neighHeld, neighReleased                      *prometheus.Desc
	// ctCapacity and affCapacity are the tables' sizes, so that fill
	// (entries / capacity) is one PromQL division.
	ctCapacity, affCapacity *prometheus.Desc
	egressFrames            *prometheus.Desc
	// The kernel's XDP_STATISTICS per socket, and the classifier's
	// decisions: where frames are lost before a poller sees them.
	xskRxDropped, xskRxRingFull, xskFillRingEmpty, xskTxRingEmpty, xskInvalid *prometheus.Desc
	clsPackets                                                                *prometheus.Desc
	// Per-endpoint load of ClientIP service ports (load.go).
	epPinned, epFlows, epNew, epDist, affImbalance *prometheus.Desc
}

// loadQuantiles are the quantiles of xdpgate_affinity_endpoint_load_distribution.
var loadQuantiles = []float64{0, 0.5, 0.9, 1}

// svcLabels are the labels of per-service-port metrics: kube-proxy's
// ServicePortName, a set bounded by the cluster's Services (both IP
// families of a dual-stack port share one series). Only the service ports
// of the current snapshot are exported; per series, direction has two
// values and reason at most pipeline.NumServiceDrops (only those that
// happened).
var svcLabels = []string{"namespace", "service", "port", "protocol"}

// NewCollector returns a Collector reading src.
func NewCollector(src Source) *Collector {
	q := []string{"interface", "queue"}
	c := &Collector{
		src:         src,
		rxFrames:    prometheus.NewDesc("xdpgate_rx_frames_total", "Frames received from the AF_XDP RX ring.", q, nil),
		rxBytes:     prometheus.NewDesc("xdpgate_rx_bytes_total", "Bytes received from the AF_XDP RX ring.", q, nil),
		txFrames:    prometheus.NewDesc("xdpgate_tx_frames_total", "Frames put on a TX ring by this queue's poller.", q, nil),
		txBytes:     prometheus.NewDesc("xdpgate_tx_bytes_total", "Bytes put on a TX ring by this queue's poller.", q, nil),
		drops:       prometheus.NewDesc("xdpgate_drops_total", "Frames dropped, by reason.", append(q, "reason"), nil),
		pipe:        prometheus.NewDesc("xdpgate_pipeline_packets_total", "Pipeline events per queue: established, reply, new_flow, insert_race, affinity_hit, affinity_miss, reject, time_exceeded, icmp_error, fragment, forwarded, snat_retry, too_big, reopen.", []string{"queue", "event"}, nil),
		natDrops:    prometheus.NewDesc("xdpgate_pipeline_nat_drops_total", "Malformed or unrewritable frames by exact nat reason.", []string{"queue", "reason"}, nil),
		ctEntries:   prometheus.NewDesc("xdpgate_conntrack_entries", "Live flows by IP family.", []string{"family"}, nil),
		ctOps:       prometheus.NewDesc("xdpgate_conntrack_operations_total", "Flow table events: inserts, insert_failures, conflicts, evictions, expiries, deletes.", []string{"op"}, nil),
		affEntries:  prometheus.NewDesc("xdpgate_affinity_entries", "Live ClientIP affinity entries (clients pinned to an endpoint).", nil, nil),
		clsRules:    prometheus.NewDesc("xdpgate_classifier_rules", "Rules programmed into the XDP classifier, by kind: frontends, endpoints, nodeports.", []string{"kind"}, nil),
		clsCapacity: prometheus.NewDesc("xdpgate_classifier_capacity", "Size of the XDP classifier's maps, by kind: frontends, endpoints, nodeports, node_addresses.", []string{"kind"}, nil),
		clsSkipped:  prometheus.NewDesc("xdpgate_classifier_skipped_service_ports", "Service ports not served because their rules do not fit the classifier's maps.", nil, nil),
		clsRefused:  prometheus.NewDesc("xdpgate_classifier_update_refused", "1 when the latest classifier update was refused (the previous rules stay in force), else 0.", nil, nil),
		affOps:      prometheus.NewDesc("xdpgate_affinity_operations_total", "Affinity table events: hits, misses, inserts, refreshes, repins, expiries, evictions, deletes.", []string{"op"}, nil),
		affSvcEntries: prometheus.NewDesc("xdpgate_affinity_service_entries",
			"Live ClientIP affinity entries per service port (counted at scrape time by a walk of the table).", svcLabels, nil),
		affSvcEvents: prometheus.NewDesc("xdpgate_affinity_service_events_total",
			"ClientIP affinity events per service port: hit (a new connection found its client's pin), miss (a fresh choice), new_pin (an affinity started), eviction (a new pin evicted the least recently pinned entry), expiry (a pin expired: timeoutSeconds without a new connection), departed_pin (a client was pinned to an endpoint when it left), rebalanced (a client of a departed endpoint was pinned to another one), scale_expiry (a pin expired early by xdpgate.io/affinity-rebalance-on-scale when endpoints were added).",
			append(svcLabels, "event"), nil),
	}
	ep := append(slices.Clip(svcLabels), "endpoint")
	c.epPinned = prometheus.NewDesc("xdpgate_affinity_endpoint_pinned_clients",
		"Clients pinned to an endpoint of a ClientIP service port (expired pins included until swept), for ports with at most --metrics-max-endpoints endpoints.", ep, nil)
	c.epFlows = prometheus.NewDesc("xdpgate_affinity_endpoint_flows",
		"Live flows to an endpoint of a ClientIP service port (a walk of the flow table at scrape time), for ports with at most --metrics-max-endpoints endpoints.", ep, nil)
	c.epNew = prometheus.NewDesc("xdpgate_affinity_endpoint_new_connections_total",
		"Flows this gateway sent to an endpoint of a ClientIP service port since the endpoint joined, for ports with at most --metrics-max-endpoints endpoints.", ep, nil)
	c.epDist = prometheus.NewDesc("xdpgate_affinity_endpoint_load_distribution",
		"For ClientIP service ports with more than --metrics-max-endpoints endpoints: quantiles (0 min, 0.5, 0.9, 1 max) over the endpoints of a load measure: pinned (clients), flows (live), connections_per_second (new, over the last 5 s sample).",
		append(slices.Clip(svcLabels), "measure", "quantile"), nil)
	c.affImbalance = prometheus.NewDesc("xdpgate_affinity_imbalance",
		"Pinned clients of a ClientIP service port's busiest endpoint over the mean of its endpoints (1: balanced; 0: no pins).", svcLabels, nil)
	c.svcPackets = prometheus.NewDesc("xdpgate_service_packets_total",
		"Packets of a service port's flows, by direction: original (client to endpoint), reply (endpoint to client).", append(svcLabels, "direction"), nil)
	c.svcBytes = prometheus.NewDesc("xdpgate_service_bytes_total",
		"Bytes (from the IP header on) of a service port's flows, by direction: original (client to endpoint), reply (endpoint to client).", append(svcLabels, "direction"), nil)
	c.svcNew = prometheus.NewDesc("xdpgate_service_new_connections_total",
		"Flows this gateway created for a service port (conntrack inserts).", svcLabels, nil)
	c.svcDrops = prometheus.NewDesc("xdpgate_service_drops_total",
		"Packets refused for a service port, by reason: reject (answered with ICMP port unreachable: no endpoints), and the xdpgate_drops_total reasons met once the service port is known (reject_not_new, reject_not_allowed, no_local_endpoints, source_range, no_endpoint, no_route, no_snat_addr, snat_exhausted, conntrack_full, conntrack_invalid, conntrack_conflict).",
		append(svcLabels, "reason"), nil)
	c.neighHeld = prometheus.NewDesc("xdpgate_neigh_held_frames_total", "Frames held while their next hop's MAC was resolved.", q, nil)
	c.neighReleased = prometheus.NewDesc("xdpgate_neigh_released_frames_total",
		"Held frames sent once their next hop resolved (the others were dropped as neigh_failed).", q, nil)
	c.ctCapacity = prometheus.NewDesc("xdpgate_conntrack_capacity", "Flow table capacity by IP family (--conntrack-max; IPv6 an eighth of it).", []string{"family"}, nil)
	c.affCapacity = prometheus.NewDesc("xdpgate_affinity_capacity", "ClientIP affinity table capacity in clients (--affinity-max).", nil, nil)
	c.xskRxDropped = prometheus.NewDesc("xdpgate_xsk_rx_dropped_total",
		"Frames the kernel dropped for this AF_XDP socket: no free UMEM frame (also in xdpgate_xsk_fill_ring_empty_total) or too long for one; not those of a full RX ring (XDP_STATISTICS rx_dropped).", q, nil)
	c.xskRxRingFull = prometheus.NewDesc("xdpgate_xsk_rx_ring_full_total",
		"Frames the kernel dropped because this socket's RX ring was full: the poller did not keep up (XDP_STATISTICS rx_ring_full; kernel 5.9+).", q, nil)
	c.xskFillRingEmpty = prometheus.NewDesc("xdpgate_xsk_fill_ring_empty_total",
		"Times the kernel found this socket's fill ring empty when it needed a UMEM frame to receive into; in copy mode each is a dropped frame, also in xdpgate_xsk_rx_dropped_total (XDP_STATISTICS rx_fill_ring_empty_descs; kernel 5.9+).", q, nil)
	c.xskTxRingEmpty = prometheus.NewDesc("xdpgate_xsk_tx_ring_empty_total",
		"Times the kernel found this socket's TX ring empty when asked to send (XDP_STATISTICS tx_ring_empty_descs; kernel 5.9+).", q, nil)
	c.xskInvalid = prometheus.NewDesc("xdpgate_xsk_invalid_descriptors_total",
		"Invalid descriptors the kernel met on this socket's rings, by ring: rx, tx (XDP_STATISTICS).", append(q, "ring"), nil)
	c.clsPackets = prometheus.NewDesc("xdpgate_classifier_packets_total",
		"Packets the XDP classifier decided on, all interfaces: action redirect (to an AF_XDP socket) by reason frontend, nodeport, endpoint, snat, icmp_error, fragment; action pass (to the kernel) by reason not_ip, not_owned, fragment, truncated, icmp, node_traffic, no_socket (chosen for redirect, but no socket on the queue).",
		[]string{"action", "reason"}, nil)
	c.egressFrames = prometheus.NewDesc("xdpgate_egress_frames_total",
		"Frames sent, by the kind of device they left on: other (a NIC), veth, bridge, vxlan, geneve.", []string{"kind"}, nil)
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rxFrames, c.rxBytes, c.txFrames, c.txBytes, c.drops, c.pipe, c.natDrops, c.ctEntries, c.ctOps, c.affEntries, c.affOps,
		c.affSvcEntries, c.affSvcEvents, c.svcPackets, c.svcBytes, c.svcNew, c.svcDrops, c.clsRules, c.clsCapacity, c.clsSkipped, c.clsRefused, c.neighHeld, c.neighReleased, c.egressFrames,
		c.xskRxDropped, c.xskRxRingFull, c.xskFillRingEmpty, c.xskTxRingEmpty, c.xskInvalid, c.clsPackets,

		c.epPinned, c.epFlows, c.epNew, c.epDist, c.affImbalance} {
		ch <- d
	}
	ch <- c.ctCapacity
	ch <- c.affCapacity
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if c.src.Queues != nil {
		var kinds [dataplane.NumDeviceKinds]uint64
		defer func() {
			for k, n := range kinds {
				if dataplane.DeviceKind(k) != dataplane.DeviceL3 {
					counter(c.egressFrames, n, dataplane.DeviceKind(k).String())
				}
			}
		}()
		for _, s := range c.src.Queues() {
			for k, n := range s.EgressKind {
				kinds[k] += n
			}
			q := strconv.Itoa(s.QueueID)
			counter(c.rxFrames, s.RxFrames, s.Ifname, q)
			counter(c.rxBytes, s.RxBytes, s.Ifname, q)
			counter(c.txFrames, s.TxFrames, s.Ifname, q)
			counter(c.txBytes, s.TxBytes, s.Ifname, q)
			counter(c.neighHeld, s.NeighHeld, s.Ifname, q)
			counter(c.neighReleased, s.NeighReleased, s.Ifname, q)
			k := s.Kernel
			counter(c.xskRxDropped, k.RxDropped, s.Ifname, q)
			counter(c.xskInvalid, k.RxInvalidDescs, s.Ifname, q, "rx")
			counter(c.xskInvalid, k.TxInvalidDescs, s.Ifname, q, "tx")
			if k.RingCounters {
				counter(c.xskRxRingFull, k.RxRingFull, s.Ifname, q)
				counter(c.xskFillRingEmpty, k.RxFillRingEmpty, s.Ifname, q)
				counter(c.xskTxRingEmpty, k.TxRingEmpty, s.Ifname, q)
			}
			for r, n := range s.Drops {
				if n != 0 {
					counter(c.drops, n, s.Ifname, q, dataplane.DropReason(r).String())
				}
			}
		}
	}
	if c.src.Pipeline != nil {
		for i, s := range c.src.Pipeline() {
			if s == (pipeline.QueueStats{}) {
				continue // a queue never used (a free slot for followed devices)
			}
			q := strconv.Itoa(i)
			for _, e := range []struct {
				name string
				v    uint64
			}{
				{"established", s.Established}, {"reply", s.Replies}, {"new_flow", s.NewFlows},
				{"insert_race", s.InsertRaces}, {"affinity_hit", s.AffinityHits}, {"affinity_miss", s.AffinityMisses},
				{"reject", s.Rejects}, {"time_exceeded", s.TimeExceeded}, {"icmp_error", s.ICMPErrors},
				{"fragment", s.Fragments}, {"forwarded", s.Forwarded}, {"snat_retry", s.SNATRetries}, {"too_big", s.TooBig},
				{"reopen", s.Reopens},
			} {
				counter(c.pipe, e.v, q, e.name)
			}
			for r, n := range s.NATDrops {
				if n != 0 {
					counter(c.natDrops, n, q, nat.DropReason(r).String())
				}
			}
		}
	}
	if c.src.Conntrack != nil {
		st := c.src.Conntrack.Stats()
		ch <- prometheus.MustNewConstMetric(c.ctEntries, prometheus.GaugeValue, float64(st.Entries4), "IPv4")
		ch <- prometheus.MustNewConstMetric(c.ctEntries, prometheus.GaugeValue, float64(st.Entries6), "IPv6")
		counter(c.ctOps, st.Inserts, "inserts")
		counter(c.ctOps, st.InsertFailures, "insert_failures")
		counter(c.ctOps, st.Conflicts, "conflicts")
		counter(c.ctOps, st.Evictions, "evictions")
		counter(c.ctOps, st.Expiries, "expiries")
		counter(c.ctOps, st.Deletes, "deletes")
	}
	if c.src.Affinity != nil {
		st := c.src.Affinity.Stats()
		ch <- prometheus.MustNewConstMetric(c.affEntries, prometheus.GaugeValue, float64(st.Entries))
		for _, op := range []struct {
			name string
			v    uint64
		}{{"hits", st.Hits}, {"misses", st.Misses}, {"inserts", st.Inserts}, {"refreshes", st.Refreshes},
			{"repins", st.Repins}, {"expiries", st.Expiries}, {"evictions", st.Evictions}, {"deletes", st.Deletes}} {
			counter(c.affOps, op.v, op.name)
		}
	}
	if c.src.Services != nil {
		svcs := c.src.Services()
		c.collectServices(ch, svcs)
		c.collectAffinityServices(ch, svcs)
	}
	c.collectLoad(ch)
	if c.src.Classifier != nil {
		st := c.src.Classifier()
		gauge := func(d *prometheus.Desc, v int, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
		}
		gauge(c.clsRules, st.Frontends, "frontends")
		gauge(c.clsRules, st.Endpoints, "endpoints")
		gauge(c.clsRules, st.NodePorts, "nodeports")
		gauge(c.clsCapacity, st.Limits.MaxFrontends, "frontends")
		gauge(c.clsCapacity, st.Limits.MaxEndpoints, "endpoints")
		gauge(c.clsCapacity, st.Limits.MaxNodePorts, "nodeports")
		gauge(c.clsCapacity, st.Limits.MaxNodeAddrs, "node_addresses")
		gauge(c.clsSkipped, len(st.Skipped))
		refused := 0
		if st.Err != nil && !errors.Is(st.Err, pipeline.ErrServicesSkipped) {
			refused = 1
		}
		gauge(c.clsRefused, refused)
	}
	if c.src.ClassifierCounters != nil {
		if cc, err := c.src.ClassifierCounters(); err == nil {
			for _, e := range classifierCounts(cc) {
				counter(c.clsPackets, e.n, e.action, e.reason)
			}
		}
	}
	if c.src.Conntrack != nil {
		v4, v6 := c.src.Conntrack.Capacity()
		ch <- prometheus.MustNewConstMetric(c.ctCapacity, prometheus.GaugeValue, float64(v4), "IPv4")
		ch <- prometheus.MustNewConstMetric(c.ctCapacity, prometheus.GaugeValue, float64(v6), "IPv6")
	}
	if c.src.Affinity != nil {
		ch <- prometheus.MustNewConstMetric(c.affCapacity, prometheus.GaugeValue, float64(c.src.Affinity.Stats().Capacity))
	}
}

// collectAffinityServices exports the per-service-port affinity counters
// and, when the table and clock are known, the live entries per service
// port, counted by one lock-free walk of the affinity table (Range), at
// scrape time only: 55 ms for the default table (1.57 million slots, half a
// million entries) on the loaded 2-core test VM, so a 10-million-client
// table costs about 0.4 s of one CPU per scrape. Counting entries per
// service port inside the table would make this free; it belongs with the
// table's storage (see the README's metrics notes).
func (c *Collector) collectAffinityServices(ch chan<- prometheus.Metric, all []pipeline.ServicePortStats) {
	var svcs []pipeline.ServicePortStats
	for _, s := range all {
		if s.AffinitySeconds > 0 {
			svcs = append(svcs, s)
		}
	}
	if len(svcs) == 0 {
		return
	}
	entries := make([]int, len(svcs))
	byID := make(map[uint32]int, len(svcs))
	for i, s := range svcs {
		for _, id := range s.IDs {
			byID[id] = i
		}
	}
	if c.src.Affinity != nil && c.src.Now != nil {
		c.src.Affinity.Range(c.src.Now(), func(e affinity.Entry) bool {
			if i, ok := byID[e.ServicePort]; ok {
				entries[i]++
			}
			return true
		})
	}
	for i, s := range svcs {
		l := []string{s.Namespace, s.Name, s.PortName, s.Protocol}
		if c.src.Affinity != nil && c.src.Now != nil {
			ch <- prometheus.MustNewConstMetric(c.affSvcEntries, prometheus.GaugeValue, float64(entries[i]), l...)
		}
		for _, e := range []struct {
			name string
			v    uint64
		}{{"hit", s.Hits}, {"miss", s.Misses}, {"new_pin", s.NewPins}, {"eviction", s.Evictions}, {"expiry", s.Expiries},
			{"departed_pin", s.DepartedPins}, {"rebalanced", s.Rebalanced}, {"scale_expiry", s.ScaleExpiries}} {
			ch <- prometheus.MustNewConstMetric(c.affSvcEvents, prometheus.CounterValue, float64(e.v), append(l, e.name)...)
		}
	}
}

// collectServices exports the per-service-port traffic counters. Drops are
// exported by reason once non-zero, as xdpgate_drops_total.
func (c *Collector) collectServices(ch chan<- prometheus.Metric, svcs []pipeline.ServicePortStats) {
	for _, s := range svcs {
		l := []string{s.Namespace, s.Name, s.PortName, s.Protocol}
		counter := func(d *prometheus.Desc, v uint64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append(l[:4:4], extra...)...)
		}
		for dir, name := range [2]string{"original", "reply"} {
			counter(c.svcPackets, s.Packets[dir], name)
			counter(c.svcBytes, s.Bytes[dir], name)
		}
		counter(c.svcNew, s.NewConnections)
		for r, n := range s.Drops {
			if n != 0 {
				counter(c.svcDrops, n, pipeline.ServiceDropName(r))
			}
		}
	}
}

// classifierCount is one series of xdpgate_classifier_packets_total.
type classifierCount struct {
	action, reason string
	n              uint64
}

// classifierCounts names the classifier's counters as the metric labels
// them; /v1/stats uses the same names. The reasons are exclusive: each
// packet is counted once, so the series add up to every packet.
func classifierCounts(c dataplane.ClassifierCounters) []classifierCount {
	return []classifierCount{
		{"redirect", "frontend", c.RedirectFrontend}, {"redirect", "nodeport", c.RedirectNodePort},
		{"redirect", "endpoint", c.RedirectEndpoint}, {"redirect", "snat", c.RedirectSNAT},
		{"redirect", "icmp_error", c.RedirectICMPError}, {"redirect", "fragment", c.RedirectFragment},
		{"pass", "not_ip", c.PassNotIP}, {"pass", "not_owned", c.PassNotOwned},
		{"pass", "fragment", c.PassFragment}, {"pass", "truncated", c.PassTruncated},
		{"pass", "icmp", c.PassICMP}, {"pass", "node_traffic", c.PassNodeTraffic},
		{"pass", "no_socket", c.RedirectNoSocket},
	}
}

// collectLoad exports the per-endpoint load of the ClientIP service ports
// (one walk of the flow table for live flows, at scrape time only): one
// series per endpoint for ports with at most MaxEndpointSeries endpoints,
// else the quantiles over their endpoints, so the series stay bounded by
// the Services, not their scale; and every port's imbalance.
func (c *Collector) collectLoad(ch chan<- prometheus.Metric) {
	limit := c.src.MaxEndpointSeries
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, s := range loadsOf(c.src, nil, true, 0) {
		l := []string{s.Namespace, s.Name, s.PortName, s.Protocol}
		gauge(c.affImbalance, s.Imbalance, l...)
		if len(s.Endpoints) <= limit {
			// One series per address: an endpoint that left with pinned
			// clients and came back (a new ID, the same ip:port) is
			// listed twice and is one endpoint to an operator.
			var order []string
			byAddr := map[string]*EndpointLoad{}
			for _, e := range s.Endpoints {
				if m, ok := byAddr[e.Endpoint]; ok {
					m.Pinned, m.Flows, m.NewConnections = m.Pinned+e.Pinned, m.Flows+e.Flows, m.NewConnections+e.NewConnections
					continue
				}
				byAddr[e.Endpoint] = &e
				order = append(order, e.Endpoint)
			}
			for _, a := range order {
				e := byAddr[a]
				el := append(slices.Clip(l), a)
				gauge(c.epPinned, float64(e.Pinned), el...)
				gauge(c.epFlows, float64(e.Flows), el...)
				ch <- prometheus.MustNewConstMetric(c.epNew, prometheus.CounterValue, float64(e.NewConnections), el...)
			}
			continue
		}
		for _, m := range []struct {
			name string
			of   func(EndpointLoad) float64
		}{
			{"pinned", func(e EndpointLoad) float64 { return float64(e.Pinned) }},
			{"flows", func(e EndpointLoad) float64 { return float64(e.Flows) }},
			{"connections_per_second", func(e EndpointLoad) float64 { return e.ConnectionsPerSecond }},
		} {
			vs := make([]float64, 0, len(s.Endpoints))
			for _, e := range s.Endpoints {
				if !e.Departed {
					vs = append(vs, m.of(e))
				}
			}
			if len(vs) == 0 {
				continue
			}
			slices.Sort(vs)
			for _, q := range loadQuantiles {
				gauge(c.epDist, vs[int(q*float64(len(vs)-1)+0.5)], append(slices.Clip(l), m.name, strconv.FormatFloat(q, 'g', -1, 64))...)
			}
		}
	}
}
