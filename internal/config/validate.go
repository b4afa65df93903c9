package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xdpgate/xdpgate/dataplane"
)

// Sentinel errors of the package.
var (
	// ErrUsage reports bad command-line flags; the flag package has
	// already written the problem and the usage to Parse's stderr.
	ErrUsage = errors.New("usage")
	// ErrInvalid matches (errors.Is) every *FieldError: a field Decode or
	// Validate rejects.
	ErrInvalid = errors.New("invalid configuration")
)

// FieldError is a problem with one field, named by its YAML path
// ("xdp.snatPortRange", "nodeIPs[1]").
type FieldError struct {
	// Field is the YAML path of the field.
	Field string
	// Err is the problem.
	Err error
}

// Error implements error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the problem.
func (e *FieldError) Unwrap() error { return e.Err }

// Is reports whether target is ErrInvalid, so callers can tell a bad
// configuration from, say, an unreadable file without the sentinel's text
// appearing in every message.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// fieldErr builds a FieldError.
func fieldErr(field, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Err: fmt.Errorf(format, a...)}
}

// Resolved holds the values of a valid Configuration that Validate parses
// out of their string forms, so that callers do not parse them again.
type Resolved struct {
	// NodeIPs are nodeIPs, unmapped.
	NodeIPs []netip.Addr
	// ClusterCIDRs are clusterCIDR's prefixes, masked.
	ClusterCIDRs []netip.Prefix
	// CPUs are xdp.cpus expanded, in the order given.
	CPUs []int
	// SNATPortMin and SNATPortMax bound xdp.snatPortRange.
	SNATPortMin, SNATPortMax uint16
	// LogLevel is logLevel.
	LogLevel slog.Level
	// BusyPoll is xdp.busyPoll; 0 means never spin.
	BusyPoll time.Duration
	// XDPMode is xdp.mode.
	XDPMode dataplane.AttachMode
	// FastPath is xdp.fastPath == "xdp".
	FastPath bool
}

// Validate checks every field and returns all problems found, each a
// *FieldError naming the field's YAML path (joined with errors.Join).
func (c Configuration) Validate() error {
	_, err := c.Resolve()
	return err
}

// maxFastPathFlows bounds xdp.fastPathFlows (the dataplane's limit).
const maxFastPathFlows = 1 << 24

// maxCPU bounds xdp.cpus: Linux's NR_CPUS is at most 8192, and the bound
// keeps "0-999999999" from allocating a billion ints.
const maxCPU = 8191

// maxClassifierEntries bounds the classifier map sizes (the kernel's own
// bound on a BPF hash map is 2^32-1 entries; 16M is far beyond any cluster
// and keeps a typo from asking the kernel for gigabytes).
const maxClassifierEntries = 1 << 24

// maxUnixPath is the longest unix socket path (sun_path is 108 bytes,
// NUL-terminated).
const maxUnixPath = 107

// Resolve validates c like Validate and returns its parsed values.
func (c Configuration) Resolve() (Resolved, error) {
	var r Resolved
	var errs []error
	add := func(e *FieldError) { errs = append(errs, e) }

	if c.APIVersion != APIVersion {
		add(fieldErr("apiVersion", "%q, want %q", c.APIVersion, APIVersion))
	}
	if c.Kind != Kind {
		add(fieldErr("kind", "%q, want %q", c.Kind, Kind))
	}
	if c.Manifests != "" && c.ClientConnection.Kubeconfig != "" {
		add(fieldErr("manifests", "set together with clientConnection.kubeconfig: give at most one (manifests: standalone; kubeconfig, or neither for in-cluster: cluster)"))
	}
	if c.Master != "" {
		if c.Manifests != "" {
			add(fieldErr("master", "set in standalone mode (manifests): the API server is used in cluster mode only"))
		}
		if err := checkMaster(c.Master); err != nil {
			add(fieldErr("master", "%q: %v", c.Master, err))
		}
	}
	if c.HostnameOverride == "" {
		add(fieldErr("hostnameOverride", "required (no hostname)"))
	} else if strings.ContainsFunc(c.HostnameOverride, isSpace) {
		add(fieldErr("hostnameOverride", "%q: contains white space", c.HostnameOverride))
	}
	for i, s := range c.NodeIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			add(fieldErr(fmt.Sprintf("nodeIPs[%d]", i), "%v", err))
			continue
		}
		r.NodeIPs = append(r.NodeIPs, a.Unmap())
	}
	for _, f := range []struct{ path, v string }{
		{"healthzBindAddress", c.HealthzBindAddress},
		{"metricsBindAddress", c.MetricsBindAddress},
	} {
		if f.v == "" || f.v == Off {
			continue
		}
		if err := checkHostPort(f.v); err != nil {
			add(fieldErr(f.path, "%q: %v", f.v, err))
		}
	}
	for _, s := range SplitList(c.ClusterCIDR) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			add(fieldErr("clusterCIDR", "%v", err))
			continue
		}
		r.ClusterCIDRs = append(r.ClusterCIDRs, p.Masked())
	}
	for i, s := range c.NodePortAddresses {
		switch s {
		case "all", "primary", "localhost":
			continue
		}
		if _, err := netip.ParsePrefix(s); err != nil {
			add(fieldErr(fmt.Sprintf("nodePortAddresses[%d]", i), "%q: want a CIDR, \"primary\" or \"all\"", s))
		}
	}
	if err := r.LogLevel.UnmarshalText([]byte(c.LogLevel)); err != nil {
		add(fieldErr("logLevel", "%q: want debug, info, warn or error", c.LogLevel))
	}

	x := c.XDP
	if len(x.Interfaces) == 0 {
		add(fieldErr("xdp.interfaces", "required"))
	}
	seen := make(map[string]bool, len(x.Interfaces))
	for i, n := range x.Interfaces {
		path := fmt.Sprintf("xdp.interfaces[%d]", i)
		switch {
		case n == "":
			add(fieldErr(path, "empty interface name"))
		case len(n) > 15 || strings.ContainsFunc(n, func(r rune) bool { return r == '/' || r == ':' || isSpace(r) }):
			// The kernel's dev_valid_name: IFNAMSIZ-1 bytes, no '/',
			// ':' or white space.
			add(fieldErr(path, "%q: not a valid interface name", n))
		case seen[n]:
			add(fieldErr(path, "%q listed twice", n))
		}
		seen[n] = true
	}
	var err error
	if r.XDPMode, err = dataplane.ParseAttachMode(x.Mode); err != nil {
		add(fieldErr("xdp.mode", "%q: want native, generic or auto", x.Mode))
	}
	if r.CPUs, err = ParseCPUs(x.CPUs); err != nil {
		add(fieldErr("xdp.cpus", "%v", err))
	}
	if x.ConntrackMax < 1 {
		add(fieldErr("xdp.conntrackMax", "%d: want > 0", x.ConntrackMax))
	}
	if x.AffinityMax < 1 {
		add(fieldErr("xdp.affinityMax", "%d: want > 0", x.AffinityMax))
	}
	if x.MetricsMaxEndpoints < 0 {
		add(fieldErr("xdp.metricsMaxEndpoints", "%d: want >= 0 (0: always the distribution)", x.MetricsMaxEndpoints))
	}
	for _, f := range []struct {
		path string
		v    int
	}{{"xdp.maxFrontends", x.MaxFrontends}, {"xdp.maxEndpoints", x.MaxEndpoints}, {"xdp.maxNodePorts", x.MaxNodePorts},
		{"xdp.maxNodeAddresses", x.MaxNodeAddresses}} {
		if f.v < 1 || f.v > maxClassifierEntries {
			add(fieldErr(f.path, "%d: want 1..%d", f.v, maxClassifierEntries))
		}
	}
	if r.SNATPortMin, r.SNATPortMax, err = ParsePortRange(x.SNATPortRange); err != nil {
		add(fieldErr("xdp.snatPortRange", "%v", err))
	}
	if r.BusyPoll, err = time.ParseDuration(x.BusyPoll); err != nil || r.BusyPoll < 0 || r.BusyPoll > time.Second {
		add(fieldErr("xdp.busyPoll", "%q: want a duration from 0 (never spin) to 1s, e.g. 50us", x.BusyPoll))
	}
	switch x.FastPath {
	case FastPathXDP:
		r.FastPath = true
	case Off:
	default:
		add(fieldErr("xdp.fastPath", "%q: want xdp or off", x.FastPath))
	}
	if x.FastPathFlows < 1 || x.FastPathFlows > maxFastPathFlows {
		add(fieldErr("xdp.fastPathFlows", "%d: want 1..%d", x.FastPathFlows, maxFastPathFlows))
	}
	if x.AdminSocket != "" && x.AdminSocket != Off && len(x.AdminSocket) > maxUnixPath {
		add(fieldErr("xdp.adminSocket", "%q: longer than %d bytes (a unix socket path)", x.AdminSocket, maxUnixPath))
	}
	if x.StateDir != "" && x.StateDir != Off && !filepath.IsAbs(x.StateDir) {
		add(fieldErr("xdp.stateDir", "%q: want an absolute path, or off", x.StateDir))
	}
	if len(errs) > 0 {
		return Resolved{}, errors.Join(errs...)
	}
	return r, nil
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

// checkMaster accepts what rest.Config.Host does in practice: an http or
// https URL with a host.
func checkMaster(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("want an https:// or http:// URL with a host")
	}
	return nil
}

// checkHostPort accepts HOST:PORT with a numeric port (HOST may be empty:
// all addresses).
func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// SplitList splits a comma-separated list, trimming white space and
// dropping empty elements.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ParseCPUs parses a CPU list such as "0,2,4-6".
func ParseCPUs(s string) ([]int, error) {
	var out []int
	for _, f := range SplitList(s) {
		lo, hi, isRange := strings.Cut(f, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 || a > maxCPU {
			return nil, fmt.Errorf("bad CPU %q", f)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b > maxCPU {
				return nil, fmt.Errorf("bad CPU range %q", f)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

// ParsePortRange parses "MIN-MAX" (1 <= MIN <= MAX <= 65535).
func ParsePortRange(s string) (lo, hi uint16, err error) {
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
