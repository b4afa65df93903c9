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
