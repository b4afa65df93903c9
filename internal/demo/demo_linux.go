package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xdpgate/xdpgate/internal/admin"
	"github.com/xdpgate/xdpgate/internal/nsenter"
)

// Names of what the demo creates. They are fixed so that `--cleanup` finds a
// kept (or orphaned) topology; a second demo refuses to start over one.
const (
	demoNSClients = "xgdemo-clients"
	demoNSGateway = "xgdemo-gw"
	demoNSPods    = "xgdemo-gwpods" // pods of the gateway node
	demoNSNode2   = "xgdemo-node2"  // a remote node, reached through the gateway
	demoStateDir  = "/run/xdpgate-demo"
	// demoAdminSocket is the gateway's --admin-socket: the demo's view
	// reads it, and the commands printed by --keep name it.
	demoAdminSocket = demoStateDir + "/admin.sock"
)

// demoNamespaces in teardown order: the gateway first, so that its
// SIGTERM detaches the XDP programs before its peers disappear.
var demoNamespaces = []string{demoNSGateway, demoNSClients, demoNSPods, demoNSNode2}

func demoNodeNS(node string) string {
	if node == "gw" {
		return demoNSPods
	}
	return demoNSNode2
}

// demoClient returns the i-th client address (i >= 0): 198.19.0.1 and up.
func demoClient(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, 0, byte(i + 1)}) }

// Run is `xdpgate demo` with args (the flags after "demo"): build the
// topology, run the gateway and the backends, drive traffic with a live
// view, then remove everything (unless --keep); `--cleanup` removes a kept
// topology. It starts this process's executable as `run` (the gateway) and
// as `demo BackendHelper` (the backends): see the package documentation.
func Run(args []string, stdout, stderr io.Writer) error {
	o, err := parseDemoFlags(args, stderr)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, veth, XDP): try sudo")
	}
	for _, tool := range []string{"ip", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs %s (Debian: apt-get install iproute2 ethtool): %w", tool, err)
		}
	}
	if o.cleanup {
		removed := demoTeardown(stderr)
		if removed == 0 {
			fmt.Fprintln(stdout, "xdpgate demo: nothing to clean up")
		} else {
			fmt.Fprintf(stdout, "xdpgate demo: removed %d namespaces and their processes\n", removed)
		}
		return nil
	}
	for _, ns := range demoNamespaces {
		if demoNSExists(ns) {
			return fmt.Errorf("namespace %s exists: a demo is running or was kept; remove it with `xdpgate demo --cleanup`", ns)
		}
	}
	// Ctrl-C, SIGTERM or a closed terminal: stop and remove everything.
	// The handler stays installed until teardown is over, so a second
	// Ctrl-C cannot interrupt it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	d := &demoRun{o: o, stdout: stdout, stderr: stderr, tty: isTerminal(stdout)}
	err = d.run(ctx)
	if err == nil && o.keep && ctx.Err() == nil {
		d.printKeep()
		return nil
	}
	d.stopProcesses()
	demoTeardown(stderr)
	if err != nil && ctx.Err() != nil {
		fmt.Fprintln(stderr, "xdpgate demo: interrupted; everything removed")
		return nil
	}
	if err == nil {
		fmt.Fprintln(stdout, "xdpgate demo: done; namespaces, processes and files removed")
	}
	return err
}

// demoRun is one run of the demo.
type demoRun struct {
	o      demoOptions
	stdout io.Writer
	stderr io.Writer
	tty    bool
	self   string

	procs   []*demoProc // backends, then the gateway
	gateway *demoProc

	clientNS, gwNS netns.NsHandle

	// mu guards the client-side counts below, written by the traffic
	// workers and read by the view.
	mu       sync.Mutex
	svc      map[string]demoSvcCounts
	backends map[string]demoBackendCounts
	lastShop []string    // per client: the backend of its latest shop answer
	removal  *demoChange // the backend removal, once started
}

// demoChange tracks which clients moved when a backend left.
type demoChange struct {
	backend string
	at      time.Duration // since traffic started
	applied time.Time     // when the gateway published the change; zero before
	before  []string      // per client: the shop backend before the change
	after   []string      // per client: the first shop backend after applied
	line    string        // the summary, once every client answered after it
}

// demoProc is a child process (gateway or backend helper).
type demoProc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error // valid after exited is closed
}

func (d *demoRun) run(ctx context.Context) error {
	var err error
	if d.self, err = os.Executable(); err != nil {
		return fmt.Errorf("own executable: %w", err)
	}
	d.logf("building the topology (namespaces %s)", strings.Join(demoNamespaces, ", "))
	if err := os.MkdirAll(demoStateDir, 0o700); err != nil {
		return err
	}
	if err := d.buildTopology(); err != nil {
		return err
	}
	if d.clientNS, err = netns.GetFromName(demoNSClients); err != nil {
		return fmt.Errorf("open netns %s: %w", demoNSClients, err)
	}
	defer d.clientNS.Close()
	if d.gwNS, err = netns.GetFromName(demoNSGateway); err != nil {
		return fmt.Errorf("open netns %s: %w", demoNSGateway, err)
	}
	defer d.gwNS.Close()

	for _, ns := range []string{demoNSPods, demoNSNode2} {
		args := []string{BackendHelper}
		for _, b := range demoBackends {
			if demoNodeNS(b.Node) == ns {
				args = append(args, fmt.Sprintf("%s=%s", b.Name, netip.AddrPortFrom(b.Addr, demoBackendPort)))
			}
		}
		if _, err := d.start("backends-"+strings.TrimPrefix(ns, "xgdemo-"), ns, append([]string{"demo"}, args...)); err != nil {
			return err
		}
	}
	// Wait for every backend from the gateway's kernel, so the live view
	// starts with every backend up.
	for _, b := range demoBackends {
		if err := d.waitDial(ctx, d.gwNS, netip.AddrPortFrom(b.Addr, demoBackendPort), false); err != nil {
			return fmt.Errorf("backend %s: %w", b.Name, err)
		}
	}
	if err := d.waitDial(ctx, d.gwNS, netip.AddrPortFrom(demoClient(0), 9), true); err != nil {
		return fmt.Errorf("client side: %w", err)
	}

	manifest := filepath.Join(demoStateDir, "manifest.yaml")
	if err := writeDemoManifest(manifest); err != nil {
		return err
	}
	d.gateway, err = d.start("gateway", demoNSGateway, []string{"run",
		"--interfaces", "gc,gp,gn", "--manifests", manifest, "--node-name", "gw", "--state-dir", "off",
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", demoMetricsPort),
		"--healthz-bind-address", "0.0.0.0:10256",
		"--conntrack-max", "65536", "--affinity-max", "65536",
		"--admin-socket", demoAdminSocket})
	if err != nil {
		return err
	}
	d.logf("gateway started (pid %d, log %s); waiting for it to program the services", d.gateway.cmd.Process.Pid, d.gateway.log)
	if err := d.waitReady(ctx); err != nil {
		return err
	}
	return d.traffic(ctx)
}

func (d *demoRun) logf(format string, a ...any) {
	fmt.Fprintf(d.stderr, "xdpgate demo: "+format+"\n", a...)
}

// buildTopology creates the namespaces, veths, addresses and routes with
// one `ip -batch` per namespace.
func (d *demoRun) buildTopology() error {
	for _, ns := range demoNamespaces {
		if err := demoIP("netns", "add", ns); err != nil {
			return err
		}
	}
	// Veth pairs created directly in their namespaces: no host interface
	// is ever involved.
	for _, v := range [][4]string{
		{"dc", demoNSClients, "gc", demoNSGateway},
		{"gp", demoNSGateway, "dp", demoNSPods},
		{"gn", demoNSGateway, "dn", demoNSNode2},
	} {
		if err := demoIP("link", "add", v[0], "netns", v[1], "type", "veth", "peer", "name", v[2], "netns", v[3]); err != nil {
			return err
		}
	}
	var clients []string
	for i := 0; i < d.o.clients; i++ {
		clients = append(clients, fmt.Sprintf("addr add %s/32 dev lo", demoClient(i)))
	}
	pods := func(node string) (out []string) {
		for _, b := range demoBackends {
			if b.Node == node {
				out = append(out, fmt.Sprintf("addr add %s/32 dev lo", b.Addr))
			}
		}
		return out
	}
	batches := map[string][]string{
		demoNSClients: append([]string{
			"link set lo up", "addr add 198.18.1.2/24 dev dc", "link set dc up",
			"route add 198.18.0.0/16 via 198.18.1.1",
		}, clients...),
		demoNSGateway: {
			"link set lo up",
			"addr add 198.18.1.1/24 dev gc", "link set gc up",
			"addr add 198.18.2.1/24 dev gp", "link set gp up",
			"addr add 198.18.4.1/24 dev gn", "link set gn up",
			"route add 198.19.0.0/16 via 198.18.1.2",
			"route add 198.18.3.0/24 via 198.18.2.2",
			"route add 198.18.5.0/24 via 198.18.4.2",
		},
		demoNSPods: append([]string{
			"link set lo up", "addr add 198.18.2.2/24 dev dp", "link set dp up",
			"route add 198.18.0.0/15 via 198.18.2.1",
		}, pods("gw")...),
		demoNSNode2: append([]string{
			"link set lo up", "addr add 198.18.4.2/24 dev dn", "link set dn up",
			"route add 198.18.0.0/15 via 198.18.4.1",
		}, pods("node2")...),
	}
	for _, ns := range demoNamespaces {
		cmd := exec.Command("ip", "-n", ns, "-batch", "-")
		cmd.Stdin = strings.NewReader(strings.Join(batches[ns], "\n") + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("configure %s: %w: %s", ns, err, out)
		}
	}
	// Only xdpgate forwards on the gateway; the veth ends feeding managed
	// interfaces send complete checksums (a veth peer on the same host sends
	// CHECKSUM_PARTIAL frames, whose L4 checksum XDP sees unfinished).
	for _, c := range [][]string{
		{demoNSGateway, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0"},
		{demoNSClients, "ethtool", "-K", "dc", "tx", "off"},
		{demoNSPods, "ethtool", "-K", "dp", "tx", "off"},
		{demoNSNode2, "ethtool", "-K", "dn", "tx", "off"},
	} {
		if out, err := exec.Command("ip", append([]string{"netns", "exec"}, c...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s in %s: %w: %s", strings.Join(c[1:], " "), c[0], err, out)
		}
	}
	return nil
}

func demoIP(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func writeDemoManifest(path string, without ...string) error {
	b, err := renderDemoManifest(without...)
	if err != nil {
		return err
	}
	// Atomic replace: the gateway polls the file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// start runs this binary with args in namespace ns, in its own process
// group (a Ctrl-C reaches only the demo, which then stops the children in
// order), output to a log file in the state directory.
func (d *demoRun) start(name, ns string, args []string) (*demoProc, error) {
	p := &demoProc{name: name, log: filepath.Join(demoStateDir, name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, d.self}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	d.procs = append(d.procs, p)
	return p, nil
}

// stopProcesses sends SIGTERM to the gateway, then the backends, and waits
// up to 10 s for each (then SIGKILL).
func (d *demoRun) stopProcesses() {
	for i := len(d.procs) - 1; i >= 0; i-- {
		p := d.procs[i]
		select {
		case <-p.exited:
			continue
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if p.err != nil {
				d.logf("%s exited after SIGTERM: %v (log %s)", p.name, p.err, p.log)
			}
		case <-time.After(10 * time.Second):
			d.logf("%s did not exit within 10 s of SIGTERM: killed", p.name)
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
}

// nsDo runs fn on a thread switched into ns; sockets fn creates stay there.
func nsDo(ns netns.NsHandle, fn func() error) error { return nsenter.Do(ns, fn) }

// waitDial connects to dst from ns until it works (or, with refusedOK,
// is refused: the peer answered) within 10 s.
func (d *demoRun) waitDial(ctx context.Context, ns netns.NsHandle, dst netip.AddrPort, refusedOK bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := nsDo(ns, func() error {
			c, err := net.DialTimeout("tcp", dst.String(), time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil || (refusedOK && errors.Is(err, syscall.ECONNREFUSED)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connect %s: %w", dst, err)
		}
		if err := d.sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// sleep waits for t, ctx or the gateway's exit.
func (d *demoRun) sleep(ctx context.Context, t time.Duration) error {
	var exited chan struct{}
	if d.gateway != nil {
		exited = d.gateway.exited
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-exited:
		return fmt.Errorf("gateway exited: %v; its log:\n%s", d.gateway.err, tail(d.gateway.log, 3000))
	case <-time.After(t):
		return nil
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// scrape fetches the gateway's /metrics through a connection created in the
// gateway namespace (the endpoint is bound on its 127.0.0.1).
func (d *demoRun) scrape() (promSamples, error) {
	code, body, err := d.httpGet(d.gwNS, fmt.Sprintf("127.0.0.1:%d", demoMetricsPort), "/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: status %d", code)
	}
	return parsePromText(body)
}

// httpGet is a GET over a connection made in ns; it returns the status
// code and the body.
func (d *demoRun) httpGet(ns netns.NsHandle, hostPort, path string) (int, string, error) {
	var conn net.Conn
	err := nsDo(ns, func() (err error) {
		conn, err = net.DialTimeout("tcp", hostPort, 2*time.Second)
		return err
	})
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	req, _ := http.NewRequest("GET", "http://"+hostPort+path, nil)
	req.Close = true
	if err := req.Write(conn); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, string(b), err
}

// waitReady waits (30 s at most) until the gateway serves /metrics and a
// request to each service gets an answer.
func (d *demoRun) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if err := d.sleep(ctx, 300*time.Millisecond); err != nil {
			return err
		}
		if _, last = d.scrape(); last != nil {
			continue
		}
		ok := true
		for _, s := range demoServices {
			if _, last = d.request(0, s); last != nil {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("gateway not ready within 30 s: %v; its log:\n%s", last, tail(d.gateway.log, 3000))
}

// demoAnswer is what a backend answered.
type demoAnswer struct {
	backend  string
	peer     netip.Addr // the client address the backend saw
	segments uint64
}

// request makes one HTTP request (a new connection) from client i to s,
// from the client namespace.
func (d *demoRun) request(i int, s demoService) (demoAnswer, error) {
	var conn net.Conn
	err := nsDo(d.clientNS, func() (err error) {
		dl := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: demoClient(i).AsSlice()}}
		conn, err = dl.Dial("tcp", s.dst.String())
		return err
	})
	if err != nil {
		return demoAnswer{}, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	req, _ := http.NewRequest("GET", "http://"+s.dst.String()+"/", nil)
	req.Close = true
	if err := req.Write(conn); err != nil {
		return demoAnswer{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return demoAnswer{}, err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if err != nil {
		return demoAnswer{}, err
	}
	if resp.StatusCode != 200 {
		return demoAnswer{}, fmt.Errorf("status %s", resp.Status)
	}
	a := demoAnswer{backend: resp.Header.Get("X-Backend")}
	a.peer, _ = netip.ParseAddr(resp.Header.Get("X-Peer"))
	if rc, err := conn.(*net.TCPConn).SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				a.segments = uint64(ti.Segs_in) + uint64(ti.Segs_out)
			}
		})
	}
	return a, nil
}

// demoJob is one connection to make.
type demoJob struct {
	client int
	svc    demoService
	start  time.Time
}

// traffic drives o.rate connections per second for o.duration, removes
// demoRemoved halfway and renders the view every second.
func (d *demoRun) traffic(ctx context.Context) error {
	d.svc = map[string]demoSvcCounts{}
	d.backends = map[string]demoBackendCounts{}
	d.lastShop = make([]string, d.o.clients)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()

	jobs := make(chan demoJob, 64)
	var wg sync.WaitGroup
	workers := min(32, max(4, d.o.rate/10))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				a, err := d.request(j.client, j.svc)
				d.record(j, a, err)
			}
		}()
	}
	// The pacer: one job per 1/rate, round robin over clients and
	// services; a job is skipped when every worker is busy, so the rate
	// is an upper bound.
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var n, sent int
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				due := int(now.Sub(start).Seconds() * float64(d.o.rate))
				for ; sent < due; sent++ {
					j := demoJob{client: (n / len(demoServices)) % d.o.clients, svc: demoServices[n%len(demoServices)], start: time.Now()}
					n++
					select {
					case jobs <- j:
					default:
					}
				}
			}
		}
	}()
	defer wg.Wait()
	defer cancel()

	view := &demoView{total: d.o.duration, gatewayPID: d.gateway.cmd.Process.Pid, clients: d.o.clients, removed: map[string]time.Duration{}}
	lastTop, _ := admin.GetTop(demoAdminSocket, 2*time.Second) // rates need a first sample
	prevAt := time.Now()
	var svcPrev map[string]demoSvcCounts
	removeAt := d.o.duration / 2
	manifest := filepath.Join(demoStateDir, "manifest.yaml")
	var genBefore float64
	for {
		err := d.sleep(ctx, time.Second)
		if err != nil && ctx.Err() == nil {
			return err // the gateway died
		}
		elapsed := time.Since(start)
		done := elapsed >= d.o.duration || err != nil

		cur, _ := d.scrape() // the snapshot generation, for the removal's events
		top, terr := admin.GetTop(demoAdminSocket, 2*time.Second)
		now := time.Now()
		view.elapsed, view.interval = min(elapsed, d.o.duration), now.Sub(prevAt)
		if top != nil {
			view.topPrev, lastTop = lastTop, top
		}
		view.topCur, view.topErr = top, terr
		if code, body, err := d.httpGet(d.gwNS, fmt.Sprintf("127.0.0.1:%d", demoHealthNodePort), "/healthz"); err == nil {
			view.health = healthSummary(code, body)
		} else {
			view.health = "not answering: " + err.Error()
		}

		d.mu.Lock()
		if d.removal == nil && elapsed >= removeAt && !done {
			if cur != nil {
				genBefore = cur.sum("xdpgate_snapshot_generation")
			}
			d.removal = &demoChange{backend: demoRemoved, at: elapsed, before: slices.Clone(d.lastShop), after: make([]string, d.o.clients)}
			view.removed[demoRemoved] = elapsed
			if err := writeDemoManifest(manifest, demoRemoved); err != nil {
				d.mu.Unlock()
				return err
			}
			view.events = append(view.events, fmt.Sprintf("t=%.1fs: %s removed from %s (the gateway re-reads it every second)", elapsed.Seconds(), demoRemoved, manifest))
		} else if r := d.removal; r != nil && r.applied.IsZero() && cur != nil && cur.sum("xdpgate_snapshot_generation") > genBefore {
			r.applied = now
			view.events = append(view.events, fmt.Sprintf("t=%.1fs: the gateway published the new snapshot (generation %.0f)", elapsed.Seconds(), cur.sum("xdpgate_snapshot_generation")))
		}
		if r := d.removal; r != nil && r.line == "" && !r.applied.IsZero() {
			if l, complete := r.summary(done); complete {
				r.line = l
				view.events = append(view.events, l)
			}
		}
		view.svc, view.svcPrev = cloneMap(d.svc), svcPrev
		svcPrev = view.svc
		view.backends = cloneMap(d.backends)
		for name, c := range view.backends {
			c.lastOf = 0
			view.backends[name] = c
		}
		for _, b := range d.lastShop {
			if c, ok := view.backends[b]; ok {
				c.lastOf++
				view.backends[b] = c
			}
		}
		d.mu.Unlock()

		view.final = done
		d.frame(view)
		prevAt = now
		if done {
			return ctx.Err()
		}
	}
}

// summary is the removal's result line; complete once every client
// answered after the change (or, at the end, with whoever did).
func (r *demoChange) summary(final bool) (string, bool) {
	var moved, stayed, changed, pending, wasThere int
	for i, b := range r.before {
		if b == "" {
			continue // no answer before the change
		}
		if b == r.backend {
			wasThere++
		}
		a := r.after[i]
		switch {
		case a == "":
			pending++
		case b == r.backend && a != r.backend:
			moved++
		case b != r.backend && a == b:
			stayed++
		default:
			changed++
		}
	}
	if pending > 0 && !final {
		return "", false
	}
	l := fmt.Sprintf("backend %s removed at %.1fs: %d clients moved, %d stayed", r.backend, r.at.Seconds(), moved, stayed)
	if changed > 0 {
		l += fmt.Sprintf(", %d others changed backend", changed)
	}
	if pending > 0 {
		l += fmt.Sprintf(" (%d clients not seen since)", pending)
	}
	return l, true
}

// healthSummary shortens a healthCheckNodePort answer to one line.
func healthSummary(code int, body string) string {
	if i := strings.Index(body, `"localEndpoints"`); i >= 0 {
		f := strings.FieldsFunc(body[i+len(`"localEndpoints"`):], func(r rune) bool { return r == ':' || r == ' ' || r == ',' || r == '}' || r == '\n' })
		if len(f) > 0 {
			return fmt.Sprintf("HTTP %d, localEndpoints %s", code, f[0])
		}
	}
	return fmt.Sprintf("HTTP %d", code)
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// record counts one connection's outcome.
func (d *demoRun) record(j demoJob, a demoAnswer, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.svc[j.svc.name]
	if err != nil {
		c.failed++
		d.svc[j.svc.name] = c
		return
	}
	c.ok++
	c.segments += a.segments
	d.svc[j.svc.name] = c
	b := d.backends[a.backend]
	b.conns++
	if a.peer == demoClient(j.client) {
		b.sawClient++
	}
	b.lastPeerIP = a.peer
	d.backends[a.backend] = b
	if j.svc.name == "shop" {
		d.lastShop[j.client] = a.backend
		if r := d.removal; r != nil && !r.applied.IsZero() && j.start.After(r.applied) && r.after[j.client] == "" {
			r.after[j.client] = a.backend
		}
	}
}

// frame writes the view: in place on a terminal, appended otherwise.
func (d *demoRun) frame(v *demoView) {
	var b strings.Builder
	if d.tty {
		b.WriteString("\x1b[H\x1b[2J")
	} else {
		fmt.Fprintf(&b, "\n----- %s -----\n", time.Now().UTC().Format(time.TimeOnly))
	}
	v.render(&b)
	io.WriteString(d.stdout, b.String())
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// printKeep says how to use and remove the kept topology.
func (d *demoRun) printKeep() {
	io.WriteString(d.stdout, keepText(d.self, d.gateway.cmd.Process.Pid, d.gateway.log))
}

// keepText is what `xdpgate demo --keep` prints: commands that work as
// printed against the kept gateway (bin is the demo's own executable, so
// they do not depend on PATH; the admin commands name the gateway's
// socket, which is not the default one).
func keepText(bin string, pid int, log string) string {
	sock := "--socket " + demoAdminSocket
	return fmt.Sprintf(`
The topology is still up and the gateway keeps running (pid %[1]d, log %[2]s).
Try, from a client address:

  ip netns exec %[3]s curl -si --interface 198.19.0.7 http://%[4]s/          # shop (LoadBalancer, affinity)
  ip netns exec %[3]s curl -si --interface 198.19.0.7 http://%[5]s/          # api (NodePort, SNAT)

Look inside the gateway (its admin socket is %[6]s):

  %[7]s top %[8]s                               # live: rates, flows, affinity per service; drops
  %[7]s inspect services %[8]s
  %[7]s inspect conntrack --service demo/shop %[8]s
  %[7]s inspect affinity --service demo/shop %[8]s
  %[7]s inspect stats %[8]s
  %[7]s capture %[8]s --service demo/shop -c 20 --duration 30s -w /tmp/shop.pcap   # then: tcpdump -nr /tmp/shop.pcap
  ip netns exec %[9]s curl -s http://127.0.0.1:%[10]d/metrics | grep ^xdpgate_
  ip netns exec %[9]s curl -s http://127.0.0.1:%[11]d/healthz          # shop's healthCheckNodePort

Services: %[12]s (edit it; the gateway reloads it within a second).
Clean up: %[7]s demo --cleanup
`, pid, log, demoNSClients, netip.AddrPortFrom(demoShopLB, 80), netip.AddrPortFrom(demoGWClientSide, demoAPINodePort),
		demoAdminSocket, bin, sock, demoNSGateway, demoMetricsPort, demoHealthNodePort, demoStateDir+"/manifest.yaml")
}

// demoNSExists reports whether /run/netns/name exists.
func demoNSExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

// demoTeardown stops every process inside the demo namespaces (SIGTERM,
// then SIGKILL after 10 s), deletes the namespaces and the state
// directory. It returns the number of namespaces removed.
func demoTeardown(stderr io.Writer) int {
	removed := 0
	for _, ns := range demoNamespaces {
		if !demoNSExists(ns) {
			continue
		}
		pids := demoNSPids(ns)
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		deadline := time.Now().Add(10 * time.Second)
		for _, pid := range pids {
			for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if syscall.Kill(pid, 0) == nil {
				fmt.Fprintf(stderr, "xdpgate demo: pid %d in %s ignored SIGTERM: killed\n", pid, ns)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if err := demoIP("netns", "del", ns); err != nil {
			fmt.Fprintf(stderr, "xdpgate demo: %v\n", err)
			continue
		}
		removed++
	}
	if err := os.RemoveAll(demoStateDir); err != nil {
		fmt.Fprintf(stderr, "xdpgate demo: %v\n", err)
	}
	return removed
}

// demoNSPids lists the processes in namespace ns (ip netns pids), never
// this one: one of its threads may be visiting.
func demoNSPids(ns string) []int {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ServeBackends is the hidden helper (`xdpgate demo BackendHelper ARGS`)
// run inside a backend namespace: one HTTP server per NAME=ADDR:PORT
// argument answering with its name, until SIGTERM.
func ServeBackends(args []string, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var servers []*http.Server
	errc := make(chan error, len(args))
	for _, a := range args {
		name, addr, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("%s: want NAME=ADDR:PORT: %w", a, ErrUsage)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				peer, _, _ := net.SplitHostPort(r.RemoteAddr)
				w.Header().Set("X-Backend", name)
				w.Header().Set("X-Peer", peer)
				fmt.Fprintf(w, "%s answered; it sees you as %s\n", name, peer)
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		servers = append(servers, srv)
		go func() { errc <- srv.Serve(ln) }()
		fmt.Fprintf(stderr, "backend %s listening on %s\n", name, addr)
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(sctx)
	}
	return nil
}
