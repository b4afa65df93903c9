package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// ICMP error budget per queue and destination (pipeline/icmplimit.go: the
// kernel's icmp_ratelimit with its burst of 6). The test only needs the
// figures, not the package.
const (
	icmpDestBurst    = 6
	icmpDestInterval = time.Second
)

// TestPrivICMPReflection: a reflection attempt through the gateway. From
// the client namespace a raw socket (IP_HDRINCL) sends UDP datagrams whose
// source is spoofed to one of two victims (addresses on the client
// namespace's loopback, routed through the gateway like any client): with
// TTL 1 to a frontend (time exceeded) and to a Service without endpoints
// (port unreachable), 1,000 per victim over about 3 s, 667/s in all, under
// the global budget of 1,000/s. A raw ICMP socket in the client namespace
// counts the errors per victim (from the datagram each one quotes). Each
// victim gets at most its own per-destination budget, burst + elapsed
// seconds, although the veths have two queues and the spoofed ports spread
// the flood over both (the budgets are the gateway's, as the kernel's are
// the host's; with one budget per queue a victim got up to twice that), and
// at least the burst: one victim's flood does not use up the other's. A legitimate client asking the Service without
// endpoints during the flood is still refused (ECONNREFUSED: its port
// unreachable arrives).
func TestPrivICMPReflection(t *testing.T) {
	w := newWorld(t, 3, 1, 2)
	w.writeManifest(manifest(
		svc{name: "web4", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(1)},
		svc{name: "empty", family: "IPv4", clusterIP: vipNo},
	))
	w.start()
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	legit, victims := client4(0), []netip.Addr{client4(1), client4(2)}

	errs := listenICMPErrors(t, w)

	fd, err := rawIPSocket(w)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	type probe struct {
		dst netip.Addr
		ttl uint8
	}
	// Per round, for each victim: TTL 1 to the frontend, then a datagram
	// to the Service without endpoints.
	probes := []probe{{vip4, 1}, {vipNo, 64}}
	const rounds, perRound, pause = 100, 5, 30 * time.Millisecond
	var sent int
	var legitErr error
	legitDone := make(chan struct{})
	start := time.Now()
	for r := 0; r < rounds; r++ {
		if r == rounds/2 {
			go func() {
				defer close(legitDone)
				legitErr = w.udpRefused(legit, ap(vipNo, 80))
			}()
		}
		for k := 0; k < perRound; k++ {
			for _, v := range victims {
				for _, p := range probes {
					sport := uint16(20000 + (r*perRound+k)%20000)
					if err := sendUDP4(fd, v, p.dst, sport, 80, p.ttl); err != nil {
						t.Fatalf("send spoofed datagram: %v", err)
					}
					sent++
				}
			}
		}
		time.Sleep(pause)
	}
	elapsed := time.Since(start)
	<-legitDone
	time.Sleep(500 * time.Millisecond) // the last errors in flight
	got := errs.stop()

	// GCRA from a full bucket: burst at once, then one per interval.
	limit := icmpDestBurst + int(elapsed/icmpDestInterval) + 1
	t.Logf("%d spoofed datagrams in %v; per-victim limit %d", sent, elapsed.Round(time.Millisecond), limit)
	for _, v := range victims {
		te, pu := got[icmpKey{v, icmpTimeExceeded}], got[icmpKey{v, icmpPortUnreachable}]
		t.Logf("victim %s: %d time exceeded, %d port unreachable", v, te, pu)
		switch {
		case te+pu > limit:
			t.Errorf("victim %s: %d time exceeded + %d port unreachable, want at most %d (burst %d + 1/s)", v, te, pu, limit, icmpDestBurst)
		case te+pu < icmpDestBurst:
			t.Errorf("victim %s: %d time exceeded + %d port unreachable, want at least its burst of %d", v, te, pu, icmpDestBurst)
		}
		if te == 0 || pu == 0 {
			t.Errorf("victim %s: %d time exceeded, %d port unreachable, want some of each", v, te, pu)
		}
	}
	if legitErr != nil {
		t.Errorf("legitimate client during the flood: %v", legitErr)
	}
	if n := got[icmpKey{legit, icmpPortUnreachable}]; n < 1 {
		t.Errorf("legitimate client: %d port unreachable received, want at least 1", n)
	}
	m := w.metrics()
	// The veths have two queues and the spoofed ports spread the flood
	// over both: the budgets are the gateway's, not one per queue.
	for q := 0; q < 2; q++ {
		if n := metricSum(m, "xdpgate_rx_frames_total{", fmt.Sprintf(`queue="%d"`, q)); n < float64(sent)/10 {
			t.Errorf("queue %d received %v frames of %d: the flood did not use both queues", q, n, sent)
		}
	}
	limited := metricSum(m, "xdpgate_drops_total{", `reason="icmp_rate_limited"`)
	if want := float64(sent - len(victims)*limit); limited < want {
		t.Errorf("icmp_rate_limited drops = %v, want at least %v", limited, want)
	}
	t.Logf("icmp_rate_limited drops: %v", limited)
}

// ICMPv4 errors the test counts.
const (
	icmpTimeExceeded    = 11 << 8 // code 0
	icmpPortUnreachable = 3<<8 | 3
)

// icmpKey is an ICMP error's victim (the source of the datagram it quotes)
// and type<<8|code.
type icmpKey struct {
	victim   netip.Addr
	typeCode int
}

// icmpCounter counts the ICMPv4 errors a raw socket receives.
type icmpCounter struct {
	conn *net.IPConn
	wg   sync.WaitGroup
	mu   sync.Mutex // guards n
	n    map[icmpKey]int
}

// listenICMPErrors opens a raw ICMP socket in the client namespace and
// counts what arrives until stop.
func listenICMPErrors(t *testing.T, w *world) *icmpCounter {
	t.Helper()
	c := &icmpCounter{n: make(map[icmpKey]int)}
	err := w.c.Do(func() (err error) {
		c.conn, err = net.ListenIP("ip4:icmp", &net.IPAddr{IP: net.IPv4zero})
		return err
	})
	if err != nil {
		t.Fatalf("raw ICMP socket: %v", err)
	}
	c.conn.SetReadBuffer(8 << 20)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		buf := make([]byte, 1500)
		for {
			// ListenIP strips the IPv4 header: buf is the ICMP message.
			n, _, err := c.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			m := buf[:n]
			// type, code, checksum, 4 unused bytes, then the quoted
			// datagram's IPv4 header (source at 12).
			if n < 8+20 {
				continue
			}
			k := icmpKey{typeCode: int(m[0])<<8 | int(m[1])}
			k.victim, _ = netip.AddrFromSlice(m[8+12 : 8+16])
			c.mu.Lock()
			c.n[k]++
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.conn.Close() })
	return c
}

// stop closes the socket and returns the counts.
func (c *icmpCounter) stop() map[icmpKey]int {
	c.conn.Close()
	c.wg.Wait()
	return c.n
}

// rawIPSocket opens an IPv4 raw socket with IP_HDRINCL in the client
// namespace (IPPROTO_RAW implies it).
func rawIPSocket(w *world) (int, error) {
	var fd int
	err := w.c.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("raw socket: %w", err)
	}
	return fd, nil
}

// sendUDP4 sends one UDP datagram src:sport -> dst:dport with the given TTL
// through raw socket fd.
func sendUDP4(fd int, src, dst netip.Addr, sport, dport uint16, ttl uint8) error {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Protocol: layers.IPProtocolUDP,
		SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip, udp, gopacket.Payload("who")); err != nil {
		return err
	}
	return unix.Sendto(fd, buf.Bytes(), 0, &unix.SockaddrInet4{Addr: dst.As4()})
}

// udpRefused sends a datagram from local to dst on a connected socket,
// up to three times, and returns nil once the kernel reports ECONNREFUSED
// (an ICMP port unreachable arrived).
func (w *world) udpRefused(local netip.Addr, dst netip.AddrPort) error {
	var conn *net.UDPConn
	err := w.c.Do(func() (err error) {
		conn, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(ap(local, 0)), net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 128)
	for try := 0; try < 3; try++ {
		conn.Write([]byte("who"))
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(buf)
		if errors.Is(err, unix.ECONNREFUSED) {
			return nil
		}
	}
	return fmt.Errorf("udp %s -> %s: %v, want connection refused", local, dst, err)
}

// metricSum returns the sum of the samples of the lines that start with
// prefix and contain every one of labels.
func metricSum(metrics, prefix string, labels ...string) float64 {
	var sum float64
lines:
	for _, l := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		for _, s := range labels {
			if !strings.Contains(l, s) {
				continue lines
			}
		}
		f := strings.Fields(l)
		var v float64
		if _, err := fmt.Sscan(f[len(f)-1], &v); err == nil {
			sum += v
		}
	}
	return sum
}
