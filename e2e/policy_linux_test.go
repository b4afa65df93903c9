package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestPrivTrafficPolicy: externalTrafficPolicy Local keeps the client
// address and uses only this node's endpoints; without a local endpoint
// the traffic is dropped (not rejected); the healthCheckNodePort answers
// 200 and 503 accordingly. (Cluster, masqueraded to the gateway address,
// is TestPrivFrontends.)
func TestPrivTrafficPolicy(t *testing.T) {
	const nClients = 40
	w := newWorld(t, nClients, 3, 1)
	lbRemote := netip.MustParseAddr("198.18.200.2")
	other := func(i int) string {
		if i == 0 {
			return "gw"
		}
		return "other-node"
	}
	w.writeManifest(manifest(
		svc{name: "local", family: "IPv4", clusterIP: vip4, lb: lb4, nodePort: 30080, etpLocal: true, healthCheckNP: 32000,
			endpoints: endpoints4(3), nodeOf: other, withoutUDPPort: true},
		svc{name: "remote", family: "IPv4", clusterIP: netip.MustParseAddr("198.18.100.2"), lb: lbRemote, nodePort: 30081,
			etpLocal: true, healthCheckNP: 32001, endpoints: endpoints4(3)[1:], nodeOf: func(int) string { return "other-node" },
			withoutUDPPort: true},
	))
	w.start()
	w.waitTCP(client4(0), ap(lb4, 80), 20*time.Second)

	t.Run("local endpoint only, client address kept", func(t *testing.T) {
		for i := 0; i < nClients; i++ {
			for _, dst := range []netip.AddrPort{ap(lb4, 80), ap(gwClientSide4, 30080)} {
				r, err := w.tcpQuery(client4(i), dst)
				if err != nil {
					t.Fatalf("client %s -> %s: %v", client4(i), dst, err)
				}
				if r.endpoint != endpoint4(0) || r.peer != client4(i) {
					t.Errorf("client %s -> %s: endpoint %s saw %s, want the local %s seeing the client", client4(i), dst, r.endpoint, r.peer, endpoint4(0))
				}
			}
		}
	})
	t.Run("no local endpoint: dropped", func(t *testing.T) {
		_, err := w.tcpQueryTimeout(client4(1), ap(lbRemote, 80), time.Second)
		var ne net.Error
		if err == nil || strings.Contains(err.Error(), "refused") || !(errorAs(err, &ne) && ne.Timeout()) {
			t.Errorf("connect to a Local service without local endpoints = %v, want a timeout (drop, not reject)", err)
		}
	})
	t.Run("health check node ports", func(t *testing.T) {
		for _, tc := range []struct {
			port int
			want string
		}{{32000, "200"}, {32001, "503"}} {
			out := w.httpGet(fmt.Sprintf("http://127.0.0.1:%d/healthz", tc.port))
			if status := strings.Fields(out); len(status) < 2 || status[1] != tc.want {
				t.Errorf("health check port %d: %.300s, want status %s", tc.port, out, tc.want)
			}
			if tc.want == "200" && !strings.Contains(out, `"localEndpoints": 1`) {
				t.Errorf("health check port %d body: %.300s, want localEndpoints 1", tc.port, out)
			}
		}
	})
	m := w.metrics()
	if v := metricValue(m, `xdpgate_drops_total{interface=`); v == 0 {
		t.Errorf("no drops counted for the dropped connection attempts")
	}
}

// TestPrivEndpointRemoved: with ClientIP affinity, an endpoint leaving the
// manifest moves its clients on their next connection; other clients keep
// their endpoint, and every open connection keeps working (TCP flows are
// kept, as kube-proxy never flushes TCP conntrack entries).
func TestPrivEndpointRemoved(t *testing.T) {
	const nClients = 60
	w := newWorld(t, nClients, 3, 1)
	s := svc{name: "sticky", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(3), affinity: 600, withoutUDPPort: true}
	w.writeManifest(manifest(s))
	w.start()
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	first := make([]netip.Addr, nClients)
	conns := make([]net.Conn, nClients)
	for i := 0; i < nClients; i++ {
		c, r, err := w.tcpOpen(client4(i), ap(vip4, 80))
		if err != nil {
			t.Fatalf("client %s: %v", client4(i), err)
		}
		conns[i], first[i] = c, r.endpoint
		defer c.Close()
	}
	gone := endpoint4(2)
	s.endpoints = endpoints4(2)
	w.writeManifest(manifest(s))
	w.waitMetric("xdpgate_snapshot_endpoints 2", 10*time.Second)
	moved := 0
	for i := 0; i < nClients; i++ {
		if err := echo(conns[i]); err != nil {
			t.Errorf("client %s: open connection to %s broke: %v", client4(i), first[i], err)
		}
		r, err := w.tcpQuery(client4(i), ap(vip4, 80))
		if err != nil {
			t.Fatalf("client %s new connection: %v", client4(i), err)
		}
		switch {
		case first[i] == gone:
			moved++
			if r.endpoint == gone {
				t.Errorf("client %s: new connection still on the removed %s", client4(i), gone)
			}
		case r.endpoint != first[i]:
			t.Errorf("client %s: moved from %s to %s although its endpoint stayed", client4(i), first[i], r.endpoint)
		}
	}
	if moved == 0 {
		t.Errorf("no client was on the removed endpoint: test proves nothing")
	}
}

// echo writes a line on an identity connection and reads it back.
func echo(c net.Conn) error {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	n := 0
	for n < len(buf) {
		k, err := c.Read(buf[n:])
		if err != nil {
			return err
		}
		n += k
	}
	if string(buf) != "ping\n" {
		return fmt.Errorf("echo = %q", buf)
	}
	return nil
}

// TestPrivUDPEndpointRemoved: UDP clients sending from a fixed source port
// (one flow each, kept alive by their traffic) reach another endpoint as
// soon as theirs leaves: the UDP flows to it are deleted (kube-proxy's UDP
// conntrack cleanup, kubernetes/kubernetes pkg/proxy/conntrack/cleanup.go,
// checked upstream by test/e2e/network/conntrack.go), clients of the
// other endpoints keep theirs.
func TestPrivUDPEndpointRemoved(t *testing.T) {
	const nClients = 40
	w := newWorld(t, nClients, 3, 1)
	s := svc{name: "dns", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(3)}
	w.writeManifest(manifest(s))
	w.start()
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	first := make([]netip.Addr, nClients)
	for i := range first {
		r, err := w.udpQueryFrom(ap(client4(i), 5353), ap(vip4, 80))
		if err != nil {
			t.Fatalf("client %s: %v", client4(i), err)
		}
		first[i] = r.endpoint
	}
	gone := endpoint4(2)
	s.endpoints = endpoints4(2)
	w.writeManifest(manifest(s))
	w.waitMetric("xdpgate_snapshot_endpoints 4", 10*time.Second) // 2 endpoints x (TCP, UDP)
	moved := 0
	for i := range first {
		r, err := w.udpQueryFrom(ap(client4(i), 5353), ap(vip4, 80))
		if err != nil {
			t.Fatalf("client %s after the change: %v", client4(i), err)
		}
		switch {
		case first[i] == gone:
			moved++
			if r.endpoint == gone {
				t.Errorf("client %s: still sent to the removed %s", client4(i), gone)
			}
		case r.endpoint != first[i]:
			t.Errorf("client %s: moved from %s to %s although its endpoint stayed", client4(i), first[i], r.endpoint)
		}
	}
	if moved == 0 {
		t.Errorf("no client was on the removed endpoint: test proves nothing")
	}
}
