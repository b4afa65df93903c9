package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// Node-shaped topologies (reference: how CNIs wire pods): xdpgate is given
// only the gateway's two NICs and must reach pods behind a cni0 bridge, on
// per-pod veths with /32 routes, behind policy routes and ECMP routes, and
// over VXLAN and Geneve, and translate their replies.

// pod is a pod namespace with eth0 and its addresses.
type pod struct {
	ns     *testnet.NS
	host   string // the host end of its veth, in the gateway namespace
	v4, v6 netip.Addr
}

// addBridge creates cni0 in ns with the gateway addresses of the pod CIDRs
// 198.18.20.0/24 and 2001:2:0:20::/64 (bridge CNI plugin, flannel).
func addBridge(t *testing.T, ns *testnet.NS) {
	// The bridge CNI plugin gives cni0 its own MAC; a bridge without one
	// takes its lowest port's, which changes as pods come and go.
	ns.MustRun(t, "ip", "link", "add", "cni0", "address", "02:00:c6:12:14:01", "type", "bridge")
	ns.AddAddr(t, "cni0", "198.18.20.1/24")
	ns.AddAddr(t, "cni0", "2001:2:0:20::1/64")
	ns.MustRun(t, "ip", "link", "set", "cni0", "up")
}

// addBridgePod attaches pod i to cni0: its eth0 on the bridge subnet, the
// default route via the bridge address; it runs identity servers.
func addBridgePod(t *testing.T, node *testnet.NS, i int) *pod {
	p := &pod{ns: testnet.NewNS(t), v4: netip.AddrFrom4([4]byte{198, 18, 20, byte(10 + i)}),
		v6: netip.MustParseAddr(fmt.Sprintf("2001:2:0:20::%x", 0x10+i))}
	v := testnet.NewVeth(t, node, "vb", p.ns, "eth", testnet.VethOpts{})
	p.host = v.AName
	node.MustRun(t, "ip", "link", "set", v.AName, "master", "cni0")
	p.ns.AddAddr(t, v.BName, p.v4.String()+"/24")
	p.ns.AddAddr(t, v.BName, p.v6.String()+"/64")
	p.ns.MustRun(t, "ip", "route", "add", "default", "via", "198.18.20.1")
	p.ns.MustRun(t, "ip", "-6", "route", "add", "default", "via", "2001:2:0:20::1")
	p.ns.TxOff(t, v.BName)
	identityServers(t, p.ns, p.v4)
	identityServers(t, p.ns, p.v6)
	return p
}

// addRoutedPod gives pod i its own veth and no bridge (Calico, Cilium in
// routing mode): the host end carries a /32 (/128) gateway address the
// pod routes through, and the node has a /32 (/128) route per pod, in
// table (main when 0).
func addRoutedPod(t *testing.T, node *testnet.NS, subnet byte, i int, table int) *pod {
	p := &pod{ns: testnet.NewNS(t), v4: netip.AddrFrom4([4]byte{198, 18, subnet, byte(10 + i)}),
		v6: netip.MustParseAddr(fmt.Sprintf("2001:2:0:%d::%x", subnet, 0x10+i))}
	v := testnet.NewVeth(t, node, "vr", p.ns, "eth", testnet.VethOpts{})
	p.host = v.AName
	gw4 := fmt.Sprintf("198.18.%d.1", subnet)
	gw6 := fmt.Sprintf("2001:2:0:%d::1", subnet)
	node.MustRun(t, "ip", "addr", "add", gw4+"/32", "dev", v.AName)
	node.MustRun(t, "ip", "addr", "add", gw6+"/128", "dev", v.AName, "nodad")
	tbl := []string{}
	if table != 0 {
		tbl = []string{"table", strconv.Itoa(table)}
	}
	node.MustRun(t, "ip", append([]string{"route", "add", p.v4.String() + "/32", "dev", v.AName, "scope", "link"}, tbl...)...)
	node.MustRun(t, "ip", append([]string{"-6", "route", "add", p.v6.String() + "/128", "dev", v.AName}, tbl...)...)
	p.ns.AddAddr(t, v.BName, p.v4.String()+"/32")
	p.ns.AddAddr(t, v.BName, p.v6.String()+"/128")
	p.ns.MustRun(t, "ip", "route", "add", gw4, "dev", v.BName, "scope", "link")
	p.ns.MustRun(t, "ip", "route", "add", "default", "via", gw4)
	p.ns.MustRun(t, "ip", "-6", "route", "add", gw6, "dev", v.BName)
	p.ns.MustRun(t, "ip", "-6", "route", "add", "default", "via", gw6)
	p.ns.TxOff(t, v.BName)
	identityServers(t, p.ns, p.v4)
	identityServers(t, p.ns, p.v6)
	return p
}

// checkReach asks dst over TCP and UDP from the client and checks that one
// of want answered, and, when keepClient, that it saw the client address.
func checkReach(t *testing.T, w *world, client netip.Addr, dst netip.AddrPort, want []netip.Addr, keepClient bool) {
	t.Helper()
	var r reply
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		if r, err = w.tcpQuery(client, dst); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TCP %v -> %v: %v", client, dst, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ru, err := w.udpQuery(client, dst)
	if err != nil {
		t.Fatalf("UDP %v -> %v: %v", client, dst, err)
	}
	for _, got := range []reply{r, ru} {
		if !containsAddr(want, got.endpoint) {
			t.Errorf("%v -> %v answered by %v, want one of %v", client, dst, got.endpoint, want)
		}
		if keepClient && got.peer != client {
			t.Errorf("%v -> %v: endpoint saw %v, want the client address (Local policy)", client, dst, got.peer)
		}
	}
	if ru.from != dst {
		t.Errorf("UDP answer from %v, want %v", ru.from, dst)
	}
}

func containsAddr(s []netip.Addr, a netip.Addr) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}

// TestPrivReachLocalPods: pods behind a cni0 bridge and pods on their own
// veth with /32 routes, ETP Local and Cluster, TCP and UDP, IPv4 and IPv6;
// one of them reached through a table an ip rule selects. Then pods come
// and go (veths appear and disappear) while a connection to a surviving
// pod stays open, and nothing leaks.
func TestPrivReachLocalPods(t *testing.T) {
	w := newWorld(t, 1, 0, 1)
	addBridge(t, w.g)
	b1, b2 := addBridgePod(t, w.g, 1), addBridgePod(t, w.g, 2)
	r1 := addRoutedPod(t, w.g, 22, 1, 0)
	// Policy routing: 198.18.23.0/24 is only in table 100.
	w.g.MustRun(t, "ip", "rule", "add", "to", "198.18.23.0/24", "table", "100")
	w.g.MustRun(t, "ip", "-6", "rule", "add", "to", "2001:2:0:23::/64", "table", "100")
	pr := addRoutedPod(t, w.g, 23, 1, 100)

	ext4b, ext6b := netip.MustParseAddr("198.18.201.2"), netip.MustParseAddr("2001:2:0:201::2")
	ext4r, ext6r := netip.MustParseAddr("198.18.201.3"), netip.MustParseAddr("2001:2:0:201::3")
	vipR4, vipR6 := netip.MustParseAddr("198.18.100.3"), netip.MustParseAddr("2001:2:0:100::3")
	w.writeManifest(manifest(
		svc{name: "br-local4", family: "IPv4", clusterIP: vip4, lb: lb4, etpLocal: true, endpoints: []netip.Addr{b1.v4, b2.v4}},
		svc{name: "br-cluster4", family: "IPv4", clusterIP: netip.MustParseAddr("198.18.100.2"), externalIP: ext4b, endpoints: []netip.Addr{b1.v4, b2.v4}},
		svc{name: "br-local6", family: "IPv6", clusterIP: vip6, lb: lb6, etpLocal: true, endpoints: []netip.Addr{b1.v6, b2.v6}},
		svc{name: "br-cluster6", family: "IPv6", clusterIP: netip.MustParseAddr("2001:2:0:100::2"), externalIP: ext6b, endpoints: []netip.Addr{b1.v6, b2.v6}},
		svc{name: "veth-local4", family: "IPv4", clusterIP: netip.MustParseAddr("198.18.100.4"), externalIP: ext4r, etpLocal: true, endpoints: []netip.Addr{r1.v4}},
		svc{name: "veth-local6", family: "IPv6", clusterIP: netip.MustParseAddr("2001:2:0:100::4"), externalIP: ext6r, etpLocal: true, endpoints: []netip.Addr{r1.v6}},
		svc{name: "rule4", family: "IPv4", clusterIP: vipR4, endpoints: []netip.Addr{pr.v4}},
		svc{name: "rule6", family: "IPv6", clusterIP: vipR6, endpoints: []netip.Addr{pr.v6}},
	))
	sock := filepath.Join(t.TempDir(), "admin.sock")
	w.start("--admin-socket", sock)
	c4, c6 := client4(0), client6(0)
	bridge4, bridge6 := []netip.Addr{b1.v4, b2.v4}, []netip.Addr{b1.v6, b2.v6}
	t.Run("bridge", func(t *testing.T) {
		checkReach(t, w, c4, ap(lb4, 80), bridge4, true)
		checkReach(t, w, c6, ap(lb6, 80), bridge6, true)
		checkReach(t, w, c4, ap(ext4b, 80), bridge4, false)
		checkReach(t, w, c6, ap(ext6b, 80), bridge6, false)
		checkReach(t, w, c4, ap(vip4, 80), bridge4, false)
	})
	t.Run("veth", func(t *testing.T) {
		checkReach(t, w, c4, ap(ext4r, 80), []netip.Addr{r1.v4}, true)
		checkReach(t, w, c6, ap(ext6r, 80), []netip.Addr{r1.v6}, true)
	})
	t.Run("rule", func(t *testing.T) {
		checkReach(t, w, c4, ap(vipR4, 80), []netip.Addr{pr.v4}, false)
		checkReach(t, w, c6, ap(vipR6, 80), []netip.Addr{pr.v6}, false)
	})
	t.Run("inspect", func(t *testing.T) {
		out := w.inspectDevices(sock)
		for _, want := range []string{"cni0", b1.host, r1.host, pr.host, "port of bridge cni0", "tx-only"} {
			if !strings.Contains(out, want) {
				t.Errorf("inspect devices lacks %q:\n%s", want, out)
			}
		}
		m := w.metrics()
		for _, kind := range []string{"bridge", "veth"} {
			if metricValue(m, `xdpgate_egress_frames_total{kind="`+kind+`"}`) == 0 {
				t.Errorf("no frames counted on egress kind %s", kind)
			}
		}
	})
	t.Run("churn", func(t *testing.T) {
		conn, r, err := w.tcpOpen(c4, ap(lb4, 80))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer conn.Close()
		echo := func(i int) {
			msg := fmt.Sprintf("ping %d\n", i)
			conn.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := conn.Write([]byte(msg)); err != nil {
				t.Fatalf("write %d to %v: %v", i, r.endpoint, err)
			}
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
				t.Fatalf("echo %d from %v: %q, %v", i, r.endpoint, buf, err)
			}
		}
		links := func() int {
			out := w.g.MustRun(t, "ip", "-o", "link")
			return strings.Count(out, "\n")
		}
		// What the gateway holds: its open file descriptors (sockets,
		// BPF objects, links) and the XDP programs attached in its
		// namespace.
		fds := func() int {
			ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", w.cmd.Process.Pid))
			if err != nil {
				t.Fatalf("gateway fds: %v", err)
			}
			return len(ents)
		}
		xdps := func() int {
			return strings.Count(w.g.MustRun(t, "ip", "-o", "link"), " xdp")
		}
		before, fdsBefore, xdpBefore := links(), fds(), xdps()
		for i := 0; i < 4; i++ {
			echo(i)
			// A pod comes: a bridge port and a routed veth appear...
			np := addBridgePod(t, w.g, 10+i)
			nr := addRoutedPod(t, w.g, 22, 10+i, 0)
			echo(i)
			// ... and goes with its namespace.
			w.g.MustRun(t, "ip", "link", "del", np.host)
			w.g.MustRun(t, "ip", "link", "del", nr.host)
		}
		echo(99)
		// A deleted veth's peer in another namespace is unregistered by
		// the kernel a moment later (seen once in ten runs: one link more
		// right after the deletions); detaching follows the netlink event
		// within a scan (50 ms). Allow a loaded machine a few seconds.
		if err := within(t.Context(), 10*time.Second, func() error {
			if l, f, x := links(), fds(), xdps(); l != before || f != fdsBefore || x != xdpBefore {
				return fmt.Errorf("links %d -> %d, gateway fds %d -> %d, XDP programs %d -> %d", before, l, fdsBefore, f, xdpBefore, x)
			}
			return nil
		}); err != nil {
			t.Errorf("after churn: %v", err)
		}
		// Followed devices are only those of endpoints' routes: the
		// departed pods' veths are gone from inspect.
		time.Sleep(300 * time.Millisecond)
		if out := w.inspectDevices(sock); strings.Count(out, "port of bridge cni0") != 2 {
			t.Errorf("inspect devices after churn:\n%s", out)
		}
		w.alive()
	})
}

// inspectDevices runs xdpgate inspect devices in the gateway namespace.
func (w *world) inspectDevices(sock string) string {
	w.t.Helper()
	out, err := w.g.Run(xdpgateBinary(w.t), "inspect", "devices", "--socket", sock)
	if err != nil {
		w.t.Fatalf("inspect devices: %v: %s", err, out)
	}
	return out
}

// rxPackets returns dev's received packet count in ns.
func rxPackets(t *testing.T, ns *testnet.NS, dev string) uint64 {
	out := ns.MustRun(t, "cat", "/sys/class/net/"+dev+"/statistics/rx_packets")
	v, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("rx_packets of %s: %q", dev, out)
	}
	return v
}

// TestPrivReachECMP: an endpoint behind an ECMP route with two next hops
// (routers on NICs xdpgate does not manage, both holding the endpoint
// address): flows spread over both, and a flow stays on one.
func TestPrivReachECMP(t *testing.T) {
	w := newWorld(t, 1, 0, 1)
	ep := netip.MustParseAddr("198.18.24.10")
	var devs [2]string
	var routers [2]*testnet.NS
	for i := range routers {
		r := testnet.NewNS(t)
		routers[i] = r
		v := testnet.NewVeth(t, w.g, "ec", r, "r", testnet.VethOpts{})
		devs[i] = v.BName
		gw, rt := fmt.Sprintf("198.18.%d.1", 25+i), fmt.Sprintf("198.18.%d.2", 25+i)
		w.g.AddAddr(t, v.AName, gw+"/24")
		r.AddAddr(t, v.BName, rt+"/24")
		r.AddAddr(t, "lo", ep.String()+"/32")
		r.AddRoute(t, "198.19.0.0/16", gw)
		r.TxOff(t, v.BName)
		identityServers(t, r, ep)
	}
	w.g.MustRun(t, "ip", "route", "add", ep.String()+"/32",
		"nexthop", "via", "198.18.25.2", "nexthop", "via", "198.18.26.2")
	for _, a := range []string{"198.18.25.2", "198.18.26.2"} {
		if err := w.g.Ping(netip.MustParseAddr(a), 2); err != nil {
			t.Fatalf("ping %s: %v", a, err)
		}
	}
	vip := netip.MustParseAddr("198.18.100.6")
	w.writeManifest(manifest(svc{name: "ecmp", family: "IPv4", clusterIP: vip, endpoints: []netip.Addr{ep}}))
	w.start()
	w.waitTCP(client4(0), ap(vip, 80), 20*time.Second)

	rx := func() [2]uint64 {
		return [2]uint64{rxPackets(t, routers[0], devs[0]), rxPackets(t, routers[1], devs[1])}
	}
	// One flow (fixed source port): every datagram on one path.
	before := rx()
	for i := 0; i < 20; i++ {
		if _, err := w.udpQueryFrom(ap(client4(0), 40000), ap(vip, 80)); err != nil {
			t.Fatalf("udp: %v", err)
		}
	}
	after := rx()
	d0, d1 := after[0]-before[0], after[1]-before[1]
	if !(d0 >= 20 && d1 < 5) && !(d1 >= 20 && d0 < 5) {
		t.Errorf("one flow: %d and %d packets on the two next hops, want all on one", d0, d1)
	}
	// Many flows: both paths.
	before = rx()
	for i := 0; i < 32; i++ {
		if _, err := w.udpQueryFrom(ap(client4(0), 41000+i), ap(vip, 80)); err != nil {
			t.Fatalf("udp: %v", err)
		}
	}
	after = rx()
	if d0, d1 := after[0]-before[0], after[1]-before[1]; d0 < 3 || d1 < 3 {
		t.Errorf("32 flows: %d and %d packets on the two next hops, want both used", d0, d1)
	}
}

// TestPrivReachOverlay: remote pods in a second node namespace behind
// VXLAN and Geneve devices whose underlay is a managed NIC. A full-size
// frame gets ICMP fragmentation needed / packet too big with the overlay's
// MTU, and a few MB of TCP then pass at the smaller MTU, both ways.
func TestPrivReachOverlay(t *testing.T) {
	w := newWorld(t, 1, 0, 1)
	g, n2 := w.g, w.b // n2 is the second node; gb is the underlay
	type tunnel struct {
		name, args string
		o4         byte // overlay subnet 198.18.o4.0/24
		pods       byte // remote pod subnet
	}
	tunnels := []tunnel{
		{"vx0", "type vxlan id 42 dstport 4789", 31, 21},
		{"gnv0", "type geneve id 10 dstport 6081", 33, 27},
	}
	var svcs []svc
	type target struct {
		name string
		vip  netip.AddrPort
		ep   netip.Addr
	}
	var targets []target
	var usable []tunnel
	for _, tn := range tunnels {
		// Geneve needs the geneve module, which not every kernel has.
		if out, err := g.Run("ip", append([]string{"link", "add", tn.name}, strings.Fields(tn.args+" remote 198.18.2.2")...)...); err != nil {
			if !strings.Contains(out, "Unknown device type") {
				t.Fatalf("%s: %v", tn.name, err)
			}
			t.Logf("%s: not supported by this kernel (%s): not tested", tn.name, strings.TrimSpace(out))
			continue
		}
		g.MustRun(t, "ip", "link", "del", tn.name)
		usable = append(usable, tn)
	}
	tunnels = usable
	for i, tn := range tunnels {
		for j, ns := range []*testnet.NS{g, n2} {
			local, remote := "198.18.2.1", "198.18.2.2"
			if j == 1 {
				local, remote = remote, local
			}
			args := append([]string{"link", "add", tn.name}, strings.Fields(tn.args)...)
			if tn.name == "vx0" {
				args = append(args, "local", local)
			}
			args = append(args, "remote", remote)
			ns.MustRun(t, "ip", args...)
			ns.MustRun(t, "ip", "link", "set", tn.name, "mtu", "1450")
			ns.AddAddr(t, tn.name, fmt.Sprintf("198.18.%d.%d/24", tn.o4, j+1))
			ns.AddAddr(t, tn.name, fmt.Sprintf("2001:2:0:%d::%d/64", tn.o4, j+1))
			ns.MustRun(t, "ip", "link", "set", tn.name, "up")
		}
		g.MustRun(t, "ip", "route", "add", fmt.Sprintf("198.18.%d.0/24", tn.pods), "via", fmt.Sprintf("198.18.%d.2", tn.o4), "dev", tn.name)
		g.MustRun(t, "ip", "-6", "route", "add", fmt.Sprintf("2001:2:0:%d::/64", tn.pods), "via", fmt.Sprintf("2001:2:0:%d::2", tn.o4), "dev", tn.name)
		ep4 := netip.MustParseAddr(fmt.Sprintf("198.18.%d.10", tn.pods))
		ep6 := netip.MustParseAddr(fmt.Sprintf("2001:2:0:%d::10", tn.pods))
		addLoopback(t, n2, []netip.Prefix{netip.PrefixFrom(ep4, 32), netip.PrefixFrom(ep6, 128)})
		testnet.Servers(t, n2, ap(ep4, 8080), testnet.Echo)
		testnet.Servers(t, n2, ap(ep6, 8080), testnet.Echo)
		v4 := netip.AddrFrom4([4]byte{198, 18, 100, byte(20 + i)})
		v6 := netip.MustParseAddr(fmt.Sprintf("2001:2:0:100::%x", 0x20+i))
		svcs = append(svcs, svc{name: tn.name + "-4", family: "IPv4", clusterIP: v4, endpoints: []netip.Addr{ep4}},
			svc{name: tn.name + "-6", family: "IPv6", clusterIP: v6, endpoints: []netip.Addr{ep6}})
		targets = append(targets, target{tn.name + "/v4", ap(v4, 80), ep4}, target{tn.name + "/v6", ap(v6, 80), ep6})
	}
	// The remote pods answer clients through the overlay of their subnet,
	// advertising a full-size MSS (pods with a 1500-byte MTU, as when the
	// overlay MTU is not pushed to them), so the clients' full-size
	// segments meet the overlay's smaller MTU at the gateway.
	n2.MustRun(t, "ip", "route", "del", "198.19.0.0/16")
	n2.MustRun(t, "ip", "-6", "route", "del", "2001:2:0:9::/64")
	n2.MustRun(t, "ip", "route", "add", "198.19.0.0/16", "via", "198.18.31.1", "dev", "vx0")
	n2.MustRun(t, "ip", "-6", "route", "add", "2001:2:0:9::/64", "via", "2001:2:0:31::1", "dev", "vx0")
	for _, tn := range tunnels {
		n2.MustRun(t, "ip", "rule", "add", "from", fmt.Sprintf("198.18.%d.0/24", tn.pods), "table", strconv.Itoa(int(tn.o4)))
		n2.MustRun(t, "ip", "route", "add", "198.19.0.0/16", "via", fmt.Sprintf("198.18.%d.1", tn.o4), "dev", tn.name, "table", strconv.Itoa(int(tn.o4)), "advmss", "1460")
		n2.MustRun(t, "ip", "-6", "rule", "add", "from", fmt.Sprintf("2001:2:0:%d::/64", tn.pods), "table", strconv.Itoa(int(tn.o4)))
		n2.MustRun(t, "ip", "-6", "route", "add", "2001:2:0:9::/64", "via", fmt.Sprintf("2001:2:0:%d::1", tn.o4), "dev", tn.name, "table", strconv.Itoa(int(tn.o4)), "advmss", "1440")
	}
	w.writeManifest(manifest(svcs...))
	w.start()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16) // 4 MiB
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			client := client4(0)
			if tg.ep.Is6() {
				client = client6(0)
			}
			var conn net.Conn
			deadline := time.Now().Add(15 * time.Second)
			for {
				err := w.c.Do(func() (err error) {
					d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: client.AsSlice()}}
					conn, err = d.Dial("tcp", tg.vip.String())
					return err
				})
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("connect %v: %v", tg.vip, err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			errc := make(chan error, 1)
			go func() { _, err := conn.Write(payload); errc <- err }()
			got := make([]byte, len(payload))
			if _, err := io.ReadFull(conn, got); err != nil {
				t.Fatalf("echo through %s: %v", tg.name, err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("write: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("echo through %s differs", tg.name)
			}
			// The client learnt the overlay's MTU from our ICMP error.
			out := w.c.MustRun(t, "ip", "route", "get", tg.vip.Addr().String(), "from", client.String())
			if !regexp.MustCompile(`mtu 1450`).MatchString(out) {
				t.Errorf("client route to %v after the transfer: %q, want a learnt mtu 1450", tg.vip.Addr(), out)
			}
		})
	}
	m := w.metrics()
	if metricValue(m, `xdpgate_pipeline_packets_total{event="too_big"`) == 0 {
		t.Errorf("no ICMP too-big error counted")
	}
	for _, tn := range tunnels {
		kind := map[string]string{"vx0": "vxlan", "gnv0": "geneve"}[tn.name]
		if metricValue(m, `xdpgate_egress_frames_total{kind="`+kind+`"}`) == 0 {
			t.Errorf("no frames counted on egress kind %s", kind)
		}
	}
}
