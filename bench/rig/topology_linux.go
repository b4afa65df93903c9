package rig

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xdpgate/xdpgate/internal/nsenter"
)

// clientRoutes cover every possible client address.
var clientRoutes = []string{"198.18.64.0/18", "198.18.128.0/17", "198.19.0.0/16"}

// topology is one instance of the rig's namespaces, two-arm:
//
//	gen [gen0] --- [gw0] gw [gw1] --- [sink0] sink
//
// or one-arm, where the gateway forwards back out of the interface it
// received on and the sink counts on the generator's interface (the
// endpoints are on the generator's side, 198.18.1.0/24):
//
//	gen+sink [gen0] --- [gw0] gw
//
// Each (scenario, dataplane) measurement gets a fresh one, so no state
// (kernel conntrack entries above all) leaks from one dataplane to the next.
type topology struct {
	gen, gw, sink  string
	genMAC, gw0MAC net.HardwareAddr
	sinkMAC        net.HardwareAddr
	gatewayCPU     int
	oneArm         bool
	// sinkIf is the interface the sink counts on; egress is the
	// gateway's interface towards the endpoints, nextHop the address
	// behind it.
	sinkIf, egress, nextHop string
	handles                 map[string]netns.NsHandle
	created                 []string
}

// nodeIPs are the gateway's addresses, comma-separated.
func (t *topology) nodeIPs() string {
	if t.oneArm {
		return gw0Addr
	}
	return gw0Addr + "," + gw1Addr
}

// gatewayIfaces are the interfaces a dataplane manages.
func (t *topology) gatewayIfaces() []string {
	if t.oneArm {
		return []string{"gw0"}
	}
	return []string{"gw0", "gw1"}
}

var topoSeq atomic.Uint32

// run runs a command and returns its error with the output.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// nsRun runs a command inside namespace ns.
func nsRun(ns string, name string, args ...string) error {
	return run("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// nsWrite writes a sysfs or procfs file as seen from inside namespace ns
// (ip netns exec remounts /sys for the namespace).
func nsWrite(ns, path, value string) error {
	return nsRun(ns, "sh", "-c", fmt.Sprintf("echo %s > %s", value, path))
}

// newTopology builds the namespaces and their links for scenario sc. On
// error, everything already created is removed.
func newTopology(gatewayCPU int, sc Scenario) (t *topology, err error) {
	// The owner's pid is part of the name, so Cleanup can tell a leftover
	// from a topology another running rig is using.
	id := fmt.Sprintf("%d-%d", os.Getpid(), topoSeq.Add(1))
	t = &topology{
		gen: nsPrefix + "gen-" + id, gw: nsPrefix + "gw-" + id, sink: nsPrefix + "sink-" + id,
		gatewayCPU: gatewayCPU, oneArm: sc.OneArm, handles: map[string]netns.NsHandle{},
		sinkIf: "sink0", egress: "gw1", nextHop: sinkAddr,
	}
	namespaces := []string{t.gen, t.gw, t.sink}
	if t.oneArm {
		t.sink, t.sinkIf, t.egress, t.nextHop = t.gen, "gen0", "gw0", genAddr
		namespaces = namespaces[:2]
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.close())
		}
	}()
	for _, ns := range namespaces {
		if err := run("ip", "netns", "add", ns); err != nil {
			return nil, err
		}
		t.created = append(t.created, ns)
		h, err := netns.GetFromName(ns)
		if err != nil {
			return nil, fmt.Errorf("open netns %s: %w", ns, err)
		}
		t.handles[ns] = h
		if err := nsRun(ns, "ip", "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
		// The rig is IPv4: without IPv6, no router or neighbour
		// solicitation reaches the sink as an unexpected frame.
		for _, k := range []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"} {
			if err := nsRun(ns, "sysctl", "-qw", k); err != nil {
				return nil, err
			}
		}
	}
	steps := [][]string{
		{"ip", "link", "add", "gen0", "netns", t.gen, "type", "veth", "peer", "name", "gw0", "netns", t.gw},
	}
	type linkCfg struct{ ns, dev, cidr string }
	links := []linkCfg{{t.gen, "gen0", genAddr + "/24"}, {t.gw, "gw0", gw0Addr + "/24"}}
	if !t.oneArm {
		steps = append(steps, []string{"ip", "link", "add", "gw1", "netns", t.gw, "type", "veth", "peer", "name", "sink0", "netns", t.sink})
		links = append(links, linkCfg{t.gw, "gw1", gw1Addr + "/24"}, linkCfg{t.sink, "sink0", sinkAddr + "/24"})
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	for _, l := range links {
		if err := nsRun(l.ns, "ip", "addr", "add", l.cidr, "dev", l.dev); err != nil {
			return nil, err
		}
		if err := nsRun(l.ns, "ip", "link", "set", l.dev, "up"); err != nil {
			return nil, err
		}
		// AF_XDP receivers see veth frames exactly as sent: a partial
		// checksum from a kernel stack would look corrupt. Every end
		// transmits complete checksums.
		if err := nsRun(l.ns, "ethtool", "-K", l.dev, "tx", "off"); err != nil {
			return nil, err
		}
	}
	if err := nsRun(t.gw, "ethtool", "-K", "gw0", "gro", "on"); err != nil {
		return nil, err
	}
	if t.genMAC, err = nsMAC(t.gen, "gen0"); err != nil {
		return nil, err
	}
	if t.gw0MAC, err = nsMAC(t.gw, "gw0"); err != nil {
		return nil, err
	}
	if t.sinkMAC, err = nsMAC(t.sink, t.sinkIf); err != nil {
		return nil, err
	}
	// Gateway: forwarding, no reverse-path filter (clients are only
	// routed, never configured), no ICMP redirects (one-arm forwards out
	// of the receiving interface on purpose), static neighbours so no
	// frame waits for ARP, a route back to every client, and an ephemeral
	// port range below the SNAT range xdpgate is given.
	gwSteps := [][]string{
		{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"},
		{"sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0"},
		{"sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0"},
		{"sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 19999"},
		{"ip", "neigh", "replace", genAddr, "lladdr", t.genMAC.String(), "dev", "gw0", "nud", "permanent"},
		{"ip", "neigh", "replace", t.nextHop, "lladdr", t.sinkMAC.String(), "dev", t.egress, "nud", "permanent"},
	}
	for _, r := range clientRoutes {
		gwSteps = append(gwSteps, []string{"ip", "route", "add", r, "via", genAddr, "dev", "gw0"})
	}
	for i := range maxEndpoints {
		gwSteps = append(gwSteps, []string{"ip", "neigh", "replace", sc.endpoint(i).String(), "lladdr",
			t.sinkMAC.String(), "dev", t.egress, "nud", "permanent"})
	}
	for _, s := range gwSteps {
		if err := nsRun(t.gw, s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	for _, dev := range t.gatewayIfaces() {
		for _, k := range []string{"rp_filter=0", "forwarding=1", "send_redirects=0"} {
			if err := nsRun(t.gw, "sysctl", "-qw", "net.ipv4.conf."+dev+"."+k); err != nil {
				return nil, err
			}
		}
	}
	if err := nsRun(t.gen, "ip", "neigh", "replace", gw0Addr, "lladdr", t.gw0MAC.String(), "dev", "gen0", "nud", "permanent"); err != nil {
		return nil, err
	}
	return t, nil
}

// steer moves gw0's receive processing onto the gateway CPU. On veth the
// receiver's NAPI poll runs in the sender's softirq, i.e. on the
// generator's CPU; with threaded NAPI it runs in a kernel thread, pinned
// here to the gateway CPU. For the kernel baselines that thread does the
// whole forwarding path (netfilter included); for the AF_XDP dataplanes it
// runs the XDP program and the copy into the socket. Either way the
// generator's CPU only queues the frame, identically for every dataplane.
//
// RPS was the first choice and was measured: the sender's CPU still runs
// netif_rx and the RPS hashing, which cut the generator to 0.4-0.7 Mpps,
// so the kernel baselines were never saturated. gw0 has GRO on (set in
// newTopology) because veth has a NAPI instance only with GRO or XDP; GRO
// merges none of the rig's frames (UDP is not aggregated for forwarding
// unless rx-udp-gro-forwarding is on, and SYNs never are).
func (t *topology) steer() error {
	if err := nsWrite(t.gw, "/sys/class/net/gw0/threaded", "1"); err != nil {
		return err
	}
	pids, err := napiThreads("gw0")
	if err != nil {
		return err
	}
	if len(pids) == 0 {
		return errors.New("threaded NAPI for gw0 has no kernel thread")
	}
	var set unix.CPUSet
	set.Set(t.gatewayCPU)
	for _, pid := range pids {
		if err := unix.SchedSetaffinity(pid, &set); err != nil {
			return fmt.Errorf("pin napi thread %d: %w", pid, err)
		}
	}
	return nil
}

// napiThreads finds the kernel threads named napi/<dev>-<id>. Names are
// not namespaced; the caller's topology is the only one with a gw0 that has
// threaded NAPI while it runs (the rig runs one topology at a time).
func napiThreads(dev string) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(string(comm)), "napi/"+dev+"-") {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// do runs fn on a thread switched into namespace ns.
func (t *topology) do(ns string, fn func() error) error {
	return nsenter.Do(t.handles[ns], fn)
}

// close deletes the namespaces (and with them the veths and any XDP
// program attached to them).
func (t *topology) close() error {
	var errs []error
	for _, h := range t.handles {
		h.Close()
	}
	for _, ns := range t.created {
		if err := run("ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	t.created = nil
	return errors.Join(errs...)
}

func nsMAC(ns, dev string) (net.HardwareAddr, error) {
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/sys/class/net/"+dev+"/address").Output()
	if err != nil {
		return nil, fmt.Errorf("%s/%s address: %w", ns, dev, err)
	}
	return net.ParseMAC(strings.TrimSpace(string(out)))
}

// Cleanup removes every namespace an earlier, interrupted rig run left
// behind: names starting with xgb- whose owning process (the pid in the
// name) no longer exists. Namespaces of a rig still running, this process
// included, are left alone. It returns the names removed.
func Cleanup() ([]string, error) {
	ents, err := os.ReadDir("/var/run/netns")
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), nsPrefix) || ownerAlive(e.Name()) {
			continue
		}
		if err := run("ip", "netns", "del", e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// ownerAlive reports whether the process named in xgb-<role>-<pid>-<seq>
// exists. A name that does not parse has no owner.
func ownerAlive(name string) bool {
	parts := strings.Split(name, "-")
	if len(parts) != 4 {
		return false
	}
	pid, err := strconv.Atoi(parts[2])
	if err != nil || pid <= 0 {
		return false
	}
	return unix.Kill(pid, 0) == nil
}
