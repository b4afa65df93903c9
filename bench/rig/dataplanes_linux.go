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
	"syscall"
	"time"

	"github.com/xdpgate/xdpgate/bench/baseline"
	"github.com/xdpgate/xdpgate/dataplane"
)

// The dataplanes the rig compares.
const (
	DataplaneXDPGate   = "xdpgate"
	DataplaneNFTables  = "nftables"
	DataplaneIPTables  = "iptables"
	DataplaneForwarder = "afxdp-forwarder"
)

// Dataplanes lists them in measurement order: the raw forwarder first, so
// a sweep can be scaled to the ceiling it measures.
var Dataplanes = []string{DataplaneForwarder, DataplaneXDPGate, DataplaneNFTables, DataplaneIPTables}

// gateway is a running dataplane in the gateway namespace.
type gateway interface {
	// stop stops it and removes what it installed.
	stop() error
	// profile is the CPU profile written at stop, if any.
	profile() string
}

// startGateway starts dataplane name for scenario sc in t's gateway
// namespace. dir receives its manifest, log and profile.
func startGateway(name string, t *topology, sc Scenario, o Options, dir string) (gateway, error) {
	switch name {
	case DataplaneXDPGate:
		return startXDPGate(t, sc, o, dir)
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
	return nil, fmt.Errorf("unknown dataplane %q (want one of %v)", name, Dataplanes)
}

type kernelGateway struct{ remove func() error }

func (k kernelGateway) stop() error       { return k.remove() }
func (kernelGateway) profile() string     { return "" }
func (x *xdpgateProc) profile() string    { return x.prof }
func (*forwarderGateway) profile() string { return "" }

// xdpgateProc is `xdpgate run` in the gateway namespace, exactly as a user
// runs it, from a manifest file.
type xdpgateProc struct {
	cmd  *exec.Cmd
	done chan error
	prof string
	log  string
}

func startXDPGate(t *topology, sc Scenario, o Options, dir string) (*xdpgateProc, error) {
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
	x := &xdpgateProc{done: make(chan error, 1), log: filepath.Join(dir, sc.Name+"-xdpgate.log")}
	logf, err := os.Create(x.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := []string{"netns", "exec", t.gw, o.Binary, "run",
		"--interfaces", "gw0,gw1", "--manifests", mpath, "--node-name", nodeName,
		"--node-ips", gw0Addr + "," + gw1Addr, "--cpus", strconv.Itoa(o.GatewayCPU),
		"--metrics-bind-address", "off", "--healthz-bind-address", "off", "--admin-socket", "off",
		// The gateway namespace's ephemeral ports are 10000-19999 (see
		// newTopology), so SNAT may use the upper half of the port space:
		// 32,768 ports per endpoint, as many flows as the kernel's
		// masquerade gets in practice for 100k flows over 4 endpoints.
		"--snat-ports", "32768-65535",
		"--conntrack-max", strconv.Itoa(ctMax), "--log-level", "warn"}
	x.cmd = exec.Command("ip", args...)
	x.cmd.Stdout, x.cmd.Stderr = logf, logf
	if o.ProfileDir != "" {
		x.prof = filepath.Join(o.ProfileDir, sc.Name+"-xdpgate.pprof")
		x.cmd.Env = append(os.Environ(), "XDPGATE_CPUPROFILE="+x.prof)
	}
	if err := x.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start xdpgate: %w", err)
	}
	go func() { x.done <- x.cmd.Wait() }()
	return x, nil
}

// exited reports whether the process has ended (with its error).
func (x *xdpgateProc) exited() (bool, error) {
	select {
	case err := <-x.done:
		x.done <- err
		return true, err
	default:
		return false, nil
	}
}

func (x *xdpgateProc) stop() error {
	if done, err := x.exited(); done {
		return fmt.Errorf("xdpgate exited early: %v (log %s)", err, x.log)
	}
	_ = x.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-x.done:
		if err != nil {
			return fmt.Errorf("xdpgate: %v (log %s)", err, x.log)
		}
		return nil
	case <-time.After(15 * time.Second):
		_ = x.cmd.Process.Kill()
		<-x.done
		return fmt.Errorf("xdpgate did not stop within 15s of SIGTERM (log %s)", x.log)
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
	f := &forwarderGateway{done: make(chan error, 1)}
	log := slog.New(slog.DiscardHandler)
	err := t.do(t.gw, func() (err error) {
		if f.dp, err = dataplane.Open(dataplane.Config{Interfaces: []string{"gw0", "gw1"},
			CPUs: []int{o.GatewayCPU}, Logger: log}); err != nil {
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
	proto := uint8(17)
	if sc.TCP {
		proto = 6
	}
	if err := f.dp.Classifier().Update(dataplane.Rules{Frontends: []dataplane.L4Addr{
		{Addr: netip.MustParseAddr(vipAddr), Port: servicePort, Proto: proto}}}); err != nil {
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
