package pipeline

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// attackWorld is a world with small flow tables and one TCP service per
// family (ptVIP4, ptVIP6).
func attackWorld(t *testing.T, maxFlows int, masq bool, mutate func(*Config)) *ptWorld {
	t.Helper()
	s := ptSnapshot(t, snapshot.Snapshot{MasqueradeAll: masq, ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a}, nil),
		ptPort(2, nat.ProtoTCP, ptVIP6, []netip.Addr{ptEP6a}, nil),
	}})
	w := newWorld(t, s, func(c *Config) {
		ct, err := conntrack.New(conntrack.Config{MaxFlows: maxFlows, MaxFlows6: maxFlows, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		c.Conntrack = ct
		if mutate != nil {
			mutate(c)
		}
	})
	w.ct = w.p.ct
	return w
}

// vipFor is the attack world's service address of client's family.
func vipFor(client netip.Addr) netip.Addr {
	if client.Is6() {
		return ptVIP6
	}
	return ptVIP4
}

// connect runs a full handshake for client:sport through the pipeline
// (the endpoint's SYN-ACK comes back as a reply frame) to the service of
// client's family and reports whether every frame was forwarded.
func connect(t *testing.T, w *ptWorld, client netip.Addr, sport uint16) bool {
	t.Helper()
	vip := vipFor(client)
	f := w.run(t, ptPkt{src: client, dst: vip, sport: sport, dport: 80, proto: tcpPkt(client, 0, vip, 0, "").proto, tcpFlags: "S", seq: 1000}.build(t))
	if f.Verdict != dataplane.VerdictTX {
		return false
	}
	d := ptDecode(t, f.Data())
	r := w.run(t, ptPkt{src: d.dst, dst: d.src, sport: d.dport, dport: d.sport, proto: tcpPkt(client, 0, vip, 0, "").proto, tcpFlags: "SA", seq: 5000, ack: 1001}.build(t))
	if r.Verdict != dataplane.VerdictTX {
		return false
	}
	a := w.run(t, ptPkt{src: client, dst: vip, sport: sport, dport: 80, proto: tcpPkt(client, 0, vip, 0, "").proto, tcpFlags: "A", seq: 1001, ack: 5001}.build(t))
	return a.Verdict == dataplane.VerdictTX
}

// closeConn closes the connection connect opened: FIN from the client,
// FIN from the endpoint, the client's last ACK (the flow is in TIME_WAIT).
func closeConn(t *testing.T, w *ptWorld, client netip.Addr, sport uint16) {
	t.Helper()
	vip := vipFor(client)
	proto := tcpPkt(client, 0, vip, 0, "").proto
	f := w.run(t, ptPkt{src: client, dst: vip, sport: sport, dport: 80, proto: proto, tcpFlags: "FA", seq: 1001, ack: 5001}.build(t))
	if f.Verdict != dataplane.VerdictTX {
		t.Fatalf("client FIN not forwarded")
	}
	d := ptDecode(t, f.Data())
	if r := w.run(t, ptPkt{src: d.dst, dst: d.src, sport: d.dport, dport: d.sport, proto: proto, tcpFlags: "FA", seq: 5001, ack: 1002}.build(t)); r.Verdict != dataplane.VerdictTX {
		t.Fatalf("endpoint FIN not forwarded")
	}
	w.run(t, ptPkt{src: client, dst: vip, sport: sport, dport: 80, proto: proto, tcpFlags: "A", seq: 1002, ack: 5002}.build(t))
	k := conntrack.MakeTuple(client, vip, sport, 80, nat.ProtoTCP)
	if fl, _ := w.ct.Lookup(k, w.clock.t); fl.State != conntrack.StateTimeWait {
		t.Fatalf("closed connection in state %v, want TIME_WAIT", fl.State)
	}
}

func spoofed(r *rand.Rand) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 19, byte(r.Uint32()), byte(r.Uint32())})
}

// spoofed6 is a random source in 2001:2:0:99::/64.
func spoofed6(r *rand.Rand) netip.Addr {
	a := [16]byte{0x20, 0x01, 0, 2, 0, 0, 0, 0x99}
	for i := 8; i < 16; i++ {
		a[i] = byte(r.Uint32())
	}
	return netip.AddrFrom16(a)
}

// TestPipelineAnsweredSYNFlood: a table of 512 flows holds 200 idle
// established connections; a flood of spoofed SYNs, each answered by the
// endpoint's SYN-ACK, fills it many times over while new clients connect.
// Every established connection survives and every new client is served.
// (On the code before assured flows, the SYN-ACKs made the flood's flows
// "replied" and eviction took the idle established flows.)
func TestPipelineAnsweredSYNFlood(t *testing.T) {
	for _, fam := range []struct {
		name   string
		spoof  func(*rand.Rand) netip.Addr
		client func(net, host int) netip.Addr
	}{
		{"IPv4", spoofed, func(n, h int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(n), byte(h)}) }},
		{"IPv6", spoofed6, func(n, h int) netip.Addr {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 0, 0, 0, byte(n), 15: byte(h), 14: byte(h >> 8)})
		}},
	} {
		t.Run(fam.name, func(t *testing.T) {
			w := attackWorld(t, 512, false, nil)
			vip := vipFor(fam.client(0, 0))
			proto := tcpPkt(vip, 0, vip, 0, "").proto
			for i := range 200 {
				if !connect(t, w, fam.client(10, i), 30000) {
					t.Fatalf("established client %d not served", i)
				}
			}
			r := rand.New(rand.NewPCG(1, 1))
			served, clients := 0, 0
			for i := range 5000 {
				w.clock.t += 1e6 // 1 ms
				src := fam.spoof(r)
				sport := uint16(r.Uint32())
				f := w.run(t, ptPkt{src: src, dst: vip, sport: sport, dport: 80, proto: proto, tcpFlags: "S", seq: r.Uint32()}.build(t))
				if f.Verdict == dataplane.VerdictTX {
					d := ptDecode(t, f.Data())
					w.run(t, ptPkt{src: d.dst, dst: d.src, sport: d.dport, dport: d.sport, proto: proto, tcpFlags: "SA", seq: r.Uint32(), ack: r.Uint32()}.build(t))
				}
				if i%50 == 0 {
					clients++
					if connect(t, w, fam.client(20+i/12800, i/50), 40000) {
						served++
					}
				}
			}
			for i := range 200 {
				k := conntrack.MakeTuple(fam.client(10, i), vip, 30000, 80, nat.ProtoTCP)
				if fl, ok := w.ct.Lookup(k, w.clock.t); !ok || fl.State != conntrack.StateEstablished {
					t.Fatalf("established connection %d after the flood: Lookup = %v, %v, want ESTABLISHED", i, fl.State, ok)
				}
			}
			if served != clients {
				t.Fatalf("new clients served during the flood: %d of %d, want all", served, clients)
			}
			if st := w.ct.Stats(); st.Evictions == 0 {
				t.Fatalf("no evictions: the flood did not fill the %s table", fam.name)
			}
		})
	}
}

// TestPipelineSNATFloodReclaims: spoofed SYNs fill a 256-port SNAT range;
// a second later a real client still gets a port (reclaimed from an idle
// half-open flow) instead of snat_exhausted, and the table is under
// pressure so the flood's flows time out early. (Before: 32 consecutive
// probes, no reclaim, unanswered SYNs held their ports for 120 s.)
func TestPipelineSNATFloodReclaims(t *testing.T) {
	w := attackWorld(t, 4096, true, func(c *Config) { c.SNATPortMin, c.SNATPortMax = 40000, 40255 })
	r := rand.New(rand.NewPCG(2, 2))
	for range 2000 {
		src := spoofed(r)
		w.run(t, ptPkt{src: src, dst: ptVIP4, sport: uint16(r.Uint32()), dport: 80, proto: tcpPkt(src, 0, ptVIP4, 0, "").proto, tcpFlags: "S", seq: r.Uint32()}.build(t))
	}
	if n := w.ct.Stats().Entries; n != 256 {
		t.Fatalf("flood flows = %d, want 256 (the SNAT range)", n)
	}
	w.clock.t += 2 * second
	for i := range 50 {
		if !connect(t, w, netip.AddrFrom4([4]byte{198, 18, 30, byte(i)}), 50000) {
			t.Fatalf("client %d after the flood not served (SNAT exhausted)", i)
		}
	}
	if !w.ct.UnderPressure(w.clock.t) {
		t.Fatalf("UnderPressure = false after SNAT probing failed")
	}
}

// TestPipelineSNATFloodRetransmissions: a flood of answered spoofed SYNs
// (4,000/s for 8 s of pipeline time) keeps a 256-port SNAT range full the
// whole time, reclaiming every port that has been idle for
// conntrack.ReclaimAge. Real clients start every 50 ms and retransmit their
// SYN as Linux does (1 s and 3 s after the first): every one of them is served,
// at its first retransmission at the latest, because a repeated tuple may
// reclaim ports that first packets cannot yet. (Without the repeat rule,
// real clients competed with the flood for each reclaimed port: about 1 in
// 5 was served in TestPrivSNATFlood.)
func TestPipelineSNATFloodRetransmissions(t *testing.T) {
	w := attackWorld(t, 1<<16, true, func(c *Config) { c.SNATPortMin, c.SNATPortMax = 40000, 40255 })
	r := rand.New(rand.NewPCG(3, 3))
	proto := tcpPkt(ptVIP4, 0, ptVIP4, 0, "").proto
	type client struct {
		addr  netip.Addr
		start int64
		tries int
	}
	var pending []client
	served, firstTry, clients := 0, 0, 0
	start := w.clock.t
	for ms := int64(0); ms < 8000; ms++ {
		w.clock.t = start + ms*1e6
		for range 4 {
			src := spoofed(r)
			f := w.run(t, ptPkt{src: src, dst: ptVIP4, sport: uint16(r.Uint32()), dport: 80, proto: proto, tcpFlags: "S", seq: r.Uint32()}.build(t))
			if f.Verdict == dataplane.VerdictTX {
				d := ptDecode(t, f.Data())
				w.run(t, ptPkt{src: d.dst, dst: d.src, sport: d.dport, dport: d.sport, proto: proto, tcpFlags: "SA", seq: r.Uint32(), ack: r.Uint32()}.build(t))
			}
		}
		if ms >= 1000 && ms < 4000 && ms%50 == 0 { // once the range is full
			clients++
			pending = append(pending, client{netip.AddrFrom4([4]byte{198, 18, 30 + byte(clients/250), byte(clients % 250)}), ms, 0})
		}
		kept := pending[:0]
		for _, c := range pending {
			// SYNs at start, start+1 s, start+3 s (Linux's doubling RTO).
			if due := c.start + [...]int64{0, 1000, 3000}[c.tries]; ms != due {
				kept = append(kept, c)
				continue
			}
			c.tries++
			if connect(t, w, c.addr, 50000) {
				closeConn(t, w, c.addr, 50000)
				served++
				if c.tries == 1 {
					firstTry++
				}
				continue
			}
			if c.tries < 3 {
				kept = append(kept, c)
			}
		}
		pending = kept
	}
	if n := w.ct.Stats().Entries; n < 256 {
		t.Fatalf("%d flows at the end of the flood, want the range (256) full", n)
	}
	t.Logf("clients served %d of %d (%d at their first SYN)", served, clients, firstTry)
	if served != clients {
		t.Fatalf("clients served during the flood: %d of %d, want all (%d at their first SYN)", served, clients, firstTry)
	}
}

// TestPipelineSpoofedTCP: a spoofed ACK creates a flow that lives 300 s,
// not a day; out-of-window RST and FIN against a live connection change
// nothing (they are forwarded: the endpoint judges them).
func TestPipelineSpoofedTCP(t *testing.T) {
	w := attackWorld(t, 1024, false, nil)
	proto := tcpPkt(ptVIP4, 0, ptVIP4, 0, "").proto
	spoof := netip.MustParseAddr("198.19.7.7")
	w.run(t, ptPkt{src: spoof, dst: ptVIP4, sport: 1234, dport: 80, proto: proto, tcpFlags: "A", seq: 42, ack: 43}.build(t))
	k := conntrack.MakeTuple(spoof, ptVIP4, 1234, 80, nat.ProtoTCP)
	if _, ok := w.ct.Lookup(k, w.clock.t+301*second); ok {
		t.Fatalf("flow from one spoofed ACK alive after 301 s, want expired (unacknowledged cap)")
	}
	client := netip.MustParseAddr("198.18.9.9")
	if !connect(t, w, client, 33333) {
		t.Fatal("client not served")
	}
	ck := conntrack.MakeTuple(client, ptVIP4, 33333, 80, nat.ProtoTCP)
	for _, flags := range []string{"R", "RA", "FA"} {
		for _, seq := range []uint32{1001 + 1<<30, 1<<32 - 1<<29, 1<<31 + 7} {
			w.run(t, ptPkt{src: client, dst: ptVIP4, sport: 33333, dport: 80, proto: proto, tcpFlags: flags, seq: seq, ack: 5001}.build(t))
			if fl, ok := w.ct.Lookup(ck, w.clock.t); !ok || fl.State != conntrack.StateEstablished {
				t.Fatalf("after spoofed %s seq %d: Lookup = %v, %v, want ESTABLISHED", flags, seq, fl.State, ok)
			}
		}
	}
	w.run(t, ptPkt{src: client, dst: ptVIP4, sport: 33333, dport: 80, proto: proto, tcpFlags: "R", seq: 1001}.build(t))
	if fl, _ := w.ct.Lookup(ck, w.clock.t); fl.State != conntrack.StateClose {
		t.Fatalf("after in-window RST: state %v, want CLOSE", fl.State)
	}
}

// twoAddrHops is ptHops whose endpoint interface (3) has a second IPv4
// address: a dataplane.SNATAddrSource.
type twoAddrHops struct{ ptHops }

var ptGW4b = netip.MustParseAddr("198.18.0.3")

func (twoAddrHops) IfaceAddrs(ifindex int, src netip.Addr) []netip.Addr {
	if ifindex == 3 && src.Is4() {
		return []netip.Addr{ptGW4, ptGW4b}
	}
	return nil
}

// TestPipelineSNATOtherAddress: when every port of the route's source
// address is taken by established flows (nothing to reclaim), a new
// masqueraded flow gets a port of the interface's other address instead
// of snat_exhausted.
func TestPipelineSNATOtherAddress(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hops    dataplane.NextHopper
		wantNew bool
	}{{"one address", ptHops{}, false}, {"two addresses", twoAddrHops{}, true}} {
		t.Run(tc.name, func(t *testing.T) {
			w := attackWorld(t, 4096, true, func(c *Config) {
				c.SNATPortMin, c.SNATPortMax = 40000, 40015
				c.Hops = tc.hops
			})
			for i := range 16 { // every port of ptGW4, assured
				if !connect(t, w, netip.AddrFrom4([4]byte{198, 18, 31, byte(i)}), 50000) {
					t.Fatalf("client %d not served while ports were free", i)
				}
			}
			f := w.run(t, tcpPkt(netip.MustParseAddr("198.18.32.1"), 50000, ptVIP4, 80, "S").build(t))
			if got := f.Verdict == dataplane.VerdictTX; got != tc.wantNew {
				t.Fatalf("17th client forwarded = %v (%v), want %v", got, f.Reason, tc.wantNew)
			}
			if tc.wantNew {
				if d := ptDecode(t, f.Data()); d.src != ptGW4b {
					t.Errorf("17th client masqueraded to %v, want the interface's other address %v", d.src, ptGW4b)
				}
			} else if f.Reason != DropSNATExhausted {
				t.Errorf("17th client dropped as %v, want snat_exhausted", f.Reason)
			}
		})
	}
}

// TestRetryFilter: a refused tuple is a repeat when it comes back within
// the window, also after other refusals land in its bucket, and not after
// the window; it does not allocate.
func TestRetryFilter(t *testing.T) {
	f := newRetryFilter(42)
	k := conntrack.MakeTuple(netip.MustParseAddr("198.18.1.1"), ptVIP4, 40000, 80, nat.ProtoTCP)
	now := int64(100e9)
	if f.repeat(&k, now) {
		t.Fatal("repeat(first refusal) = true")
	}
	// Other tuples, three of them in k's bucket at most, do not push it out.
	same := 0
	for i := 0; same < retryWays-1; i++ {
		o := conntrack.MakeTuple(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), ptVIP4, uint16(i), 80, nat.ProtoTCP)
		if f.hash(&o)&(retrySlots-retryWays) == f.hash(&k)&(retrySlots-retryWays) {
			same++
		}
		f.repeat(&o, now+int64(i))
	}
	if !f.repeat(&k, now+1e9) {
		t.Fatal("repeat(retransmission 1 s later) = false")
	}
	if !f.repeat(&k, now+3e9) {
		t.Fatal("repeat(retransmission 3 s later) = false")
	}
	if f.repeat(&k, now+3e9+int64(retryWindowMs+1)*1e6) {
		t.Fatal("repeat(after the window) = true")
	}
	if n := testing.AllocsPerRun(100, func() { f.repeat(&k, now) }); n != 0 {
		t.Errorf("repeat allocates %v times", n)
	}
}
