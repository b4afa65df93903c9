package admin

import (
	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/pipeline"
	"github.com/xdpgate/xdpgate/snapshot"
)

// Source is what the admin API and the metrics Collector read: published
// state only (the snapshot pointer, lock-free table walks, atomically
// published counters), so neither ever blocks a poller. Any field may be
// nil; the corresponding answer or metric family is then empty.
type Source struct {
	// Snapshot returns the snapshot in use (Pipeline.Snapshot).
	Snapshot func() *snapshot.Snapshot
	// Conntrack and Affinity are the pipeline's tables.
	Conntrack *conntrack.Table
	Affinity  *affinity.Table
	// Now is the pipeline's clock, the clock of conntrack LastSeen and
	// affinity LastPin (Pipeline.Now).
	Now func() int64
	// Queues returns the I/O layer's per-queue counters (Dataplane.Stats).
	Queues func() []dataplane.QueueStats
	// Devices returns the devices in use and why (Dataplane.Devices).
	Devices func() []dataplane.DeviceStatus
	// Pipeline returns the pipeline's per-queue counters (Pipeline.Stats).
	Pipeline func() []pipeline.QueueStats
	// Services returns the per-service-port counters, affinity's
	// included (Pipeline.ServiceStats).
	Services func() []pipeline.ServicePortStats
	// Loads returns the per-endpoint load of the ClientIP service ports
	// (Pipeline.EndpointLoads); Heavy their heaviest clients
	// (Pipeline.HeavyClients).
	Loads func() []pipeline.ServicePortLoad
	Heavy func(id uint32, k int) (pipeline.HeavyClients, bool)
	// MaxEndpointSeries: per-endpoint metric series only for ClientIP
	// service ports with at most this many endpoints, a distribution
	// otherwise (--metrics-max-endpoints, config.DefaultMetricsMaxEndpoints;
	// 0: always the distribution).
	MaxEndpointSeries int
	// Classifier returns the outcome of the latest classifier programming
	// (Applier.Status).
	Classifier func() pipeline.ProgramStatus
	// ClassifierCounters reads the XDP classifier's per-decision packet
	// counters (Classifier.Counters: one map read per counter, per CPU).
	ClassifierCounters func() (dataplane.ClassifierCounters, error)
	// StartCapture starts a capture session (Pipeline.StartCapture).
	StartCapture func(pipeline.CaptureConfig) (*pipeline.Capture, error)
}
