package e2e

import (
	"net/netip"
	"testing"
	"time"
)

// TestPrivNodeTrafficToEndpoints: the gateway node's own connections to
// endpoint addresses and ports (on a cluster: the kubelet and xdpgate to the
// API server, probes, scrapes, DNS) work exactly as without xdpgate while
// Services point at those endpoints, and masqueraded service traffic, whose
// replies come back to the same node addresses, keeps working beside them.
func TestPrivNodeTrafficToEndpoints(t *testing.T) {
	const n = 3
	w := newWorld(t, 1, n, 1)
	w.writeManifest(manifest(
		svc{name: "web4", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(n)},
		svc{name: "web6", family: "IPv6", clusterIP: vip6, endpoints: endpoints6(n)},
	))
	w.start("--masquerade-all")
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	w.waitTCP(client6(0), ap(vip6, 80), 20*time.Second)

	var eps []netip.Addr
	eps = append(append(eps, endpoints4(n)...), endpoints6(n)...)
	for round := 0; round < 2; round++ {
		for _, e := range eps {
			back := w.gwBack4
			if e.Is6() {
				back = w.gwBack6
			}
			// The node's own TCP connection and UDP exchange with the
			// endpoint, from an ephemeral port of its own address.
			if r, err := tcpQueryIn(w.g, netip.Addr{}, ap(e, 8080), 3*time.Second); err != nil || r.endpoint != e || r.peer != back {
				t.Errorf("round %d: node TCP to endpoint %s: %+v, %v; want answered by it, seen from %s", round, ap(e, 8080), r, err, back)
			}
			if r, err := udpQueryIn(w.g, netip.AddrPort{}, ap(e, 8080)); err != nil || r.endpoint != e || r.from != ap(e, 8080) {
				t.Errorf("round %d: node UDP to endpoint %s: %+v, %v", round, ap(e, 8080), r, err)
			}
		}
		// Service traffic, masqueraded to the same node addresses, in
		// between.
		for _, vip := range []netip.Addr{vip4, vip6} {
			cl, back := client4(0), w.gwBack4
			if vip.Is6() {
				cl, back = client6(0), w.gwBack6
			}
			if r, err := w.tcpQuery(cl, ap(vip, 80)); err != nil || r.peer != back {
				t.Errorf("round %d: client TCP to %s: %+v, %v; want masqueraded to %s", round, ap(vip, 80), r, err, back)
			}
			if r, err := w.udpQuery(cl, ap(vip, 80)); err != nil || r.peer != back {
				t.Errorf("round %d: client UDP to %s: %+v, %v; want masqueraded to %s", round, ap(vip, 80), r, err, back)
			}
		}
	}
	w.alive()
}

// TestPrivNodeAddressChanges: masqueraded service traffic and the node's
// own connections to endpoints keep working while the node's address
// changes under them, as after a DHCP renewal: the route to the endpoints
// switches to a new source address (`src`), then the old address goes away.
// Replies to both come back to the new address; the classifier must treat
// it as a node address (the pipeline masquerades to the route's current
// source; the node's own replies must stay with the kernel).
func TestPrivNodeAddressChanges(t *testing.T) {
	w := newWorld(t, 1, 2, 1)
	w.writeManifest(manifest(svc{name: "web4", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(2)}))
	w.start("--masquerade-all")
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	back := w.managed[1]
	renewed := netip.MustParseAddr("198.18.2.9")
	check := func(stage string, want netip.Addr) {
		t.Helper()
		// The gateway follows the change within a housekeeping tick;
		// allow a few seconds on a loaded machine.
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, err := w.tcpQuery(client4(0), ap(vip4, 80))
			ur, uerr := w.udpQuery(client4(0), ap(vip4, 80))
			nr, nerr := tcpQueryIn(w.g, netip.Addr{}, ap(endpoint4(1), 8080), time.Second)
			if err == nil && r.peer == want && uerr == nil && ur.peer == want && nerr == nil && nr.peer == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: TCP %+v, %v; UDP %+v, %v; want both masqueraded to %s; the node's own TCP to an endpoint: %+v, %v",
					stage, r, err, ur, uerr, want, nr, nerr)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	check("before", w.gwBack4)

	// A second address, and the route to the endpoints now prefers it.
	// (promote_secondaries keeps it when the primary goes, as DHCP clients
	// set it.)
	w.g.Sysctl(t, "net.ipv4.conf."+back+".promote_secondaries=1")
	w.g.MustRun(t, "ip", "addr", "add", renewed.String()+"/24", "dev", back)
	w.g.MustRun(t, "ip", "route", "replace", "198.18.3.0/24", "via", "198.18.2.2", "src", renewed.String())
	check("route src switched", renewed)

	// The old address goes (the lease was not renewed).
	w.g.MustRun(t, "ip", "addr", "del", w.gwBack4.String()+"/24", "dev", back)
	w.g.MustRun(t, "ip", "route", "replace", "198.18.3.0/24", "via", "198.18.2.2", "src", renewed.String())
	check("old address removed", renewed)
	w.alive()
}
