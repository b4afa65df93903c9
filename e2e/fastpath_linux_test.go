package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// fastPathFromEnv reports whether the suite runs with the XDP fast path on
// (XDPGATE_E2E_FAST_PATH=xdp): world.start then passes --fast-path xdp and
// attaches an XDP program to the gateway's veth peers.
func fastPathFromEnv() bool { return os.Getenv("XDPGATE_E2E_FAST_PATH") == "xdp" }

// peerDev is a device in a namespace.
type peerDev struct {
	ns  *testnet.NS
	dev string
}

// peerXDP attaches an XDP program that passes everything to the veth ends
// facing the gateway. A veth delivers XDP frames (the fast path's XDP_TX
// and redirects) only into a peer with NAPI, which an XDP program gives
// it, as a NIC driver would: without it xdpgate leaves every flow in
// userspace (dataplane.FastPathMaps, fastCapable). The programs go with
// the test's namespaces.
func (w *world) peerXDP() {
	t := w.t
	t.Helper()
	if w.peerXDPDone {
		return
	}
	w.peerXDPDone = true
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}}) // XDP_PASS
	if err != nil {
		t.Fatalf("peer XDP program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	for _, p := range w.peers {
		var l link.Link
		err := p.ns.Do(func() error {
			i, err := net.InterfaceByName(p.dev)
			if err != nil {
				return err
			}
			l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: i.Index})
			return err
		})
		if err != nil {
			t.Fatalf("attach XDP to %s in %s: %v", p.dev, p.ns.Name, err)
		}
		t.Cleanup(func() { l.Close() })
	}
}

// fastMetrics are the counters TestPrivFastPath watches.
type fastMetrics struct {
	flows, xdp, pipeline, removals float64
}

func (w *world) fastMetrics() fastMetrics {
	m := w.metrics()
	return fastMetrics{
		flows:    metricValue(m, "xdpgate_fast_path_flows "),
		xdp:      metricValue(m, "xdpgate_fast_path_packets_total{"),
		pipeline: metricValue(m, `xdpgate_pipeline_packets_total{event="established"`) + metricValue(m, `xdpgate_pipeline_packets_total{event="reply"`),
		removals: metricValue(m, `xdpgate_fast_path_flow_events_total{event="removal"}`),
	}
}

// waitFastFlows waits until the fast path holds n flows.
func (w *world) waitFastFlows(n float64) {
	w.t.Helper()
	var last fastMetrics
	err := within(context.Background(), 10*time.Second, func() error {
		if last = w.fastMetrics(); last.flows != n {
			return fmt.Errorf("%v fast path flows", last.flows)
		}
		return nil
	})
	if err != nil {
		w.t.Fatalf("want %v fast path flows: %v (%+v)", n, err, last)
	}
}

// exchange sends n lines on c and reads n answers, each from endpoint.
func exchange(t *testing.T, c net.Conn, n int, endpoint netip.Addr) {
	t.Helper()
	r := bufio.NewReader(c)
	for i := 0; i < n; i++ {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "message %d\n", i); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		var line string
		var err error
		if _, ok := c.(*net.UDPConn); ok {
			buf := make([]byte, 512)
			var k int
			k, err = c.Read(buf)
			line = string(buf[:k])
		} else {
			line, err = r.ReadString('\n')
		}
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if want := fmt.Sprintf("%s message %d\n", endpoint, i); line != want {
			t.Fatalf("answer %d = %q, want %q", i, line, want)
		}
	}
}

// checkOffloaded exchanges n round trips on c, an installed flow, and
// checks that XDP forwarded every packet (two per round trip at least)
// and the pipeline none.
func (w *world) checkOffloaded(t *testing.T, what string, c net.Conn, n int, ep netip.Addr) {
	t.Helper()
	before := w.fastMetrics()
	exchange(t, c, n, ep)
	after := w.fastMetrics()
	t.Logf("%s, %d round trips: XDP forwarded %v packets, the pipeline saw %v", what, n, after.xdp-before.xdp, after.pipeline-before.pipeline)
	if d := after.pipeline - before.pipeline; d != 0 {
		t.Errorf("%s: the pipeline saw %v packets of an installed flow, want 0", what, d)
	}
	if d := after.xdp - before.xdp; d < float64(2*n) {
		t.Errorf("%s: XDP forwarded %v packets for %d round trips, want >= %d", what, d, n, 2*n)
	}
}

// TestPrivFastPath runs established TCP and UDP flows, IPv4 and IPv6,
// through a gateway with --fast-path xdp and checks that XDP forwards them
// (its counters grow by every packet, the userspace pipeline's do not grow
// at all), and that a FIN, a RST and the removal of a UDP flow's endpoint
// take them out of the fast path (the flow's next packets go through the
// pipeline again, to a live endpoint).
func TestPrivFastPath(t *testing.T) {
	w := newWorld(t, 1, 2, 1)
	w.peerXDP()
	for i := 0; i < 2; i++ {
		testnet.Servers(t, w.b, netip.AddrPortFrom(endpoint4(i), 8080+1000), testnet.Tagged)
		testnet.Servers(t, w.b, netip.AddrPortFrom(endpoint6(i), 8080+1000), testnet.Tagged)
	}
	svcs := func(eps4, eps6 []netip.Addr) string {
		m := manifest(svc{name: "fp4", family: "IPv4", clusterIP: vip4, endpoints: eps4},
			svc{name: "fp6", family: "IPv6", clusterIP: vip6, endpoints: eps6})
		return strings.ReplaceAll(m, "8080", "9080")
	}
	w.writeManifest(svcs(endpoints4(2), endpoints6(2)))
	w.start("--fast-path", "xdp")
	w.waitMetric("xdpgate_fast_path_capacity 131072", 10*time.Second)

	for _, fam := range []struct {
		name        string
		client, vip netip.Addr
	}{
		{name: "IPv4", client: client4(0), vip: vip4},
		{name: "IPv6", client: client6(0), vip: vip6},
	} {
		dst := netip.AddrPortFrom(fam.vip, 80)
		dial := func(network string) net.Conn {
			t.Helper()
			var c net.Conn
			err := within(context.Background(), 10*time.Second, func() error {
				return w.c.Do(func() (err error) {
					d := net.Dialer{LocalAddr: localAddr(network, fam.client), Timeout: 2 * time.Second}
					c, err = d.Dial(network, dst.String())
					return err
				})
			})
			if err != nil {
				t.Fatalf("%s %s: dial %s: %v", fam.name, network, dst, err)
			}
			return c
		}
		endpointOf := func(c net.Conn) netip.Addr {
			t.Helper()
			fmt.Fprintf(c, "who\n")
			buf := make([]byte, 512)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("%s: first answer: %v", fam.name, err)
			}
			a, _, _ := strings.Cut(string(buf[:n]), " ")
			return netip.MustParseAddr(a)
		}

		// (No subtests: the world's helpers fail the test that built it.)
		{
			t.Logf("%s TCP", fam.name)
			base := w.fastMetrics()
			c := dial("tcp")
			ep := endpointOf(c)
			w.waitFastFlows(base.flows + 1)
			w.checkOffloaded(t, fam.name+" TCP", c, 300, ep)
			c.Close() // FIN: the flow leaves the fast path
			w.waitFastFlows(base.flows)

			c = dial("tcp") // RST
			ep = endpointOf(c)
			w.waitFastFlows(base.flows + 1)
			exchange(t, c, 20, ep)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			w.waitFastFlows(base.flows)
			if m := w.fastMetrics(); m.removals < base.removals+2 {
				t.Errorf("removals %v -> %v, want +2 (FIN, RST)", base.removals, m.removals)
			}
		}

		{
			t.Logf("%s UDP", fam.name)
			base := w.fastMetrics()
			c := dial("udp")
			ep := endpointOf(c)
			exchange(t, c, 1, ep) // a datagram after the reply offers the flow
			w.waitFastFlows(base.flows + 1)
			w.checkOffloaded(t, fam.name+" UDP", c, 200, ep)
			// The endpoint leaves: its UDP flows go (kube-proxy's
			// reconcile), from XDP too, and the client's next datagram
			// reaches the other endpoint.
			var keep4, keep6 []netip.Addr
			for _, e := range endpoints4(2) {
				if e != ep {
					keep4 = append(keep4, e)
				}
			}
			for _, e := range endpoints6(2) {
				if e != ep {
					keep6 = append(keep6, e)
				}
			}
			w.writeManifest(svcs(keep4, keep6))
			w.waitFastFlows(base.flows)
			var other netip.Addr
			err := within(context.Background(), 10*time.Second, func() error {
				if other = endpointOf(c); other == ep {
					return errors.New("still the removed endpoint")
				}
				return nil
			})
			if err != nil {
				t.Fatalf("after the endpoint left: %v", err)
			}
			c.Close()
			w.writeManifest(svcs(endpoints4(2), endpoints6(2)))
		}
	}
}

// localAddr is addr as network's local address.
func localAddr(network string, a netip.Addr) net.Addr {
	if network == "udp" {
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
}

// TestPrivFastPathIneligibleDevice: with --fast-path xdp but veth peers
// that cannot receive XDP frames (no XDP program: no NAPI), xdpgate
// installs nothing, counts the flows as ineligible and forwards them in
// userspace: no traffic is lost to a redirect the kernel would drop.
func TestPrivFastPathIneligibleDevice(t *testing.T) {
	w := newWorld(t, 1, 1, 1)
	w.writeManifest(manifest(svc{name: "fp4", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(1)}))
	w.start("--fast-path", "xdp")
	w.waitMetric("xdpgate_fast_path_capacity 131072", 10*time.Second)
	dst := netip.AddrPortFrom(vip4, 80)
	w.waitTCP(client4(0), dst, 10*time.Second)
	for i := 0; i < 5; i++ {
		if r, err := w.tcpQuery(client4(0), dst); err != nil || r.endpoint != endpoint4(0) {
			t.Fatalf("query %d: %v, %v", i, r, err)
		}
	}
	m := w.metrics()
	if v := metricValue(m, `xdpgate_fast_path_flow_events_total{event="ineligible"}`); v < 1 {
		t.Errorf("ineligible flows = %v, want >= 1", v)
	}
	if v := metricValue(m, "xdpgate_fast_path_packets_total{"); v != 0 {
		t.Errorf("XDP forwarded %v packets to devices that cannot receive them", v)
	}
}
