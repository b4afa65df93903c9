package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xdpgate/xdpgate/snapshot"
)

// Defaults of Config.
const (
	DefaultMinSyncInterval = 10 * time.Millisecond
	DefaultHealthTimeout   = 60 * time.Second
	DefaultHealthzAddr     = "0.0.0.0:10256"
	DefaultMetricsAddr     = "127.0.0.1:10249"
	// Disabled as HealthzAddr or MetricsAddr turns the server off.
	Disabled = "off"
)

// Config configures a Controller. The zero value of every field but
// Build.NodeName is usable; withDefaults fills in the defaults.
type Config struct {
	// Build holds the node name, node addresses, nodePortAddresses,
	// cluster CIDRs and masqueradeAll.
	Build BuildOptions
	// MinSyncInterval is the shortest time between two snapshot builds;
	// changes arriving meanwhile are coalesced into the next build.
	// Default 10 ms (kube-proxy's minSyncPeriod is 1 s; a snapshot build
	// is far cheaper than an iptables-restore).
	MinSyncInterval time.Duration
	// HealthTimeout: /healthz and /livez fail when a change has been
	// queued for longer without being published. Default 60 s
	// (kube-proxy: 2 x the 30 s syncPeriod).
	HealthTimeout time.Duration
	// HealthzAddr serves /healthz and /livez. Default 0.0.0.0:10256;
	// "off" disables.
	HealthzAddr string
	// MetricsAddr serves /metrics. Default 127.0.0.1:10249; "off"
	// disables.
	MetricsAddr string
	// HealthCheckAddrs are the addresses the healthCheckNodePort servers
	// listen on. Empty: all addresses (":port", dual-stack), as kube-proxy
	// does when nodePortAddresses selects all.
	HealthCheckAddrs []netip.Addr
	// NodeOptional makes /healthz treat a missing Node object as eligible
	// (standalone mode: a manifest need not contain the Node). With a
	// cluster leave it false: kube-proxy answers 503 for an unknown node.
	NodeOptional bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock defaults to RealClock.
	Clock Clock
}

func (c Config) withDefaults() Config {
	if c.MinSyncInterval <= 0 {
		c.MinSyncInterval = DefaultMinSyncInterval
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = DefaultHealthTimeout
	}
	if c.HealthzAddr == "" {
		c.HealthzAddr = DefaultHealthzAddr
	}
	if c.MetricsAddr == "" {
		c.MetricsAddr = DefaultMetricsAddr
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	return c
}

// Controller is the control loop: a Source feeds the change tracker, the
// bounded-frequency runner coalesces changes into one Builder.Build, and the
// resulting snapshot is published to the subscribers, the
// healthCheckNodePort servers and the metrics.
//
// The builder is used only by the runner goroutine. current is the published
// snapshot (one atomic store per publish). subsMu guards subs.
type Controller struct {
	cfg     Config
	log     *slog.Logger
	builder *Builder
	tracker *tracker
	runner  *boundedRunner
	metrics *metrics
	health  *proxyHealth
	hcs     *serviceHealth

	healthzLn, metricsLn net.Listener

	current atomic.Pointer[snapshot.Snapshot]
	running atomic.Bool

	subsMu sync.Mutex
	subs   []func(*snapshot.Snapshot)
}

// New checks the configuration and binds the healthz and metrics listeners
// (so a bind failure is reported before anything runs). Nothing is served
// until Run.
func New(cfg Config) (*Controller, error) {
	cfg = cfg.withDefaults()
	b, err := NewBuilder(cfg.Build)
	if err != nil {
		return nil, fmt.Errorf("build options: %w", err)
	}
	c := &Controller{cfg: cfg, log: cfg.Logger, builder: b, metrics: newMetrics()}
	c.health = &proxyHealth{clock: cfg.Clock, timeout: cfg.HealthTimeout, families: []string{"IPv4", "IPv6"}, m: c.metrics, nodeOptional: cfg.NodeOptional}
	c.hcs = newServiceHealth(cfg.HealthCheckAddrs, c.health.Healthy, c.log)
	c.runner = newBoundedRunner(c.sync, cfg.MinSyncInterval, cfg.Clock)
	c.tracker = newTracker(cfg.Clock, c.runner.Notify, c.health.QueuedUpdate)
	if cfg.HealthzAddr != Disabled {
		if c.healthzLn, err = net.Listen("tcp", cfg.HealthzAddr); err != nil {
			return nil, fmt.Errorf("healthz listen: %w", err)
		}
	}
	if cfg.MetricsAddr != Disabled {
		if c.metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			if c.healthzLn != nil {
				c.healthzLn.Close()
			}
			return nil, fmt.Errorf("metrics listen: %w", err)
		}
	}
	return c, nil
}

// Subscribe registers fn to receive every published snapshot, in order, on
// the runner goroutine; fn must return quickly (store it with
// atomic.Pointer). Register before Run.
func (c *Controller) Subscribe(fn func(*snapshot.Snapshot)) {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	c.subs = append(c.subs, fn)
}

// Registry returns the controller's private Prometheus registry, served on
// MetricsAddr; the wiring registers extra collectors (dataplane counters)
// SetDataplaneHealth reports whether the dataplane programs everything the
// published snapshot asks for: a non-nil err makes /healthz (and the health
// check node ports' "proxy healthy" condition) fail, with err in the body,
// until it is reported nil again. /livez is unaffected: restarting would not
// help.
func (c *Controller) SetDataplaneHealth(err error) { c.health.setDataplaneErr(err) }

// with it.
func (c *Controller) Registry() *prometheus.Registry { return c.metrics.registry }

// Current returns the last published snapshot, nil before the first.
func (c *Controller) Current() *snapshot.Snapshot { return c.current.Load() }

// Sink returns the change sink the sources feed; tests and custom sources
// may call it directly.
func (c *Controller) Sink() Sink { return c.tracker }

// HealthzAddr returns the bound /healthz address, nil when disabled.
func (c *Controller) HealthzAddr() net.Addr {
	if c.healthzLn == nil {
		return nil
	}
	return c.healthzLn.Addr()
}

// MetricsAddr returns the bound /metrics address, nil when disabled.
func (c *Controller) MetricsAddr() net.Addr {
	if c.metricsLn == nil {
		return nil
	}
	return c.metricsLn.Addr()
}

// Run serves healthz and metrics, runs src (if not nil) and the runner until
// ctx ends, then closes every server. It returns the source's error if the
// source fails, else nil after ctx ends. The last published snapshot stays
// available from Current.
func (c *Controller) Run(ctx context.Context, src Source) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var servers []*http.Server
	serve := func(ln net.Listener, h http.Handler, what string) {
		if ln == nil {
			return
		}
		srv, ln := defaultHTTPLimits.serve(h, ln)
		servers = append(servers, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.log.Info("serving "+what, "addr", ln.Addr().String())
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				c.log.Error(what+" server stopped", "err", err)
			}
		}()
	}
	serve(c.healthzLn, c.health.handler(), "healthz")
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(c.metrics.registry, promhttp.HandlerOpts{}))
	serve(c.metricsLn, mux, "metrics")

	wg.Add(1)
	go func() {
		defer wg.Done()
		c.log.Info("control loop started")
		c.runner.loop(ctx)
		c.log.Info("control loop stopped")
	}()
	var srcErr error
	if src != nil {
		srcErr = src.Run(ctx, c.tracker)
		if srcErr != nil && ctx.Err() == nil {
			c.log.Error("source failed", "err", srcErr)
		} else {
			srcErr = nil
			<-ctx.Done()
		}
	} else {
		<-ctx.Done()
	}
	cancel()
	for _, s := range servers {
		_ = s.Close()
	}
	wg.Wait()
	c.hcs.closeAll()
	return srcErr
}

// sync is one run of the runner: apply the queued changes, build, publish.
func (c *Controller) sync() {
	ch, lastQueued, ok := c.tracker.take()
	if !ok {
		c.log.Debug("not syncing until the source has synced")
		return
	}
	start := c.cfg.Clock.Now()
	for k, svc := range ch.services {
		c.builder.SetService(k.ns, k.name, svc)
	}
	for k, s := range ch.slices {
		c.builder.SetEndpointSlice(k.ns, k.name, s)
	}
	if ch.nodeSet {
		c.builder.SetNode(ch.node)
		c.health.setNode(ch.node)
	}
	res := c.builder.Build()
	for _, err := range res.NewErrors {
		switch {
		case errors.Is(err, ErrNodeAddress):
			c.log.Warn("refusing a frontend on a node address", "err", err)
		case errors.Is(err, ErrConflict):
			c.log.Warn("frontend conflict: the older Service keeps it", "err", err)
		default:
			c.log.Warn("skipping invalid object field", "err", err)
		}
	}
	snap := res.Snapshot
	c.current.Store(snap)
	c.subsMu.Lock()
	subs := c.subs
	c.subsMu.Unlock()
	for _, fn := range subs {
		fn(snap)
	}
	c.hcs.sync(res.HealthChecks)
	c.health.Updated()

	end := c.cfg.Clock.Now()
	m := c.metrics
	m.syncDuration.Observe(end.Sub(start).Seconds())
	m.lastSync.Set(float64(end.UnixNano()) / 1e9)
	if !lastQueued.IsZero() {
		m.lastQueued.Set(float64(lastQueued.UnixNano()) / 1e9)
	}
	for _, tt := range ch.triggerTimes {
		m.networkProgramming.Observe(end.Sub(tt).Seconds())
	}
	m.serviceChangesTot.Add(float64(ch.svcCount))
	m.endpointChangesTot.Add(float64(ch.epCount))
	ps, pe := c.tracker.pendingCounts()
	m.serviceChangesPend.Set(float64(ps))
	m.endpointChangesPend.Set(float64(pe))
	m.noLocalEndpoints.WithLabelValues("internal").Set(float64(res.NoLocalInternal))
	m.noLocalEndpoints.WithLabelValues("external").Set(float64(res.NoLocalExternal))
	m.snapServices.Set(float64(res.Services))
	m.snapServicePorts.Set(float64(len(snap.ServicePorts)))
	m.snapEndpoints.Set(float64(snap.NumEndpoints()))
	m.snapErrors.Set(float64(res.Errors))
	m.refusedFrontends.WithLabelValues(reasonNodeAddress).Set(float64(res.RefusedNodeAddress))
	m.refusedFrontends.WithLabelValues(reasonConflict).Set(float64(res.Conflicts))
	m.snapGeneration.Set(float64(snap.Generation))
	m.snapBuilds.Inc()
	c.log.Debug("published snapshot", "generation", snap.Generation, "servicePorts", len(snap.ServicePorts),
		"endpoints", snap.NumEndpoints(), "rebuilt", res.Rebuilt, "duration", end.Sub(start))
}
