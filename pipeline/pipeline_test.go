package pipeline

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/xdpgate/xdpgate/dataplane"

	"github.com/google/gopacket/layers"

	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

func twoEndpoints4() []netip.Addr { return []netip.Addr{ptEP4a, ptEP4b} }

// TestPipelineTranslate sends a packet to each kind of frontend, checks the
// translated frame, then sends the endpoint's reply back and checks that
// the client sees the frontend.
func TestPipelineTranslate(t *testing.T) {
	base := snapshot.Snapshot{
		NodePortAddrs: []netip.Addr{ptGW4, ptGW6},
		ServicePorts: []snapshot.ServicePort{
			ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), func(sp *snapshot.ServicePort) {
				sp.NodePort = 30080
				sp.LoadBalancerIPs = []netip.Addr{ptLB4}
				sp.ExternalIPs = []netip.Addr{ptExt4}
			}),
			ptPort(2, nat.ProtoUDP, ptVIP4, twoEndpoints4(), nil),
			ptPort(3, nat.ProtoTCP, ptVIP6, []netip.Addr{ptEP6a, ptEP6b}, func(sp *snapshot.ServicePort) { sp.NodePort = 30080 }),
		},
	}
	tests := []struct {
		name    string
		in      ptPkt
		masq    bool // source becomes the gateway address
		wantDst []netip.Addr
	}{
		{"clusterIP TCP, no detector: client kept", tcpPkt(ptClient4, 40000, ptVIP4, 80, "S"), false, twoEndpoints4()},
		{"clusterIP UDP", udpPkt(ptClient4, 40001, ptVIP4, 80), false, twoEndpoints4()},
		{"LB IP, ETP Cluster: SNAT", tcpPkt(ptClient4, 40002, ptLB4, 80, "S"), true, twoEndpoints4()},
		{"externalIP: SNAT", tcpPkt(ptClient4, 40003, ptExt4, 80, "S"), true, twoEndpoints4()},
		{"NodePort v4: SNAT", tcpPkt(ptClient4, 40004, ptGW4, 30080, "S"), true, twoEndpoints4()},
		{"clusterIP v6", tcpPkt(ptClient6, 40005, ptVIP6, 80, "S"), false, []netip.Addr{ptEP6a, ptEP6b}},
		{"NodePort v6: SNAT", tcpPkt(ptClient6, 40006, ptGW6, 30080, "S"), true, []netip.Addr{ptEP6a, ptEP6b}},
		{"mid-stream TCP starts a flow (loose pickup)", tcpPkt(ptClient4, 40007, ptVIP4, 80, "A"), false, twoEndpoints4()},
	}
	w := newWorld(t, ptSnapshot(t, base), nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in.build(t)
			f := w.run(t, in)
			if f.Verdict != dataplane.VerdictTX {
				t.Fatalf("Process(%s) verdict = %v reason %v, want TX", tc.name, f.Verdict, f.Reason)
			}
			if f.Ifindex != 3 {
				t.Errorf("egress ifindex = %d, want 3", f.Ifindex)
			}
			got := ptDecode(t, f.Data())
			if got.ethDst != ptEPMAC || got.ethSrc != ptGWMAC {
				t.Errorf("ethernet = %x -> %x, want %x -> %x", got.ethSrc, got.ethDst, ptGWMAC, ptEPMAC)
			}
			if got.ttl != 63 {
				t.Errorf("ttl = %d, want 63", got.ttl)
			}
			okDst := false
			for _, a := range tc.wantDst {
				okDst = okDst || a == got.dst
			}
			if !okDst || got.dport != 8080 {
				t.Errorf("dst = %v:%d, want one of %v:8080", got.dst, got.dport, tc.wantDst)
			}
			gw := ptGW4
			if tc.in.src.Is6() {
				gw = ptGW6
			}
			if tc.masq {
				if got.src != gw || got.sport < DefaultSNATPortMin || got.sport > DefaultSNATPortMax {
					t.Errorf("src = %v:%d, want %v:[%d-%d]", got.src, got.sport, gw, DefaultSNATPortMin, DefaultSNATPortMax)
				}
			} else if got.src != tc.in.src || got.sport != tc.in.sport {
				t.Errorf("src = %v:%d, want %v:%d (not masqueraded)", got.src, got.sport, tc.in.src, tc.in.sport)
			}

			// The endpoint answers; the client must see the frontend.
			back := ptPkt{src: got.dst, dst: got.src, sport: got.dport, dport: got.sport, proto: tc.in.proto, tcpFlags: "SA"}
			f = w.run(t, back.build(t))
			if f.Verdict != dataplane.VerdictTX {
				t.Fatalf("reply verdict = %v reason %v, want TX", f.Verdict, f.Reason)
			}
			r := ptDecode(t, f.Data())
			if r.src != tc.in.dst || r.sport != tc.in.dport || r.dst != tc.in.src || r.dport != tc.in.sport {
				t.Errorf("reply = %v:%d -> %v:%d, want %v:%d -> %v:%d", r.src, r.sport, r.dst, r.dport,
					tc.in.dst, tc.in.dport, tc.in.src, tc.in.sport)
			}
			if f.Ifindex != 2 || r.ethDst != ptRouter {
				t.Errorf("reply leaves on %d to %x, want 2 to %x", f.Ifindex, r.ethDst, ptRouter)
			}
			// A second original-direction packet follows the same flow.
			f = w.run(t, tc.in.build(t))
			if again := ptDecode(t, f.Data()); again.dst != got.dst || again.src != got.src || again.sport != got.sport {
				t.Errorf("second packet = %v:%d -> %v, want %v:%d -> %v", again.src, again.sport, again.dst, got.src, got.sport, got.dst)
			}
		})
	}
	st := w.p.Stats()[0]
	if st.NewFlows != uint64(len(tests)) || st.Replies != uint64(len(tests)) || st.Established != uint64(len(tests)) {
		t.Errorf("stats new/replies/established = %d/%d/%d, want %d each", st.NewFlows, st.Replies, st.Established, len(tests))
	}
}

// TestPipelineSpread: many client addresses reach every endpoint.
func TestPipelineSpread(t *testing.T) {
	eps := []netip.Addr{ptEP4a, ptEP4b, netip.MustParseAddr("198.18.64.11")}
	w := newWorld(t, ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{ptPort(1, nat.ProtoTCP, ptVIP4, eps, nil)}}), nil)
	seen := map[netip.Addr]int{}
	c := netip.MustParseAddr("198.19.2.0")
	for i := 0; i < 300; i++ {
		c = c.Next()
		f := w.run(t, tcpPkt(c, 40000, ptVIP4, 80, "S").build(t))
		seen[ptDecode(t, f.Data()).dst]++
	}
	for _, e := range eps {
		if seen[e] < 50 {
			t.Errorf("endpoint %v got %d of 300 clients, want at least 50 (%v)", e, seen[e], seen)
		}
	}
}

func TestPipelineReject(t *testing.T) {
	s := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, nil, nil),
		ptPort(2, nat.ProtoTCP, ptVIP6, nil, nil),
		ptPort(3, nat.ProtoUDP, ptVIP4, nil, nil),
	}})
	w := newWorld(t, s, nil)
	tests := []struct {
		name     string
		in       ptPkt
		reject   bool
		wantType layers.ICMPv4TypeCode
	}{
		{"TCP SYN v4", tcpPkt(ptClient4, 1234, ptVIP4, 80, "S"), true, 0},
		{"TCP SYN v6", tcpPkt(ptClient6, 1234, ptVIP6, 80, "S"), true, 0},
		{"UDP v4", udpPkt(ptClient4, 1234, ptVIP4, 80), true, 0},
		{"mid-stream TCP is dropped, not rejected", tcpPkt(ptClient4, 1234, ptVIP4, 80, "A"), false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in.build(t)
			f := w.run(t, in)
			if !tc.reject {
				if f.Verdict != dataplane.VerdictDrop || f.Reason != DropRejectNotNew {
					t.Fatalf("verdict = %v/%v, want drop %v", f.Verdict, f.Reason, DropRejectNotNew)
				}
				return
			}
			if f.Verdict != dataplane.VerdictTX || f.Ifindex != 0 {
				t.Fatalf("verdict = %v/%v ifindex %d, want TX on the receiving interface", f.Verdict, f.Reason, f.Ifindex)
			}
			d := ptDecode(t, f.Data())
			if d.src != tc.in.dst || d.dst != tc.in.src || d.ethDst != ptRouter {
				t.Errorf("reject = %v -> %v (eth %x), want %v -> %v (eth %x)", d.src, d.dst, d.ethDst, tc.in.dst, tc.in.src, ptRouter)
			}
			if tc.in.src.Is4() {
				ic, ok := d.pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
				if !ok || ic.TypeCode != layers.CreateICMPv4TypeCode(3, 3) {
					t.Fatalf("ICMP = %v, want port unreachable (3/3)", d.pkt)
				}
				ipl := d.pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				if c := csum(ipl.Contents); c != 0 {
					t.Errorf("IPv4 header checksum off by %#x", c)
				}
				if c := csum(append(append([]byte{}, ic.Contents...), ic.Payload...)); c != 0 {
					t.Errorf("ICMP checksum off by %#x", c)
				}
				// The quote is the packet as received.
				if q := ic.Payload; len(q) < 28 || string(q[:28]) != string(in[14:14+28]) {
					t.Errorf("quote = %x, want %x", q, in[14:42])
				}
			} else {
				ic, ok := d.pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
				if !ok || ic.TypeCode != layers.CreateICMPv6TypeCode(1, 4) {
					t.Fatalf("ICMPv6 = %v, want port unreachable (1/4)", d.pkt)
				}
			}
		})
	}
	if got := w.p.Stats()[0].Rejects; got != 3 {
		t.Errorf("Rejects = %d, want 3", got)
	}
}

func TestPipelineDropCauses(t *testing.T) {
	s := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), func(sp *snapshot.ServicePort) {
			sp.LoadBalancerIPs = []netip.Addr{ptLB4}
			sp.SourceRanges = []netip.Prefix{netip.MustParsePrefix("198.19.99.0/24")}
			sp.ExternalIPs = []netip.Addr{ptExt4}
			sp.ExternalPolicyLocal = true
			sp.Local = nil
		}),
		ptPort(2, nat.ProtoTCP, netip.MustParseAddr("198.18.100.2"), []netip.Addr{ptUnknown4}, nil),
	}})
	w := newWorld(t, s, nil)
	tests := []struct {
		name string
		in   ptPkt
		want dataplane.DropReason
	}{
		{"not a service", tcpPkt(ptClient4, 1, netip.MustParseAddr("198.18.100.9"), 80, "S"), DropNotService},
		{"source range", tcpPkt(ptClient4, 1, ptLB4, 80, "S"), DropSourceRange},
		{"ETP Local without local endpoints", tcpPkt(ptClient4, 1, ptExt4, 80, "S"), DropNoLocalEndpoints},
		{"no route back for a reply", tcpPkt(ptEP4a, 8080, netip.MustParseAddr("10.0.0.1"), 5, "SA"), DropNotService},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := w.run(t, tc.in.build(t))
			if f.Verdict != dataplane.VerdictDrop || f.Reason != tc.want {
				t.Errorf("Process = %v/%v, want drop %v", f.Verdict, f.Reason, tc.want)
			}
		})
	}
}

func TestPipelineTTL(t *testing.T) {
	w := newWorld(t, ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), nil)}}), nil)
	in := tcpPkt(ptClient4, 999, ptVIP4, 80, "S")
	in.ttl = 1
	b := in.build(t)
	f := w.run(t, b)
	if f.Verdict != dataplane.VerdictTX || f.Ifindex != 0 {
		t.Fatalf("TTL 1: verdict %v/%v ifindex %d, want TX back", f.Verdict, f.Reason, f.Ifindex)
	}
	d := ptDecode(t, f.Data())
	ic, ok := d.pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !ok || ic.TypeCode != layers.CreateICMPv4TypeCode(11, 0) {
		t.Fatalf("reply = %v, want time exceeded", d.pkt)
	}
	if d.src != ptGW4 || d.dst != ptClient4 {
		t.Errorf("time exceeded %v -> %v, want %v -> %v", d.src, d.dst, ptGW4, ptClient4)
	}
	if st := w.ct.Stats(); st.Entries != 0 {
		t.Errorf("conntrack entries = %d, want 0 (no flow for an expired packet)", st.Entries)
	}
	if got := w.p.Stats()[0].TimeExceeded; got != 1 {
		t.Errorf("TimeExceeded = %d, want 1", got)
	}
}

func TestPipelineAffinity(t *testing.T) {
	eps := []netip.Addr{ptEP4a, ptEP4b, netip.MustParseAddr("198.18.64.11"), netip.MustParseAddr("198.18.64.12")}
	s := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{ptPort(1, nat.ProtoTCP, ptVIP4, eps,
		func(sp *snapshot.ServicePort) { sp.AffinitySeconds = 10 })}})
	w := newWorld(t, s, nil)
	c := netip.MustParseAddr("198.19.3.0")
	first := map[netip.Addr]netip.Addr{}
	for i := 0; i < 200; i++ {
		c = c.Next()
		for conn := uint16(0); conn < 2; conn++ {
			f := w.run(t, tcpPkt(c, 30000+conn, ptVIP4, 80, "S").build(t))
			ep := ptDecode(t, f.Data()).dst
			if conn == 0 {
				first[c] = ep
			} else if ep != first[c] {
				t.Fatalf("client %v: second connection to %v, first to %v", c, ep, first[c])
			}
		}
	}
	st := w.p.Stats()[0]
	if st.AffinityHits != 200 || st.AffinityMisses != 200 {
		t.Errorf("affinity hits/misses = %d/%d, want 200/200", st.AffinityHits, st.AffinityMisses)
	}

	// The table, not the hash, decides: pin a client elsewhere.
	client := netip.MustParseAddr("198.19.4.1")
	other := s.ServicePorts[0].Endpoints[0]
	if d := w.dst(t, tcpPkt(client, 1, ptVIP4, 80, "S")); d == other.Addr {
		other = s.ServicePorts[0].Endpoints[1]
	}
	w.aff.Pin(1, client, other.ID, 10, w.clock.t)
	if d := w.dst(t, tcpPkt(client, 2, ptVIP4, 80, "S")); d != other.Addr {
		t.Errorf("pinned client went to %v, want %v", d, other.Addr)
	}
	// Still pinned 9 s later (the timer runs from the last new connection)...
	w.clock.t += 9 * second
	if d := w.dst(t, tcpPkt(client, 3, ptVIP4, 80, "S")); d != other.Addr {
		t.Errorf("after 9 s: %v, want %v", d, other.Addr)
	}
	// ...and 18 s after the pin, because connection 3 restarted the timer.
	w.clock.t += 9 * second
	if d := w.dst(t, tcpPkt(client, 4, ptVIP4, 80, "S")); d != other.Addr {
		t.Errorf("after 18 s (refreshed at 9 s): %v, want %v", d, other.Addr)
	}
	// 11 s idle: expired, back to the Maglev/hash choice.
	w.clock.t += 11 * second
	if d := w.dst(t, tcpPkt(client, 5, ptVIP4, 80, "S")); d == other.Addr {
		t.Errorf("after expiry the client stayed on %v, want the hash choice", d)
	}
}

func TestPipelineHairpin(t *testing.T) {
	w := newWorld(t, ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a}, nil)}}), nil)
	f := w.run(t, tcpPkt(ptEP4a, 5555, ptVIP4, 80, "S").build(t))
	d := ptDecode(t, f.Data())
	if d.dst != ptEP4a || d.src != ptGW4 {
		t.Fatalf("hairpin = %v -> %v, want %v -> %v (masqueraded)", d.src, d.dst, ptGW4, ptEP4a)
	}
	back := w.run(t, tcpPkt(ptEP4a, 8080, ptGW4, d.sport, "SA").build(t))
	r := ptDecode(t, back.Data())
	if r.src != ptVIP4 || r.sport != 80 || r.dst != ptEP4a || r.dport != 5555 {
		t.Errorf("hairpin reply = %v:%d -> %v:%d, want %v:80 -> %v:5555", r.src, r.sport, r.dst, r.dport, ptVIP4, ptEP4a)
	}
}

// TestPipelineSNATPorts: flows from many clients with the same source port
// get distinct SNAT ports; a range of 4 ports holds 4 flows per endpoint
// and the fifth is a counted drop.
func TestPipelineSNATPorts(t *testing.T) {
	s := ptSnapshot(t, snapshot.Snapshot{MasqueradeAll: true, ServicePorts: []snapshot.ServicePort{ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a}, nil)}})
	w := newWorld(t, s, func(c *Config) { c.SNATPortMin, c.SNATPortMax = 40000, 40003 })
	used := map[uint16]bool{}
	c := netip.MustParseAddr("198.19.5.0")
	for i := 0; i < 4; i++ {
		c = c.Next()
		f := w.run(t, tcpPkt(c, 1000, ptVIP4, 80, "S").build(t))
		if f.Verdict != dataplane.VerdictTX {
			t.Fatalf("flow %d: %v/%v, want TX", i, f.Verdict, f.Reason)
		}
		d := ptDecode(t, f.Data())
		if d.sport < 40000 || d.sport > 40003 || used[d.sport] {
			t.Fatalf("flow %d: SNAT port %d (used %v), want a free port in 40000-40003", i, d.sport, used)
		}
		used[d.sport] = true
	}
	f := w.run(t, tcpPkt(c.Next(), 1000, ptVIP4, 80, "S").build(t))
	if f.Verdict != dataplane.VerdictDrop || f.Reason != DropSNATExhausted {
		t.Errorf("fifth flow: %v/%v, want drop %v", f.Verdict, f.Reason, DropSNATExhausted)
	}
}

func TestPipelineMalformed(t *testing.T) {
	good := tcpPkt(ptClient4, 1, ptVIP4, 80, "S").build(t)
	trunc := func(n int) []byte { return good[:n] }
	badIHL := append([]byte{}, good...)
	badIHL[14] = 0x44
	badTCP := append([]byte{}, good...)
	badTCP[14+20+12] = 0x10 // data offset 1
	tests := []struct {
		name string
		b    []byte
		want dataplane.DropReason
		nat  nat.DropReason
	}{
		{"empty", nil, DropParseL2, nat.DropEthernetTruncated},
		{"ethernet cut", trunc(10), DropParseL2, nat.DropEthernetTruncated},
		{"IPv4 cut", trunc(20), DropParseIPv4, nat.DropIPv4Truncated},
		{"IHL 4", badIHL, DropParseIPv4, nat.DropIPv4HeaderLength},
		{"TCP data offset", badTCP, DropParseL4, nat.DropTCPDataOffset},
		{"ARP", append(append([]byte{}, good[:12]...), 0x08, 0x06, 0, 1), dataplane.DropNotIP, nat.NotIP},
	}
	w := newWorld(t, nil, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := w.p.Stats()[0].NATDrops[tc.nat]
			f := w.run(t, tc.b)
			if f.Verdict != dataplane.VerdictDrop || f.Reason != tc.want {
				t.Errorf("Process = %v/%v, want drop %v", f.Verdict, f.Reason, tc.want)
			}
			if after := w.p.Stats()[0].NATDrops[tc.nat]; after != before+1 {
				t.Errorf("NATDrops[%v] = %d, want %d", tc.nat, after, before+1)
			}
		})
	}
}

// TestPipelineICMPError: a "fragmentation needed" from the endpoint about a
// DNATed flow reaches the client quoting the packet the client sent.
func TestPipelineICMPError(t *testing.T) {
	w := newWorld(t, ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a}, nil)}}), nil)
	out := w.run(t, tcpPkt(ptClient4, 4321, ptVIP4, 80, "S").build(t))
	sent := append([]byte{}, out.Data()...) // client -> endpoint, as it left
	// The endpoint's ICMP error quotes the IP header + 8 bytes.
	quote := sent[14 : 14+28]
	icmp := append([]byte{3, 4, 0, 0, 0, 0, 0x05, 0xdc}, quote...)
	binary.BigEndian.PutUint16(icmp[2:], csum(icmp))
	ip := []byte{0x45, 0, 0, 0, 0, 1, 0, 0, 64, 1, 0, 0}
	ip = append(ip, ptEP4a.AsSlice()...)
	ip = append(ip, ptClient4.AsSlice()...)
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(icmp)))
	binary.BigEndian.PutUint16(ip[10:], csum(ip))
	frame := append(append(append([]byte{}, ptGWMAC[:]...), ptEPMAC[:]...), 0x08, 0x00)
	frame = append(append(frame, ip...), icmp...)

	f := w.run(t, frame)
	if f.Verdict != dataplane.VerdictTX || f.Ifindex != 2 {
		t.Fatalf("ICMP error: %v/%v ifindex %d, want TX on 2", f.Verdict, f.Reason, f.Ifindex)
	}
	b := f.Data()
	if got := netip.AddrFrom4([4]byte(b[26:30])); got != ptVIP4 {
		t.Errorf("outer source = %v, want the VIP %v (the endpoint itself reported)", got, ptVIP4)
	}
	if c := csum(b[14:34]); c != 0 {
		t.Errorf("outer IPv4 checksum off by %#x", c)
	}
	if c := csum(b[34:]); c != 0 {
		t.Errorf("ICMP checksum off by %#x", c)
	}
	in := b[34+8:]
	if src, dst := netip.AddrFrom4([4]byte(in[12:16])), netip.AddrFrom4([4]byte(in[16:20])); src != ptClient4 || dst != ptVIP4 {
		t.Errorf("quoted %v -> %v, want %v -> %v", src, dst, ptClient4, ptVIP4)
	}
	if dport := binary.BigEndian.Uint16(in[22:]); dport != 80 {
		t.Errorf("quoted dport = %d, want 80", dport)
	}
	if c := csum(in[:20]); c != 0 {
		t.Errorf("quoted IPv4 checksum off by %#x", c)
	}

	// An error about no flow is dropped.
	frame[14+20+8+12] ^= 1 // quoted source: another client
	if g := w.run(t, frame); g.Verdict != dataplane.VerdictDrop || g.Reason != DropICMPErrorUntracked {
		t.Errorf("untracked ICMP error: %v/%v, want drop %v", g.Verdict, g.Reason, DropICMPErrorUntracked)
	}
}

// TestPipelineFragments: a UDP datagram in two fragments; the second
// follows the first; a lone later fragment is dropped.
func TestPipelineFragments(t *testing.T) {
	w := newWorld(t, ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{ptPort(1, nat.ProtoUDP, ptVIP4, []netip.Addr{ptEP4a}, nil)}}), nil)
	whole := udpPkt(ptClient4, 7000, ptVIP4, 80)
	whole.payload = make([]byte, 64)
	b := whole.build(t)
	// Split after 8 (UDP header) + 16 bytes of payload.
	const cut = 24
	first := append([]byte{}, b[:14+20+cut]...)
	setFrag(first, true, 0)
	second := append(append([]byte{}, b[:14+20]...), b[14+20+cut:]...)
	setFrag(second, false, cut)

	f := w.run(t, first)
	if f.Verdict != dataplane.VerdictTX {
		t.Fatalf("first fragment: %v/%v", f.Verdict, f.Reason)
	}
	f = w.run(t, second)
	if f.Verdict != dataplane.VerdictTX {
		t.Fatalf("second fragment: %v/%v", f.Verdict, f.Reason)
	}
	d := f.Data()
	if dst := netip.AddrFrom4([4]byte(d[30:34])); dst != ptEP4a {
		t.Errorf("second fragment to %v, want %v", dst, ptEP4a)
	}
	if c := csum(d[14:34]); c != 0 {
		t.Errorf("second fragment IPv4 checksum off by %#x", c)
	}
	lone := append([]byte{}, second...)
	binary.BigEndian.PutUint16(lone[18:], 99) // another datagram
	binary.BigEndian.PutUint16(lone[24:], 0)
	binary.BigEndian.PutUint16(lone[24:], csum(lone[14:34]))
	if f := w.run(t, lone); f.Verdict != dataplane.VerdictDrop || f.Reason != DropFragmentUnknown {
		t.Errorf("lone later fragment: %v/%v, want drop %v", f.Verdict, f.Reason, DropFragmentUnknown)
	}
	if got := w.p.Stats()[0].Fragments; got != 1 {
		t.Errorf("Fragments = %d, want 1", got)
	}
}

// setFrag sets the IPv4 total length, flags and offset of a frame and its
// header checksum.
func setFrag(b []byte, more bool, off int) {
	ip := b[14:34]
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)-14))
	v := uint16(off / 8)
	if more {
		v |= 0x2000
	}
	binary.BigEndian.PutUint16(ip[6:], v)
	binary.BigEndian.PutUint16(ip[10:], 0)
	binary.BigEndian.PutUint16(ip[10:], csum(ip))
}

func TestPipelineOnSnapshot(t *testing.T) {
	old := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a}, func(sp *snapshot.ServicePort) { sp.AffinitySeconds = 100 }),
		ptPort(2, nat.ProtoUDP, netip.MustParseAddr("198.18.100.2"), twoEndpoints4(), nil),
	}})
	w := newWorld(t, old, nil)
	w.run(t, tcpPkt(ptClient4, 1, ptVIP4, 80, "S").build(t))
	c := netip.MustParseAddr("198.19.6.0")
	for i := 0; i < 20; i++ {
		c = c.Next()
		w.run(t, udpPkt(c, 1, netip.MustParseAddr("198.18.100.2"), 80).build(t))
	}
	if n := w.ct.Stats().Entries; n != 21 {
		t.Fatalf("entries = %d, want 21", n)
	}
	// Endpoint 202 (ptEP4b) leaves the UDP port, affinity is switched off,
	// and the TCP endpoint 101 leaves too.
	newSnap := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, nil, nil),
		ptPort(2, nat.ProtoUDP, netip.MustParseAddr("198.18.100.2"), []netip.Addr{ptEP4a}, nil),
	}})
	toB := 0
	w.ct.Range(func(e *conntrack.Entry) bool {
		if e.Endpoint == 202 {
			toB++
		}
		return true
	})
	ch := w.p.Publish(newSnap)
	if ch.RemovedEndpoints != 2 || ch.FlowsDeleted != toB || ch.AffinityDeleted != 1 {
		t.Errorf("Publish = %+v, want 2 removed endpoints, %d UDP flows deleted, 1 affinity entry", ch, toB)
	}
	if n := w.ct.Stats().Entries; n != int64(21-toB) {
		t.Errorf("entries = %d, want %d (TCP flow to a removed endpoint kept)", n, 21-toB)
	}
	if w.p.Snapshot() != newSnap {
		t.Errorf("Snapshot() is not the published one")
	}
	// The TCP endpoint that left keeps its replies redirected while its
	// flow lives.
	retained := dataplane.L4Addr{Addr: ptEP4a, Port: 8080, Proto: 6}
	if r := w.p.Rules(newSnap, nil, dataplane.ClassifierConfig{}, nil).Rules; !slices.Contains(r.Endpoints, retained) {
		t.Errorf("Rules().Endpoints = %v, want the retained %v", r.Endpoints, retained)
	}
	if w.p.PruneRetained() {
		t.Errorf("PruneRetained() = true while the flow lives")
	}
	w.ct.DeleteByEndpoint(101)
	if !w.p.PruneRetained() {
		t.Errorf("PruneRetained() = false after the flow ended")
	}
	if r := w.p.Rules(newSnap, nil, dataplane.ClassifierConfig{}, nil).Rules; slices.Contains(r.Endpoints, dataplane.L4Addr{Addr: ptEP4a, Port: 8080, Proto: 6}) {
		t.Errorf("Rules().Endpoints = %v, want %v gone", r.Endpoints, retained)
	}
}

func TestRulesFromSnapshot(t *testing.T) {
	s := ptSnapshot(t, snapshot.Snapshot{NodePortAddrs: []netip.Addr{ptGW4}, ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), func(sp *snapshot.ServicePort) {
			sp.NodePort = 30000
			sp.LoadBalancerIPs = []netip.Addr{ptLB4}
		}),
		ptPort(2, nat.ProtoUDP, ptVIP4, []netip.Addr{ptEP4a}, nil),
	}})
	w := newWorld(t, nil, func(c *Config) { c.SNATPortMin, c.SNATPortMax = 100, 200 })
	rs := w.p.Rules(s, []netip.Addr{ptGW4, ptGW4}, dataplane.ClassifierConfig{}, nil)
	r := rs.Rules
	wantFE := []dataplane.L4Addr{{Addr: ptVIP4, Port: 80, Proto: 6}, {Addr: ptVIP4, Port: 80, Proto: 17}, {Addr: ptLB4, Port: 80, Proto: 6}}
	if len(r.Frontends) != len(wantFE) {
		t.Fatalf("Frontends = %v, want %v", r.Frontends, wantFE)
	}
	for i := range wantFE {
		if r.Frontends[i] != wantFE[i] {
			t.Errorf("Frontends[%d] = %v, want %v", i, r.Frontends[i], wantFE[i])
		}
	}
	if len(r.Endpoints) != 3 || len(r.NodePorts) != 1 || r.NodePorts[0] != (dataplane.PortProto{Port: 30000, Proto: 6}) ||
		len(r.SNATAddrs) != 1 || r.SNATPortMin != 100 || r.SNATPortMax != 200 || len(r.NodePortAddrs) != 1 {
		t.Errorf("Rules = %+v", r)
	}
}

func TestNewPipelineConfig(t *testing.T) {
	w := newWorld(t, nil, nil)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no tables", Config{NumQueues: 1}},
		{"no queues", Config{Conntrack: w.ct, Affinity: w.aff, Hops: ptHops{}}},
		{"inverted range", Config{Conntrack: w.ct, Affinity: w.aff, Hops: ptHops{}, NumQueues: 1, SNATPortMin: 10, SNATPortMax: 5}},
	}
	for _, tc := range tests {
		if _, err := New(tc.cfg); err == nil {
			t.Errorf("New(%s) = nil error, want ErrBadConfig", tc.name)
		}
	}
}

func TestPipelineDropReasonNames(t *testing.T) {
	for r := dataplane.FirstPipelineDropReason; r < dataplane.FirstPipelineDropReason+numPipelineDropReasons; r++ {
		if s := r.String(); s == "" || s[:min(len(s), 7)] == "reason_" {
			t.Errorf("DropReason(%d).String() = %q, want a registered name", r, s)
		}
	}
	for r := nat.DropReason(2); r < nat.NumDropReasons; r++ {
		if natDropGroup[r] < dataplane.FirstPipelineDropReason {
			t.Errorf("nat reason %v maps to %v, want a pipeline reason", r, natDropGroup[r])
		}
	}
}

// TestPipelineConcurrentInsert: two pollers see the first packets of the
// same flows at once (masqueraded, so the SNAT port is allocated twice);
// for every flow both must emit the same translation (the insert's winner).
func TestPipelineConcurrentInsert(t *testing.T) {
	eps := []netip.Addr{ptEP4a, ptEP4b, netip.MustParseAddr("198.18.64.11")}
	s := ptSnapshot(t, snapshot.Snapshot{MasqueradeAll: true, ServicePorts: []snapshot.ServicePort{ptPort(1, nat.ProtoTCP, ptVIP4, eps, nil)}})
	w := newWorld(t, s, nil)
	const n = 500
	in := make([][]byte, n)
	c := netip.MustParseAddr("198.19.7.0")
	for i := range in {
		c = c.Next()
		in[i] = tcpPkt(c, 1000, ptVIP4, 80, "S").build(t)
	}
	out := [2][][]byte{make([][]byte, n), make([][]byte, n)}
	done := make(chan struct{})
	for q := 0; q < 2; q++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range in {
				fs := []dataplane.Frame{ptFrame(in[i])}
				w.p.Process(&dataplane.Queue{Index: q}, fs)
				if fs[0].Verdict == dataplane.VerdictTX {
					out[q][i] = append([]byte{}, fs[0].Data()...)
				}
			}
		}()
	}
	<-done
	<-done
	for i := range in {
		if out[0][i] == nil || out[1][i] == nil {
			t.Fatalf("flow %d: a poller dropped its packet", i)
		}
		a, b := ptDecode(t, out[0][i]), ptDecode(t, out[1][i])
		if a.src != b.src || a.sport != b.sport || a.dst != b.dst || a.dport != b.dport {
			t.Fatalf("flow %d: pollers disagree: %v:%d->%v:%d vs %v:%d->%v:%d", i, a.src, a.sport, a.dst, a.dport, b.src, b.sport, b.dst, b.dport)
		}
	}
	st := w.p.Stats()
	if got := st[0].NewFlows + st[1].NewFlows; got != n {
		t.Errorf("NewFlows = %d, want %d (one insert per flow)", got, n)
	}
}

// icmp4Error builds an Ethernet frame carrying an ICMP fragmentation-needed
// error from `from` to `to` quoting quote (an IP header and 8+ bytes).
func icmp4Error(from, to netip.Addr, quote []byte) []byte {
	icmp := append([]byte{3, 4, 0, 0, 0, 0, 0x05, 0xdc}, quote...)
	binary.BigEndian.PutUint16(icmp[2:], csum(icmp))
	ip := []byte{0x45, 0, 0, 0, 0, 1, 0, 0, 64, 1, 0, 0}
	ip = append(ip, from.AsSlice()...)
	ip = append(ip, to.AsSlice()...)
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(icmp)))
	binary.BigEndian.PutUint16(ip[10:], csum(ip))
	frame := append(append(append([]byte{}, ptGWMAC[:]...), ptEPMAC[:]...), 0x08, 0x00)
	return append(append(frame, ip...), icmp...)
}

// TestPipelineICMPErrorSNAT: a router between gateway and endpoint reports
// "fragmentation needed" for a masqueraded flow to the gateway's address;
// the client receives it with the router as source and its own packet
// (client -> frontend) quoted, so PMTU discovery works through the NAT.
func TestPipelineICMPErrorSNAT(t *testing.T) {
	s := ptSnapshot(t, snapshot.Snapshot{MasqueradeAll: true, ServicePorts: []snapshot.ServicePort{ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a}, nil)}})
	w := newWorld(t, s, nil)
	out := w.run(t, tcpPkt(ptClient4, 4321, ptVIP4, 80, "A").build(t))
	sent := append([]byte{}, out.Data()...) // gateway:snat -> endpoint
	router := netip.MustParseAddr("198.18.64.1")
	f := w.run(t, icmp4Error(router, ptGW4, sent[14:14+28]))
	if f.Verdict != dataplane.VerdictTX || f.Ifindex != 2 {
		t.Fatalf("ICMP error: %v/%v ifindex %d, want TX towards the client (2)", f.Verdict, f.Reason, f.Ifindex)
	}
	b := f.Data()
	if src, dst := netip.AddrFrom4([4]byte(b[26:30])), netip.AddrFrom4([4]byte(b[30:34])); src != router || dst != ptClient4 {
		t.Errorf("outer %v -> %v, want %v -> %v (router kept, client restored)", src, dst, router, ptClient4)
	}
	if c := csum(b[14:34]); c != 0 {
		t.Errorf("outer IPv4 checksum off by %#x", c)
	}
	if c := csum(b[34:]); c != 0 {
		t.Errorf("ICMP checksum off by %#x", c)
	}
	in := b[34+8:]
	src, dst := netip.AddrFrom4([4]byte(in[12:16])), netip.AddrFrom4([4]byte(in[16:20]))
	sport, dport := binary.BigEndian.Uint16(in[20:]), binary.BigEndian.Uint16(in[22:])
	if src != ptClient4 || sport != 4321 || dst != ptVIP4 || dport != 80 {
		t.Errorf("quoted %v:%d -> %v:%d, want %v:4321 -> %v:80", src, sport, dst, dport, ptClient4, ptVIP4)
	}
	if w.p.Stats()[0].ICMPErrors != 1 {
		t.Errorf("ICMPErrors = %d, want 1", w.p.Stats()[0].ICMPErrors)
	}
}

// TestRulesLimits: service ports that do not fit are left out whole and
// named; those in keep come first, so a new service port cannot push out
// one already programmed.
func TestRulesLimits(t *testing.T) {
	eps := func(n int, base byte) []netip.Addr {
		var out []netip.Addr
		for i := 0; i < n; i++ {
			out = append(out, netip.AddrFrom4([4]byte{198, 18, 50 + base, byte(i + 1)}))
		}
		return out
	}
	vip := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 100, i}) }
	s := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, vip(1), eps(10, 1), nil),
		ptPort(2, nat.ProtoTCP, vip(2), eps(10, 2), nil),
		ptPort(3, nat.ProtoTCP, vip(3), eps(10, 3), nil),
	}})
	w := newWorld(t, nil, nil)
	limits := dataplane.ClassifierConfig{MaxEndpoints: 20}
	rs := w.p.Rules(s, nil, limits, nil)
	if len(rs.Rules.Endpoints) != 20 || len(rs.Rules.Frontends) != 2 || len(rs.Skipped) != 1 || !rs.Placed[1] || !rs.Placed[2] || rs.Placed[3] {
		t.Fatalf("Rules(max 20 endpoints) = %d endpoints, %d frontends, placed %v, skipped %v; want ports 1 and 2 whole, 3 skipped",
			len(rs.Rules.Endpoints), len(rs.Rules.Frontends), rs.Placed, rs.Skipped)
	}
	if want := s.ServicePorts[2].Key(); rs.Skipped[0] != want {
		t.Errorf("Skipped = %v, want [%s]", rs.Skipped, want)
	}
	rs = w.p.Rules(s, nil, limits, map[uint32]uint64{3: 0, 2: 1})
	if !rs.Placed[3] || !rs.Placed[2] || rs.Placed[1] {
		t.Errorf("Rules(seniority 3, 2) placed %v, want 2 and 3 kept, 1 skipped", rs.Placed)
	}
	rs = w.p.Rules(s, nil, limits, map[uint32]uint64{3: 0, 1: 5, 2: 7})
	if !rs.Placed[3] || !rs.Placed[1] || rs.Placed[2] {
		t.Errorf("Rules(seniority 3, 1, 2) placed %v, want 3 and 1, the junior 2 skipped", rs.Placed)
	}
	// Rules shared between service ports count once.
	shared := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, vip(1), eps(10, 1), nil),
		ptPort(2, nat.ProtoTCP, vip(2), eps(10, 1), nil),
	}})
	if rs := w.p.Rules(shared, nil, dataplane.ClassifierConfig{MaxEndpoints: 10}, nil); len(rs.Skipped) != 0 {
		t.Errorf("Rules(shared endpoints, max 10) skipped %v, want none", rs.Skipped)
	}
}
