package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// xdpgateBinary builds cmd/xdpgate once per test process.
func xdpgateBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "xdpgate-e2e-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "xdpgate")
		// go test puts its own GOROOT/bin first on PATH, so "go" is the
		// toolchain running the tests.
		cmd := exec.Command("go", "build", "-o", binPath, "../cmd/xdpgate")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			binErr = fmt.Errorf("go build: %w: %s", err, out.String())
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// Addresses of the topology (see doc.go).
var (
	gwClientSide4 = netip.MustParseAddr("198.18.1.1")
	gwBackSide4   = netip.MustParseAddr("198.18.2.1")
	gwClientSide6 = netip.MustParseAddr("2001:2:0:1::1")
	gwBackSide6   = netip.MustParseAddr("2001:2:0:2::1")
)

// endpoint4 and endpoint6 return the i-th backend address.
func endpoint4(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 3, byte(10 + i)}) }
func endpoint6(i int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("2001:2:0:3::%x", 0x10+i))
}

// client4 and client6 return the i-th client address (i >= 0).
func client4(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 19, byte((i + 1) >> 8), byte(i + 1)})
}
func client6(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:2:0:9::%x", i+1)) }

// world is one test's topology and xdpgate process.
type world struct {
	t          *testing.T
	c, g, b    *testnet.NS
	managed    []string
	manifest   string
	logPath    string
	cmd        *exec.Cmd
	exited     chan error
	nClients   int
	endpoints  int
	stopped    bool
	stopResult error
	// cDev is the client's interface towards the gateway, gMAC the MAC
	// of the gateway interface the client sends to.
	cDev string
	gMAC [6]byte
	// gwBack4 and gwBack6 are the gateway addresses masqueraded flows
	// reach the endpoints from.
	gwBack4, gwBack6 netip.Addr
	neighbours       []string
	// kubeconfig, when set, makes start run xdpgate against an API server
	// (--kubeconfig) instead of the manifest file.
	kubeconfig string
	// stateDir is the test's --state-dir (never the host's /run/xdpgate).
	stateDir string
	// args are the last start's arguments, which restart reuses;
	// cleanupSet says start registered the cleanup.
	args       []string
	cleanupSet bool
	// peers are the veth ends facing the gateway's managed interfaces
	// (peerXDP); peerXDPDone says their programs are attached.
	peers       []peerDev
	peerXDPDone bool
}

// worldOpts shape a topology.
type worldOpts struct {
	clients, endpoints int
	// queues is the number of RX/TX queues of every veth (default 1).
	queues int
	// oneArm puts client, gateway and backend on one bridged segment
	// (198.18.1.0/24), the gateway managing a single interface; otherwise
	// the gateway routes between two interfaces (doc.go).
	oneArm bool
	// unresolved leaves the gateway's neighbours unresolved (no pings):
	// the first packets to them find no MAC.
	unresolved bool
}

// newWorld builds the topology with o.clients client addresses per family
// and o.endpoints backends per family running identity servers on TCP and
// UDP port 8080.
func newWorld(t *testing.T, nClients, nEndpoints int, queues int) *world {
	return newWorldOpts(t, worldOpts{clients: nClients, endpoints: nEndpoints, queues: queues})
}

func newWorldOpts(t *testing.T, o worldOpts) *world {
	testnet.RequirePriv(t)
	xdpgateBinary(t)
	nClients, nEndpoints := o.clients, o.endpoints
	if o.queues == 0 {
		o.queues = 1
	}
	w := &world{t: t, nClients: nClients, endpoints: nEndpoints}
	w.c, w.g, w.b = testnet.NewNS(t), testnet.NewNS(t), testnet.NewNS(t)
	c, g, b := w.c, w.g, w.b
	if o.oneArm {
		sw := testnet.NewNS(t)
		wc := testnet.NewVeth(t, sw, "wc", c, "c", testnet.VethOpts{Queues: o.queues})
		wg := testnet.NewVeth(t, sw, "wg", g, "g", testnet.VethOpts{Queues: o.queues})
		wb := testnet.NewVeth(t, sw, "wb", b, "b", testnet.VethOpts{Queues: o.queues})
		sw.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
		for _, d := range []string{wc.AName, wg.AName, wb.AName} {
			sw.MustRun(t, "ip", "link", "set", d, "master", "br0")
		}
		sw.MustRun(t, "ip", "link", "set", "br0", "up")
		w.managed = []string{wg.BName}
		w.peers = []peerDev{{sw, wg.AName}}
		w.cDev, w.gMAC = wc.BName, wg.BMAC
		c.AddAddr(t, wc.BName, "198.18.1.2/24")
		g.AddAddr(t, wg.BName, "198.18.1.1/24")
		b.AddAddr(t, wb.BName, "198.18.1.3/24")
		c.AddAddr(t, wc.BName, "2001:2:0:1::2/64")
		g.AddAddr(t, wg.BName, "2001:2:0:1::1/64")
		b.AddAddr(t, wb.BName, "2001:2:0:1::3/64")
		c.AddRoute(t, "198.18.0.0/15", "198.18.1.1")
		c.AddRoute(t, "2001:2::/48", "2001:2:0:1::1")
		g.AddRoute(t, "198.19.0.0/16", "198.18.1.2")
		g.AddRoute(t, "2001:2:0:9::/64", "2001:2:0:1::2")
		g.AddRoute(t, "198.18.3.0/24", "198.18.1.3")
		g.AddRoute(t, "2001:2:0:3::/64", "2001:2:0:1::3")
		b.AddRoute(t, "198.19.0.0/16", "198.18.1.1")
		b.AddRoute(t, "2001:2:0:9::/64", "2001:2:0:1::1")
		c.TxOff(t, wc.BName)
		b.TxOff(t, wb.BName)
		w.gwBack4, w.gwBack6 = gwClientSide4, gwClientSide6
		w.neighbours = []string{"198.18.1.2", "198.18.1.3", "2001:2:0:1::2", "2001:2:0:1::3"}
	} else {
		cg := testnet.NewVeth(t, c, "c", g, "g", testnet.VethOpts{Queues: o.queues})
		gb := testnet.NewVeth(t, g, "g", b, "b", testnet.VethOpts{Queues: o.queues})
		w.managed = []string{cg.BName, gb.AName}
		w.peers = []peerDev{{c, cg.AName}, {b, gb.BName}}
		w.cDev, w.gMAC = cg.AName, cg.BMAC
		c.AddAddr(t, cg.AName, "198.18.1.2/24")
		g.AddAddr(t, cg.BName, "198.18.1.1/24")
		g.AddAddr(t, gb.AName, "198.18.2.1/24")
		b.AddAddr(t, gb.BName, "198.18.2.2/24")
		c.AddAddr(t, cg.AName, "2001:2:0:1::2/64")
		g.AddAddr(t, cg.BName, "2001:2:0:1::1/64")
		g.AddAddr(t, gb.AName, "2001:2:0:2::1/64")
		b.AddAddr(t, gb.BName, "2001:2:0:2::2/64")
		c.AddRoute(t, "198.18.0.0/15", "198.18.1.1")
		c.AddRoute(t, "2001:2::/48", "2001:2:0:1::1")
		g.AddRoute(t, "198.19.0.0/16", "198.18.1.2")
		g.AddRoute(t, "2001:2:0:9::/64", "2001:2:0:1::2")
		g.AddRoute(t, "198.18.3.0/24", "198.18.2.2")
		g.AddRoute(t, "2001:2:0:3::/64", "2001:2:0:2::2")
		b.AddRoute(t, "198.19.0.0/16", "198.18.2.1")
		b.AddRoute(t, "198.18.1.0/24", "198.18.2.1")
		b.AddRoute(t, "2001:2:0:9::/64", "2001:2:0:2::1")
		b.AddRoute(t, "2001:2:0:1::/64", "2001:2:0:2::1")
		c.TxOff(t, cg.AName)
		b.TxOff(t, gb.BName)
		w.gwBack4, w.gwBack6 = gwBackSide4, gwBackSide6
		w.neighbours = []string{"198.18.1.2", "198.18.2.2", "2001:2:0:1::2", "2001:2:0:2::2"}
	}
	g.Sysctl(t, "net.ipv4.ip_forward=0") // only xdpgate forwards
	g.Sysctl(t, "net.ipv6.conf.all.forwarding=0")

	var clients, eps []netip.Prefix
	for i := 0; i < nClients; i++ {
		clients = append(clients, netip.PrefixFrom(client4(i), 32), netip.PrefixFrom(client6(i), 128))
	}
	for i := 0; i < nEndpoints; i++ {
		eps = append(eps, netip.PrefixFrom(endpoint4(i), 32), netip.PrefixFrom(endpoint6(i), 128))
	}
	addLoopback(t, c, clients)
	addLoopback(t, b, eps)
	for i := 0; i < nEndpoints; i++ {
		identityServers(t, b, endpoint4(i))
		identityServers(t, b, endpoint6(i))
	}
	// Resolve the gateway's two neighbours before any test traffic, unless
	// the test is about unresolved ones.
	for _, a := range w.neighbours {
		if o.unresolved {
			break
		}
		if err := g.Ping(netip.MustParseAddr(a), 3); err != nil {
			t.Fatalf("gateway ping %s: %v", a, err)
		}
	}
	w.stateDir = filepath.Join(t.TempDir(), "state")
	w.manifest = filepath.Join(t.TempDir(), "services.yaml")
	w.logPath = filepath.Join(t.TempDir(), "xdpgate.log")
	return w
}

// addLoopback adds addresses to lo in ns through netlink (hundreds of `ip`
// runs would take seconds). No DAD: the addresses are usable at once.
func addLoopback(t *testing.T, ns *testnet.NS, ps []netip.Prefix) {
	t.Helper()
	err := ns.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		for _, p := range ps {
			if !testnet.InTestRange(p.Addr()) {
				return fmt.Errorf("%v: %w", p, testnet.ErrOutsideTestRange)
			}
			a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
			if p.Addr().Is6() {
				a.Flags = syscall.IFA_F_NODAD
			}
			if err := netlink.AddrAdd(lo, a); err != nil {
				return fmt.Errorf("add %v: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("loopback addresses in %s: %v", ns.Name, err)
	}
}

// identityServers answers on addr:8080, TCP and UDP, with "LOCAL PEER\n":
// the endpoint's address and the client address it sees.
func identityServers(t *testing.T, ns *testnet.NS, addr netip.Addr) {
	t.Helper()
	testnet.Servers(t, ns, netip.AddrPortFrom(addr, 8080), testnet.Identity)
}

// writeManifest replaces the manifest file (atomically: the source polls it).
func (w *world) writeManifest(yaml string) {
	w.t.Helper()
	tmp := w.manifest + ".tmp"
	if err := os.WriteFile(tmp, []byte(yaml), 0o644); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Rename(tmp, w.manifest); err != nil {
		w.t.Fatal(err)
	}
}

// start runs xdpgate in the gateway namespace; cleanup stops it with
// SIGTERM and checks it exits 0.
func (w *world) start(extra ...string) {
	t := w.t
	t.Helper()
	source := []string{"--manifests", w.manifest}
	if w.kubeconfig != "" {
		source = []string{"--kubeconfig", w.kubeconfig}
	}
	args := append([]string{"netns", "exec", w.g.Name, xdpgateBinary(t), "run",
		"--interfaces", strings.Join(w.managed, ",")}, source...)
	args = append(append(args, "--node-name", "gw",
		"--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1:10256",
		"--conntrack-max", "65536", "--affinity-max", "65536", "--log-level", "debug",
		"--state-dir", w.stateDir,
		// Its own admin socket: the default path is the host's, shared by
		// every gateway of concurrently running tests.
		"--admin-socket", filepath.Join(filepath.Dir(w.logPath), "admin.sock")), extra...)
	if fastPathFromEnv() && !slices.Contains(extra, "--fast-path") {
		// The suite with the fast path on (XDPGATE_E2E_FAST_PATH=xdp):
		// xdpgate forwards established flows in XDP wherever it can.
		w.peerXDP()
		args = append(args, "--fast-path", "xdp")
	}
	w.args = args
	w.launch()
	if w.cleanupSet {
		return
	}
	w.cleanupSet = true
	t.Cleanup(func() {
		if fastPathFromEnv() && !w.stopped {
			// What the fast path did in this test, for the suite's report.
			if m, err := w.httpGetErr("http://127.0.0.1:10249/metrics", w.g); err == nil {
				t.Logf("fast path: %v flows installed, %v ineligible, %v packets forwarded by XDP",
					metricValue(m, `xdpgate_fast_path_flow_events_total{event="install"}`),
					metricValue(m, `xdpgate_fast_path_flow_events_total{event="ineligible"}`),
					metricValue(m, "xdpgate_fast_path_packets_total{"))
			}
		}
		if err := w.stop(); err != nil {
			t.Errorf("xdpgate shutdown: %v", err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(w.logPath)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("xdpgate log (tail):\n%s", b)
		}
	})
}

// launch runs xdpgate with w.args, appending to the log.
func (w *world) launch() {
	t := w.t
	t.Helper()
	logf, err := os.OpenFile(w.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w.cmd = exec.Command("ip", w.args...)
	w.cmd.Stdout, w.cmd.Stderr = logf, logf
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("start xdpgate: %v", err)
	}
	w.exited = make(chan error, 1)
	w.stopped, w.stopResult = false, nil
	go func() { w.exited <- w.cmd.Wait(); logf.Close() }()
}

// restart stops xdpgate with sig (SIGTERM: it must exit 0; SIGKILL: a
// crash) and starts a new process with the same arguments in the same
// namespaces.
func (w *world) restart(sig syscall.Signal) {
	w.t.Helper()
	if sig == syscall.SIGTERM {
		if err := w.stop(); err != nil {
			w.t.Fatalf("xdpgate shutdown before restart: %v", err)
		}
	} else {
		w.cmd.Process.Signal(sig)
		<-w.exited
	}
	w.launch()
}

// stop sends SIGTERM and waits (10 s at most) for a clean exit.
func (w *world) stop() error {
	if w.stopped {
		return w.stopResult
	}
	w.stopped = true
	select {
	case err := <-w.exited:
		w.stopResult = fmt.Errorf("xdpgate exited early: %v", err)
		return w.stopResult
	default:
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.exited:
		if err != nil {
			w.stopResult = fmt.Errorf("exit after SIGTERM: %w", err)
		}
	case <-time.After(10 * time.Second):
		w.cmd.Process.Kill()
		<-w.exited
		w.stopResult = errors.New("no exit within 10 s of SIGTERM (killed)")
	}
	return w.stopResult
}

// alive fails the test if xdpgate exited.
func (w *world) alive() {
	w.t.Helper()
	select {
	case err := <-w.exited:
		w.exited <- err
		w.t.Fatalf("xdpgate exited: %v", err)
	default:
	}
}

// reply is what an identity server answered.
type reply struct {
	endpoint, peer netip.Addr
	from           netip.AddrPort // UDP: the source of the answer
}

// String prints the reply as "endpoint seen-peer [from]".
func (r reply) String() string {
	if r.from.IsValid() {
		return fmt.Sprintf("%v %v from %v", r.endpoint, r.peer, r.from)
	}
	return fmt.Sprintf("%v %v", r.endpoint, r.peer)
}

func parseReply(s string) (reply, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return reply{}, fmt.Errorf("bad reply %q", s)
	}
	a, err1 := netip.ParseAddr(f[0])
	b, err2 := netip.ParseAddr(f[1])
	if err1 != nil || err2 != nil {
		return reply{}, fmt.Errorf("bad reply %q", s)
	}
	return reply{endpoint: a, peer: b}, nil
}

// tcpQuery connects from local to dst in the client namespace and reads
// the identity line.
func (w *world) tcpQuery(local netip.Addr, dst netip.AddrPort) (reply, error) {
	return w.tcpQueryTimeout(local, dst, 3*time.Second)
}

// tcpQueryTimeout is tcpQuery with a connect timeout.
func (w *world) tcpQueryTimeout(local netip.Addr, dst netip.AddrPort, timeout time.Duration) (reply, error) {
	return tcpQueryIn(w.c, local, dst, timeout)
}

// tcpQueryIn connects from local (invalid: the kernel's choice) to dst in
// ns and reads the identity line.
func tcpQueryIn(ns *testnet.NS, local netip.Addr, dst netip.AddrPort, timeout time.Duration) (reply, error) {
	var conn net.Conn
	err := ns.Do(func() (err error) {
		d := net.Dialer{Timeout: timeout}
		if local.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
		}
		conn, err = d.Dial("tcp", dst.String())
		return err
	})
	if err != nil {
		return reply{}, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	line := make([]byte, 128)
	n, err := io.ReadAtLeast(conn, line, 1)
	if err != nil {
		return reply{}, fmt.Errorf("read from %s: %w", dst, err)
	}
	return parseReply(string(line[:n]))
}

// tcpOpen connects and reads the identity line, leaving the connection open.
func (w *world) tcpOpen(local netip.Addr, dst netip.AddrPort) (net.Conn, reply, error) {
	var conn net.Conn
	err := w.c.Do(func() (err error) {
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: local.AsSlice()}}
		conn, err = d.Dial("tcp", dst.String())
		return err
	})
	if err != nil {
		return nil, reply{}, err
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	line := make([]byte, 128)
	n, err := conn.Read(line)
	if err != nil {
		conn.Close()
		return nil, reply{}, err
	}
	r, err := parseReply(string(line[:n]))
	return conn, r, err
}

// udpQuery sends a datagram from local (ephemeral port) to dst, up to three
// times, and returns the first answer with its source address.
func (w *world) udpQuery(local netip.Addr, dst netip.AddrPort) (reply, error) {
	return w.udpQueryFrom(netip.AddrPortFrom(local, 0), dst)
}

// udpQueryFrom is udpQuery from a given source port.
func (w *world) udpQueryFrom(local, dst netip.AddrPort) (reply, error) {
	return udpQueryIn(w.c, local, dst)
}

// udpQueryIn sends a datagram from local (an invalid address: the kernel's
// choice) to dst in ns, up to three times, and returns the first answer.
func udpQueryIn(ns *testnet.NS, local, dst netip.AddrPort) (reply, error) {
	var pc net.PacketConn
	err := ns.Do(func() (err error) {
		laddr := ":0"
		if local.Addr().IsValid() {
			laddr = local.String()
		}
		pc, err = net.ListenPacket("udp", laddr)
		return err
	})
	if err != nil {
		return reply{}, err
	}
	defer pc.Close()
	buf := make([]byte, 256)
	var last error
	for try := 0; try < 3; try++ {
		if _, err := pc.WriteTo([]byte("who"), net.UDPAddrFromAddrPort(dst)); err != nil {
			return reply{}, err
		}
		pc.SetReadDeadline(time.Now().Add(time.Second))
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			last = err
			continue
		}
		r, err := parseReply(string(buf[:n]))
		r.from = from.(*net.UDPAddr).AddrPort()
		r.from = netip.AddrPortFrom(r.from.Addr().Unmap(), r.from.Port())
		return r, err
	}
	return reply{}, fmt.Errorf("udp %s: no answer: %w", dst, last)
}

// waitTCP retries a TCP query until it succeeds or timeout passes (the
// manifest is polled every second and the classifier updated after it).
func (w *world) waitTCP(local netip.Addr, dst netip.AddrPort, timeout time.Duration) reply {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		w.alive()
		r, err := w.tcpQuery(local, dst)
		if err == nil {
			return r
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("TCP %s -> %s did not work within %v: %v", local, dst, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// metrics fetches the gateway's /metrics text from inside its namespace.
func (w *world) metrics() string {
	w.t.Helper()
	return w.httpGet("http://127.0.0.1:10249/metrics")
}

// httpGet runs a GET from inside the gateway namespace and returns
// "STATUS\nBODY".
func (w *world) httpGet(url string) string {
	w.t.Helper()
	out, err := w.httpGetErr(url, w.g)
	if err != nil {
		w.t.Fatalf("GET %s: %v", url, err)
	}
	return out
}

func (w *world) httpGetErr(url string, ns *testnet.NS) (string, error) {
	var conn net.Conn
	hostPort := strings.TrimPrefix(url, "http://")
	hostPort, path, _ := strings.Cut(hostPort, "/")
	err := ns.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", hostPort, 3*time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /%s HTTP/1.0\r\nHost: x\r\n\r\n", path)
	b, err := io.ReadAll(conn)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// within runs fn until it returns nil or timeout passes; it returns the
// last error.
func within(ctx context.Context, timeout time.Duration, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitMetric waits until the gateway's /metrics contains line.
func (w *world) waitMetric(line string, timeout time.Duration) {
	w.t.Helper()
	var last string
	err := within(context.Background(), timeout, func() error {
		w.alive()
		out, err := w.httpGetErr("http://127.0.0.1:10249/metrics", w.g)
		if err != nil {
			return err
		}
		last = out
		for _, l := range strings.Split(out, "\n") {
			if l == line {
				return nil
			}
		}
		return fmt.Errorf("no %q", line)
	})
	if err != nil {
		w.t.Fatalf("metric %q not seen within %v: %v\n%.3000s", line, timeout, err, last)
	}
}

// metricValue returns the sum of the samples of the lines starting with
// prefix (a metric name with an optional label prefix).
func metricValue(metrics, prefix string) float64 {
	var sum float64
	for _, l := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		f := strings.Fields(l)
		var v float64
		if _, err := fmt.Sscan(f[len(f)-1], &v); err == nil {
			sum += v
		}
	}
	return sum
}

// errorAs is errors.As.
func errorAs(err error, target any) bool { return errors.As(err, target) }
