package sink

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// vethPair is a sender namespace and a sink namespace joined by a veth,
// IPv6 off (no neighbour discovery or MLD frames to muddle the counts),
// TX checksum offload off on the sender so its frames carry complete
// checksums.
type vethPair struct {
	gen, snk *testnet.NS
	v        *testnet.Veth
}

const (
	genAddr     = "198.18.2.1"
	waitCounts  = 5 * time.Second
	pollCounts  = 10 * time.Millisecond
	perEndpoint = 20
)

var vethEndpoints = []netip.AddrPort{
	netip.MustParseAddrPort("198.18.2.10:8080"),
	netip.MustParseAddrPort("198.18.2.11:8080"),
	netip.MustParseAddrPort("198.18.2.12:9000"),
}

func newVethPair(t *testing.T) *vethPair {
	t.Helper()
	testnet.RequirePriv(t)
	p := &vethPair{gen: testnet.NewNS(t), snk: testnet.NewNS(t)}
	for _, ns := range []*testnet.NS{p.gen, p.snk} {
		ns.Sysctl(t, "net.ipv6.conf.all.disable_ipv6=1")
		ns.Sysctl(t, "net.ipv6.conf.default.disable_ipv6=1")
	}
	p.v = testnet.NewVeth(t, p.gen, "gen", p.snk, "snk", testnet.VethOpts{})
	p.gen.AddAddr(t, p.v.AName, genAddr+"/24")
	p.snk.AddAddr(t, p.v.BName, "198.18.2.2/24")
	p.gen.TxOff(t, p.v.AName)
	// Static neighbours: the endpoints are answered by the sink program,
	// not by the sink's stack, so nothing would answer ARP for them.
	for _, a := range []string{"198.18.2.10", "198.18.2.11", "198.18.2.12", "198.18.2.13"} {
		p.gen.MustRun(t, "ip", "neigh", "replace", a, "lladdr", net.HardwareAddr(p.v.BMAC[:]).String(),
			"dev", p.v.AName, "nud", "permanent")
	}
	return p
}

func (p *vethPair) openSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	cfg.Ifname = p.v.BName
	var s *Sink
	if err := p.snk.Do(func() (err error) { s, err = Open(cfg); return err }); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Logf("sink attached in %s mode", s.Mode())
	return s
}

// sendUDP sends count datagrams from a real UDP socket in the sender
// namespace.
func (p *vethPair) sendUDP(t *testing.T, from *net.UDPAddr, to netip.AddrPort, count int) {
	t.Helper()
	err := p.gen.Do(func() error {
		c, err := net.DialUDP("udp4", from, net.UDPAddrFromAddrPort(to))
		if err != nil {
			return err
		}
		defer c.Close()
		for i := range count {
			if _, err := c.Write([]byte(fmt.Sprintf("xdpgate sink test %d", i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send to %v: %v", to, err)
	}
}

// waitFor polls Counts until done reports true or waitCounts passes.
func waitFor(t *testing.T, s *Sink, what string, done func(Counts) bool) Counts {
	t.Helper()
	deadline := time.Now().Add(waitCounts)
	for {
		c := counts(t, s)
		if done(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: counts %+v (recent errors %q)", what, c, s.RecentErrors())
		}
		time.Sleep(pollCounts)
	}
}

func TestPrivVethCountsAndChecks(t *testing.T) {
	p := newVethPair(t)
	s := p.openSink(t, Config{Endpoints: vethEndpoints, SampleEvery: 1,
		ExpectSrc: []netip.Prefix{netip.MustParsePrefix(genAddr + "/32")}})

	for _, ep := range vethEndpoints {
		p.sendUDP(t, nil, ep, perEndpoint)
	}
	const toOther = 5
	p.sendUDP(t, nil, netip.MustParseAddrPort("198.18.2.13:8080"), toOther)

	c := waitFor(t, s, "all datagrams", func(c Counts) bool {
		return c.PerEndpoint[0]+c.PerEndpoint[1]+c.PerEndpoint[2] >= 3*perEndpoint && c.Other >= toOther
	})
	for i, n := range c.PerEndpoint {
		if n != perEndpoint {
			t.Errorf("PerEndpoint[%d] (%v) = %d, want %d", i, vethEndpoints[i], n, perEndpoint)
		}
	}
	if c.Sampled != c.Total-c.NonIP {
		t.Errorf("Sampled = %d, want every IP frame (%d)", c.Sampled, c.Total-c.NonIP)
	}
	if c.ChecksumErrors != 0 || c.SamplesLost != 0 {
		t.Errorf("ChecksumErrors = %d, SamplesLost = %d, want 0 (recent %q)", c.ChecksumErrors, c.SamplesLost, s.RecentErrors())
	}
	// Every Other frame (those to .13, anything else the sender's stack
	// sent) is not to an endpoint; the endpoint frames all pass.
	if c.TranslationErrors != c.Other {
		t.Errorf("TranslationErrors = %d, want Other = %d (recent %q)", c.TranslationErrors, c.Other, s.RecentErrors())
	}

	// A hand-built frame with a broken UDP checksum, sent on a raw
	// AF_PACKET socket (nothing recomputes it on the way).
	bad := pkt{src: genAddr, dst: "198.18.2.10", proto: udp, sport: 4321, dport: 8080, payload: 12}
	f := bad.frame(t)
	copy(f[0:6], p.v.BMAC[:])
	copy(f[6:12], p.v.AMAC[:])
	f[bad.l4Offset()+6] ^= 0x40
	if err := p.gen.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: send only
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, f, 0, &unix.SockaddrLinklayer{Ifindex: p.v.AIndex, Halen: 6, Addr: [8]byte(append(p.v.BMAC[:], 0, 0))})
	}); err != nil {
		t.Fatalf("raw send: %v", err)
	}
	c2 := waitFor(t, s, "the corrupted frame", func(c Counts) bool { return c.PerEndpoint[0] > perEndpoint })
	if c2.PerEndpoint[0] != perEndpoint+1 || c2.ChecksumErrors != 1 {
		t.Errorf("after the corrupted frame PerEndpoint[0] = %d, ChecksumErrors = %d, want %d and 1 (recent %q)",
			c2.PerEndpoint[0], c2.ChecksumErrors, perEndpoint+1, s.RecentErrors())
	}
}

// TestPrivVethReflect sends datagrams from a UDP socket to an endpoint and
// receives them back on the same socket: the sink swapped addresses and
// ports, and the sender's stack accepted the checksums.
func TestPrivVethReflect(t *testing.T) {
	for _, generic := range []bool{false, true} {
		t.Run(fmt.Sprintf("generic=%v", generic), func(t *testing.T) {
			p := newVethPair(t)
			if !generic {
				// Native XDP_TX on a veth hands the frame to the peer's
				// XDP receive ring, which exists only while the peer runs
				// an XDP program (GRO alone was not enough on 6.18).
				p.attachPass(t)
			}
			s := p.openSink(t, Config{Endpoints: vethEndpoints, Reflect: true, SampleEvery: 1, TrackClients: 16, Generic: generic})
			if want := map[bool]string{false: "native", true: "generic"}[generic]; s.Mode() != want {
				t.Errorf("Mode() = %q, want %q", s.Mode(), want)
			}
			const n = 5
			ep := vethEndpoints[0]
			err := p.gen.Do(func() error {
				c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(genAddr), Port: 40000})
				if err != nil {
					return err
				}
				defer c.Close()
				buf := make([]byte, 64)
				for i := range n {
					msg := fmt.Sprintf("reflect %d", i)
					if _, err := c.WriteToUDPAddrPort([]byte(msg), ep); err != nil {
						return err
					}
					if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
						return err
					}
					m, from, err := c.ReadFromUDPAddrPort(buf)
					if err != nil {
						return fmt.Errorf("reply %d: %w", i, err)
					}
					if from != ep || string(buf[:m]) != msg {
						return fmt.Errorf("reply %d = %q from %v, want %q from %v", i, buf[:m], from, msg, ep)
					}
				}
				return nil
			})
			if err != nil {
				c, _ := s.Counts()
				t.Fatalf("%v (sink counts %+v)", err, c)
			}
			c := waitFor(t, s, "counts", func(c Counts) bool { return c.PerEndpoint[0] >= n })
			if c.PerEndpoint[0] != n || c.ChecksumErrors != 0 || c.Clients != 1 || c.ClientsMoved != 0 {
				t.Errorf("counts %+v, want PerEndpoint[0] = %d, no checksum errors, one client not moved", c, n)
			}
		})
	}
}

// attachPass attaches an XDP_PASS program to the sender's end.
func (p *vethPair) attachPass(t *testing.T) {
	t.Helper()
	testnet.AttachXDP(t, p.gen, p.v.AIndex, testnet.Return(testnet.XDPPass))
}
