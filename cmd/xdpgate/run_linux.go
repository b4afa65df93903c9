package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/control"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/internal/admin"
	"github.com/xdpgate/xdpgate/internal/config"
	"github.com/xdpgate/xdpgate/internal/statefile"
	"github.com/xdpgate/xdpgate/pipeline"
)

// run is `xdpgate run`: it wires the control loop, the pipeline and the
// AF_XDP dataplane together and runs until SIGTERM/SIGINT (exit 0, every
// XDP program detached) or until a component fails.
func run(args []string, stderr io.Writer) error {
	o, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	slog.SetDefault(log)
	if err := prepareHost(o, log); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ifAddrs, err := dataplane.InterfaceAddrs(o.interfaces)
	if err != nil {
		return err
	}
	// The source first: missing credentials are reported before any XDP
	// program is attached.
	src, err := newSource(o, log)
	if err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(os.Getenv(cpuProfileEnv))
	if err != nil {
		return err
	}
	defer stopProfile()

	ct, aff, err := newTables(o, log)
	if err != nil {
		return err
	}
	eg, dp, err := openIO(o, log)
	if err != nil {
		return err
	}
	defer closeIO(eg, dp, log)
	pcfg := pipeline.Config{Conntrack: ct, Affinity: aff, Hops: eg, NumQueues: dp.NumQueues(),
		SNATPortMin: o.snatMin, SNATPortMax: o.snatMax, Logger: log}
	if f := dp.Classifier().FastPath(); f != nil {
		pcfg.FastPath = f
	}
	pl, err := pipeline.New(pcfg)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	build := o.build(ifAddrs)
	ctrl, err := control.New(control.Config{Build: build, HealthzAddr: o.healthzAddr,
		MetricsAddr: o.metricsAddr, NodeOptional: o.manifests != "", Logger: log})
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	applier := pipeline.NewApplier(pl, pipeline.ApplierConfig{Classifier: dp.Classifier(), Addrs: eg, Health: ctrl.SetDataplaneHealth})
	ctrl.Subscribe(applier.Apply)
	state := admin.Source{Snapshot: pl.Snapshot, Conntrack: ct, Affinity: aff, Now: pl.Now,
		Queues: dp.Stats, Devices: dp.Devices, Pipeline: pl.Stats, Services: pl.ServiceStats, Classifier: applier.Status, StartCapture: pl.StartCapture,
		ClassifierCounters: dp.Classifier().Counters,
		Loads:              pl.EndpointLoads, Heavy: pl.HeavyClients, MaxEndpointSeries: o.metricsMaxEPs}
	closeAdmin, err := serveState(ctrl, state, o.adminSocket, log)
	if err != nil {
		return err
	}
	defer closeAdmin()
	if pcfg.FastPath != nil {
		if err := ctrl.Registry().Register(admin.NewFastPathCollector(pl.FastPathStats)); err != nil {
			return fmt.Errorf("register fast path metrics: %w", err)
		}
	}
	log.Info("xdpgate starting", "version", versionString(), "interfaces", o.interfaces, "queues", dp.NumQueues(),
		"node", o.nodeName, "node_ips", build.NodeIPs, "snat_ports", fmt.Sprintf("%d-%d", o.snatMin, o.snatMax),
		"healthz", ctrl.HealthzAddr(), "metrics", ctrl.MetricsAddr())
	return runUntilDone(ctx, log,
		task{"control", func(ctx context.Context) error { return ctrl.Run(ctx, src) }},
		task{"dataplane", func(ctx context.Context) error { return dp.Run(ctx, pl) }},
		task{"housekeeping", func(ctx context.Context) error { applier.Run(ctx); return nil }})
}

// newTables allocates the flow and the affinity tables: in process memory,
// or, with a state directory, in its state files, adopting what the
// previous xdpgate on this boot left there (internal/statefile). The
// mappings and the directory's lock last as long as the process: pollers,
// metrics and the admin socket may read the tables until it exits.
func newTables(o options, log *slog.Logger) (*conntrack.Table, *affinity.Table, error) {
	ctCfg := conntrack.Config{MaxFlows: o.conntrackMax}
	affCfg := affinity.Config{Capacity: o.affinityMax}
	if o.stateDir == config.Off {
		ct, err := conntrack.New(ctCfg)
		if err != nil {
			return nil, nil, fmt.Errorf("conntrack: %w", err)
		}
		aff, err := affinity.New(affCfg)
		if err != nil {
			return nil, nil, fmt.Errorf("affinity: %w", err)
		}
		return ct, aff, nil
	}
	if _, err := statefile.Lock(o.stateDir, stateLockWait); err != nil {
		return nil, nil, err
	}
	params, size, err := conntrack.StateLayout(ctCfg)
	if err != nil {
		return nil, nil, err
	}
	f, err := openState(o.stateDir, "conntrack", conntrack.StateVersion, params, size, log)
	if err != nil {
		return nil, nil, err
	}
	ctCfg.Seed = f.Seed
	ct, ad, err := conntrack.NewShared(ctCfg, f.Data, f.Adopted)
	if err != nil {
		return nil, nil, fmt.Errorf("conntrack: %w", err)
	}
	if f.Adopted {
		log.Info("conntrack table adopted", "path", f.Path, "flows", ad.Flows, "dropped", ad.Dropped)
	}
	if params, size, err = affinity.StateLayout(affCfg); err != nil {
		return nil, nil, err
	}
	if f, err = openState(o.stateDir, "affinity", affinity.StateVersion, params, size, log); err != nil {
		return nil, nil, err
	}
	affCfg.Seed = f.Seed
	aff, aad, err := affinity.NewShared(affCfg, f.Data, f.Adopted)
	if err != nil {
		return nil, nil, fmt.Errorf("affinity: %w", err)
	}
	if f.Adopted {
		log.Info("affinity table adopted", "path", f.Path, "entries", aad.Entries, "dropped", aad.Dropped)
	}
	return ct, aff, nil
}

// stateLockWait is how long a starting xdpgate waits for the previous one
// to release the state directory.
const stateLockWait = 10 * time.Second

// openState maps the state file of one table, logging why an existing one
// was discarded.
func openState(dir, kind string, version uint32, params []uint64, size int, log *slog.Logger) (*statefile.File, error) {
	f, err := statefile.Open(filepath.Join(dir, kind), statefile.Spec{Kind: kind, Version: version, Params: params, Size: size})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	if f.Discarded != nil {
		log.Warn("state file discarded, starting empty", "path", f.Path, "reason", f.Discarded)
	}
	return f, nil
}

// prepareHost checks the capabilities xdpgate needs and keeps the runtime's
// threads off the poller CPUs.
func prepareHost(o options, log *slog.Logger) error {
	missing, err := missingCaps()
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s; run as root or grant them, e.g. setcap cap_net_admin,cap_net_raw,cap_ipc_lock,cap_bpf,cap_perfmon+ep xdpgate",
			errMissingCaps, strings.Join(missing, ", "))
	}
	if len(o.cpus) > 0 {
		moved, err := keepOffCPUs(o.cpus)
		if err != nil {
			return fmt.Errorf("keep the runtime off the poller CPUs %v: %w", o.cpus, err)
		}
		log.Debug("runtime threads kept off the poller CPUs", "cpus", o.cpus, "threads", moved)
	}
	return nil
}

// newSource returns the service source: the manifest file in standalone
// mode, else the API server.
func newSource(o options, log *slog.Logger) (control.Source, error) {
	if o.manifests != "" {
		return &control.ManifestSource{Path: o.manifests, NodeName: o.nodeName, Logger: log}, nil
	}
	return control.NewKubeSourceFromConfig(o.kubeconfig, o.master, o.nodeName, log)
}

// build returns the snapshot builder's options. In standalone mode without
// --node-ips the node's addresses are the managed interfaces' (ifAddrs),
// unless the manifest's Node object says otherwise (control uses the
// Node's when NodeIPs is empty).
func (o options) build(ifAddrs []netip.Addr) control.BuildOptions {
	nodeIPs := o.nodeIPs
	if len(nodeIPs) == 0 && o.manifests != "" {
		nodeIPs = ifAddrs
	}
	b := control.BuildOptions{NodeName: o.nodeName, NodeIPs: nodeIPs, NodePortAddresses: o.nodePortAddresses,
		ClusterCIDRs: o.clusterCIDRs, MasqueradeAll: o.masqueradeAll}
	if o.stateDir != config.Off {
		b.IDFile = filepath.Join(o.stateDir, "ids")
	}
	return b
}

// openIO opens the next-hop tables and the AF_XDP dataplane (sockets and
// XDP classifier on every managed interface). The pollers hold frames for
// unresolved next hops and learn their MACs from the same tables.
func openIO(o options, log *slog.Logger) (*dataplane.Egress, *dataplane.Dataplane, error) {
	eg, err := dataplane.NewEgress(dataplane.EgressConfig{Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("egress: %w", err)
	}
	dp, err := dataplane.Open(dataplane.Config{Interfaces: o.interfaces, Attach: o.xdpMode, CPUs: o.cpus,
		BusyPoll: o.busyPoll, Classifier: o.classifier, Neighbours: eg, Devices: eg, ReplaceForeign: o.replaceForeign, Logger: log})
	if err != nil {
		eg.Close()
		return nil, nil, fmt.Errorf("dataplane: %w", err)
	}
	return eg, dp, nil
}

// closeIO detaches every XDP program and closes the sockets, then the
// next-hop tables.
func closeIO(eg *dataplane.Egress, dp *dataplane.Dataplane, log *slog.Logger) {
	if err := dp.Close(); err != nil {
		log.Error("close dataplane", "err", err)
	}
	log.Info("xdpgate stopped: XDP programs detached")
	eg.Close()
}

// serveState exports state as metrics on ctrl's registry and serves the
// admin API on the unix socket path ("off": not at all); it returns the
// function that closes the socket. Failing to listen is not fatal: the
// dataplane does not depend on it (and another xdpgate may own the path,
// e.g. parallel test gateways).
func serveState(ctrl *control.Controller, state admin.Source, path string, log *slog.Logger) (closeFn func(), err error) {
	if err := ctrl.Registry().Register(admin.NewCollector(state)); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if path == config.Off {
		return func() {}, nil
	}
	srv, err := admin.Start(path, admin.Handler(state), log)
	if err != nil {
		log.Error("admin socket disabled: xdpgate inspect and capture unavailable", "err", err)
		return func() {}, nil
	}
	return func() {
		if err := srv.Close(); err != nil {
			log.Error("close admin socket", "err", err)
		}
	}, nil
}

// task is a long-running component of `xdpgate run`.
type task struct {
	name string
	run  func(ctx context.Context) error
}

// runUntilDone runs every task until ctx ends (a signal: nil) or one of
// them fails or returns early (that error), then stops the others and
// waits for them.
func runUntilDone(ctx context.Context, log *slog.Logger, tasks ...task) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(tasks))
	for _, t := range tasks {
		wg.Go(func() {
			err := t.run(runCtx)
			switch {
			case err != nil:
				errc <- fmt.Errorf("%s: %w", t.name, err)
			case runCtx.Err() == nil:
				errc <- fmt.Errorf("%s stopped unexpectedly", t.name)
			}
		})
	}
	var err error
	select {
	case <-ctx.Done():
		log.Info("signal received, shutting down")
	case err = <-errc:
		log.Error("shutting down", "err", err)
	}
	cancel()
	wg.Wait()
	return err
}
