package pipeline

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/xdpgate/xdpgate/internal/testaddr"
	"github.com/xdpgate/xdpgate/maglev"
	"github.com/xdpgate/xdpgate/snapshot"
)

// loadPort is a ClientIP service port with n endpoints and a 10 s timeout,
// bounded at pct percent (0: not bounded).
func loadPort(n int, pct uint32) snapshot.ServicePort {
	sp := sessionPort(sessionEndpoints(n))
	sp.AffinityMaxLoadPercent = pct
	return sp
}

// loads returns the pins and new connections per endpoint address of the
// world's only ClientIP service port.
func loads(t *testing.T, w *ptWorld) (pins, conns map[string]uint64) {
	t.Helper()
	ls := w.p.EndpointLoads()
	if len(ls) != 1 {
		t.Fatalf("EndpointLoads() has %d service ports, want 1", len(ls))
	}
	pins, conns = map[string]uint64{}, map[string]uint64{}
	for _, e := range ls[0].Endpoints {
		pins[e.Endpoint], conns[e.Endpoint] = e.Pins, e.NewConnections
	}
	return pins, conns
}

// TestEndpointLoad: pinned clients and new connections per endpoint match
// what the clients were sent to, and pins leave with expiry.
func TestEndpointLoad(t *testing.T) {
	const clients = 300
	w := newWorld(t, ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{loadPort(3, 0)}}), nil)
	wantPins, wantConns := map[string]uint64{}, map[string]uint64{}
	w.p.SampleLoad(w.clock.t)
	for i := range clients {
		c := testaddr.V4(uint32(0x100 + i))
		for k := range 1 + i%3 { // 1 to 3 connections per client
			ep := netip.AddrPortFrom(w.dst(t, tcpPkt(c, uint16(1000+k), ptVIP4, 80, "S")), 8080).String()
			wantConns[ep]++
			if k == 0 {
				wantPins[ep]++
			}
		}
	}
	pins, conns := loads(t, w)
	if fmt.Sprint(pins) != fmt.Sprint(wantPins) || fmt.Sprint(conns) != fmt.Sprint(wantConns) {
		t.Errorf("pins, connections = %v, %v; want %v, %v", pins, conns, wantPins, wantConns)
	}
	w.clock.t += 4 * second
	w.p.SampleLoad(w.clock.t)
	for _, e := range w.p.EndpointLoads()[0].Endpoints {
		if want := float64(wantConns[e.Endpoint]) / 4; e.ConnectionsPerSecond != want {
			t.Errorf("%s: %v connections per second, want %v", e.Endpoint, e.ConnectionsPerSecond, want)
		}
	}
	w.clock.t += 11 * second
	w.p.Housekeep(w.clock.t, 1<<16, 1<<16)
	if pins, _ := loads(t, w); fmt.Sprint(pins) != fmt.Sprint(map[string]uint64{"198.18.64.10:8080": 0, "198.18.64.11:8080": 0, "198.18.64.12:8080": 0}) {
		t.Errorf("pins after every pin expired and the sweep = %v, want all 0", pins)
	}
}

// TestEndpointLoadAdopted: a pipeline over a table that already holds pins
// (adopted from a previous process) counts them from the start.
func TestEndpointLoadAdopted(t *testing.T) {
	snap := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{loadPort(3, 0)}})
	w := newWorld(t, snap, nil)
	for i := range 50 {
		w.dst(t, tcpPkt(testaddr.V4(uint32(i)), 1, ptVIP4, 80, "S"))
	}
	want, _ := loads(t, w)
	p2, err := New(w.p.cfg) // the same tables, as after a restart
	if err != nil {
		t.Fatal(err)
	}
	p2.Publish(snap)
	w.p = p2
	if got, _ := loads(t, w); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("adopted pins = %v, want %v", got, want)
	}
}

// refBounded is the reference bounded-load choice: endpoints ranked by
// their rendezvous score for the client's session hash, the first whose
// load is below ceil(c*(m+1)/n).
func refBounded(ids []uint64, h uint64, pct uint32, load []uint64) int {
	// Rank by asking Rendezvous for the winner among the remaining ones.
	rest := slices.Clone(ids)
	var m uint64
	for _, l := range load {
		m += l
	}
	limit := (uint64(pct)*(m+1) + 100*uint64(len(ids)) - 1) / (100 * uint64(len(ids)))
	for len(rest) > 0 {
		w := maglev.Rendezvous(rest, h)
		i := slices.Index(ids, rest[w])
		if load[i] < limit {
			return i
		}
		rest = slices.Delete(rest, w, w+1)
	}
	return -1
}

// TestBoundedLoad: with xdpgate.io/affinity-max-load, no endpoint ever
// holds more than ceil(c*m/n) pinned clients, every new client goes to the
// first endpoint in its rendezvous order with room (so only clients whose
// own choice is full move: the minimum), and pinned clients never move.
func TestBoundedLoad(t *testing.T) {
	for _, tc := range []struct {
		eps, clients int
		pct          uint32
	}{{4, 40, 125}, {8, 200, 110}, {5, 101, 100}, {3, 30, 150}} {
		t.Run(fmt.Sprintf("%d endpoints, %d clients, %d%%", tc.eps, tc.clients, tc.pct), func(t *testing.T) {
			wall := &wallClock{t: 1_800_000_000 * second}
			sp := loadPort(tc.eps, tc.pct)
			w := newWorld(t, ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{sp}}), func(c *Config) { c.Wall = wall.now })
			addrs := sessionEndpoints(tc.eps)
			ids := make([]uint64, tc.eps)
			for i, a := range addrs {
				ids[i] = maglev.BackendID(netip.AddrPortFrom(a, 8080))
			}
			load := make([]uint64, tc.eps)
			first := make([]netip.Addr, tc.clients)
			moved := 0
			for i := range tc.clients {
				c := testaddr.V4(uint32(0x300 + i))
				h := maglev.HashSession(c, maglev.Epoch(c, wall.t, 10))
				want := refBounded(ids, h, tc.pct, load)
				got := w.dst(t, tcpPkt(c, 1, ptVIP4, 80, "S"))
				if got != addrs[want] {
					t.Fatalf("client %d: sent to %v, want %v (loads %v)", i, got, addrs[want], load)
				}
				if want != maglev.Rendezvous(ids, h) {
					moved++
				}
				load[want]++
				first[i] = got
				limit := maglev.BoundedLimit(uint64(i), tc.eps, tc.pct) // ceil(c*(i+1)/n)
				if mx := slices.Max(load); mx > limit {
					t.Fatalf("after %d clients an endpoint holds %d, above the bound %d", i+1, mx, limit)
				}
			}
			pins, _ := loads(t, w)
			for k, a := range addrs {
				if got := pins[netip.AddrPortFrom(a, 8080).String()]; got != load[k] {
					t.Errorf("pins of %v = %d, want %d", a, got, load[k])
				}
			}
			for i := range tc.clients {
				if got := w.dst(t, tcpPkt(testaddr.V4(uint32(0x300+i)), 2, ptVIP4, 80, "S")); got != first[i] {
					t.Fatalf("pinned client %d moved: %v -> %v", i, first[i], got)
				}
			}
			t.Logf("%d of %d clients placed past their first choice; loads %v", moved, tc.clients, load)
		})
	}
}

// TestBoundedLoadOff: without the annotation the choice is exactly the
// plain session choice, however unbalanced.
func TestBoundedLoadOff(t *testing.T) {
	wall := &wallClock{t: 1_800_000_000 * second}
	a := newWorld(t, ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{loadPort(4, 0)}}), func(c *Config) { c.Wall = wall.now })
	addrs := sessionEndpoints(4)
	ids := make([]uint64, len(addrs))
	for i, x := range addrs {
		ids[i] = maglev.BackendID(netip.AddrPortFrom(x, 8080))
	}
	for i := range 200 {
		c := testaddr.V4(uint32(0x900 + i))
		want := addrs[maglev.Rendezvous(ids, maglev.HashSession(c, maglev.Epoch(c, wall.t, 10)))]
		if got := a.dst(t, tcpPkt(c, 1, ptVIP4, 80, "S")); got != want {
			t.Fatalf("client %d: %v, want the plain choice %v", i, got, want)
		}
	}
}

// TestDepartures: an endpoint that leaves with pinned clients is logged
// and counted, and so is where its clients went on their next connection.
func TestDepartures(t *testing.T) {
	const clients = 300
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	w := newWorld(t, ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{loadPort(4, 0)}}), func(c *Config) { c.Logger = log })
	gone := sessionEndpoints(4)[3]
	onGone := 0
	for i := range clients {
		if w.dst(t, tcpPkt(testaddr.V4(uint32(i)), 1, ptVIP4, 80, "S")) == gone {
			onGone++
		}
	}
	w.p.Publish(ptSnapshot(t, snapshot.Snapshot{Generation: 2, ServicePorts: []snapshot.ServicePort{loadPort(3, 0)}}))
	want := fmt.Sprintf("pinned_clients=%d", onGone)
	if !strings.Contains(logs.String(), "endpoint removed with pinned clients") || !strings.Contains(logs.String(), want) {
		t.Errorf("log after the removal:\n%s\nwant a line with %s", logs.String(), want)
	}
	// Half of the clients come back, then the rest.
	for i := range clients {
		if i == clients/2 {
			logs.Reset()
			w.p.ReportDepartures()
			if !strings.Contains(logs.String(), fmt.Sprintf("%d pinned clients", onGone)) || !strings.Contains(logs.String(), "still pinned") {
				t.Errorf("report half-way:\n%s", logs.String())
			}
		}
		if w.dst(t, tcpPkt(testaddr.V4(uint32(i)), 2, ptVIP4, 80, "S")) == gone {
			t.Fatalf("client %d sent to the removed endpoint", i)
		}
	}
	logs.Reset()
	w.p.ReportDepartures()
	line := fmt.Sprintf("endpoint %s removed: %d pinned clients, %d re-balanced over 3 endpoints, 0 still pinned", netip.AddrPortFrom(gone, 8080), onGone, onGone)
	if !strings.Contains(logs.String(), line) {
		t.Errorf("final report:\n%s\nwant %q", logs.String(), line)
	}
	st := w.p.AffinityStats()[0]
	if st.DepartedPins != uint64(onGone) || st.Rebalanced != uint64(onGone) {
		t.Errorf("DepartedPins, Rebalanced = %d, %d, want %d, %d", st.DepartedPins, st.Rebalanced, onGone, onGone)
	}
	var in uint64
	for _, e := range w.p.EndpointLoads()[0].Endpoints {
		if e.Departed {
			t.Errorf("departed endpoint %s still listed after its last client moved", e.Endpoint)
		}
		in += e.MovedIn
	}
	if in != uint64(onGone) {
		t.Errorf("MovedIn summed over the endpoints = %d, want %d", in, onGone)
	}
	logs.Reset()
	w.p.ReportDepartures()
	if logs.Len() != 0 {
		t.Errorf("a report after the last client moved logged again:\n%s", logs.String())
	}
}

// TestHeavyClients: addresses behind which many clients hide (NAT) are the
// top of both rankings, their counts within the bounds.
func TestHeavyClients(t *testing.T) {
	w := newWorld(t, ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{loadPort(3, 0)}}), nil)
	nat := []netip.Addr{testaddr.V4(0x7000), testaddr.V4(0x7001), testaddr.V4(0x7002)}
	truthConns := map[netip.Addr]uint64{}
	sport := uint16(1)
	conn := func(c netip.Addr, pkts int) {
		sport++
		w.dst(t, tcpPkt(c, sport, ptVIP4, 80, "S"))
		for range pkts {
			w.dst(t, tcpPkt(c, sport, ptVIP4, 80, "A"))
		}
		truthConns[c]++
	}
	for i := range 600 {
		conn(testaddr.V4(uint32(i)), 2)
		if i%3 == 0 {
			conn(nat[i%2], 20) // two NAT addresses: 100 connections each
		}
		if i%6 == 0 {
			conn(nat[2], 20) // 100 connections
		}
	}
	hc, ok := w.p.HeavyClients(1, 3)
	if !ok {
		t.Fatal("HeavyClients(1) = none")
	}
	for name, list := range map[string][]HeavyClient{"connections": hc.Connections, "packets": hc.Packets} {
		var got []netip.Addr
		for _, c := range list {
			got = append(got, c.Client)
		}
		slices.SortFunc(got, netip.Addr.Compare)
		if !slices.Equal(got, nat) {
			t.Errorf("top 3 by %s = %v, want the NAT addresses %v", name, got, nat)
		}
	}
	for _, c := range hc.Connections {
		if tr := truthConns[c.Client]; tr+c.Err < c.Count || tr > c.Count+c.Spill {
			t.Errorf("%v: %d connections, outside [%d, %d]", c.Client, tr, c.Count-c.Err, c.Count+c.Spill)
		}
	}
	if _, ok := w.p.HeavyClients(99, 3); ok {
		t.Errorf("HeavyClients of an unknown service port answered")
	}
}

// TestRebalanceOnScale: with xdpgate.io/affinity-rebalance-on-scale, when
// an endpoint is added, the old endpoints keep at most ceil(total/n)
// pins, the least recently pinned clients lose theirs (no more than the
// excess), and on their next connection exactly those clients move, all
// to the new endpoint; every other client keeps its endpoint.
func TestRebalanceOnScale(t *testing.T) {
	const clients = 400
	port := func(n int) snapshot.ServicePort {
		sp := loadPort(n, 0)
		sp.AffinityRebalanceOnScale = true
		return sp
	}
	w := newWorld(t, ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{port(4)}}), nil)
	client := func(i int) netip.Addr { return testaddr.V4(uint32(0x4000 + i)) }
	first := make([]netip.Addr, clients)
	for i := range clients {
		w.clock.t += second / 1000 // client i is the i-th oldest pin
		first[i] = w.dst(t, tcpPkt(client(i), 1, ptVIP4, 80, "S"))
	}
	before, _ := loads(t, w)
	w.clock.t += second
	w.p.Publish(ptSnapshot(t, snapshot.Snapshot{Generation: 2, ServicePorts: []snapshot.ServicePort{port(5)}}))
	after, _ := loads(t, w)
	limit := uint64((clients + 4) / 5) // ceil(400/5)
	var expired uint64
	for ep, n := range before {
		want := min(n, limit)
		if after[ep] != want {
			t.Errorf("%s: %d pins after the scale-up, want %d (had %d)", ep, after[ep], want, n)
		}
		expired += n - want
	}
	if st := w.p.AffinityStats()[0]; st.ScaleExpiries != expired || expired == 0 {
		t.Fatalf("ScaleExpiries = %d, want %d (> 0)", st.ScaleExpiries, expired)
	}
	// Which pins went: per endpoint, its oldest.
	freed := map[netip.Addr]bool{}
	for i := range clients {
		if _, ok := w.aff.Lookup(1, client(i), 10, w.clock.t); !ok {
			freed[client(i)] = true
		}
	}
	lastFreed := map[netip.Addr]int{} // endpoint -> index of its youngest freed client
	firstKept := map[netip.Addr]int{} // endpoint -> index of its oldest kept client
	for i := range clients {
		if freed[client(i)] {
			lastFreed[first[i]] = i
		} else if _, ok := firstKept[first[i]]; !ok {
			firstKept[first[i]] = i
		}
	}
	for ep, i := range lastFreed {
		if k, ok := firstKept[ep]; ok && k < i {
			t.Errorf("%v: client %d kept its pin while the younger client %d lost it", ep, k, i)
		}
	}
	newEP := sessionEndpoints(5)[4]
	moved := 0
	for i := range clients {
		got := w.dst(t, tcpPkt(client(i), 2, ptVIP4, 80, "S"))
		switch {
		case !freed[client(i)] && got != first[i]:
			t.Fatalf("client %d kept its pin but moved %v -> %v", i, first[i], got)
		case freed[client(i)] && got != newEP:
			t.Errorf("freed client %d went to %v, want the new endpoint %v", i, got, newEP)
		case got != first[i]:
			moved++
		}
	}
	t.Logf("4 -> 5 endpoints, %d clients: %d pins expired early, %d clients moved, all to the new endpoint", clients, expired, moved)
	if uint64(moved) != expired {
		t.Errorf("%d clients moved, want the %d freed", moved, expired)
	}
}
