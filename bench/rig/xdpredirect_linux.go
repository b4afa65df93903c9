package rig

import (
	"fmt"

	"github.com/xdpgate/xdpgate/bench/report"
	"github.com/xdpgate/xdpgate/bench/xdpfwd"
)

// xdpRedirectGateway is the kernel's own XDP forwarding (bench/xdpfwd) on
// the gateway's interfaces: every frame routed by bpf_fib_lookup and
// redirected in the driver's receive path, no socket buffer, no
// translation. The ceiling of the rig itself, where the raw forwarder is
// the ceiling of AF_XDP on it. It needs NAPI on the peers it redirects to:
// the sinks are native (scenarioRun.nativeSinks), and the generator's
// frames reach gw0's own program.
type xdpRedirectGateway struct {
	fwd *xdpfwd.Forwarder
}

func startXDPRedirect(t *topology) (*xdpRedirectGateway, error) {
	// It forwards by destination, as the raw forwarder does; the replies
	// to the clients take the client routes newTopology installs.
	if err := t.routeVIP(); err != nil {
		return nil, err
	}
	g := &xdpRedirectGateway{}
	if err := t.do(t.gw, func() (err error) { g.fwd, err = xdpfwd.Attach(t.gatewayIfaces()); return err }); err != nil {
		return nil, fmt.Errorf("%s: %w", DataplaneXDPRedirect, err)
	}
	return g, nil
}

// stop detaches the program; the namespace's deletion would too, but a
// rig that keeps running should not hold the program until then.
func (g *xdpRedirectGateway) stop() error { return g.fwd.Close() }

func (*xdpRedirectGateway) profile() string { return "" }

// counters is nil: the report's table of where frames went is about
// AF_XDP rings. The program's own counters are read by stats.
func (*xdpRedirectGateway) counters() (*report.GatewayCounters, error) { return nil, nil }

// stats reads the program's counters (cumulative).
func (g *xdpRedirectGateway) stats() (xdpfwd.Stats, error) { return g.fwd.Stats() }
