package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/xdpgate/xdpgate/control"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/internal/config"
)

// Sentinel errors of the command.
var (
	// errUsage: bad flags; the problem has been written to stderr.
	errUsage = config.ErrUsage
	// errMissingCaps: the process lacks capabilities it needs.
	errMissingCaps = errors.New("missing capabilities")
)

// options are the settings of `xdpgate run`, parsed into the types the
// components take. internal/config owns the flags, the file and their
// validation; this is only the conversion.
type options struct {
	interfaces []string
	nodeName   string
	nodeIPs    []netip.Addr
	// manifests selects standalone mode; otherwise kubeconfig (empty: the
	// in-cluster service account) and master locate the API server.
	manifests         string
	kubeconfig        string
	master            string
	cpus              []int
	xdpMode           dataplane.AttachMode
	conntrackMax      int
	affinityMax       int
	metricsMaxEPs     int
	snatMin, snatMax  uint16
	metricsAddr       string // control.Disabled turns it off
	healthzAddr       string // control.Disabled turns it off
	clusterCIDRs      []netip.Prefix
	nodePortAddresses []string
	masqueradeAll     bool
	logLevel          slog.Level
	// adminSocket is the unix socket `xdpgate inspect` and `xdpgate
	// capture` talk to; "off" disables it.
	adminSocket string
	// busyPoll is the poller spin before sleeping; 0 never spins.
	busyPoll time.Duration
	// stateDir holds the tables and the ID journal the next process
	// adopts; config.Off keeps them in process memory.
	stateDir string
	// classifier sizes the classifier's maps.
	classifier dataplane.ClassifierConfig
	// replaceForeign lets the dataplane remove another tool's XDP program
	// from a managed interface.
	replaceForeign bool
}

// parseRunFlags parses the arguments of `xdpgate run` (flags and --config
// file, see internal/config). Every problem is written to stderr and
// reported as errUsage.
func parseRunFlags(args []string, stderr io.Writer) (options, error) {
	c, err := config.Parse(args, stderr)
	if err == nil {
		var o options
		if o, err = optionsFrom(c); err == nil {
			return o, nil
		}
	}
	if !errors.Is(err, config.ErrUsage) {
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			fmt.Fprintf(stderr, "xdpgate run: %v\n", e)
		}
	}
	return options{}, errUsage
}

// optionsFrom converts a valid Configuration, as config.Parse returns it.
func optionsFrom(c config.Configuration) (options, error) {
	r, err := c.Resolve()
	if err != nil {
		return options{}, err
	}
	o := options{
		interfaces:        c.XDP.Interfaces,
		nodeName:          c.HostnameOverride,
		nodeIPs:           r.NodeIPs,
		manifests:         c.Manifests,
		kubeconfig:        c.ClientConnection.Kubeconfig,
		master:            c.Master,
		cpus:              r.CPUs,
		conntrackMax:      c.XDP.ConntrackMax,
		affinityMax:       c.XDP.AffinityMax,
		metricsMaxEPs:     c.XDP.MetricsMaxEndpoints,
		snatMin:           r.SNATPortMin,
		snatMax:           r.SNATPortMax,
		metricsAddr:       serverAddr(c.MetricsBindAddress),
		healthzAddr:       serverAddr(c.HealthzBindAddress),
		clusterCIDRs:      r.ClusterCIDRs,
		nodePortAddresses: c.NodePortAddresses,
		masqueradeAll:     c.MasqueradeAll,
		logLevel:          r.LogLevel,
		adminSocket:       c.XDP.AdminSocket,
		busyPoll:          r.BusyPoll,
		stateDir:          c.XDP.StateDir,
		xdpMode:           r.XDPMode,
		classifier: dataplane.ClassifierConfig{MaxFrontends: c.XDP.MaxFrontends, MaxEndpoints: c.XDP.MaxEndpoints,
			MaxNodePorts: c.XDP.MaxNodePorts, MaxNodeAddrs: c.XDP.MaxNodeAddresses},
		replaceForeign: c.XDP.ReplaceForeignProgram,
	}
	if r.FastPath {
		o.classifier.FastPathFlows = c.XDP.FastPathFlows
	}
	return o, nil
}

// serverAddr maps the configuration's disabled spelling to control's
// (config.Parse has already rewritten kube-proxy's "" to config.Off).
func serverAddr(s string) string {
	if s == config.Off {
		return control.Disabled
	}
	return s
}
