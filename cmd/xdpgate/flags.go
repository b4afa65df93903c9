package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/xdpgate/xdpgate/dataplane"
)

// Sentinel errors of the command.
var (
	// errUsage: bad flags; the flag package has printed the problem.
	errUsage = errors.New("usage")
	// errMissingCaps: the process lacks capabilities it needs.
	errMissingCaps = errors.New("missing capabilities")
)

// options are the parsed flags of `xdpgate run`.
type options struct {
	interfaces        []string
	nodeName          string
	nodeIPs           []netip.Addr
	manifests         string
	kubeconfig        string
	cpus              []int
	xdpMode           dataplane.AttachMode
	conntrackMax      int
	affinityMax       int
	snatMin, snatMax  uint16
	metricsAddr       string
	healthzAddr       string
	clusterCIDRs      []netip.Prefix
	nodePortAddresses []string
	masqueradeAll     bool
	logLevel          slog.Level
	// adminSocket is the unix socket `xdpgate inspect` and `xdpgate
	// capture` talk to; empty disables it.
	adminSocket string
}

// parseRunFlags parses the flags of `xdpgate run`.
func parseRunFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("xdpgate run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host, _ := os.Hostname()
	var ifaces, nodeIPs, cpus, xdpMode, snat, cidrs, npa, logLevel string
	fs.StringVar(&ifaces, "interfaces", "", "comma-separated managed interfaces (required)")
	fs.StringVar(&o.nodeName, "node-name", host, "this node's name (endpoint locality, the Node object)")
	fs.StringVar(&nodeIPs, "node-ips", "", "comma-separated node addresses (default: the Node object's, or in standalone mode the managed interfaces' addresses)")
	fs.StringVar(&o.manifests, "manifests", "", "standalone mode: YAML file of Services, EndpointSlices and optionally the Node")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "cluster mode: kubeconfig file")
	fs.StringVar(&cpus, "cpus", "", "CPUs to pin pollers to, e.g. 0,1 or 2-5 (default: no pinning)")
	fs.StringVar(&xdpMode, "xdp-mode", "native", "XDP attach mode: native, generic or auto (native, else generic)")
	fs.IntVar(&o.conntrackMax, "conntrack-max", 1<<20, "IPv4 flow table capacity (IPv6: an eighth of it)")
	fs.IntVar(&o.affinityMax, "affinity-max", 1<<20, "ClientIP affinity table capacity (clients)")
	fs.StringVar(&snat, "snat-ports", fmt.Sprintf("%d-%d", dataplane.DefaultSNATPortMin, dataplane.DefaultSNATPortMax),
		"SNAT port range MIN-MAX; must not overlap net.ipv4.ip_local_port_range")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", "127.0.0.1:10249", `/metrics address; "off" disables`)
	fs.StringVar(&o.healthzAddr, "healthz-bind-address", "0.0.0.0:10256", `/healthz and /livez address; "off" disables`)
	fs.StringVar(&cidrs, "cluster-cidr", "", "comma-separated pod CIDRs (kube-proxy's ClusterCIDR local traffic detector)")
	fs.StringVar(&npa, "nodeport-addresses", "", `comma-separated CIDRs or "primary"/"all" selecting NodePort addresses (default all)`)
	fs.BoolVar(&o.masqueradeAll, "masquerade-all", false, "SNAT all traffic to ClusterIPs")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.adminSocket, "admin-socket", "/run/xdpgate/admin.sock", `unix socket (root only) for xdpgate inspect and capture; "off" disables`)
	if err := fs.Parse(args); err != nil {
		return o, errUsage
	}
	bad := func(format string, a ...any) (options, error) {
		fmt.Fprintf(stderr, "xdpgate run: "+format+"\n", a...)
		fs.Usage()
		return o, errUsage
	}
	if fs.NArg() > 0 {
		return bad("unexpected arguments %q", fs.Args())
	}
	o.interfaces = splitList(ifaces)
	if len(o.interfaces) == 0 {
		return bad("--interfaces is required")
	}
	if (o.manifests == "") == (o.kubeconfig == "") {
		return bad("give exactly one of --manifests (standalone) and --kubeconfig (cluster)")
	}
	if o.nodeName == "" {
		return bad("--node-name is required (no hostname)")
	}
	for _, s := range splitList(nodeIPs) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return bad("--node-ips: %v", err)
		}
		o.nodeIPs = append(o.nodeIPs, a.Unmap())
	}
	var err error
	if o.cpus, err = parseCPUs(cpus); err != nil {
		return bad("--cpus: %v", err)
	}
	switch xdpMode {
	case "native":
		o.xdpMode = dataplane.AttachNative
	case "generic":
		o.xdpMode = dataplane.AttachGeneric
	case "auto":
		o.xdpMode = dataplane.AttachNativeOrGeneric
	default:
		return bad("--xdp-mode %q: want native, generic or auto", xdpMode)
	}
	if o.conntrackMax < 1 {
		return bad("--conntrack-max %d: want > 0", o.conntrackMax)
	}
	if o.affinityMax < 1 {
		return bad("--affinity-max %d: want > 0", o.affinityMax)
	}
	if o.snatMin, o.snatMax, err = parsePortRange(snat); err != nil {
		return bad("--snat-ports: %v", err)
	}
	for _, s := range splitList(cidrs) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return bad("--cluster-cidr: %v", err)
		}
		o.clusterCIDRs = append(o.clusterCIDRs, p.Masked())
	}
	o.nodePortAddresses = splitList(npa)
	if err := o.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return bad("--log-level: %v", err)
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseCPUs parses "0,2,4-6".
func parseCPUs(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		lo, hi, isRange := strings.Cut(f, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bad CPU %q", f)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bad CPU range %q", f)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

// parsePortRange parses "MIN-MAX" (1 <= MIN <= MAX <= 65535).
func parsePortRange(s string) (lo, hi uint16, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want MIN-MAX", s)
	}
	x, err1 := strconv.ParseUint(a, 10, 16)
	y, err2 := strconv.ParseUint(b, 10, 16)
	if err1 != nil || err2 != nil || x == 0 || y < x {
		return 0, 0, fmt.Errorf("%q: want MIN-MAX with 1 <= MIN <= MAX <= 65535", s)
	}
	return uint16(x), uint16(y), nil
}
