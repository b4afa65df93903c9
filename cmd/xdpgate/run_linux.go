package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/control"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/pipeline"
	"github.com/xdpgate/xdpgate/snapshot"
)

// housekeepTick is how often the flow and affinity tables are swept; the
// budgets cover the flow table every 5 s and the affinity table every 10 s.
const housekeepTick = 100 * time.Millisecond

// retainedEvery is how often removed endpoints with kept TCP flows are
// checked for remaining flows (a full flow-table read).
const retainedEvery = 10 * time.Second

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

	missing, err := missingCaps()
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s; run as root or grant them, e.g. setcap cap_net_admin,cap_net_raw,cap_ipc_lock,cap_bpf+ep xdpgate",
			errMissingCaps, strings.Join(missing, ", "))
	}

	if len(o.cpus) > 0 {
		moved, err := keepOffCPUs(o.cpus)
		if err != nil {
			return fmt.Errorf("keep the runtime off the poller CPUs %v: %w", o.cpus, err)
		}
		log.Debug("runtime threads kept off the poller CPUs", "cpus", o.cpus, "threads", moved)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	ifAddrs, err := interfaceAddrs(o.interfaces)
	if err != nil {
		return err
	}
	nodeIPs := o.nodeIPs
	if len(nodeIPs) == 0 && o.manifests != "" {
		// Standalone: the node's addresses are the managed interfaces'
		// unless the manifest's Node object says otherwise (--node-ips
		// empty lets control use the Node's when present).
		nodeIPs = ifAddrs
	}

	// The source first: missing credentials are reported before any XDP
	// program is attached.
	var src control.Source
	if o.manifests != "" {
		src = &control.ManifestSource{Path: o.manifests, NodeName: o.nodeName, Logger: log}
	} else if src, err = control.NewKubeSourceFromConfig(o.kubeconfig, o.master, o.nodeName, log); err != nil {
		return err
	}
	if path := os.Getenv(cpuProfileEnv); path != "" {
		stopProfile, err := startCPUProfile(path)
		if err != nil {
			return err
		}
		defer stopProfile()
	}

	ct, err := conntrack.New(conntrack.Config{MaxFlows: o.conntrackMax})
	if err != nil {
		return fmt.Errorf("conntrack: %w", err)
	}
	aff, err := affinity.New(affinity.Config{Capacity: o.affinityMax})
	if err != nil {
		return fmt.Errorf("affinity: %w", err)
	}
	eg, err := dataplane.NewEgress(dataplane.EgressConfig{Logger: log})
	if err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	defer eg.Close()
	busyPoll := o.busyPoll
	if busyPoll == 0 {
		busyPoll = -1 // dataplane.Config: negative never spins, 0 is the default
	}
	dp, err := dataplane.Open(dataplane.Config{Interfaces: o.interfaces, Attach: o.xdpMode, CPUs: o.cpus,
		BusyPoll: busyPoll, Logger: log})
	if err != nil {
		return fmt.Errorf("dataplane: %w", err)
	}
	defer func() {
		if err := dp.Close(); err != nil {
			log.Error("close dataplane", "err", err)
		}
		log.Info("xdpgate stopped: XDP programs detached")
	}()
	pl, err := pipeline.New(pipeline.Config{
		Conntrack: ct, Affinity: aff, Hops: eg, NumQueues: dp.NumQueues(),
		SNATPortMin: o.snatMin, SNATPortMax: o.snatMax, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	ctrl, err := control.New(control.Config{
		Build: control.BuildOptions{
			NodeName: o.nodeName, NodeIPs: nodeIPs, NodePortAddresses: o.nodePortAddresses,
			ClusterCIDRs: o.clusterCIDRs, MasqueradeAll: o.masqueradeAll,
		},
		HealthzAddr: o.healthzAddr, MetricsAddr: o.metricsAddr,
		NodeOptional: o.manifests != "", Logger: log,
	})
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if err := ctrl.Registry().Register(newCollector(statsSource{queues: dp.Stats, pipeline: pl.Stats, ct: ct.Stats, aff: aff.Stats})); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	if o.adminSocket != "off" {
		admin, err := startAdmin(o.adminSocket, adminHandler(adminSource{
			snapshot: pl.Snapshot, conntrack: ct, affinity: aff, now: pl.Now,
			queues: dp.Stats, pipeline: pl.Stats, capture: pl.StartCapture,
		}), log)
		switch {
		case err != nil:
			// Not fatal: the dataplane does not depend on it (and another
			// xdpgate may own the path, e.g. parallel test gateways).
			log.Error("admin socket disabled: xdpgate inspect and capture unavailable", "err", err)
		default:
			defer func() {
				if err := admin.Close(); err != nil {
					log.Error("close admin socket", "err", err)
				}
			}()
		}
	}
	classifier := dp.Classifier()
	var rulesMu sync.Mutex // serialises classifier updates (control loop, housekeeping)
	applyRules := func(s *snapshot.Snapshot) {
		rulesMu.Lock()
		defer rulesMu.Unlock()
		if err := classifier.Update(pl.Rules(s, ifAddrs, o.snatMin, o.snatMax)); err != nil {
			log.Error("classifier update", "err", err)
		}
	}
	ctrl.Subscribe(func(s *snapshot.Snapshot) {
		// Publish first: a frontend the classifier starts redirecting must
		// already be known to the pollers.
		pl.Publish(s)
		applyRules(s)
		log.Debug("snapshot applied", "generation", s.Generation, "service_ports", len(s.ServicePorts))
	})
	log.Info("xdpgate starting", "version", versionString(), "interfaces", o.interfaces, "queues", dp.NumQueues(),
		"node", o.nodeName, "node_ips", nodeIPs, "snat_addrs", ifAddrs, "snat_ports", fmt.Sprintf("%d-%d", o.snatMin, o.snatMax),
		"healthz", ctrl.HealthzAddr(), "metrics", ctrl.MetricsAddr())

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	start := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
				return
			}
			if runCtx.Err() == nil {
				errc <- fmt.Errorf("%s stopped unexpectedly", name)
			}
		}()
	}
	start("control", func() error { return ctrl.Run(runCtx, src) })
	start("dataplane", func() error { return dp.Run(runCtx, pl) })
	wg.Add(1)
	go func() {
		defer wg.Done()
		housekeep(runCtx, pl, ct, aff, log, func() { applyRules(pl.Snapshot()) })
	}()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("signal received, shutting down")
	case runErr = <-errc:
		log.Error("shutting down", "err", runErr)
	}
	cancel()
	wg.Wait()
	return runErr
}

// housekeep sweeps expired flows and affinity entries every tick until ctx
// ends.
// Every retainedEvery it forgets removed endpoints whose last flow ended
// and then calls rulesChanged so the classifier stops redirecting them.
func housekeep(ctx context.Context, pl *pipeline.Pipeline, ct *conntrack.Table, aff *affinity.Table, log *slog.Logger, rulesChanged func()) {
	v4, v6 := ct.Capacity()
	ticksPer := func(d time.Duration) int { return int(d / housekeepTick) }
	ctBudget := max((v4+v6)/ticksPer(5*time.Second), 1024)
	affBudget := max(int(aff.Stats().Slots)/ticksPer(10*time.Second), 1024)
	log.Info("housekeeping started", "tick", housekeepTick, "conntrack_budget", ctBudget, "affinity_budget", affBudget)
	defer log.Info("housekeeping stopped")
	t := time.NewTicker(housekeepTick)
	defer t.Stop()
	lastPrune := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			pl.Housekeep(pl.Now(), ctBudget, affBudget)
			if now.Sub(lastPrune) >= retainedEvery {
				lastPrune = now
				if pl.PruneRetained() {
					rulesChanged()
				}
			}
		}
	}
}

// interfaceAddrs returns the global unicast addresses of the managed
// interfaces: the SNAT addresses (the pipeline masquerades to the egress
// interface's address) and, in standalone mode, the default node addresses.
func interfaceAddrs(names []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, n := range names {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", n, err)
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("interface %s addresses: %w", n, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if ok && ip.Unmap().IsGlobalUnicast() {
				out = append(out, ip.Unmap())
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}
