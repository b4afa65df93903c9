package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func testLoggerB(b *testing.B) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{b}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// smallConfig keeps UMEMs small: tests run many sockets on a shared machine.
func smallConfig(t *testing.T, ifaces ...string) Config {
	return Config{
		Interfaces: ifaces, NumFrames: 512, FillRingSize: 256, CompletionRingSize: 256,
		RxRingSize: 256, TxRingSize: 256, BatchSize: 32, Logger: testLogger(t),
	}
}

// noLeakedGoroutines waits (bounded) for the goroutine count to return to
// before; goroutines that end asynchronously (netlink readers) get time.
func noLeakedGoroutines(t *testing.T, before int) {
	t.Helper()
	n := runtime.NumGoroutine()
	for i := 0; i < 100 && n > before; i++ {
		time.Sleep(20 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines = %d, want <= %d\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// fdSet is the process's open file descriptors: number -> what it is
// (the /proc/self/fd link target, e.g. "socket:[123]").
type fdSet map[string]string

func openFDSet(t *testing.T) fdSet {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := fdSet{}
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			out[e.Name()] = target
		}
	}
	return out
}

// checkNoNewFDs fails the test unless every descriptor open now was already
// open (as the same thing) in before. Descriptors other goroutines close
// meanwhile (an earlier test's netlink sockets close a moment after their
// subscriber stops) do not matter; closes may complete asynchronously, so
// it polls for a few seconds.
func checkNoNewFDs(t *testing.T, before fdSet, what string) {
	t.Helper()
	var leaked []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		leaked = leaked[:0]
		for fd, target := range openFDSet(t) {
			if before[fd] != target {
				leaked = append(leaked, fd+" -> "+target)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(leaked) > 0 {
		t.Errorf("descriptors left open after %s: %v", what, leaked)
	}
}

// ownProgramName is the classifier's program name (bpf/classifier.c); the
// kernel keeps its first 15 bytes.
const ownProgramName = "xdpgate_classify"

// attachLeftover attaches an XDP_PASS program named name through netlink:
// with ownProgramName as a crashed run of an older version would leave it,
// with another name as another tool would (netlink attachment, as iproute2
// and libxdp's legacy mode do).
func attachLeftover(t *testing.T, ns *testnet.NS, dev, name string) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: name, Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load leftover program: %v", err)
	}
	defer prog.Close()
	err = ns.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		return netlink.LinkSetXdpFdWithFlags(l, prog.FD(), unix.XDP_FLAGS_DRV_MODE)
	})
	if err != nil {
		t.Fatalf("attach leftover to %s: %v", dev, err)
	}
}

func xdpAttached(t *testing.T, ns *testnet.NS, dev string) bool {
	t.Helper()
	var attached bool
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		attached = l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return attached
}

func TestPrivOpenClose(t *testing.T) {
	testnet.RequirePriv(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	v := testnet.NewVeth(t, a, "oc", b, "ocp", testnet.VethOpts{Queues: 3})
	attachLeftover(t, a, v.AName, ownProgramName)
	fds := openFDSet(t)
	goroutines := runtime.NumGoroutine()
	for round := 0; round < 2; round++ {
		var dp *Dataplane
		cfg := smallConfig(t, v.AName)
		if round == 1 {
			cfg.CPUs = []int{0} // pinned pollers
		}
		err := a.Do(func() (err error) {
			dp, err = Open(cfg)
			return err
		})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		for _, q := range dp.Queues() {
			if want := map[int]int{0: -1, 1: 0}[round]; q.CPU != want {
				t.Errorf("round %d: Queues()[%d].CPU = %d, want %d", round, q.Index, q.CPU, want)
			}
		}
		if got, want := dp.NumQueues(), 3; got != want {
			t.Errorf("NumQueues() = %d, want %d", got, want)
		}
		if !xdpAttached(t, a, v.AName) {
			t.Errorf("after Open: XDP attached = false, want true")
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- dp.Run(ctx, ProcessorFunc(func(*Queue, []Frame) {})) }()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		if err := dp.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if xdpAttached(t, a, v.AName) {
			t.Errorf("after Close: XDP attached = true, want false")
		}
	}
	checkNoNewFDs(t, fds, "2 Open/Close")
	noLeakedGoroutines(t, goroutines)
}

// xdpProgID returns the ID of the program attached to dev, 0 if none.
func xdpProgID(t *testing.T, ns *testnet.NS, dev string) uint32 {
	t.Helper()
	var id uint32
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err == nil && l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached {
			id = l.Attrs().Xdp.ProgId
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestPrivForeignProgram: Open refuses an interface holding another tool's
// XDP program, attached through netlink or held by a bpf_link, naming it
// and leaving it in place; with ReplaceForeign it replaces it. A live
// xdpgate's own program (held by its bpf_link) is never taken over.
func TestPrivForeignProgram(t *testing.T) {
	testnet.RequirePriv(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	v := testnet.NewVeth(t, a, "fp", b, "fpp", testnet.VethOpts{})
	ifindex := 0
	if err := a.Do(func() error {
		l, err := netlink.LinkByName(v.AName)
		if err == nil {
			ifindex = l.Attrs().Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	open := func(replace bool) (*Dataplane, error) {
		cfg := smallConfig(t, v.AName)
		cfg.ReplaceForeign = replace
		var dp *Dataplane
		err := a.Do(func() (err error) {
			dp, err = Open(cfg)
			return err
		})
		return dp, err
	}
	for _, tc := range []struct {
		name   string
		attach func() // attaches a foreign program
	}{
		{"netlink", func() { attachLeftover(t, a, v.AName, "other_fw") }},
		{"bpf_link", func() { testnet.AttachXDP(t, a, ifindex, testnet.Return(2)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.attach()
			id := xdpProgID(t, a, v.AName)
			dp, err := open(false)
			if err == nil {
				dp.Close()
				t.Fatalf("Open with a foreign program = nil, want an error")
			}
			for _, want := range []string{fmt.Sprintf("id %d", id), "native mode", "--xdp-replace-foreign"} {
				if !strings.Contains(err.Error(), want) || !errors.Is(err, ErrAttach) {
					t.Errorf("Open with a foreign program = %v, want ErrAttach naming %q", err, want)
				}
			}
			if got := xdpProgID(t, a, v.AName); got != id {
				t.Errorf("after refusing: program id %d, want the foreign %d left in place", got, id)
			}
			dp, err = open(true)
			if err != nil {
				t.Fatalf("Open with ReplaceForeign = %v", err)
			}
			if got := xdpProgID(t, a, v.AName); got == id || got == 0 {
				t.Errorf("after Open with ReplaceForeign: program id %d, want the classifier's (foreign was %d)", got, id)
			}
			// A second xdpgate on the interface must not take over the
			// live one's program.
			ours := xdpProgID(t, a, v.AName)
			if dp2, err := open(true); err == nil {
				dp2.Close()
				t.Errorf("second Open on a live xdpgate's interface = nil, want an error")
			}
			if got := xdpProgID(t, a, v.AName); got != ours {
				t.Errorf("after a second Open: program id %d, want the live classifier's %d", got, ours)
			}
			if err := dp.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if xdpAttached(t, a, v.AName) {
				t.Errorf("after Close: XDP attached = true, want false")
			}
		})
	}
	if t.Failed() {
		return
	}
	// Named "other_fw" in the message.
	attachLeftover(t, a, v.AName, "other_fw")
	if dp, err := open(false); err == nil {
		dp.Close()
		t.Errorf("Open = nil, want an error")
	} else if !strings.Contains(err.Error(), `"other_fw"`) {
		t.Errorf("Open = %v, want it to name the program other_fw", err)
	}
}

func TestPrivOpenErrors(t *testing.T) {
	testnet.RequirePriv(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	v := testnet.NewVeth(t, a, "big", b, "bigp", testnet.VethOpts{MTU: 9000})
	cases := []struct {
		name string
		cfg  Config
		want error
	}{
		{"mtu too large", smallConfig(t, v.AName), ErrMTUTooLarge},
		{"no interfaces", smallConfig(t), ErrBadConfig},
		{"ring not power of two", func() Config { c := smallConfig(t, v.AName); c.RxRingSize = 100; return c }(), ErrBadConfig},
		{"frame size 3000", func() Config { c := smallConfig(t, v.AName); c.FrameSize = 3000; return c }(), ErrBadConfig},
		{"no native XDP on lo", smallConfig(t, "lo"), ErrAttach},
	}
	a.MustRun(t, "ip", "link", "set", "lo", "mtu", "1500")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := a.Do(func() error {
				dp, err := Open(tc.cfg)
				if err == nil {
					dp.Close()
				}
				return err
			})
			if !errors.Is(err, tc.want) {
				t.Errorf("Open(%s) = %v, want %v", tc.name, err, tc.want)
			}
			t.Logf("Open(%s) = %v", tc.name, err)
		})
	}
	// 4 KiB frames hold a 3000-byte MTU.
	a.MustRun(t, "ip", "link", "set", v.AName, "mtu", "3000")
	b.MustRun(t, "ip", "link", "set", v.BName, "mtu", "3000") // veth native XDP limits the peer's MTU
	err := a.Do(func() error {
		dp, err := Open(smallConfig(t, v.AName))
		if err != nil {
			return err
		}
		defer dp.Close()
		if got := dp.FrameSize(); got != 4096 {
			return fmt.Errorf("FrameSize() = %d, want 4096", got)
		}
		return nil
	})
	if err != nil {
		t.Errorf("Open(mtu 3000): %v", err)
	}
}

// topo is client <-> gateway <-> server (two-arm) or client/server on one
// segment behind the gateway (one-arm).
type topo struct {
	c, g, s    *testnet.NS
	managed    []string
	serverAddr string // where the client connects
	gwAddr     string // gateway address the client can ping
	// IPv6 equivalents, empty when the topology has no IPv6.
	serverAddr6, gwAddr6 string
}

func twoArm(t *testing.T, queues int) *topo {
	c, g, s := testnet.NewNS(t), testnet.NewNS(t), testnet.NewNS(t)
	cg := testnet.NewVeth(t, c, "c", g, "g", testnet.VethOpts{Queues: queues})
	gs := testnet.NewVeth(t, g, "g", s, "s", testnet.VethOpts{Queues: queues})
	c.AddAddr(t, cg.AName, "198.18.1.2/24")
	g.AddAddr(t, cg.BName, "198.18.1.1/24")
	g.AddAddr(t, gs.AName, "198.18.2.1/24")
	s.AddAddr(t, gs.BName, "198.18.2.2/24")
	c.AddRoute(t, "198.18.2.0/24", "198.18.1.1")
	s.AddRoute(t, "198.18.1.0/24", "198.18.2.1")
	c.AddAddr(t, cg.AName, "2001:2:0:1::2/64")
	g.AddAddr(t, cg.BName, "2001:2:0:1::1/64")
	g.AddAddr(t, gs.AName, "2001:2:0:2::1/64")
	s.AddAddr(t, gs.BName, "2001:2:0:2::2/64")
	c.AddRoute(t, "2001:2:0:2::/64", "2001:2:0:1::1")
	s.AddRoute(t, "2001:2:0:1::/64", "2001:2:0:2::1")
	g.Sysctl(t, "net.ipv4.ip_forward=0") // only xdpgate forwards
	g.Sysctl(t, "net.ipv6.conf.all.forwarding=0")
	c.TxOff(t, cg.AName)
	s.TxOff(t, gs.BName)
	return &topo{c: c, g: g, s: s, managed: []string{cg.BName, gs.AName}, serverAddr: "198.18.2.2", gwAddr: "198.18.1.1",
		serverAddr6: "2001:2:0:2::2", gwAddr6: "2001:2:0:1::1"}
}

func oneArm(t *testing.T) *topo {
	c, g, s, w := testnet.NewNS(t), testnet.NewNS(t), testnet.NewNS(t), testnet.NewNS(t)
	wc := testnet.NewVeth(t, w, "wc", c, "c", testnet.VethOpts{})
	ws := testnet.NewVeth(t, w, "ws", s, "s", testnet.VethOpts{})
	wg := testnet.NewVeth(t, w, "wg", g, "g", testnet.VethOpts{})
	w.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	for _, d := range []string{wc.AName, ws.AName, wg.AName} {
		w.MustRun(t, "ip", "link", "set", d, "master", "br0")
	}
	w.MustRun(t, "ip", "link", "set", "br0", "up")
	c.AddAddr(t, wc.BName, "198.18.1.2/24")
	s.AddAddr(t, ws.BName, "198.18.1.3/24")
	g.AddAddr(t, wg.BName, "198.18.1.1/24")
	s.AddAddr(t, "lo", "198.18.5.5/32")
	c.AddRoute(t, "198.18.5.0/24", "198.18.1.1")
	s.AddRoute(t, "198.18.1.2/32", "198.18.1.1")
	g.AddRoute(t, "198.18.5.5/32", "198.18.1.3")
	g.Sysctl(t, "net.ipv4.ip_forward=0")
	c.TxOff(t, wc.BName)
	s.TxOff(t, ws.BName)
	return &topo{c: c, g: g, s: s, managed: []string{wg.BName}, serverAddr: "198.18.5.5", gwAddr: "198.18.1.1"}
}

// echoServers starts TCP and UDP echo servers on port in the server
// namespace; they stop at test cleanup.
func echoServers(t *testing.T, ns *testnet.NS, addr string, port int) {
	t.Helper()
	testnet.Servers(t, ns, netip.AddrPortFrom(netip.MustParseAddr(addr), uint16(port)), testnet.Echo)
}

// runGateway opens the dataplane and an Egress in the gateway namespace,
// installs rules for the server's port and runs the Forwarder until cleanup.
func runGateway(t *testing.T, tp *topo, port uint16) *Dataplane {
	return runGatewayMode(t, tp, port, AttachNative)
}

func runGatewayMode(t *testing.T, tp *topo, port uint16, mode AttachMode) *Dataplane {
	t.Helper()
	var dp *Dataplane
	var eg *Egress
	cfg := smallConfig(t, tp.managed...)
	cfg.Attach = mode
	err := tp.g.Do(func() (err error) {
		if dp, err = Open(cfg); err != nil {
			return err
		}
		if eg, err = NewEgress(EgressConfig{Logger: testLogger(t)}); err != nil {
			dp.Close()
		}
		return err
	})
	if err != nil {
		t.Fatalf("gateway setup: %v", err)
	}
	var rules Rules
	for _, a := range []string{tp.serverAddr, tp.serverAddr6} {
		if a == "" {
			continue
		}
		srv := mustAddr(a)
		rules.Frontends = append(rules.Frontends, L4Addr{srv, port, 6}, L4Addr{srv, port, 17})
		rules.Endpoints = append(rules.Endpoints, L4Addr{srv, port, 6}, L4Addr{srv, port, 17})
	}
	if err := dp.Classifier().Update(rules); err != nil {
		t.Fatalf("Update: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dp.Run(ctx, NewForwarder(eg)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		for _, st := range dp.Stats() {
			t.Logf("%s/%d rx=%d tx=%d copied=%d txfull=%d fillempty=%d wakeups=%d sleeps=%d drops[unresolved]=%d kernel=%+v",
				st.Ifname, st.QueueID, st.RxFrames, st.TxFrames, st.TxCopied, st.TxRingFull, st.FillRingEmpty,
				st.Wakeups, st.Sleeps, st.Drops[DropNeighUnresolved], st.Kernel)
		}
		if err := dp.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		eg.Close()
	})
	return dp
}

// exchange does one TCP and one UDP echo through the gateway. The first
// packets may be dropped while the gateway resolves the next hop, so each
// is retried a bounded number of times.
func exchange(t *testing.T, tp *topo, port, conns int) {
	t.Helper()
	exchangeWith(t, tp, tp.serverAddr, port, conns)
}

func exchangeWith(t *testing.T, tp *topo, server string, port, conns int) {
	t.Helper()
	addr := net.JoinHostPort(server, fmt.Sprint(port))
	for i := 0; i < conns; i++ {
		msg := []byte(fmt.Sprintf("tcp hello %d", i))
		err := tp.c.Do(func() error {
			conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return err
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(msg); err != nil {
				return err
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(conn, got); err != nil {
				return err
			}
			if !bytes.Equal(got, msg) {
				return fmt.Errorf("echo = %q, want %q", got, msg)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("TCP %d via gateway: %v", i, err)
		}
	}
	err := tp.c.Do(func() error {
		conn, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		buf := make([]byte, 64)
		for try := 0; try < 30; try++ {
			msg := []byte(fmt.Sprintf("udp %d", try))
			conn.Write(msg)
			conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, err := conn.Read(buf)
			if err == nil && bytes.Equal(buf[:n], msg) {
				return nil
			}
		}
		return errors.New("no UDP echo after 30 tries")
	})
	if err != nil {
		t.Fatalf("UDP via gateway: %v", err)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func checkKernelPath(t *testing.T, tp *topo) {
	t.Helper()
	// Pings to the gateway's own address are passed to the kernel (ARP
	// included: the client has no neighbour entry for it yet).
	if err := tp.c.Ping(mustAddr(tp.gwAddr), 3); err != nil {
		t.Errorf("ping gateway %s: %v", tp.gwAddr, err)
	}
	out, err := tp.c.Run("ip", "neigh", "show", tp.gwAddr)
	if err != nil || !strings.Contains(out, "lladdr") {
		t.Errorf("client neighbour entry for gateway = %q (%v), want resolved", out, err)
	}
}

func TestPrivForwardTwoArm(t *testing.T) {
	testnet.RequirePriv(t)
	tp := twoArm(t, 1)
	attachLeftover(t, tp.g, tp.managed[0], ownProgramName)
	echoServers(t, tp.s, tp.serverAddr, 9000)
	echoServers(t, tp.s, tp.serverAddr6, 9000)
	dp := runGateway(t, tp, 9000)
	checkKernelPath(t, tp)
	exchange(t, tp, 9000, 3)
	// IPv6: neighbour discovery is passed to the kernel, data forwarded.
	if err := tp.c.Ping(mustAddr(tp.gwAddr6), 3); err != nil {
		t.Errorf("ping gateway %s: %v", tp.gwAddr6, err)
	}
	exchangeWith(t, tp, tp.serverAddr6, 9000, 2)
	var copied uint64
	for _, st := range dp.Stats() {
		copied += st.TxCopied
	}
	if copied == 0 {
		t.Errorf("two-arm: TxCopied = 0, want > 0")
	}
	// A port the classifier does not own is not forwarded (ip_forward=0):
	// the kernel gets it and drops it.
	err := tp.c.Do(func() error {
		conn, err := net.DialTimeout("tcp", tp.serverAddr+":9999", 2*time.Second)
		if err == nil {
			conn.Close()
			return errors.New("connected")
		}
		return nil
	})
	if err != nil {
		t.Errorf("dial unowned port through gateway: %v, want failure", err)
	}
}

func TestPrivForwardOneArm(t *testing.T) {
	testnet.RequirePriv(t)
	for _, mode := range []struct {
		name string
		m    AttachMode
	}{{"native", AttachNative}, {"generic", AttachGeneric}} {
		t.Run(mode.name, func(t *testing.T) {
			tp := oneArm(t)
			echoServers(t, tp.s, tp.serverAddr, 9000)
			dp := runGatewayMode(t, tp, 9000, mode.m)
			checkKernelPath(t, tp)
			exchange(t, tp, 9000, 3)
			var tx, copied uint64
			for _, st := range dp.Stats() {
				tx += st.TxFrames
				copied += st.TxCopied
			}
			if tx == 0 || copied != 0 {
				t.Errorf("one-arm: TxFrames = %d, TxCopied = %d, want > 0 and 0 (in place)", tx, copied)
			}
		})
	}
}

func TestPrivForwardMultiQueue(t *testing.T) {
	testnet.RequirePriv(t)
	tp := twoArm(t, 4)
	echoServers(t, tp.s, tp.serverAddr, 9000)
	dp := runGateway(t, tp, 9000)
	if got, want := dp.NumQueues(), 8; got != want {
		t.Fatalf("NumQueues() = %d, want %d (4 per interface)", got, want)
	}
	exchange(t, tp, 9000, 16)
	used := map[string]bool{}
	for _, st := range dp.Stats() {
		if st.RxFrames > 0 {
			used[fmt.Sprintf("%s/%d", st.Ifname, st.QueueID)] = true
		}
	}
	t.Logf("queues that received frames: %v", used)
	if len(used) < 2 {
		t.Errorf("queues with traffic = %d, want >= 2", len(used))
	}
}

// TestPrivInterfaceRemoved deletes a managed interface under a running
// dataplane: Run must neither hang nor spin, and Close must still work.
func TestPrivInterfaceRemoved(t *testing.T) {
	testnet.RequirePriv(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	v := testnet.NewVeth(t, a, "rm", b, "rmp", testnet.VethOpts{})
	var dp *Dataplane
	if err := a.Do(func() (err error) { dp, err = Open(smallConfig(t, v.AName)); return err }); err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- dp.Run(ctx, ProcessorFunc(func(*Queue, []Frame) {})) }()
	a.MustRun(t, "ip", "link", "del", v.AName)
	var err error
	select {
	case err = <-done:
		t.Logf("Run returned by itself: %v", err)
	case <-time.After(2 * time.Second):
		cancel()
		err = <-done
		t.Logf("Run returned after cancel: %v", err)
	}
	if err != nil && !errors.Is(err, ErrSocketBroken) {
		t.Errorf("Run after interface removal = %v, want nil or ErrSocketBroken", err)
	}
	var sleeps uint64
	for _, st := range dp.Stats() {
		sleeps += st.Sleeps
	}
	t.Logf("sleeps while the interface was gone: %d", sleeps)
	if sleeps > 1000 {
		t.Errorf("poll(2) calls = %d in about 2s, want a handful (the poller spins on a dead socket)", sleeps)
	}
	if err := dp.Close(); err != nil {
		t.Logf("Close after removal: %v", err)
	}
}

// TestPrivVerdictAccounting drives dispatch's error paths with real frames:
// a Processor leaving Off outside the chunk, one sending to an unmanaged
// interface, and one dropping with a pipeline reason; each is counted under
// its reason.
func TestPrivVerdictAccounting(t *testing.T) {
	testnet.RequirePriv(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	v := testnet.NewVeth(t, a, "va", b, "vb", testnet.VethOpts{})
	a.AddAddr(t, v.AName, "198.18.50.1/24")
	b.AddAddr(t, v.BName, "198.18.50.2/24")
	b.TxOff(t, v.BName)
	var dp *Dataplane
	if err := a.Do(func() (err error) { dp, err = Open(smallConfig(t, v.AName)); return err }); err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer dp.Close()
	if err := dp.Classifier().Update(Rules{Frontends: []L4Addr{{mustAddr("198.18.50.1"), 9000, 17}}}); err != nil {
		t.Fatal(err)
	}
	const pipelineReason = FirstPipelineDropReason + 1
	proc := ProcessorFunc(func(q *Queue, frames []Frame) {
		for i := range frames {
			f := &frames[i]
			d := f.Data()
			switch d[len(d)-1] { // last payload byte selects the verdict
			case 'b':
				f.TX(0)
				f.Off = len(f.Buf)
			case 'n':
				f.TX(999999)
			default:
				f.Drop(pipelineReason)
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dp.Run(ctx, proc) }()
	defer func() { cancel(); <-done }()

	want := map[DropReason]bool{DropBadFrame: true, DropEgressNotManaged: true, pipelineReason: true}
	counted := func() map[DropReason]uint64 {
		m := map[DropReason]uint64{}
		for _, st := range dp.Stats() {
			for r := range want {
				m[r] += st.Drops[r]
			}
		}
		return m
	}
	err := b.Do(func() error {
		conn, err := net.Dial("udp", "198.18.50.1:9000")
		if err != nil {
			return err
		}
		defer conn.Close()
		for try := 0; try < 50; try++ {
			for _, p := range []string{"xb", "xn", "xd"} {
				conn.Write([]byte(p))
			}
			m := counted()
			if m[DropBadFrame] > 0 && m[DropEgressNotManaged] > 0 && m[pipelineReason] > 0 {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return fmt.Errorf("drops by reason = %v, want each of %v counted", counted(), want)
	})
	if err != nil {
		t.Error(err)
	}
}
