package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpgate/xdpgate/dataplane"
)

// ringSource is a Source with one socket's kernel counters and the
// classifier's: what a scrape and /v1/stats must show of frames lost
// before the pollers.
func ringSource(ringCounters bool) Source {
	q := dataplane.QueueStats{Ifname: "eth1", QueueID: 3, RxFrames: 100,
		Kernel: dataplane.KernelXSKStats{RxDropped: 1, RxInvalidDescs: 2, TxInvalidDescs: 3,
			RxRingFull: 40, RxFillRingEmpty: 50, TxRingEmpty: 6, RingCounters: ringCounters}}
	cc := dataplane.ClassifierCounters{RedirectFrontend: 140, RedirectSNAT: 7, PassNotOwned: 9, PassNodeTraffic: 4, RedirectNoSocket: 2}
	return Source{
		Queues:             func() []dataplane.QueueStats { return []dataplane.QueueStats{q} },
		ClassifierCounters: func() (dataplane.ClassifierCounters, error) { return cc, nil },
	}
}

// TestCollectorRings: the kernel's XDP_STATISTICS are exported per socket
// (the ring counters only where the kernel reports them), and the
// classifier's counters by action and reason.
func TestCollectorRings(t *testing.T) {
	for _, rings := range []bool{true, false} {
		reg := prometheus.NewRegistry()
		reg.MustRegister(NewCollector(ringSource(rings)))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			if !strings.HasPrefix(mf.GetName(), "xdpgate_xsk_") && mf.GetName() != "xdpgate_classifier_packets_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				key := mf.GetName()
				for _, l := range m.GetLabel() {
					key += "," + l.GetName() + "=" + l.GetValue()
				}
				got[key] = m.GetCounter().GetValue()
			}
		}
		wantVals := map[string]float64{
			"xdpgate_xsk_rx_dropped_total,interface=eth1,queue=3":                  1,
			"xdpgate_xsk_invalid_descriptors_total,interface=eth1,queue=3,ring=rx": 2,
			"xdpgate_xsk_invalid_descriptors_total,interface=eth1,queue=3,ring=tx": 3,
			"xdpgate_classifier_packets_total,action=redirect,reason=frontend":     140,
			"xdpgate_classifier_packets_total,action=redirect,reason=snat":         7,
			"xdpgate_classifier_packets_total,action=pass,reason=not_owned":        9,
			"xdpgate_classifier_packets_total,action=pass,reason=node_traffic":     4,
			"xdpgate_classifier_packets_total,action=pass,reason=no_socket":        2,
			"xdpgate_classifier_packets_total,action=redirect,reason=endpoint":     0,
		}
		ringVals := map[string]float64{
			"xdpgate_xsk_rx_ring_full_total,interface=eth1,queue=3":    40,
			"xdpgate_xsk_fill_ring_empty_total,interface=eth1,queue=3": 50,
			"xdpgate_xsk_tx_ring_empty_total,interface=eth1,queue=3":   6,
		}
		for k, v := range ringVals {
			if rings {
				wantVals[k] = v
			} else if _, ok := got[k]; ok {
				t.Errorf("rings=%v: %s exported for a kernel without ring counters", rings, k)
			}
		}
		for k, v := range wantVals {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("rings=%v: %s = %v (present %v), want %v", rings, k, g, ok, v)
			}
		}
		// 13 classifier series (every reason, zero or not), 3 kernel series
		// always, 3 more with ring counters.
		if want := 13 + 3 + map[bool]int{true: 3}[rings]; len(got) != want {
			t.Errorf("rings=%v: %d series, want %d: %v", rings, len(got), want, got)
		}
	}
}

// TestStatsRings: /v1/stats carries each socket's kernel counters and the
// classifier's, named as the metrics.
func TestStatsRings(t *testing.T) {
	srv := httptest.NewServer(Handler(ringSource(true)))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	wantK := Kernel{RxDropped: 1, RxRingFull: 40, FillRingEmpty: 50, TxRingEmpty: 6, RxInvalidDescs: 2, TxInvalidDescs: 3, RingCounters: true}
	if len(st.Queues) != 1 || st.Queues[0].Kernel != wantK {
		t.Errorf("stats queues = %+v, want one with kernel %+v", st.Queues, wantK)
	}
	if st.Classifier == nil || st.Classifier.Redirect["frontend"] != 140 || st.Classifier.Pass["no_socket"] != 2 || len(st.Classifier.Pass) != 7 {
		t.Errorf("stats classifier = %+v, want redirect frontend 140, pass no_socket 2, 7 pass reasons", st.Classifier)
	}
	if !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		t.Errorf("Content-Type = %q", resp.Header.Get("Content-Type"))
	}
}
