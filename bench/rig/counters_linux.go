package rig

import (
	"context"
	"fmt"
	"time"

	"github.com/xdpgate/xdpgate/bench/report"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/internal/admin"
)

// adminCounters sums xdpgate's /v1/stats over its sockets (cumulative).
func adminCounters(st admin.Stats) *report.GatewayCounters {
	g := &report.GatewayCounters{DropReasons: map[string]uint64{}}
	for _, q := range st.Queues {
		g.RxFrames += q.RxFrames
		g.TxFrames += q.TxFrames
		g.TxRingFull += q.TxRingFull
		k := q.Kernel
		g.RxRingFull += k.RxRingFull
		g.FillRingEmpty += k.FillRingEmpty
		g.RxDropped += k.RxDropped
		g.InvalidDescs += k.RxInvalidDescs + k.TxInvalidDescs
		g.TxRingEmpty += k.TxRingEmpty
		g.KernelRingStats = g.KernelRingStats || k.RingCounters
		for r, n := range q.Drops {
			g.Dropped += n
			g.DropReasons[r] += n
		}
	}
	if c := st.Classifier; c != nil {
		for _, n := range c.Redirect {
			g.Redirected += n
		}
		for _, n := range c.Pass {
			g.Passed += n
		}
		g.NoSocket = c.Pass["no_socket"]
	}
	return g
}

// forwarderCounters is adminCounters for the raw forwarder, whose
// Dataplane is in this process.
func forwarderCounters(dp *dataplane.Dataplane) (*report.GatewayCounters, error) {
	if _, err := dp.Classifier().Counters(); err != nil {
		return nil, err
	}
	return adminCounters(admin.StatsOf(admin.Source{Queues: dp.Stats, ClassifierCounters: dp.Classifier().Counters})), nil
}

// gatewayDelta is what happened between two readings of the same
// gateway's counters (nil when either is).
func gatewayDelta(a, b *report.GatewayCounters) *report.GatewayCounters {
	if a == nil || b == nil {
		return nil
	}
	d := &report.GatewayCounters{
		Redirected: b.Redirected - a.Redirected, Passed: b.Passed - a.Passed, NoSocket: b.NoSocket - a.NoSocket,
		RxRingFull: b.RxRingFull - a.RxRingFull, FillRingEmpty: b.FillRingEmpty - a.FillRingEmpty,
		RxDropped: b.RxDropped - a.RxDropped, InvalidDescs: b.InvalidDescs - a.InvalidDescs,
		TxRingEmpty: b.TxRingEmpty - a.TxRingEmpty, KernelRingStats: b.KernelRingStats,
		RxFrames: b.RxFrames - a.RxFrames, Dropped: b.Dropped - a.Dropped,
		TxFrames: b.TxFrames - a.TxFrames, TxRingFull: b.TxRingFull - a.TxRingFull,
	}
	for r, n := range b.DropReasons {
		if n -= a.DropReasons[r]; n != 0 {
			if d.DropReasons == nil {
				d.DropReasons = map[string]uint64{}
			}
			d.DropReasons[r] = n
		}
	}
	return d
}

// waitCounters waits until gw's counters can be read (for at most limit).
func waitCounters(ctx context.Context, gw gateway, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		_, err := gw.counters()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway counters not readable within %v: %w", limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
