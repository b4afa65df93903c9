package rig

import (
	"reflect"
	"testing"

	"github.com/xdpgate/xdpgate/bench/report"
	"github.com/xdpgate/xdpgate/internal/admin"
)

// TestGatewayCounters: xdpgate's /v1/stats, summed over its sockets, and
// the difference of two readings, which is what a result reports.
func TestGatewayCounters(t *testing.T) {
	read := func(scale uint64) admin.Stats {
		q := func(rx uint64) admin.Queue {
			return admin.Queue{RxFrames: rx * scale, TxFrames: rx * scale / 2, TxRingFull: scale,
				Drops:  map[string]uint64{"conntrack_full": 3 * scale, "no_route": scale},
				Kernel: admin.Kernel{RxRingFull: 10 * scale, FillRingEmpty: 20 * scale, RxDropped: scale, RxInvalidDescs: 1, TxRingEmpty: 2 * scale, RingCounters: true}}
		}
		return admin.Stats{Queues: []admin.Queue{q(100), q(50)}, Classifier: &admin.Classifier{
			Redirect: map[string]uint64{"frontend": 500 * scale, "endpoint": 5 * scale},
			Pass:     map[string]uint64{"not_owned": 7 * scale, "no_socket": scale}}}
	}
	a, b := adminCounters(read(1)), adminCounters(read(3))
	want := &report.GatewayCounters{Redirected: 505, Passed: 8, NoSocket: 1, RxRingFull: 20, FillRingEmpty: 40, RxDropped: 2,
		InvalidDescs: 2, TxRingEmpty: 4, KernelRingStats: true, RxFrames: 150, Dropped: 8, TxFrames: 75, TxRingFull: 2,
		DropReasons: map[string]uint64{"conntrack_full": 6, "no_route": 2}}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("adminCounters = %+v, want %+v", a, want)
	}
	d := gatewayDelta(a, b)
	wantD := &report.GatewayCounters{Redirected: 1010, Passed: 16, NoSocket: 2, RxRingFull: 40, FillRingEmpty: 80, RxDropped: 4,
		InvalidDescs: 0, TxRingEmpty: 8, KernelRingStats: true, RxFrames: 300, Dropped: 16, TxFrames: 150, TxRingFull: 4,
		DropReasons: map[string]uint64{"conntrack_full": 12, "no_route": 4}}
	if !reflect.DeepEqual(d, wantD) {
		t.Errorf("gatewayDelta = %+v, want %+v", d, wantD)
	}
	if gatewayDelta(nil, b) != nil || gatewayDelta(a, nil) != nil {
		t.Errorf("gatewayDelta with a missing reading is not nil")
	}
}
