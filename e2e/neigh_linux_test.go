package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// TestPrivNewNeighbours: the first packet to a next hop the gateway has never
// resolved is not lost. The gateway's neighbours are not resolved
// beforehand, clients sit directly on the client segment and endpoints
// directly on the backend segment, so every client and every endpoint is a
// neighbour of its own:
//
//	client ns: c0 198.18.1.2 + 300 clients   gateway: 198.19.0.0/16 and 2001:2:0:9::/64 on link g0
//	backend ns: b0 198.18.2.2 + 64 endpoints  gateway: 198.18.3.0/24 and 2001:2:0:3::/64 on link g1
//
// The endpoints' neighbours are resolved when the snapshot is applied
// (checked in the gateway's neighbour table before any traffic to them);
// each client's is unknown until the endpoint's answer reaches the gateway,
// whose dataplane holds it until the kernel has resolved the client. 300
// clients each send one UDP datagram, once: every one is answered; 300
// other clients connect over TCP with a connect timeout shorter than a SYN
// retransmission (1 s): every connection is established.
func TestPrivNewNeighbours(t *testing.T) {
	const nEndpoints, nUDP, nTCP, parallel = 32, 300, 300, 16
	w := newWorldOpts(t, worldOpts{unresolved: true})
	gClient, gBack := w.managed[0], w.managed[1]
	for _, r := range [][]string{
		{"198.19.0.0/16", gClient}, {"2001:2:0:9::/64", gClient},
		{"198.18.3.0/24", gBack}, {"2001:2:0:3::/64", gBack},
	} {
		w.g.MustRun(t, "ip", "route", "replace", r[0], "dev", r[1])
	}
	// Client i is IPv4 for even i, IPv6 for odd i; the last one checks that
	// the service is up.
	clientAddr := func(i int) netip.Addr {
		if i%2 == 0 {
			return client4(i)
		}
		return client6(i)
	}
	var clients, eps []netip.Addr
	for i := 0; i <= nUDP+nTCP; i++ {
		clients = append(clients, clientAddr(i))
	}
	eps = append(endpoints4(nEndpoints), endpoints6(nEndpoints)...)
	addrsOn(t, w.c, w.cDev, clients)
	addrsOn(t, w.b, vethOf(t, w.b), eps)
	for _, e := range eps {
		identityServers(t, w.b, e)
	}
	w.writeManifest(manifest(
		svc{name: "n4", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(nEndpoints)},
		svc{name: "n6", family: "IPv6", clusterIP: vip6, endpoints: endpoints6(nEndpoints)},
	))
	w.start()
	w.waitTCP(clients[nUDP+nTCP], ap(vip4, 80), 10*time.Second)

	// Every endpoint was resolved with the snapshot, before traffic.
	var unresolved []netip.Addr
	err := within(t.Context(), 3*time.Second, func() error {
		known := gatewayNeighbours(t, w.g, gBack)
		unresolved = unresolved[:0]
		for _, e := range eps {
			if !known[e] {
				unresolved = append(unresolved, e)
			}
		}
		if len(unresolved) > 0 {
			return fmt.Errorf("%d endpoints unresolved", len(unresolved))
		}
		return nil
	})
	if err != nil {
		t.Errorf("gateway neighbours on %s after the snapshot: %v: %v", gBack, err, unresolved)
	}
	if known := gatewayNeighbours(t, w.g, gClient); len(known) > 8 {
		t.Fatalf("gateway already knows %d neighbours on the client side, want the clients new", len(known))
	}

	// Linux sends no neighbour solicitation while the interface's
	// link-local address is tentative (ndisc_send_ns in net/ipv6/ndisc.c):
	// its first probe would wait for a retransmission (1 s).
	if err := within(t.Context(), 5*time.Second, func() error {
		if out, err := w.g.Run("ip", "-6", "addr", "show", "tentative"); err != nil || out != "" {
			return fmt.Errorf("tentative addresses in the gateway: %q, %v", out, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	udpFailed, udpSlowest := forEach(nUDP, parallel, func(i int) error {
		vip := vip4
		if i%2 == 1 {
			vip = vip6
		}
		return udpOnce(w.c, clientAddr(i), ap(vip, 80), 2500*time.Millisecond)
	})
	udpTook := time.Since(start)
	start = time.Now()
	tcpFailed, tcpSlowest := forEach(nTCP, parallel, func(i int) error {
		i += nUDP
		vip := vip4
		if i%2 == 1 {
			vip = vip6
		}
		_, err := tcpQueryIn(w.c, clientAddr(i), ap(vip, 80), 900*time.Millisecond)
		return err
	})
	tcpTook := time.Since(start)
	t.Logf("%d UDP datagrams in %v (slowest answer %v), %d TCP connects in %v (slowest %v)",
		nUDP, udpTook, udpSlowest, nTCP, tcpTook, tcpSlowest)
	for _, f := range []struct {
		what   string
		failed []string
	}{{"UDP datagrams sent once", udpFailed}, {"TCP connects (0.9 s timeout)", tcpFailed}} {
		if len(f.failed) > 0 {
			t.Errorf("%s: %d of %d failed, want none; first: %s", f.what, len(f.failed), nUDP, strings.Join(f.failed[:min(3, len(f.failed))], "; "))
		}
	}

	m := w.metrics()
	held, released := metricValue(m, "xdpgate_neigh_held_frames_total"), metricValue(m, "xdpgate_neigh_released_frames_total")
	t.Logf("frames held %v, released %v", held, released)
	if held < nUDP || released != held {
		t.Errorf("frames held %v, released %v: want at least one per UDP client (%d), all released", held, released, nUDP)
	}
	for _, r := range []string{"neigh_unresolved", "neigh_hold_full", "neigh_failed"} {
		if n := metricValue(grepLines(m, `reason="`+r+`"`), "xdpgate_drops_total{"); n > 0 {
			t.Errorf("%v drops by reason %s, want none:\n%s", n, r, grepLines(m, "xdpgate_drops_total"))
		}
	}
}

// forEach runs fn(0..n-1), parallel at a time, and returns the errors and
// the longest call.
func forEach(n, parallel int, fn func(i int) error) (failed []string, slowest time.Duration) {
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range next {
				t0 := time.Now()
				err := fn(i)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					failed = append(failed, fmt.Sprintf("%d: %v", i, err))
				}
				slowest = max(slowest, d)
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return failed, slowest
}

// udpOnce sends one datagram from local to dst in ns, never again, and
// waits up to timeout for the identity answer.
func udpOnce(ns *testnet.NS, local netip.Addr, dst netip.AddrPort, timeout time.Duration) error {
	var pc net.PacketConn
	if err := ns.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(local, 0).String())
		return err
	}); err != nil {
		return err
	}
	defer pc.Close()
	if _, err := pc.WriteTo([]byte("who"), net.UDPAddrFromAddrPort(dst)); err != nil {
		return err
	}
	pc.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 256)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		return fmt.Errorf("no answer: %w", err)
	}
	r, err := parseReply(string(buf[:n]))
	if err != nil {
		return err
	}
	if r.peer != local {
		return fmt.Errorf("endpoint %s saw client %s, want %s", r.endpoint, r.peer, local)
	}
	return nil
}

// addrsOn adds host addresses (/32, /128 without DAD) to dev in ns.
func addrsOn(t *testing.T, ns *testnet.NS, dev string, addrs []netip.Addr) {
	t.Helper()
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if !testnet.InTestRange(a) {
				return fmt.Errorf("%v: %w", a, testnet.ErrOutsideTestRange)
			}
			na := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}}
			if a.Is6() {
				na.Flags = syscall.IFA_F_NODAD
			}
			if err := netlink.AddrAdd(l, na); err != nil {
				return fmt.Errorf("add %v: %w", a, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("addresses on %s in %s: %v", dev, ns.Name, err)
	}
}

// vethOf returns the name of the only veth in ns.
func vethOf(t *testing.T, ns *testnet.NS) string {
	t.Helper()
	var name string
	err := ns.Do(func() error {
		ls, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range ls {
			if l.Type() == "veth" {
				name = l.Attrs().Name
			}
		}
		return nil
	})
	if err != nil || name == "" {
		t.Fatalf("veth in %s: %q, %v", ns.Name, name, err)
	}
	return name
}

// gatewayNeighbours returns the addresses the kernel of ns has a MAC for on
// dev.
func gatewayNeighbours(t *testing.T, ns *testnet.NS, dev string) map[netip.Addr]bool {
	t.Helper()
	known := map[netip.Addr]bool{}
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		ns, err := netlink.NeighList(l.Attrs().Index, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, n := range ns {
			a, ok := netip.AddrFromSlice(n.IP)
			if ok && len(n.HardwareAddr) == 6 && n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED|netlink.NUD_NONE) == 0 {
				known[a.Unmap()] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("neighbours of %s: %v", dev, err)
	}
	return known
}
