package sink

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
)

// loadTest loads the program without attaching it (BPF_PROG_RUN needs
// CAP_BPF, hence RequirePriv).
func loadTest(t *testing.T, cfg Config) *Sink {
	t.Helper()
	testnet.RequirePriv(t)
	cfg.Ifname = "unattached"
	s, err := load(cfg)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// run runs the program once on frame and returns the verdict and the
// frame as the program left it.
func run(t *testing.T, s *Sink, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	opts := &ebpf.RunOptions{Data: frame, DataOut: out}
	ret, err := s.objs.Sink.Run(opts)
	if err != nil {
		t.Fatalf("prog.Run: %v", err)
	}
	return ret, opts.DataOut
}

func counts(t *testing.T, s *Sink) Counts {
	t.Helper()
	c, err := s.Counts()
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	return c
}

func TestPrivProgCounts(t *testing.T) {
	s := loadTest(t, Config{Endpoints: testEndpoints})
	ep := func(i int) func(Counts) uint64 { return func(c Counts) uint64 { return c.PerEndpoint[i] } }
	other := func(c Counts) uint64 { return c.Other }
	nonIP := func(c Counts) uint64 { return c.NonIP }
	cases := []struct {
		name    string
		frame   func(testing.TB) []byte
		verdict uint32
		counter func(Counts) uint64
	}{
		{"v4 tcp ep0", pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: tcp, sport: 1, dport: 8080}.frame, xdpDrop, ep(0)},
		{"v4 udp ep1", pkt{src: "198.18.64.1", dst: "198.18.2.11", proto: udp, sport: 1, dport: 8080}.frame, xdpDrop, ep(1)},
		{"v6 tcp ep2", pkt{src: "2001:2::64:1", dst: "2001:2::2:10", proto: tcp, sport: 1, dport: 8080}.frame, xdpDrop, ep(2)},
		{"v6 udp ep3", pkt{src: "2001:2::64:1", dst: "2001:2::2:11", proto: udp, sport: 1, dport: 8080}.frame, xdpDrop, ep(3)},
		{"v4 vlan ep1", pkt{vlan: 9, src: "198.18.64.1", dst: "198.18.2.11", proto: udp, sport: 1, dport: 8080}.frame, xdpDrop, ep(1)},
		{"v4 options ep0", pkt{ipOpts: true, src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080}.frame, xdpDrop, ep(0)},
		{"v4 other port", pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8081}.frame, xdpDrop, other},
		{"v4 other address", pkt{src: "198.18.64.1", dst: "198.18.2.12", proto: tcp, sport: 1, dport: 8080}.frame, xdpDrop, other},
		{"v6 other port", pkt{src: "2001:2::64:1", dst: "2001:2::2:10", proto: udp, sport: 1, dport: 53}.frame, xdpDrop, other},
		{"v4 icmp", pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: layers.IPProtocolICMPv4}.frame, xdpDrop, other},
		{"v4 later fragment", pkt{fragOff: 20, src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080}.frame, xdpDrop, other},
		{"v6 extension header", pkt{v6hbh: true, src: "2001:2::64:1", dst: "2001:2::2:10", proto: udp, sport: 1, dport: 8080}.frame, xdpDrop, other},
		{"v4 truncated", func(t testing.TB) []byte {
			return pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080}.frame(t)[:14+10]
		}, xdpDrop, other},
		{"arp", arpFrame, xdpPass, nonIP},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.frame(t)
			before := counts(t, s)
			got, _ := run(t, s, f)
			after := counts(t, s)
			if got != tc.verdict {
				t.Errorf("verdict = %d, want %d", got, tc.verdict)
			}
			if d := tc.counter(after) - tc.counter(before); d != 1 {
				t.Errorf("counter delta = %d, want 1", d)
			}
			var sumBefore, sumAfter uint64
			for i := range before.PerEndpoint {
				sumBefore += before.PerEndpoint[i]
				sumAfter += after.PerEndpoint[i]
			}
			sumBefore += before.Other + before.NonIP
			sumAfter += after.Other + after.NonIP
			if d := sumAfter - sumBefore; d != 1 {
				t.Errorf("frame counted %d times, want once", d)
			}
			if d := after.Total - before.Total; d != 1 {
				t.Errorf("Total delta = %d, want 1", d)
			}
			if d := after.Bytes - before.Bytes; d != uint64(len(f)) {
				t.Errorf("Bytes delta = %d, want %d", d, len(f))
			}
		})
	}
}

func TestPrivProgReflect(t *testing.T) {
	s := loadTest(t, Config{Endpoints: testEndpoints, Reflect: true})
	cases := []struct {
		name    string
		p       pkt
		verdict uint32
	}{
		{"v4 udp", pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 40000, dport: 8080, payload: 22}, xdpTX},
		{"v4 tcp options", pkt{ipOpts: true, src: "198.18.64.1", dst: "198.18.2.11", proto: tcp, sport: 40001, dport: 8080, payload: 3}, xdpTX},
		{"v4 udp vlan", pkt{vlan: 5, src: "198.18.64.1", dst: "198.18.2.11", proto: udp, sport: 40001, dport: 8080, payload: 3}, xdpTX},
		{"v6 tcp", pkt{src: "2001:2::64:1", dst: "2001:2::2:10", proto: tcp, sport: 40002, dport: 8080, payload: 11}, xdpTX},
		{"v6 udp", pkt{src: "2001:2::64:1", dst: "2001:2::2:11", proto: udp, sport: 40003, dport: 8080}, xdpTX},
		{"v4 other port reflected", pkt{src: "198.18.1.2", dst: "198.18.3.1", proto: udp, sport: 80, dport: 40004}, xdpTX},
		{"v4 icmp dropped", pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: layers.IPProtocolICMPv4}, xdpDrop},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.p.frame(t)
			got, out := run(t, s, in)
			if got != tc.verdict {
				t.Fatalf("verdict = %d, want %d", got, tc.verdict)
			}
			if got != xdpTX {
				return
			}
			// The expected reply, built (and checksummed) by gopacket.
			want := tc.p
			want.src, want.dst, want.sport, want.dport = tc.p.dst, tc.p.src, tc.p.dport, tc.p.sport
			ls := want.layers(t)
			eth := ls[0].(*layers.Ethernet)
			eth.SrcMAC, eth.DstMAC = eth.DstMAC, eth.SrcMAC
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, buf.Bytes()) {
				t.Errorf("reflected frame\n got %x\nwant %x", out, buf.Bytes())
			}
			if v := newChecker(nil, nil).check(out); v.checksumErr {
				t.Errorf("reflected frame fails the checksum check: %s", v.reason)
			}
		})
	}
}

func TestPrivProgClients(t *testing.T) {
	s := loadTest(t, Config{Endpoints: testEndpoints, TrackClients: 2})
	send := func(src, dst string) {
		t.Helper()
		if got, _ := run(t, s, pkt{src: src, dst: dst, proto: udp, sport: 5, dport: 8080}.frame(t)); got != xdpDrop {
			t.Fatalf("verdict %s -> %s = %d, want drop", src, dst, got)
		}
	}
	type tracked struct{ clients, moved, dropped uint64 }
	check := func(step string, want tracked) {
		t.Helper()
		c := counts(t, s)
		if got := (tracked{c.Clients, c.ClientsMoved, c.ClientsDropped}); got != want {
			t.Errorf("after %s: {Clients, ClientsMoved, ClientsDropped} = %+v, want %+v", step, got, want)
		}
	}
	send("198.18.64.1", "198.18.2.10")
	send("198.18.64.1", "198.18.2.10")
	check("A twice at ep0", tracked{1, 0, 0})
	send("198.18.64.1", "198.18.2.12") // Other: not tracked
	check("A to no endpoint", tracked{1, 0, 0})
	send("2001:2::64:2", "2001:2::2:10")
	send("2001:2::64:2", "2001:2::2:11")
	check("B moved", tracked{2, 1, 0})
	send("2001:2::64:2", "2001:2::2:10")
	check("B back (moved once)", tracked{2, 1, 0})
	send("198.18.64.3", "198.18.2.10")
	check("C with the table full", tracked{2, 1, 1})
	if err := s.ResetClients(); err != nil {
		t.Fatalf("ResetClients: %v", err)
	}
	send("198.18.64.3", "198.18.2.11")
	send("198.18.64.1", "198.18.2.11") // A starts afresh at ep1
	check("after reset (counters stay monotonic)", tracked{4, 1, 1})
	send("198.18.64.1", "198.18.2.10")
	check("A moved after reset", tracked{4, 2, 1})
}

// onOneCPU keeps the calling goroutine on one OS thread pinned to one CPU
// until the test ends: BPF_PROG_TEST_RUN runs the program on the caller's
// CPU, and the sampler's tick is a per-CPU counter (a thread that migrates
// between runs would count on two).
func onOneCPU(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		t.Fatal(err)
	}
	var one unix.CPUSet
	for c := 0; c < 1024; c++ {
		if old.IsSet(c) {
			one.Set(c)
			break
		}
	}
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	})
}

func TestPrivProgSampleEvery(t *testing.T) {
	s := loadTest(t, Config{Endpoints: testEndpoints, SampleEvery: 3, ExpectSrc: testExpectSrc})
	onOneCPU(t)
	good := pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080}.frame(t)
	for i := range 10 {
		run(t, s, good)
		run(t, s, arpFrame(t)) // not IP: does not advance the sampler
		c := counts(t, s)
		if want := uint64((i + 1) / 3); c.Sampled != want {
			t.Fatalf("after %d IP frames Sampled = %d, want %d", i+1, c.Sampled, want)
		}
		if c.ChecksumErrors != 0 || c.TranslationErrors != 0 || c.SamplesLost != 0 {
			t.Fatalf("after %d good frames: %+v, want no errors (%q)", i+1, c, s.RecentErrors())
		}
	}
}

func TestPrivProgSampleChecks(t *testing.T) {
	s := loadTest(t, Config{Endpoints: testEndpoints, SampleEvery: 1, ExpectSrc: testExpectSrc})
	good4 := pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080, payload: 20}
	type errs struct{ csum, trans, skipped uint64 }
	cases := []struct {
		name  string
		frame func(testing.TB) []byte
		want  errs
	}{
		{"v4 good", good4.frame, errs{}},
		{"v6 good", pkt{src: "2001:2::64:1", dst: "2001:2::2:11", proto: tcp, sport: 1, dport: 8080, payload: 100}.frame, errs{}},
		{"v4 udp checksum corrupted", func(t testing.TB) []byte {
			f := good4.frame(t)
			f[good4.l4Offset()+6] ^= 0x10
			return f
		}, errs{csum: 1}},
		{"v4 header checksum corrupted", func(t testing.TB) []byte {
			f := good4.frame(t)
			f[good4.l3Offset()+10] ^= 0x01
			return f
		}, errs{csum: 1}},
		{"wrong source", pkt{src: "198.18.1.2", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080}.frame, errs{trans: 1}},
		{"not an endpoint", pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 9}.frame, errs{trans: 1}},
		{"longer than the sample", pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080, payload: 1000}.frame, errs{skipped: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := counts(t, s)
			run(t, s, tc.frame(t))
			after := counts(t, s)
			if d := after.Sampled - before.Sampled; d != 1 {
				t.Fatalf("Sampled delta = %d, want 1", d)
			}
			got := errs{after.ChecksumErrors - before.ChecksumErrors, after.TranslationErrors - before.TranslationErrors,
				after.ChecksumSkipped - before.ChecksumSkipped}
			if got != tc.want {
				t.Errorf("{ChecksumErrors, TranslationErrors, ChecksumSkipped} delta = %+v, want %+v (recent %q)", got, tc.want, s.RecentErrors())
			}
		})
	}
	if r := s.RecentErrors(); len(r) != 4 || !slices.ContainsFunc(r, func(s string) bool { return bytes.Contains([]byte(s), []byte("ExpectSrc")) }) {
		t.Errorf("RecentErrors() = %q, want 4 reasons, one naming ExpectSrc", r)
	}
}

func TestPrivOpenBadConfig(t *testing.T) {
	testnet.RequirePriv(t)
	_, err := Open(Config{Ifname: "xg-no-such-if0"})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("Ifname")) {
		t.Errorf("Open(missing interface) = %v, want an error naming Ifname", err)
	}
	if _, err := Open(Config{Ifname: "x", Endpoints: []netip.AddrPort{{}}}); err == nil {
		t.Errorf("Open(zero endpoint) = nil error")
	}
}

// TestPrivResetClientsLarge fills a client table of the size the rig uses
// past one batch and clears it.
func TestPrivResetClientsLarge(t *testing.T) {
	const size, fill = 131072, 10000
	s := loadTest(t, Config{Endpoints: testEndpoints, TrackClients: size})
	if got := s.objs.Clients.MaxEntries(); got != size {
		t.Fatalf("client table MaxEntries = %d, want %d", got, size)
	}
	keys := make([]clientKey, fill)
	vals := make([]clientVal, fill)
	for i := range keys {
		addr, fam := addrKey(netip.AddrFrom4([4]byte{198, 18, 64 + byte(i>>16), byte(i >> 8)}))
		addr[3] = byte(i) // 198.18.64.0 + i
		keys[i] = clientKey{Addr: addr, Family: uint32(fam)}
	}
	if n, err := s.objs.Clients.BatchUpdate(keys, vals, nil); err != nil || n != fill {
		t.Fatalf("BatchUpdate = %d, %v, want %d, nil", n, err, fill)
	}
	if err := s.ResetClients(); err != nil {
		t.Fatalf("ResetClients: %v", err)
	}
	var k clientKey
	if err := s.objs.Clients.NextKey(nil, &k); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("after ResetClients NextKey = %v, want ErrKeyNotExist", err)
	}
}

// TestPrivCloseReleases checks that Close stops the reader goroutine and
// closes every file descriptor Open made.
func TestPrivCloseReleases(t *testing.T) {
	testnet.RequirePriv(t)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	g0, f0 := runtime.NumGoroutine(), fds()
	s, err := load(Config{Ifname: "unattached", Endpoints: testEndpoints, SampleEvery: 10, TrackClients: 10})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > g0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if g, f := runtime.NumGoroutine(), fds(); g > g0 || f > f0 {
		t.Errorf("after Close goroutines = %d, fds = %d, want <= %d, %d", g, f, g0, f0)
	}
}

// BenchmarkPrivProg measures the program's cost per frame with
// BPF_PROG_RUN (no driver, no stack): the sink's own share of a frame.
func BenchmarkPrivProg(b *testing.B) {
	frame := pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080, payload: 18}.frame(b)
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"count", Config{Endpoints: testEndpoints}},
		{"reflect", Config{Endpoints: testEndpoints, Reflect: true}},
		{"sample1000", Config{Endpoints: testEndpoints, SampleEvery: 1000}},
		{"clients", Config{Endpoints: testEndpoints, TrackClients: 131072}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			testnet.RequirePriv(b)
			bc.cfg.Ifname = "unattached"
			s, err := load(bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ReportAllocs()
			_, per, err := s.objs.Sink.Benchmark(frame, b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(per.Nanoseconds()), "ns/frame")
		})
	}
}
