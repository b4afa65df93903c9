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
			checkReflected(t, tc.p, out)
		})
	}
}

// checkReflected checks that out is p reflected: the reply built (and
// checksummed) by gopacket, with correct checksums.
func checkReflected(t *testing.T, p pkt, out []byte) {
	t.Helper()
	want := p
	want.src, want.dst, want.sport, want.dport = p.dst, p.src, p.dport, p.sport
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
	if v := newChecker(nil, nil, nil).check(out); v.checksumErr {
		t.Errorf("reflected frame fails the checksum check: %s", v.reason)
	}
}

// testReplySources are a VIP's, as the rig's one-arm reply scenario lists
// its VIP.
var testReplySources = []netip.AddrPort{
	netip.MustParseAddrPort("198.18.3.1:80"),
	netip.MustParseAddrPort("[2001:2::3:1]:80"),
}

// TestPrivProgReflectAndReplies runs the program as the one sink of a
// one-arm reply scenario: frames to endpoints are reflected (and counted,
// sampled, their clients tracked), replies from the reply sources are
// counted and dropped, and whatever is neither is Other and dropped, not
// reflected. Every frame is sampled: a reply's sample is checked for its
// checksums, not against the endpoints and ExpectSrc, which are about the
// other direction.
func TestPrivProgReflectAndReplies(t *testing.T) {
	// The VIP is an expected source only for the case that sends from it
	// to an endpoint; a reply's sample would still fail the endpoint check
	// if it were checked as the other direction.
	expectSrc := append(slices.Clone(testExpectSrc), netip.MustParsePrefix("198.18.3.1/32"))
	s := loadTest(t, Config{Endpoints: testEndpoints, Reflect: true, ReplySources: testReplySources,
		SampleEvery: 1, ExpectSrc: expectSrc, TrackClients: 16})
	const (
		toEP = iota
		reply
		other
	)
	cases := []struct {
		name string
		p    pkt
		kind int
		idx  int // endpoint or reply source index
	}{
		{"v4 udp to ep0", pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 40000, dport: 8080, payload: 18}, toEP, 0},
		{"v4 tcp to ep1", pkt{src: "198.18.64.2", dst: "198.18.2.11", proto: tcp, sport: 40001, dport: 8080}, toEP, 1},
		{"v6 udp to ep3", pkt{src: "2001:2::64:1", dst: "2001:2::2:11", proto: udp, sport: 40002, dport: 8080, payload: 5}, toEP, 3},
		{"v4 udp reply", pkt{src: "198.18.3.1", dst: "198.18.64.1", proto: udp, sport: 80, dport: 40000, payload: 18}, reply, 0},
		{"v4 tcp reply vlan", pkt{vlan: 4, src: "198.18.3.1", dst: "198.18.64.2", proto: tcp, sport: 80, dport: 40001}, reply, 0},
		{"v6 udp reply", pkt{src: "2001:2::3:1", dst: "2001:2::64:1", proto: udp, sport: 80, dport: 40002, payload: 5}, reply, 1},
		// A destination that is an endpoint decides, whatever the source.
		{"from the VIP to ep0", pkt{src: "198.18.3.1", dst: "198.18.2.10", proto: udp, sport: 80, dport: 8080}, toEP, 0},
		{"VIP, other port", pkt{src: "198.18.3.1", dst: "198.18.64.1", proto: udp, sport: 81, dport: 40000}, other, 0},
		{"untranslated reply", pkt{src: "198.18.2.10", dst: "198.18.64.1", proto: udp, sport: 8080, dport: 40000}, other, 0},
		{"v4 icmp from the VIP", pkt{src: "198.18.3.1", dst: "198.18.64.1", proto: layers.IPProtocolICMPv4}, other, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := counts(t, s)
			got, out := run(t, s, tc.p.frame(t))
			after := counts(t, s)
			delta := func(a, b []uint64) []uint64 {
				d := make([]uint64, len(a))
				for i := range a {
					d[i] = a[i] - b[i]
				}
				return d
			}
			wantEP, wantReplies := make([]uint64, len(testEndpoints)), make([]uint64, len(testReplySources))
			var wantOther, wantClients uint64
			wantVerdict := uint32(xdpDrop)
			switch tc.kind {
			case toEP:
				wantEP[tc.idx], wantVerdict, wantClients = 1, xdpTX, 1
			case reply:
				wantReplies[tc.idx] = 1
			case other:
				wantOther = 1
			}
			if got != wantVerdict {
				t.Errorf("verdict = %d, want %d", got, wantVerdict)
			}
			if d := delta(after.PerEndpoint, before.PerEndpoint); !slices.Equal(d, wantEP) {
				t.Errorf("PerEndpoint delta = %v, want %v", d, wantEP)
			}
			if d := delta(after.Replies, before.Replies); !slices.Equal(d, wantReplies) {
				t.Errorf("Replies delta = %v, want %v", d, wantReplies)
			}
			if d := after.Other - before.Other; d != wantOther {
				t.Errorf("Other delta = %d, want %d", d, wantOther)
			}
			if d := after.Clients - before.Clients; d != wantClients {
				t.Errorf("Clients delta = %d, want %d (replies are not clients)", d, wantClients)
			}
			if d := after.Sampled - before.Sampled; d != 1 {
				t.Errorf("Sampled delta = %d, want 1", d)
			}
			// Samples of endpoints' frames and replies pass; Other fails
			// the endpoint check, as without ReplySources.
			wantTrans := uint64(0)
			if tc.kind == other {
				wantTrans = 1
			}
			if d := after.TranslationErrors - before.TranslationErrors; d != wantTrans || after.ChecksumErrors != before.ChecksumErrors {
				t.Errorf("TranslationErrors delta = %d, want %d; ChecksumErrors delta %d, want 0 (recent %q)",
					d, wantTrans, after.ChecksumErrors-before.ChecksumErrors, s.RecentErrors())
			}
			if got == xdpTX {
				checkReflected(t, tc.p, out)
			}
		})
	}
	// A reply with a broken checksum is a checksum error.
	bad := pkt{src: "198.18.3.1", dst: "198.18.64.1", proto: udp, sport: 80, dport: 40000, payload: 10}
	f := bad.frame(t)
	f[bad.l4Offset()+6] ^= 0x20
	before := counts(t, s)
	if got, _ := run(t, s, f); got != xdpDrop {
		t.Errorf("corrupted reply: verdict %d, want drop", got)
	}
	after := counts(t, s)
	if after.Replies[0]-before.Replies[0] != 1 || after.ChecksumErrors-before.ChecksumErrors != 1 {
		t.Errorf("corrupted reply: Replies[0] delta %d, ChecksumErrors delta %d, want 1 and 1",
			after.Replies[0]-before.Replies[0], after.ChecksumErrors-before.ChecksumErrors)
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
	reply := pkt{src: "198.18.3.1", dst: "198.18.64.1", proto: udp, sport: 80, dport: 1, payload: 18}.frame(b)
	both := Config{Endpoints: testEndpoints, Reflect: true, ReplySources: testReplySources}
	for _, bc := range []struct {
		name  string
		cfg   Config
		frame []byte // nil: frame
	}{
		{"count", Config{Endpoints: testEndpoints}, nil},
		{"reflect", Config{Endpoints: testEndpoints, Reflect: true}, nil},
		{"sample1000", Config{Endpoints: testEndpoints, SampleEvery: 1000}, nil},
		{"clients", Config{Endpoints: testEndpoints, TrackClients: 131072}, nil},
		{"reflect-with-replies", both, nil},
		{"reply", both, reply},
	} {
		b.Run(bc.name, func(b *testing.B) {
			testnet.RequirePriv(b)
			bc.cfg.Ifname = "unattached"
			s, err := load(bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			f := bc.frame
			if f == nil {
				f = frame
			}
			b.ReportAllocs()
			_, per, err := s.objs.Sink.Benchmark(f, b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(per.Nanoseconds()), "ns/frame")
		})
	}
}
