package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// withAnnotations adds Service annotations (key, value, ...) to a
// manifest made by svc.yaml.
func withAnnotations(yaml string, kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "    %s: %q\n", kv[i], kv[i+1])
	}
	return strings.Replace(yaml, "  namespace: e2e\nspec:", "  namespace: e2e\n  annotations:\n"+b.String()+"spec:", 1)
}

// loadEndpoint is an endpoint of `xdpgate inspect affinity --service ...
// --top N -o json` (the admin API's /v1/load).
type loadEndpoint struct {
	Endpoint       string
	Departed       bool
	Pinned, Flows  uint64
	NewConnections uint64
	MovedIn        uint64
}

type loadAnswer struct {
	Services []struct {
		Name                   string
		AffinityMaxLoadPercent uint32
		Imbalance              float64
		Endpoints              []loadEndpoint
		DepartedPins           uint64
		Rebalanced             uint64
		ScaleExpiries          uint64
		Heavy                  *struct {
			Connections, Packets []struct {
				Client     netip.Addr
				Count, Err uint64
				Spill      uint64
			}
		}
	}
}

// TestPrivAffinityLoad is issue 18 end to end on one gateway with six
// endpoints and 1,000 clients plus three "NAT" addresses that each open
// 100 connections:
//   - plain ClientIP (service "sticky"): `inspect affinity --top` lists the
//     NAT addresses first, by connections and by packets, and the
//     per-endpoint table (pinned clients, new connections) is what the
//     backends saw; the per-endpoint metrics say the same;
//   - bounded (service "bounded", xdpgate.io/affinity-max-load: "1.0",
//     the tightest bound, so that it binds in every run): the pinned
//     clients per endpoint stay within ceil(mean) (plus one for the second
//     queue), where the same clients on the plain service are spread
//     wider, and every client keeps its endpoint on its next connection;
//   - "bounded" also has xdpgate.io/affinity-rebalance-on-scale: a
//     seventh endpoint joins, the pins above the new mean expire, and
//     exactly those clients move, all to the new endpoint;
//   - an endpoint of "sticky" is removed: the gateway logs and counts its
//     pinned clients, and, once they have connected again, that all of
//     them re-balanced over the remaining endpoints.
func TestPrivAffinityLoad(t *testing.T) {
	const (
		clients  = 1000
		nats     = 3
		natConns = 100
		eps      = 6
	)
	w := newWorld(t, clients+nats, eps+1, 2) // endpoint eps joins "bounded" later
	sticky := svc{name: "sticky", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(eps), affinity: 3600, withoutUDPPort: true}
	bounded := svc{name: "bounded", family: "IPv4", clusterIP: netip.MustParseAddr("198.18.100.2"), endpoints: endpoints4(eps), affinity: 3600, withoutUDPPort: true}
	warm := svc{name: "warm", family: "IPv4", clusterIP: netip.MustParseAddr("198.18.100.3"), endpoints: endpoints4(eps), withoutUDPPort: true}
	boundedManifest := func(s svc) string {
		return withAnnotations(s.yaml(), "xdpgate.io/affinity-max-load", "1.0", "xdpgate.io/affinity-rebalance-on-scale", "true")
	}
	boundedYAML := boundedManifest(bounded)
	w.writeManifest(manifest(sticky, warm) + "---\n" + boundedYAML)
	w.start()
	w.waitTCP(client4(0), ap(warm.clusterIP, 80), 20*time.Second) // not a ClientIP service: counts nowhere below

	// Every client connects once, each NAT address natConns times: what
	// the backends saw, per endpoint.
	nat := func(i int) netip.Addr { return client4(clients + i) }
	type seen struct {
		mu      sync.Mutex
		pinned  map[netip.Addr]map[netip.Addr]bool // endpoint -> clients
		conns   map[netip.Addr]uint64
		firstEP map[netip.Addr]netip.Addr
	}
	// drive makes n connections to dst, the i-th from from(i), 32 at a
	// time; a client whose endpoint differs from its earlier one in prev
	// or in this round fails the test.
	drive := func(dst netip.AddrPort, n int, from func(i int) netip.Addr, prev *seen) *seen {
		s := &seen{pinned: map[netip.Addr]map[netip.Addr]bool{}, conns: map[netip.Addr]uint64{}, firstEP: map[netip.Addr]netip.Addr{}}
		if prev != nil {
			s.firstEP = prev.firstEP
		}
		failed, _ := forEach(n, 32, func(i int) error {
			c := from(i)
			r, err := w.tcpQuery(c, dst)
			if err != nil {
				return err
			}
			if r.peer != c {
				return fmt.Errorf("%v: the endpoint saw %v", c, r.peer)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.pinned[r.endpoint] == nil {
				s.pinned[r.endpoint] = map[netip.Addr]bool{}
			}
			s.pinned[r.endpoint][c] = true
			s.conns[r.endpoint]++
			if ep, ok := s.firstEP[c]; ok && ep != r.endpoint {
				return fmt.Errorf("%v moved from %v to %v while pinned", c, ep, r.endpoint)
			}
			s.firstEP[c] = r.endpoint
			return nil
		})
		if len(failed) > 0 {
			t.Fatalf("%d of %d connections to %v failed: %v", len(failed), n, dst, failed[:min(5, len(failed))])
		}
		return s
	}
	all := func(i int) netip.Addr { // the NAT addresses' connections spread among the others'
		if i < nats*natConns {
			return nat(i % nats)
		}
		return client4(i - nats*natConns)
	}
	plain := drive(ap(sticky.clusterIP, 80), clients+nats*natConns, all, nil)

	var ld loadAnswer
	w.inspect(&ld, "affinity", "--service", "e2e/sticky", "--top", "20")
	if len(ld.Services) != 1 || ld.Services[0].Heavy == nil {
		t.Fatalf("inspect affinity --service e2e/sticky --top 20 = %+v", ld)
	}
	sl := ld.Services[0]
	wantNAT := []netip.Addr{nat(0), nat(1), nat(2)}
	for name, list := range map[string][]netip.Addr{"connections": nil, "packets": nil} {
		top := sl.Heavy.Connections
		if name == "packets" {
			top = sl.Heavy.Packets
		}
		for _, c := range top[:min(nats, len(top))] {
			list = append(list, c.Client)
		}
		slices.SortFunc(list, netip.Addr.Compare)
		if !slices.Equal(list, wantNAT) {
			t.Errorf("top %d by %s = %v, want the NAT addresses %v first", nats, name, list, wantNAT)
		}
	}
	for _, c := range sl.Heavy.Connections[:nats] {
		if c.Count-c.Err > natConns || c.Count+c.Spill < natConns {
			t.Errorf("NAT %v: %d connections, outside its range [%d, %d]", c.Client, natConns, c.Count-c.Err, c.Count+c.Spill)
		}
	}
	var pinnedSum uint64
	for _, e := range sl.Endpoints {
		ep := netip.MustParseAddrPort(e.Endpoint).Addr()
		if e.Pinned != uint64(len(plain.pinned[ep])) || e.NewConnections != plain.conns[ep] {
			t.Errorf("%s: pinned %d, new connections %d; the backend saw %d clients, %d connections",
				e.Endpoint, e.Pinned, e.NewConnections, len(plain.pinned[ep]), plain.conns[ep])
		}
		pinnedSum += e.Pinned
	}
	if pinnedSum != clients+nats {
		t.Errorf("pinned clients sum to %d, want %d", pinnedSum, clients+nats)
	}
	// The table, as an operator reads it: heavy addresses first.
	sock := filepath.Join(filepath.Dir(w.logPath), "admin.sock")
	out, err := exec.Command(xdpgateBinary(t), "inspect", "affinity", "--service", "e2e/sticky", "--top", "5", "--limit", "3", "--socket", sock).CombinedOutput()
	if err != nil {
		t.Fatalf("inspect affinity table: %v: %s", err, out)
	}
	t.Logf("xdpgate inspect affinity --service e2e/sticky --top 5 --limit 3:\n%s", out)
	lines := strings.Split(string(out), "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "TOP CLIENTS BY CONNECTIONS") })
	if i < 0 || i+nats >= len(lines) {
		t.Fatalf("inspect affinity table has no heavy clients:\n%s", out)
	}
	for _, l := range lines[i+1 : i+1+nats] {
		if f := strings.Fields(l); len(f) == 0 || !slices.Contains(wantNAT, netip.MustParseAddr(f[0])) {
			t.Errorf("heavy client row %q is not a NAT address:\n%s", l, out)
		}
	}
	m := w.metrics()
	for _, e := range sl.Endpoints {
		prefix := fmt.Sprintf(`xdpgate_affinity_endpoint_pinned_clients{endpoint=%q,namespace="e2e",port="tcp",protocol="TCP",service="sticky"}`, e.Endpoint)
		if got := metricValue(m, prefix); got != float64(e.Pinned) {
			t.Errorf("metric %s = %v, want %d", prefix, got, e.Pinned)
		}
	}
	t.Logf("plain ClientIP, %d clients (%d of them NAT addresses with %d connections each) over %d endpoints: imbalance %.3f (max/mean pinned)",
		clients+nats, nats, natConns, eps, sl.Imbalance)

	// Bounded: every client once, then again (each keeps its endpoint).
	one := func(i int) netip.Addr {
		if i < nats {
			return nat(i)
		}
		return client4(i - nats)
	}
	b := drive(ap(bounded.clusterIP, 80), clients+nats, one, nil)
	var bl loadAnswer
	w.inspect(&bl, "affinity", "--service", "e2e/bounded", "--top", "1")
	if len(bl.Services) != 1 || bl.Services[0].AffinityMaxLoadPercent != 100 {
		t.Fatalf("inspect e2e/bounded = %+v, want max load 100 %%", bl)
	}
	var most, total uint64
	for _, e := range bl.Services[0].Endpoints {
		most, total = max(most, e.Pinned), total+e.Pinned
		ep := netip.MustParseAddrPort(e.Endpoint).Addr()
		if e.Pinned != uint64(len(b.pinned[ep])) {
			t.Errorf("bounded %s: pinned %d, the backend saw %d clients", e.Endpoint, e.Pinned, len(b.pinned[ep]))
		}
	}
	// ceil(mean), plus one for the second queue: two queues placing new
	// clients at the same instant may both take an endpoint's last place
	// (pipeline.pickBounded).
	limit := (total+eps-1)/eps + 1
	if total != clients+nats || most > limit {
		t.Errorf("bounded: %d clients pinned, the busiest endpoint holds %d; want %d, at most %d", total, most, clients+nats, limit)
	}
	// The same clients without the bound (the plain service's choice is
	// the same rendezvous, by client and epoch): its busiest endpoint is
	// above the bound (six endpoints all within one client of the mean by
	// chance is far below one in a million), so the bound did work.
	var plainMost int
	for _, cs := range plain.pinned {
		plainMost = max(plainMost, len(cs))
	}
	if uint64(plainMost) <= limit {
		t.Errorf("the plain service's busiest endpoint holds %d, within the bound %d: the case proves nothing", plainMost, limit)
	}
	movedByBound := 0
	for c, ep := range b.firstEP {
		if plain.firstEP[c] != ep {
			movedByBound++
		}
	}
	drive(ap(bounded.clusterIP, 80), clients+nats, one, b) // fails on any client that moves
	t.Logf("bounded at 1.0: imbalance %.3f (plain: %.3f), busiest endpoint %d (plain: %d); %d of %d clients placed past their first choice",
		bl.Services[0].Imbalance, sl.Imbalance, most, plainMost, movedByBound, total)

	// Scale "bounded" out by one endpoint (rebalance-on-scale): the pins
	// above ceil(total/(eps+1)) expire, and on their next connection
	// exactly those clients move, all to the new endpoint.
	bounded.endpoints = endpoints4(eps + 1)
	boundedYAML = boundedManifest(bounded)
	w.writeManifest(manifest(sticky, warm) + "---\n" + boundedYAML)
	if err := within(context.Background(), 15*time.Second, func() error {
		if !strings.Contains(w.xdpgateLog(), "endpoints added: pins above the bound expired early") {
			return fmt.Errorf("no rebalance line")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w.inspect(&bl, "affinity", "--service", "e2e/bounded", "--top", "1")
	expired := bl.Services[0].ScaleExpiries
	scaleLimit := (total + eps) / (eps + 1) // ceil(total/(eps+1))
	for _, e := range bl.Services[0].Endpoints {
		if e.Pinned > scaleLimit {
			t.Errorf("after the scale-out %s holds %d pins, above %d", e.Endpoint, e.Pinned, scaleLimit)
		}
	}
	if expired == 0 {
		t.Fatalf("no pin expired on the scale-out")
	}
	scaled := drive(ap(bounded.clusterIP, 80), clients+nats, one, nil)
	movedOnScale := 0
	for c, ep := range scaled.firstEP {
		if ep != b.firstEP[c] {
			movedOnScale++
			if ep != endpoint4(eps) {
				t.Errorf("client %v moved %v -> %v, not to the new endpoint %v", c, b.firstEP[c], ep, endpoint4(eps))
			}
		}
	}
	if uint64(movedOnScale) != expired {
		t.Errorf("%d clients moved on the scale-out, want the %d whose pins expired", movedOnScale, expired)
	}
	t.Logf("scale-out %d -> %d endpoints: %d pins expired early, %d clients moved, all to the new endpoint (%d now pinned there)",
		eps, eps+1, expired, movedOnScale, len(scaled.pinned[endpoint4(eps)]))

	// Remove sticky's endpoint with the most pinned clients.
	var gone loadEndpoint
	for _, e := range sl.Endpoints {
		if e.Pinned > gone.Pinned {
			gone = e
		}
	}
	goneAddr := netip.MustParseAddrPort(gone.Endpoint).Addr()
	var rest []netip.Addr
	for _, a := range endpoints4(eps) {
		if a != goneAddr {
			rest = append(rest, a)
		}
	}
	sticky.endpoints = rest
	w.writeManifest(manifest(sticky, warm) + "---\n" + boundedYAML)
	removed := fmt.Sprintf("pinned_clients=%d", gone.Pinned)
	if err := within(context.Background(), 15*time.Second, func() error {
		if l := w.xdpgateLog(); !strings.Contains(l, "endpoint removed with pinned clients") || !strings.Contains(l, removed) {
			return fmt.Errorf("no removal line with %s", removed)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var movers []netip.Addr
	for c := range plain.pinned[goneAddr] {
		movers = append(movers, c)
	}
	slices.SortFunc(movers, netip.Addr.Compare)
	after := drive(ap(sticky.clusterIP, 80), len(movers), func(i int) netip.Addr { return movers[i] }, nil)
	if len(after.pinned[goneAddr]) != 0 {
		t.Errorf("%d clients still reached the removed endpoint", len(after.pinned[goneAddr]))
	}
	line := fmt.Sprintf("endpoint %s removed: %d pinned clients, %d re-balanced over %d endpoints, 0 still pinned",
		gone.Endpoint, gone.Pinned, gone.Pinned, len(after.pinned))
	if err := within(context.Background(), 15*time.Second, func() error {
		if !strings.Contains(w.xdpgateLog(), line) {
			return fmt.Errorf("no line %q", line)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w.inspect(&ld, "affinity", "--service", "e2e/sticky", "--top", "1")
	if s := ld.Services[0]; s.DepartedPins != gone.Pinned || s.Rebalanced != gone.Pinned {
		t.Errorf("departed pins %d, re-balanced %d; want %d, %d", s.DepartedPins, s.Rebalanced, gone.Pinned, gone.Pinned)
	}
	w.waitMetric(fmt.Sprintf(`xdpgate_affinity_service_events_total{event="rebalanced",namespace="e2e",port="tcp",protocol="TCP",service="sticky"} %d`, gone.Pinned), 5*time.Second)
	t.Logf("removed %s: %d pinned clients, all re-balanced over %d endpoints on their next connection", gone.Endpoint, gone.Pinned, len(after.pinned))
}
