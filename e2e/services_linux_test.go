package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Frontends of the test services.
var (
	vip4  = netip.MustParseAddr("198.18.100.1")
	lb4   = netip.MustParseAddr("198.18.200.1")
	ext4  = netip.MustParseAddr("198.18.201.1")
	vip6  = netip.MustParseAddr("2001:2:0:100::1")
	lb6   = netip.MustParseAddr("2001:2:0:200::1")
	ext6  = netip.MustParseAddr("2001:2:0:201::1")
	vipNo = netip.MustParseAddr("198.18.100.9") // service without endpoints
)

// svc describes one test Service with TCP and UDP port 80 -> 8080.
type svc struct {
	name           string
	family         string // IPv4 or IPv6
	clusterIP, lb  netip.Addr
	externalIP     netip.Addr
	nodePort       int
	endpoints      []netip.Addr
	nodeOf         func(i int) string // endpoint i's nodeName (default "gw")
	affinity       int                // ClientIP timeout seconds, 0 = None
	etpLocal       bool
	healthCheckNP  int
	withoutUDPPort bool
}

func (s svc) yaml() string {
	var b strings.Builder
	typ := "ClusterIP"
	if s.lb.IsValid() {
		typ = "LoadBalancer"
	} else if s.nodePort != 0 {
		typ = "NodePort"
	}
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: e2e\nspec:\n  type: %s\n", s.name, typ)
	fmt.Fprintf(&b, "  clusterIP: %s\n  clusterIPs: [%s]\n  ipFamilies: [%s]\n", s.clusterIP, s.clusterIP, s.family)
	if s.externalIP.IsValid() {
		fmt.Fprintf(&b, "  externalIPs: [%s]\n", s.externalIP)
	}
	if s.affinity > 0 {
		fmt.Fprintf(&b, "  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: %d\n", s.affinity)
	}
	if s.etpLocal {
		fmt.Fprintf(&b, "  externalTrafficPolicy: Local\n")
		if s.healthCheckNP != 0 {
			fmt.Fprintf(&b, "  healthCheckNodePort: %d\n", s.healthCheckNP)
		}
	}
	b.WriteString("  ports:\n")
	protos := []string{"TCP", "UDP"}
	if s.withoutUDPPort {
		protos = protos[:1]
	}
	for _, p := range protos {
		fmt.Fprintf(&b, "  - name: %s\n    port: 80\n    protocol: %s\n    targetPort: 8080\n", strings.ToLower(p), p)
		if s.nodePort != 0 {
			fmt.Fprintf(&b, "    nodePort: %d\n", s.nodePort)
		}
	}
	if s.lb.IsValid() {
		fmt.Fprintf(&b, "status:\n  loadBalancer:\n    ingress:\n    - ip: %s\n", s.lb)
	}
	fmt.Fprintf(&b, "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: %s-1\n  namespace: e2e\n  labels:\n    kubernetes.io/service-name: %s\naddressType: %s\nports:\n", s.name, s.name, s.family)
	for _, p := range protos {
		fmt.Fprintf(&b, "- name: %s\n  port: 8080\n  protocol: %s\n", strings.ToLower(p), p)
	}
	if len(s.endpoints) == 0 {
		b.WriteString("endpoints: []\n")
	} else {
		b.WriteString("endpoints:\n")
	}
	for i, e := range s.endpoints {
		node := "gw"
		if s.nodeOf != nil {
			node = s.nodeOf(i)
		}
		fmt.Fprintf(&b, "- addresses: [%s]\n  nodeName: %s\n  conditions: {ready: true, serving: true, terminating: false}\n", e, node)
	}
	return b.String()
}

func manifest(svcs ...svc) string {
	parts := make([]string, len(svcs))
	for i, s := range svcs {
		parts[i] = s.yaml()
	}
	return strings.Join(parts, "---\n")
}

func endpoints4(n int) (out []netip.Addr) {
	for i := 0; i < n; i++ {
		out = append(out, endpoint4(i))
	}
	return out
}

func endpoints6(n int) (out []netip.Addr) {
	for i := 0; i < n; i++ {
		out = append(out, endpoint6(i))
	}
	return out
}

func ap(a netip.Addr, port int) netip.AddrPort { return netip.AddrPortFrom(a, uint16(port)) }

// TestPrivFrontends: TCP and UDP to a ClusterIP, a LoadBalancer IP, an
// externalIP and a NodePort, IPv4 and IPv6. The answer comes from the
// frontend address; externally reached services (externalTrafficPolicy
// Cluster) are masqueraded to the gateway's address, ClusterIP traffic is
// not (no local-traffic detector configured); many client addresses spread
// over all endpoints.
func TestPrivFrontends(t *testing.T) {
	testFrontends(t, newWorld(t, 60, 3, 1))
}

// TestPrivOneArm: the same through a gateway with one interface: clients
// and endpoints on one segment, frames leave where they came in.
func TestPrivOneArm(t *testing.T) {
	testFrontends(t, newWorldOpts(t, worldOpts{clients: 60, endpoints: 3, oneArm: true}))
}

// TestPrivMultiQueue: the same with two queues per interface (one socket
// and poller each).
func TestPrivMultiQueue(t *testing.T) {
	w := newWorldOpts(t, worldOpts{clients: 60, endpoints: 3, queues: 2})
	testFrontends(t, w)
	if m := w.metrics(); !strings.Contains(m, `queue="1"`) {
		t.Errorf("no second queue in the metrics:\n%.2000s", m)
	}
}

func testFrontends(t *testing.T, w *world) {
	nClients := w.nClients
	w.writeManifest(manifest(
		svc{name: "web4", family: "IPv4", clusterIP: vip4, lb: lb4, externalIP: ext4, nodePort: 30080, endpoints: endpoints4(3)},
		svc{name: "web6", family: "IPv6", clusterIP: vip6, lb: lb6, externalIP: ext6, nodePort: 30081, endpoints: endpoints6(3)},
	))
	w.start()
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	w.waitTCP(client6(0), ap(vip6, 80), 10*time.Second)

	type frontend struct {
		name   string
		dst    netip.AddrPort
		client netip.Addr
		peer   netip.Addr // what the endpoint sees
	}
	fes := []frontend{
		{"ClusterIP v4", ap(vip4, 80), client4(1), client4(1)},
		{"LB IP v4", ap(lb4, 80), client4(1), w.gwBack4},
		{"externalIP v4", ap(ext4, 80), client4(1), w.gwBack4},
		{"NodePort v4", ap(gwClientSide4, 30080), client4(1), w.gwBack4},
		{"ClusterIP v6", ap(vip6, 80), client6(1), client6(1)},
		{"LB IP v6", ap(lb6, 80), client6(1), w.gwBack6},
		{"externalIP v6", ap(ext6, 80), client6(1), w.gwBack6},
		{"NodePort v6", ap(gwClientSide6, 30081), client6(1), w.gwBack6},
	}
	for _, fe := range fes {
		t.Run(fe.name+"/TCP", func(t *testing.T) {
			r, err := w.tcpQuery(fe.client, fe.dst)
			if err != nil {
				t.Fatalf("TCP %s -> %s: %v", fe.client, fe.dst, err)
			}
			if r.peer != fe.peer {
				t.Errorf("endpoint %s saw peer %s, want %s", r.endpoint, r.peer, fe.peer)
			}
		})
		t.Run(fe.name+"/UDP", func(t *testing.T) {
			r, err := w.udpQuery(fe.client, fe.dst)
			if err != nil {
				t.Fatalf("UDP %s -> %s: %v", fe.client, fe.dst, err)
			}
			if r.from != fe.dst {
				t.Errorf("answer from %s, want the frontend %s", r.from, fe.dst)
			}
			if r.peer != fe.peer {
				t.Errorf("endpoint %s saw peer %s, want %s", r.endpoint, r.peer, fe.peer)
			}
		})
	}
	t.Run("spread", func(t *testing.T) {
		for _, fam := range []struct {
			name   string
			dst    netip.AddrPort
			client func(int) netip.Addr
			eps    []netip.Addr
		}{{"v4", ap(vip4, 80), client4, endpoints4(3)}, {"v6", ap(vip6, 80), client6, endpoints6(3)}} {
			seen := map[netip.Addr]int{}
			for i := 0; i < nClients; i++ {
				r, err := w.tcpQuery(fam.client(i), fam.dst)
				if err != nil {
					t.Fatalf("%s client %s: %v", fam.name, fam.client(i), err)
				}
				seen[r.endpoint]++
			}
			for _, e := range fam.eps {
				if seen[e] < nClients/10 {
					t.Errorf("%s: endpoint %s served %d of %d clients (%v), want at least %d", fam.name, e, seen[e], nClients, seen, nClients/10)
				}
			}
		}
	})
	if m := w.metrics(); !strings.Contains(m, `xdpgate_pipeline_packets_total{event="new_flow"`) {
		t.Errorf("metrics lack the pipeline counters:\n%.2000s", m)
	}
}

// TestPrivAffinity: hundreds of clients, two connections each, land on the
// same endpoint twice. With a 2 s timeout, affinity outlives a Maglev
// change (a new endpoint) while it is fresh, and clients are re-balanced
// onto the new endpoint once it expired.
func TestPrivAffinity(t *testing.T) {
	const nClients = 200
	w := newWorld(t, nClients, 4, 1)
	s := svc{name: "sticky", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(3), affinity: 2, withoutUDPPort: true}
	w.writeManifest(manifest(s))
	w.start()
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	first := make([]netip.Addr, nClients)
	for i := 0; i < nClients; i++ {
		for conn := 0; conn < 2; conn++ {
			r, err := w.tcpQuery(client4(i), ap(vip4, 80))
			if err != nil {
				t.Fatalf("client %s connection %d: %v", client4(i), conn, err)
			}
			if conn == 0 {
				first[i] = r.endpoint
			} else if r.endpoint != first[i] {
				t.Errorf("client %s: second connection on %s, first on %s", client4(i), r.endpoint, first[i])
			}
		}
	}
	if t.Failed() {
		return
	}

	// Add a fourth endpoint; the affinity (timeout 2 s, refreshed by each
	// new connection) keeps every client where it was while fresh.
	s.endpoints = endpoints4(4)
	w.writeManifest(manifest(s))
	newEP := endpoint4(3)
	w.waitMetric("xdpgate_snapshot_endpoints 4", 10*time.Second)
	// Keep 40 clients warm for 3 s, longer than the timeout: every new
	// connection restarts the timer, so they stay put although Maglev
	// now sends about a quarter of all clients to the new endpoint.
	deadline := time.Now().Add(3 * time.Second)
	moved := 0
	for time.Now().Before(deadline) {
		for i := 0; i < 40; i++ {
			r, err := w.tcpQuery(client4(i), ap(vip4, 80))
			if err != nil {
				t.Fatalf("client %s: %v", client4(i), err)
			}
			if r.endpoint != first[i] {
				moved++
			}
		}
	}
	if moved != 0 {
		t.Errorf("%d connections of pinned clients moved while their affinity was fresh", moved)
	}
	// Let every entry expire: the next connection is a fresh choice over 4
	// endpoints (issue 14), so about a quarter of the clients go to the new
	// one and about half move between the old ones.
	time.Sleep(2500 * time.Millisecond)
	toNew, toOther := 0, 0
	for i := 0; i < nClients; i++ {
		r, err := w.tcpQuery(client4(i), ap(vip4, 80))
		if err != nil {
			t.Fatalf("client %s: %v", client4(i), err)
		}
		switch {
		case r.endpoint == first[i]:
		case r.endpoint == newEP:
			toNew++
		default:
			toOther++
		}
	}
	if toNew < nClients/10 {
		t.Errorf("after expiry %d of %d clients moved to the new endpoint, want at least %d", toNew, nClients, nClients/10)
	}
	if toOther < nClients/5 {
		t.Errorf("after expiry %d clients moved between old endpoints, want about half (a fresh choice)", toOther)
	}
}

// TestPrivNoEndpoints: connecting to a service without endpoints is
// refused at once (ICMP port unreachable from the frontend).
func TestPrivNoEndpoints(t *testing.T) {
	w := newWorld(t, 2, 1, 1)
	w.writeManifest(manifest(
		svc{name: "web4", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(1)},
		svc{name: "empty", family: "IPv4", clusterIP: vipNo},
	))
	w.start()
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	err := within(context.Background(), 5*time.Second, func() error {
		_, err := w.tcpQuery(client4(0), ap(vipNo, 80))
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			return fmt.Errorf("connect = %v, want connection refused", err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestPrivNotServiceTraffic: traffic that is not for a service still
// reaches the gateway's kernel: ping and TCP to the gateway's own address.
func TestPrivNotServiceTraffic(t *testing.T) {
	w := newWorld(t, 1, 1, 1)
	w.writeManifest(manifest(svc{name: "web4", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(1)}))
	w.start()
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	for _, a := range []netip.Addr{gwClientSide4, gwClientSide6} {
		if err := w.c.Ping(a, 3); err != nil {
			t.Errorf("ping gateway %s: %v", a, err)
		}
	}
	// A TCP server on the gateway's own address, and one on a port of the
	// gateway that no service uses.
	identityServers(t, w.g, gwClientSide4)
	identityServers(t, w.g, gwClientSide6)
	for _, a := range []netip.Addr{gwClientSide4, gwClientSide6} {
		cl := client4(0)
		if a.Is6() {
			cl = client6(0)
		}
		if r, err := w.tcpQuery(cl, ap(a, 8080)); err != nil || r.endpoint != a {
			t.Errorf("TCP to the gateway's own %s: %v, %v", ap(a, 8080), r, err)
		}
	}
}
