package pktgen

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// testRig is a generator namespace and a peer namespace joined by a veth;
// with counting, an XDP program on the peer end counts frames per RX queue
// (per-CPU array indexed by rx_queue_index) and drops them.
type testRig struct {
	gen, peer *testnet.NS
	v         *testnet.Veth
	counts    func(queue int) uint64
	base      uint64 // counted before any test traffic
}

func newTestRig(tb testing.TB, queues int, counting bool) *testRig {
	tb.Helper()
	testnet.RequirePriv(tb)
	r := &testRig{gen: testnet.NewNS(tb), peer: testnet.NewNS(tb)}
	r.v = testnet.NewVeth(tb, r.gen, "gen", r.peer, "peer", testnet.VethOpts{Queues: queues})
	// The generator's end would otherwise send IPv6 router solicitations
	// and MLD reports of its own, which the peer would count.
	r.gen.Sysctl(tb, "net.ipv6.conf."+r.v.AName+".disable_ipv6=1")
	if !counting {
		return r
	}
	r.counts = testnet.AttachDropCounter(tb, r.peer, r.v.BIndex)
	r.base = r.total(tb)
	return r
}

// received returns the frames the peer's XDP program counted on queue q.
func (r *testRig) received(tb testing.TB, q int) uint64 {
	tb.Helper()
	return r.counts(q)
}

// total returns the frames counted on every queue since the rig was set up.
func (r *testRig) total(tb testing.TB) (n uint64) {
	return r.counts(-1) - r.base
}

// config is a valid config for this rig.
func (r *testRig) config(mut ...func(*Config)) Config {
	c := Config{
		Ifname: r.v.AName, DstMAC: net.HardwareAddr(r.v.BMAC[:]),
		Src: netip.MustParseAddr("198.18.64.0"), Clients: 100, PortsPerClient: 10,
		Dst: netip.MustParseAddrPort("198.18.3.1:80"), Count: 1000,
		Logger: testLogger(),
	}
	for _, f := range mut {
		f(&c)
	}
	return c
}

func (r *testRig) open(tb testing.TB, c Config) *Generator {
	tb.Helper()
	var g *Generator
	if err := r.gen.Do(func() (err error) {
		g, err = Open(c)
		return err
	}); err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { g.Close() })
	return g
}

// run runs g with a safety timeout: a run that should end by its own bound
// never outlives the test.
func run(tb testing.TB, g *Generator) Stats {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := g.Run(ctx)
	if err != nil {
		tb.Fatalf("Run: %v (stats %+v)", err, st)
	}
	return st
}

// settleCount waits (bounded) until the peer's counter reaches want or
// stops moving: veth delivers from a NAPI poll that may trail the send.
func settleCount(tb testing.TB, r *testRig, want uint64) uint64 {
	tb.Helper()
	n := r.total(tb)
	for deadline := time.Now().Add(3 * time.Second); n < want && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		n = r.total(tb)
	}
	return n
}

// TestPrivCountExact: with a Count bound, Run sends exactly Count frames
// (completed by the kernel) and the peer receives exactly Count, for each
// mode and family; a second Run (the next burst) does the same.
func TestPrivCountExact(t *testing.T) {
	tests := []struct {
		name  string
		count uint64
		mut   func(*Config)
	}{
		{"udp-v4-64", 20000, func(c *Config) {}},
		{"udp-v4-1flow", 777, func(c *Config) { c.Clients, c.PortsPerClient = 1, 1 }},
		{"tcpsyn-v4-128", 20000, func(c *Config) { c.Mode, c.FrameSize = TCPSyn, 128 }},
		{"tcpest-v6-1518", 5000, func(c *Config) {
			c.Mode, c.FrameSize = TCPEstablished, 1518
			c.Src, c.Dst = netip.MustParseAddr("2001:2::40:0"), netip.MustParseAddrPort("[2001:2::3:1]:443")
		}},
		{"udp-v6-odd-batch", 10001, func(c *Config) {
			c.FrameSize, c.BatchSize = 100, 7
			c.Src, c.Dst = netip.MustParseAddr("2001:2::40:0"), netip.MustParseAddrPort("[2001:2::3:1]:53")
		}},
	}
	r := newTestRig(t, 1, true)
	var want uint64
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := r.open(t, r.config(func(c *Config) { c.Count = tc.count }, tc.mut))
			for burst := 0; burst < 2; burst++ {
				st := run(t, g)
				want += tc.count
				if st.Sent != tc.count || len(st.PerQueue) != 1 || st.PerQueue[0] != tc.count {
					t.Errorf("burst %d: Sent = %d (per queue %v), want %d", burst, st.Sent, st.PerQueue, tc.count)
				}
				if st.Elapsed <= 0 || st.OfferedPPS <= 0 {
					t.Errorf("burst %d: Elapsed %v OfferedPPS %v, want positive", burst, st.Elapsed, st.OfferedPPS)
				}
				if got := settleCount(t, r, want); got != want {
					t.Fatalf("burst %d: peer received %d frames in total, want %d", burst, got, want)
				}
			}
			ks, err := g.KernelStats()
			if err != nil || len(ks) != 1 || ks[0].TxInvalidDescs != 0 {
				t.Errorf("KernelStats() = %+v, %v, want one socket without invalid descriptors", ks, err)
			}
		})
	}
}

// TestPrivRateLimited: RatePPS limits. 20,000 frames at 20,000 pps cannot
// take much less than a second (behaviour, not a timing: the bound is the
// limiter's arithmetic minus one batch of burst).
func TestPrivRateLimited(t *testing.T) {
	r := newTestRig(t, 1, true)
	g := r.open(t, r.config(func(c *Config) { c.RatePPS, c.Count = 20000, 20000 }))
	start := time.Now()
	st := run(t, g)
	wall := time.Since(start)
	if st.Sent != 20000 {
		t.Errorf("Sent = %d, want 20000", st.Sent)
	}
	if st.Elapsed < 800*time.Millisecond || wall < 800*time.Millisecond {
		t.Errorf("20000 frames at 20000 pps took %v (Run's Elapsed %v), want at least 0.8s", wall, st.Elapsed)
	}
	if got := settleCount(t, r, 20000); got != 20000 {
		t.Errorf("peer received %d, want 20000", got)
	}
}

// TestPrivMultiQueue: with two TX queues, Count is split between them and
// each queue's frames arrive on the peer's matching RX queue (veth maps TX
// queue i to the peer's RX queue i).
func TestPrivMultiQueue(t *testing.T) {
	r := newTestRig(t, 2, true)
	g := r.open(t, r.config(func(c *Config) {
		c.Queues, c.Count = []int{0, 1}, 10001
		c.CPUs = []int{0, runtime.NumCPU() - 1}
	}))
	st := run(t, g)
	if st.Sent != 10001 || len(st.PerQueue) != 2 || st.PerQueue[0] != 5001 || st.PerQueue[1] != 5000 {
		t.Errorf("Sent = %d per queue %v, want 10001 as [5001 5000]", st.Sent, st.PerQueue)
	}
	if got := settleCount(t, r, 10001); got != 10001 {
		t.Fatalf("peer received %d, want 10001", got)
	}
	if q0, q1 := r.received(t, 0), r.received(t, 1); q0 != 5001 || q1 != 5000 {
		t.Errorf("peer RX queues got %d and %d, want 5001 and 5000", q0, q1)
	}
}

// TestPrivDurationAndCancel: a Duration bound ends the run by itself; a
// cancelled context ends it early with the context's error; either way
// what was sent arrived.
func TestPrivDurationAndCancel(t *testing.T) {
	r := newTestRig(t, 1, true)
	g := r.open(t, r.config(func(c *Config) { c.Count, c.Duration, c.RatePPS = 0, 200*time.Millisecond, 50000 }))
	st := run(t, g)
	if st.Sent == 0 || st.Sent > 50000 {
		t.Errorf("200ms at 50 kpps: Sent = %d, want 1..50000", st.Sent)
	}
	if got := settleCount(t, r, st.Sent); got != st.Sent {
		t.Errorf("peer received %d, want Sent = %d", got, st.Sent)
	}
	if err := g.Close(); err != nil { // frees queue 0 for the next generator
		t.Fatal(err)
	}

	g2 := r.open(t, r.config(func(c *Config) { c.Count, c.Duration, c.RatePPS = 0, time.Minute, 10000 }))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	st2, err := g2.Run(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run with a cancelled context: err = %v, want context.DeadlineExceeded", err)
	}
	if st2.Sent == 0 || st2.Sent >= 600000 {
		t.Errorf("cancelled run: Sent = %d, want some but not a minute's worth", st2.Sent)
	}
	if got := settleCount(t, r, st.Sent+st2.Sent); got != st.Sent+st2.Sent {
		t.Errorf("peer received %d, want %d", got, st.Sent+st2.Sent)
	}
}

// TestPrivWireBytes: the frames on the wire are exactly Frame's bytes, in
// stream order (captured with a packet socket on the peer, no XDP there).
func TestPrivWireBytes(t *testing.T) {
	r := newTestRig(t, 1, false)
	const n = 60
	var fd int
	if err := r.peer.Do(func() (err error) {
		proto := int(htons(unix.ETH_P_ALL))
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000}); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: r.v.BIndex})
	}); err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	defer unix.Close(fd)
	for _, m := range []Mode{UDP, TCPSyn, TCPEstablished} {
		t.Run(m.String(), func(t *testing.T) {
			// 3 clients x 7 ports: 60 frames visit every flow twice or more.
			g := r.open(t, r.config(func(c *Config) {
				c.Mode, c.Count, c.Clients, c.PortsPerClient, c.FrameSize, c.Seed = m, n, 3, 7, 90, uint64(m)+5
			}))
			if st := run(t, g); st.Sent != n {
				t.Fatalf("Sent = %d, want %d", st.Sent, n)
			}
			buf := make([]byte, 2048)
			var s uint64
			for deadline := time.Now().Add(5 * time.Second); s < n && time.Now().Before(deadline); {
				k, _, err := unix.Recvfrom(fd, buf, 0)
				if err != nil {
					continue
				}
				f := buf[:k]
				// Skip what the kernel sends on its own (IPv6 ND, MLD).
				if !bytes.Equal(f[:6], r.v.BMAC[:]) || k != 90-4 {
					continue
				}
				want := g.FrameVisit(g.FlowAt(s), s/g.Flows())
				if !bytes.Equal(f, want) {
					t.Fatalf("frame %d on the wire:\n%x\nwant FrameVisit(%d, %d):\n%x", s, f, g.FlowAt(s), s/g.Flows(), want)
				}
				s++
			}
			if s != n {
				t.Fatalf("captured %d of %d frames", s, n)
			}
		})
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestPrivOpenCloseErrors: bad interfaces, queues and sizes are errors
// naming them; SrcMAC defaults to the interface's; Close is idempotent, Run
// after Close fails, and neither goroutines nor descriptors leak from
// Open, Run and Close.
func TestPrivOpenCloseErrors(t *testing.T) {
	r := newTestRig(t, 1, false)
	fds := countFDs(t)
	goroutines := runtime.NumGoroutine()

	openErr := func(c Config) error {
		return r.gen.Do(func() error {
			g, err := Open(c)
			if err == nil {
				g.Close()
			}
			return err
		})
	}
	if err := openErr(r.config(func(c *Config) { c.Ifname = "nosuchif0" })); err == nil || !strings.Contains(err.Error(), "Ifname") {
		t.Errorf("Open(unknown interface) = %v, want an error naming Ifname", err)
	}
	if err := openErr(r.config(func(c *Config) { c.Queues = []int{0, 5} })); err == nil || !strings.Contains(err.Error(), "queue 5") {
		t.Errorf("Open(queue 5 of 1) = %v, want an error naming queue 5", err)
	}
	r.peer.MustRun(t, "ip", "link", "set", r.v.BName, "mtu", "1000")
	r.gen.MustRun(t, "ip", "link", "set", r.v.AName, "mtu", "1000")
	if err := openErr(r.config(func(c *Config) { c.FrameSize = 1518 })); err == nil || !strings.Contains(err.Error(), "FrameSize") {
		t.Errorf("Open(FrameSize 1518, MTU 1000) = %v, want an error naming FrameSize", err)
	}

	var g *Generator
	if err := r.gen.Do(func() (err error) { g, err = Open(r.config()); return err }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.Config().SrcMAC, r.v.AMAC[:]) {
		t.Errorf("SrcMAC = %v, want the interface's %v", g.Config().SrcMAC, net.HardwareAddr(r.v.AMAC[:]))
	}
	if src := g.Frame(0)[6:12]; !bytes.Equal(src, r.v.AMAC[:]) {
		t.Errorf("Frame(0) source MAC = %x, want %x", src, r.v.AMAC)
	}
	if st := run(t, g); st.Sent != 1000 {
		t.Errorf("Sent = %d, want 1000", st.Sent)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if st, err := g.Run(ctx); !errors.Is(err, context.Canceled) || st.Sent != 0 {
		t.Errorf("Run(cancelled context) = %+v, %v, want nothing sent and context.Canceled", st, err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	if _, err := g.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	if len(g.Frame(1)) != 60 {
		t.Errorf("Frame after Close: %d bytes, want 60", len(g.Frame(1)))
	}
	if got := countFDs(t); got != fds {
		t.Errorf("open file descriptors: %d after Open/Close, %d before", got, fds)
	}
	for deadline := time.Now().Add(2 * time.Second); runtime.NumGoroutine() > goroutines && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := runtime.NumGoroutine(); got > goroutines {
		t.Errorf("goroutines: %d after, %d before", got, goroutines)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// BenchmarkPrivGenerator measures the generator flat out on one queue
// into an XDP_DROP peer (copy mode on veth: the kernel's per-frame skb and
// veth cost is most of it). Bounded: run with -benchtime Nx, e.g.
//
//	go test -run '^$' -bench PrivGenerator -benchtime 2000000x ./bench/pktgen/
func BenchmarkPrivGenerator(b *testing.B) {
	for _, bc := range []struct {
		name string
		mut  func(*Config)
	}{
		{"udp64-1k-flows", func(c *Config) { c.Clients, c.PortsPerClient = 1000, 1 }},
		{"tcpsyn64-4M-flows", func(c *Config) { c.Mode, c.Clients, c.PortsPerClient = TCPSyn, 65536, 64 }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := newTestRig(b, 1, true)
			g := r.open(b, r.config(func(c *Config) { c.Count = uint64(b.N); c.CPUs = []int{0} }, bc.mut))
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ReportAllocs()
			b.ResetTimer()
			st := run(b, g)
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			got := settleCount(b, r, st.Sent)
			b.ReportMetric(st.OfferedPPS, "frames/s")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs), "mallocs_total")
			b.ReportMetric(100*(1-float64(got)/float64(max(st.Sent, 1))), "peer_loss_%")
			if st.Sent != uint64(b.N) {
				b.Errorf("Sent = %d, want %d", st.Sent, b.N)
			}
		})
	}
}

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
