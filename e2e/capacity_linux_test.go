package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// scaleServices writes n Services of two ports (TCP and UDP) with ten
// endpoints each (the endpoints of the world, every service on its own
// target port, so each service port adds ten classifier endpoint rules),
// as JSON documents (YAML's subset that parses fastest).
func scaleServices(n int) string {
	var b strings.Builder
	eps := make([]string, 10)
	for i := range eps {
		eps[i] = fmt.Sprintf(`{"addresses":["%s"],"nodeName":"gw","conditions":{"ready":true,"serving":true,"terminating":false}}`, endpoint4(i))
	}
	epList := strings.Join(eps, ",")
	for i := 0; i < n; i++ {
		vip := scaleVIP(i)
		port := scalePort(i)
		fmt.Fprintf(&b, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"s%d","namespace":"scale"},"spec":{"type":"ClusterIP","clusterIP":"%s","clusterIPs":["%s"],"ipFamilies":["IPv4"],"ports":[{"name":"tcp","port":80,"protocol":"TCP","targetPort":%d},{"name":"udp","port":80,"protocol":"UDP","targetPort":%d}]}}`+"\n---\n", i, vip, vip, port, port)
		fmt.Fprintf(&b, `{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"s%d-1","namespace":"scale","labels":{"kubernetes.io/service-name":"s%d"}},"addressType":"IPv4","ports":[{"name":"tcp","port":%d,"protocol":"TCP"},{"name":"udp","port":%d,"protocol":"UDP"}],"endpoints":[%s]}`+"\n---\n", i, i, port, port, epList)
	}
	return b.String()
}

// scaleVIP and scalePort are service i's ClusterIP (198.18.128.0/18) and
// target port.
func scaleVIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(128 + i>>8), byte(i)})
}
func scalePort(i int) int { return 10000 + i }

// TestPrivClassifierCapacity: 10,000 Services of two ports with ten
// endpoints each are programmed and served; one Service more than the
// classifier holds is left out, named in the log, counted in the metrics
// and reported by /healthz, while every other Service keeps forwarding.
func TestPrivClassifierCapacity(t *testing.T) {
	const n = 10000
	w := newWorld(t, 1, 10, 1)
	sampled := []int{0, 1, 4999, n - 1, n} // n: the one that does not fit
	for _, i := range sampled {
		for e := 0; e < 10; e++ {
			testnet.Servers(t, w.b, netip.AddrPortFrom(endpoint4(e), uint16(scalePort(i))), testnet.Identity)
		}
	}
	w.writeManifest(scaleServices(n))
	// Exactly 10k x 2 x 10 endpoint rules fit.
	w.start("--max-endpoints", fmt.Sprint(n*2*10))
	for _, i := range sampled[:len(sampled)-1] {
		w.waitTCP(client4(0), ap(scaleVIP(i), 80), 90*time.Second)
		if r, err := w.udpQuery(client4(0), ap(scaleVIP(i), 80)); err != nil || r.from != ap(scaleVIP(i), 80) {
			t.Errorf("UDP to service %d: %+v, %v", i, r, err)
		}
	}
	w.waitMetric(`xdpgate_classifier_rules{kind="endpoints"} 200000`, 30*time.Second)
	if m := w.metrics(); !strings.Contains(m, `xdpgate_classifier_rules{kind="frontends"} 20000`) ||
		!strings.Contains(m, "xdpgate_classifier_skipped_service_ports 0") {
		t.Errorf("metrics after 10k services lack 20000 frontends and 0 skipped:\n%s", grepLines(m, "xdpgate_classifier"))
	}
	if h := w.httpGet("http://127.0.0.1:10256/healthz"); !strings.Contains(h, " 200 OK") {
		t.Errorf("/healthz with everything programmed = %s", h)
	}

	// One more Service: it does not fit.
	w.writeManifest(scaleServices(n + 1))
	w.waitMetric("xdpgate_classifier_skipped_service_ports 2", 60*time.Second) // its two ports
	h := w.httpGet("http://127.0.0.1:10256/healthz")
	if !strings.Contains(h, " 503 ") || !strings.Contains(h, "do not fit") || !strings.Contains(h, fmt.Sprintf("scale/s%d", n)) {
		t.Errorf("/healthz with a service left out = %s, want 503 naming it", h)
	}
	log, _ := os.ReadFile(w.logPath)
	if !strings.Contains(string(log), fmt.Sprintf("scale/s%d:tcp/TCP", n)) {
		t.Errorf("the log does not name the service port left out")
	}
	for _, i := range sampled[:len(sampled)-1] {
		if r, err := w.tcpQuery(client4(0), ap(scaleVIP(i), 80)); err != nil || r.peer != client4(0) {
			t.Errorf("TCP to service %d with the classifier full: %+v, %v", i, r, err)
		}
	}
	if _, err := w.tcpQueryTimeout(client4(0), ap(scaleVIP(n), 80), 500*time.Millisecond); err == nil {
		t.Errorf("the service that does not fit answered")
	}
	w.alive()
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
