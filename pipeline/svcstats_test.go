package pipeline

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/internal/benchcpu"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// svcNamed names a test service port.
func svcNamed(name string) func(*snapshot.ServicePort) {
	return func(sp *snapshot.ServicePort) { sp.Name = name }
}

// processOn runs frames through Process as one batch on queue q.
func processOn(w *ptWorld, q int, frames ...[]byte) []dataplane.Frame {
	fs := make([]dataplane.Frame, len(frames))
	for i, b := range frames {
		fs[i] = ptFrame(b)
	}
	w.p.Process(&dataplane.Queue{Index: q, Ifindex: 2}, fs)
	return fs
}

// statsByName returns ServiceStats keyed by service name.
func statsByName(p *Pipeline) map[string]ServicePortStats {
	m := map[string]ServicePortStats{}
	for _, s := range p.ServiceStats() {
		m[s.Name] = s
	}
	return m
}

// TestServiceStats: new flows, established packets in both directions,
// rejects and drops are counted per service port, summed over queues, in
// batches that mix service ports.
func TestServiceStats(t *testing.T) {
	vipB, lbC := netip.MustParseAddr("198.18.100.2"), netip.MustParseAddr("198.18.100.3")
	s := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), svcNamed("a")),
		ptPort(2, nat.ProtoTCP, vipB, nil, svcNamed("b")),
		ptPort(3, nat.ProtoTCP, netip.MustParseAddr("198.18.100.4"), twoEndpoints4(), func(sp *snapshot.ServicePort) {
			sp.Name = "c"
			sp.LoadBalancerIPs = []netip.Addr{lbC}
			sp.SourceRanges = []netip.Prefix{netip.MustParsePrefix("198.19.99.0/24")}
		}),
	}})
	w := newWorld(t, s, nil)
	const flows = 3
	var syns, acks [][]byte
	for i := range flows {
		syns = append(syns, tcpPkt(ptClient4, uint16(1000+i), ptVIP4, 80, "S").build(t))
		acks = append(acks, tcpPkt(ptClient4, uint16(1000+i), ptVIP4, 80, "A").build(t))
	}
	out := processOn(w, 0, syns...)
	var batch [][]byte
	for i, f := range out {
		if f.Verdict != dataplane.VerdictTX {
			t.Fatalf("SYN %d: verdict %v/%v, want TX", i, f.Verdict, f.Reason)
		}
		d := ptDecode(t, f.Data())
		batch = append(batch, acks[i], tcpPkt(d.dst, d.dport, d.src, d.sport, "SA").build(t))
	}
	batch = append(batch,
		tcpPkt(ptClient4, 1, vipB, 80, "S").build(t), // reject
		tcpPkt(ptClient4, 2, vipB, 80, "A").build(t), // reject_not_new
		tcpPkt(ptClient4, 3, lbC, 80, "S").build(t),  // source_range
	)
	processOn(w, 1, batch...)

	l3 := uint64(len(acks[0]) - 14) // from the IP header on (untagged Ethernet)
	got := statsByName(w.p)
	want := map[string]ServicePortStats{
		"a": {Packets: [2]uint64{2 * flows, flows}, Bytes: [2]uint64{2 * flows * l3, flows * l3}, NewConnections: flows},
		"b": {Drops: func() (d [NumServiceDrops]uint64) { d[SvcReject], d[SvcRejectNotNew] = 1, 1; return }()},
		"c": {Drops: func() (d [NumServiceDrops]uint64) { d[SvcSourceRange] = 1; return }()},
	}
	for name, wt := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("ServiceStats has no service %q", name)
			continue
		}
		if g.Packets != wt.Packets || g.Bytes != wt.Bytes || g.NewConnections != wt.NewConnections || g.Drops != wt.Drops {
			t.Errorf("ServiceStats[%s] = packets %v bytes %v new %d drops %v, want %v %v %d %v", name,
				g.Packets, g.Bytes, g.NewConnections, g.Drops, wt.Packets, wt.Bytes, wt.NewConnections, wt.Drops)
		}
	}
	if a := got["a"]; a.Namespace != "ns" || a.PortName != "p" || a.Protocol != "TCP" || len(a.IDs) != 1 || a.IDs[0] != 1 {
		t.Errorf("ServiceStats[a] labels = %+v IDs %v, want ns/a:p/TCP [1]", a.ServicePortLabels, a.IDs)
	}
	if n := len(w.p.AffinityStats()); n != 0 {
		t.Errorf("AffinityStats() has %d service ports, want 0 (none uses ClientIP)", n)
	}
	for i := range NumServiceDrops {
		if ServiceDropName(i) == "" || ServiceDropName(i) == "unknown" {
			t.Errorf("ServiceDropName(%d) = %q", i, ServiceDropName(i))
		}
	}
	if g, w := ServiceDropName(SvcSNATExhausted), "snat_exhausted"; g != w {
		t.Errorf("ServiceDropName(SvcSNATExhausted) = %q, want %q", g, w)
	}
}

// TestServiceStatsManyPorts: a batch touching more service ports than the
// dirty list holds publishes early, and counters survive the index growing
// (the queue moving to the spare arrays) between batches.
func TestServiceStatsManyPorts(t *testing.T) {
	const n = svcDirtyMax + 44
	one := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, nil, func(sp *snapshot.ServicePort) { sp.Name = "s0"; sp.Port = 1000 }),
	}})
	w := newWorld(t, one, nil)
	processOn(w, 0, tcpPkt(ptClient4, 1, ptVIP4, 1000, "S").build(t))

	var ports []snapshot.ServicePort
	var batch [][]byte
	for i := range n {
		ports = append(ports, ptPort(uint32(i+1), nat.ProtoTCP, ptVIP4, nil, func(sp *snapshot.ServicePort) {
			sp.Name = fmt.Sprintf("s%d", i)
			sp.Port = uint16(1000 + i)
		}))
		batch = append(batch, tcpPkt(ptClient4, 1, ptVIP4, uint16(1000+i), "S").build(t))
	}
	w.p.Publish(ptSnapshot(t, snapshot.Snapshot{ServicePorts: ports}))
	processOn(w, 0, batch...)
	got := statsByName(w.p)
	if len(got) != n {
		t.Fatalf("ServiceStats has %d service ports, want %d", len(got), n)
	}
	for i := range n {
		name := fmt.Sprintf("s%d", i)
		want := uint64(1)
		if i == 0 {
			want = 2
		}
		// A reject over the ICMP budget (icmplimit.go) is counted as
		// reject_not_allowed: refused, no port unreachable sent.
		if g := got[name].Drops[SvcReject] + got[name].Drops[SvcRejectNotAllowed]; g != want {
			t.Errorf("ServiceStats[%s].Drops[reject+reject_not_allowed] = %d, want %d", name, g, want)
		}
	}
}

// BenchmarkPipelineEstablishedServices: BenchmarkPipelineEstablished with
// the 10k flows spread over 1000 service ports, consecutive packets of
// different ones: the per-service counters' worst case (the one-entry cache
// always misses, every batch touches 64 service ports).
func BenchmarkPipelineEstablishedServices(b *testing.B) {
	const ports = 1000
	var sps []snapshot.ServicePort
	for i := range ports {
		sps = append(sps, ptPort(uint32(i+1), nat.ProtoTCP, ptVIP4, twoEndpoints4(), func(sp *snapshot.ServicePort) {
			sp.Name = fmt.Sprintf("s%d", i)
			sp.Port = uint16(1000 + i)
		}))
	}
	w := newWorld(b, ptSnapshot(b, snapshot.Snapshot{ServicePorts: sps}), nil)
	frames := make([][]byte, 10000)
	c := netip.MustParseAddr("198.19.0.0")
	for i := range frames {
		c = c.Next()
		frames[i] = tcpPkt(c, 5000, ptVIP4, uint16(1000+i%ports), "A").build(b)
		if f := w.run(b, frames[i]); f.Verdict != dataplane.VerdictTX {
			b.Fatalf("setup flow %d: %v/%v", i, f.Verdict, f.Reason)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	stop := benchcpu.Thread(b)
	processBatches(b, w.p, &dataplane.Queue{Index: 0}, frames, b.N, 0)
	stop()
}
