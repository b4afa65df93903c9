package rig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xdpgate/xdpgate/bench/baseline"
	"github.com/xdpgate/xdpgate/bench/report"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/internal/admin"
	"github.com/xdpgate/xdpgate/nat"
)

// gateway is a running dataplane in the gateway namespace.
type gateway interface {
	// stop stops it and removes what it installed.
	stop() error
	// profile is the CPU profile written at stop, if any.
	profile() string
	// counters reads the dataplane's own counters (cumulative), or nil for
	// a dataplane without them (the kernel baselines, external commands).
	counters() (*report.GatewayCounters, error)
}

// startGateway starts dataplane name for scenario sc in t's gateway
// namespace. dir receives its manifest, log and profile, named after the
// scenario and tag.
func startGateway(name string, t *topology, sc Scenario, o Options, dir, tag string) (gateway, error) {
	switch name {
	case DataplaneXDPGate, DataplaneXDPGateFastPath:
		return startXDPGate(name, t, sc, o, dir, tag)
	case DataplaneXDPRedirect:
		return startXDPRedirect(t)
	case DataplaneNFTables, DataplaneIPTables:
		kind := baseline.NFTables
		if name == DataplaneIPTables {
			kind = baseline.IPTables
		}
		snap, err := sc.Snapshot()
		if err != nil {
			return nil, err
		}
		remove, err := baseline.Install(t.gw, kind, snap, baseline.Options{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return kernelGateway{remove}, nil
	case DataplaneForwarder:
		return startForwarder(t, sc, o)
	}
	if cmd, ok := o.External[name]; ok {
		return startExternal(name, cmd, t, sc, o, dir, tag)
	}
	return nil, fmt.Errorf("unknown dataplane %q (want one of %v)", name, Dataplanes)
}

// startExternal runs a user's dataplane: cmd under sh in the gateway
// namespace, with the scenario described in its environment.
func startExternal(name, cmd string, t *topology, sc Scenario, o Options, dir, tag string) (*procGateway, error) {
	base := filepath.Join(dir, sc.Name+tag+"-"+name)
	manifest, err := sc.Manifest()
	if err != nil {
		return nil, err
	}
	snap, err := sc.Snapshot()
	if err != nil {
		return nil, err
	}
	nft, err := baseline.RenderNFT(snap, baseline.Options{})
	if err != nil {
		return nil, err
	}
	ipt, err := baseline.RenderIPTables(snap, baseline.Options{})
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{".yaml": manifest, ".nft": []byte(nft), ".iptables": []byte(ipt)}
	for ext, data := range files {
		if err := os.WriteFile(base+ext, data, 0o644); err != nil {
			return nil, err
		}
	}
	proto := "udp"
	if sc.TCP {
		proto = "tcp"
	}
	var eps []string
	for i := range numEndpoints {
		eps = append(eps, netip.AddrPortFrom(sc.endpoint(i), targetPort).String())
	}
	x := &procGateway{done: make(chan error, 1), log: base + ".log"}
	logf, err := os.Create(x.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	x.cmd = exec.Command("ip", "netns", "exec", t.gw, "sh", "-c", cmd)
	x.cmd.Stdout, x.cmd.Stderr = logf, logf
	// Its own process group, so SIGTERM reaches whatever the shell
	// started, not only the shell.
	x.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	x.cmd.Env = append(os.Environ(),
		"XDPGATE_BENCH_SCENARIO="+sc.Name,
		"XDPGATE_BENCH_INGRESS=gw0", "XDPGATE_BENCH_EGRESS="+t.egress,
		"XDPGATE_BENCH_NODE_IPS="+t.nodeIPs(),
		"XDPGATE_BENCH_VIP="+netip.AddrPortFrom(netip.MustParseAddr(vipAddr), servicePort).String(),
		"XDPGATE_BENCH_PROTO="+proto,
		"XDPGATE_BENCH_ENDPOINTS="+strings.Join(eps, ","),
		"XDPGATE_BENCH_CPU="+strconv.Itoa(o.GatewayCPU),
		"XDPGATE_BENCH_MANIFEST="+base+".yaml",
		"XDPGATE_BENCH_NFT="+base+".nft",
		"XDPGATE_BENCH_IPTABLES="+base+".iptables",
	)
	if err := x.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	x.name = name
	go func() { x.done <- x.cmd.Wait() }()
	return x, nil
}

type kernelGateway struct{ remove func() error }

func (k kernelGateway) stop() error                              { return k.remove() }
func (kernelGateway) counters() (*report.GatewayCounters, error) { return nil, nil }
func (f *forwarderGateway) counters() (*report.GatewayCounters, error) {
	return forwarderCounters(f.dp)
}

// counters reads xdpgate's /v1/stats from its admin socket; an external
// command has none.
func (x *procGateway) counters() (*report.GatewayCounters, error) {
	if x.admin == "" {
		return nil, nil
	}
	st, err := admin.ReadStats(x.admin, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("xdpgate counters: %w", err)
	}
	return adminCounters(st), nil
}
func (kernelGateway) profile() string     { return "" }
func (x *procGateway) profile() string    { return x.prof }
func (*forwarderGateway) profile() string { return "" }

// procGateway is a dataplane that runs as a process in the gateway
// namespace: `xdpgate run` from a manifest file, exactly as a user runs it,
// or an external command (startExternal).
type procGateway struct {
	name string // the dataplane's name, for messages
	cmd  *exec.Cmd
	done chan error
	prof string
	log  string
	// admin is xdpgate's admin socket ("" for an external command), in
	// adminDir, removed at stop.
	admin, adminDir string
}

// startXDPGate runs `xdpgate run` as dataplane name: xdpgate, or
// xdpgate-fastpath, the same with --fast-path xdp.
func startXDPGate(name string, t *topology, sc Scenario, o Options, dir, tag string) (*procGateway, error) {
	manifest, err := sc.Manifest()
	if err != nil {
		return nil, err
	}
	mpath := filepath.Join(dir, sc.Name+".yaml")
	if err := os.WriteFile(mpath, manifest, 0o644); err != nil {
		return nil, err
	}
	ctMax := 1 << 20
	if sc.Prefill > 0 {
		ctMax = 2 * int(sc.Prefill)
	}
	x := &procGateway{name: name, done: make(chan error, 1), log: filepath.Join(dir, sc.Name+tag+"-"+name+".log")}
	// The admin socket, from which the rig reads xdpgate's counters around
	// each burst (a unix socket path is short: not under dir).
	if x.adminDir, err = os.MkdirTemp("", "xdpgate-bench-"); err != nil {
		return nil, err
	}
	x.admin = filepath.Join(x.adminDir, "admin.sock")
	logf, err := os.Create(x.log)
	if err != nil {
		os.RemoveAll(x.adminDir)
		return nil, err
	}
	defer logf.Close()
	args := []string{"netns", "exec", t.gw, o.Binary, "run",
		"--interfaces", strings.Join(t.gatewayIfaces(), ","), "--manifests", mpath, "--node-name", nodeName, "--state-dir", "off",
		"--node-ips", t.nodeIPs(), "--cpus", strconv.Itoa(o.GatewayCPU),
		"--metrics-bind-address", "off", "--healthz-bind-address", "off", "--admin-socket", x.admin,
		// The gateway namespace's ephemeral ports are 10000-19999 (see
		// newTopology), so SNAT may use the upper half of the port space:
		// 32,768 ports per endpoint, as many flows as the kernel's
		// masquerade gets in practice for 100k flows over 4 endpoints.
		"--snat-ports", "32768-65535",
		"--conntrack-max", strconv.Itoa(ctMax), "--log-level", "warn",
		// The pollers share the gateway CPU with gw0's NAPI thread, which
		// fills their rings: spinning on an empty ring would only keep it
		// off the CPU (measured on the raw forwarder: about 20% fewer
		// frames delivered with the default 50us spin).
		"--busy-poll", "0"}
	if name == DataplaneXDPGateFastPath {
		args = append(args, "--fast-path", "xdp")
	}
	args = append(args, o.XDPGateArgs...)
	x.cmd = exec.Command("ip", args...)
	x.cmd.Stdout, x.cmd.Stderr = logf, logf
	if o.ProfileDir != "" {
		x.prof = filepath.Join(o.ProfileDir, sc.Name+tag+"-"+name+".pprof")
		x.cmd.Env = append(os.Environ(), "XDPGATE_CPUPROFILE="+x.prof)
	}
	if err := x.cmd.Start(); err != nil {
		os.RemoveAll(x.adminDir)
		return nil, fmt.Errorf("start xdpgate: %w", err)
	}
	go func() { x.done <- x.cmd.Wait() }()
	return x, nil
}

// exited reports whether the process has ended (with its error).
func (x *procGateway) exited() (bool, error) {
	select {
	case err := <-x.done:
		x.done <- err
		return true, err
	default:
		return false, nil
	}
}

func (x *procGateway) stop() error {
	if x.adminDir != "" {
		defer os.RemoveAll(x.adminDir)
	}
	name := x.name
	if done, err := x.exited(); done {
		return fmt.Errorf("%s exited early: %v (log %s)", name, err, x.log)
	}
	if x.cmd.SysProcAttr != nil && x.cmd.SysProcAttr.Setpgid {
		_ = syscall.Kill(-x.cmd.Process.Pid, syscall.SIGTERM)
	} else {
		_ = x.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case err := <-x.done:
		if err != nil && x.admin != "" { // xdpgate, not a user's command
			return fmt.Errorf("%s: %v (log %s)", name, err, x.log)
		}
		// A user's command killed by SIGTERM is a normal stop.
		return nil
	case <-time.After(15 * time.Second):
		if x.cmd.SysProcAttr != nil && x.cmd.SysProcAttr.Setpgid {
			_ = syscall.Kill(-x.cmd.Process.Pid, syscall.SIGKILL)
		}
		_ = x.cmd.Process.Kill()
		<-x.done
		return fmt.Errorf("%s did not stop within 15s of SIGTERM (log %s)", name, x.log)
	}
}

// forwarderGateway is dataplane.Forwarder on the same AF_XDP sockets,
// rings and pollers xdpgate uses, with no translation: the ceiling of
// xdpgate's I/O path. It runs in the rig's process; its pollers are pinned
// to the gateway CPU like xdpgate's.
type forwarderGateway struct {
	dp     *dataplane.Dataplane
	eg     *dataplane.Egress
	cancel context.CancelFunc
	done   chan error
}

func startForwarder(t *topology, sc Scenario, o Options) (*forwarderGateway, error) {
	if err := t.routeVIP(); err != nil {
		return nil, err
	}
	f := &forwarderGateway{done: make(chan error, 1)}
	log := slog.New(slog.DiscardHandler)
	err := t.do(t.gw, func() (err error) {
		// BusyPoll 0: never spin, as xdpgate in the rig (--busy-poll 0).
		if f.dp, err = dataplane.Open(dataplane.Config{Interfaces: t.gatewayIfaces(),
			CPUs: []int{o.GatewayCPU}, BusyPoll: 0, Logger: log}); err != nil {
			return err
		}
		f.eg, err = dataplane.NewEgress(dataplane.EgressConfig{Logger: log})
		return err
	})
	if err != nil {
		if f.dp != nil {
			f.dp.Close()
		}
		return nil, fmt.Errorf("raw forwarder: %w", err)
	}
	proto := nat.ProtoUDP
	if sc.TCP {
		proto = nat.ProtoTCP
	}
	vip := dataplane.L4Addr{Addr: netip.MustParseAddr(vipAddr), Port: servicePort, Proto: uint8(proto)}
	// Frames to the VIP, and (reply scenarios) the sink's reflections,
	// which come from the VIP.
	if err := f.dp.Classifier().Update(dataplane.Rules{Frontends: []dataplane.L4Addr{vip}, Endpoints: []dataplane.L4Addr{vip}}); err != nil {
		f.dp.Close()
		f.eg.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- f.dp.Run(ctx, dataplane.NewForwarder(f.eg)) }()
	return f, nil
}

func (f *forwarderGateway) stop() error {
	f.cancel()
	err := <-f.done
	return errors.Join(err, f.dp.Close(), f.eg.Close())
}

// routeVIP routes the VIP to the sink in the gateway namespace, for the
// dataplanes that forward by destination without translation (the raw
// forwarder, xdp-redirect). Only for them: with the route, a kernel
// dataplane would forward frames that arrive before its rules
// untranslated, and its conntrack would keep those flows untranslated.
func (t *topology) routeVIP() error {
	return nsRun(t.gw, "ip", "route", "add", vipAddr+"/32", "via", t.nextHop, "dev", t.egress)
}
