package pipeline

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/internal/benchcpu"
	"github.com/xdpgate/xdpgate/nat"

	"github.com/xdpgate/xdpgate/snapshot"
)

// TestPipelineNoAllocs: established-flow packets (both directions), new
// flows (frontend, affinity, SNAT, insert), rejects, drops and frames held
// for an unresolved next hop allocate nothing.
func TestPipelineNoAllocs(t *testing.T) {
	s := ptSnapshot(t, snapshot.Snapshot{NodePortAddrs: []netip.Addr{ptGW4}, ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), func(sp *snapshot.ServicePort) {
			sp.AffinitySeconds = 100
			sp.NodePort = 30000
		}),
		ptPort(2, nat.ProtoTCP, netip.MustParseAddr("198.18.100.2"), nil, nil),
		ptPort(3, nat.ProtoTCP, netip.MustParseAddr("198.18.100.3"), []netip.Addr{ptUnknown4}, nil),
	}})
	w := newWorld(t, s, nil)
	held := tcpPkt(ptClient4, 2222, netip.MustParseAddr("198.18.100.3"), 80, "A").build(t)
	est := tcpPkt(ptClient4, 1111, ptVIP4, 80, "A").build(t)
	out := w.run(t, est)
	d := ptDecode(t, out.Data())
	reply := tcpPkt(d.dst, 8080, ptClient4, 1111, "A").build(t)
	reject := tcpPkt(ptClient4, 1, netip.MustParseAddr("198.18.100.2"), 80, "S").build(t)
	client := netip.MustParseAddr("198.19.10.0")
	sport := uint16(1)
	newFlow := tcpPkt(client, sport, ptGW4, 30000, "S") // NodePort: SNAT
	nf := newFlow.build(t)
	tests := []struct {
		name string
		next func() []byte
	}{
		{"established", func() []byte { return est }},
		{"reply", func() []byte { return reply }},
		{"reject", func() []byte { return reject }},
		{"malformed", func() []byte { return est[:20] }},
		{"held: next hop unresolved", func() []byte { return held }},
		{"new flow with affinity and SNAT", func() []byte {
			sport++ // a new flow each run: patch the TCP source port, checksum aside (not verified)
			nf[34], nf[35] = byte(sport>>8), byte(sport)
			return nf
		}},
	}
	frames := make([]dataplane.Frame, 1)
	buf := make([]byte, 2048)
	q := &dataplane.Queue{Index: 1}
	for _, tc := range tests {
		allocs := testing.AllocsPerRun(200, func() {
			b := tc.next()
			copy(buf[256:], b)
			frames[0] = dataplane.Frame{Buf: buf, Off: 256, Len: len(b)}
			w.p.Process(q, frames)
		})
		if allocs != 0 {
			t.Errorf("Process(%s) allocs = %v, want 0", tc.name, allocs)
		}
	}
	if st := w.p.Stats()[1]; st.NewFlows < 200 {
		t.Errorf("NewFlows = %d, want >= 200 (the new-flow case must create flows)", st.NewFlows)
	}
}

// benchWorld returns a pipeline with n established flows from distinct
// clients and their frames (original direction); mutate changes its
// Config.
func benchWorld(b *testing.B, n int, affinitySeconds uint32, mutate ...func(*Config)) (*ptWorld, [][]byte) {
	s := ptSnapshot(b, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), func(sp *snapshot.ServicePort) { sp.AffinitySeconds = affinitySeconds }),
	}})
	w := newWorld(b, s, func(c *Config) {
		for _, m := range mutate {
			m(c)
		}
	})
	frames := make([][]byte, n)
	c := netip.MustParseAddr("198.19.0.0")
	for i := range frames {
		c = c.Next()
		frames[i] = tcpPkt(c, 5000, ptVIP4, 80, "A").build(b)
		if f := w.run(b, frames[i]); f.Verdict != dataplane.VerdictTX {
			b.Fatalf("setup flow %d: %v/%v", i, f.Verdict, f.Reason)
		}
	}
	return w, frames
}

// processBatches runs the frames through Process in batches of 64, like
// a poller, re-copying each frame (the pipeline rewrites in place).
func processBatches(b *testing.B, p *Pipeline, q *dataplane.Queue, frames [][]byte, iters int, start int) {
	const batchN = 64
	fs := make([]dataplane.Frame, batchN)
	bufs := make([][]byte, batchN)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	k := start
	for done := 0; done < iters; done += batchN {
		n := min(batchN, iters-done)
		for i := 0; i < n; i++ {
			src := frames[k%len(frames)]
			k++
			copy(bufs[i][256:], src)
			fs[i] = dataplane.Frame{Buf: bufs[i], Off: 256, Len: len(src)}
		}
		p.Process(q, fs[:n])
	}
}

// BenchmarkPipelineEstablished: one established-flow packet among 10k
// and among 1M flows, in batches of 64 (includes copying the frame in),
// visiting the flows in a cache-hostile order (the conntrack records of
// consecutive flows are neighbours in memory, which would hide the record
// misses).
func BenchmarkPipelineEstablished(b *testing.B) {
	for _, n := range []int{10_000, 1 << 20} {
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			w := newWorldSized(b, ptSnapshot(b, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
				ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), nil),
			}}), n)
			g := newFlowGen(b, "A")
			q := &dataplane.Queue{Index: 0}
			// Set up: the first packet of each flow creates it (loose pickup).
			g.run(w.p, q, n, func(i int) int { return i })
			if st := w.ct.Stats(); st.Entries != int64(n) {
				b.Fatalf("set up %d flows, table holds %d", n, st.Entries)
			}
			st := stride(n)
			j := 0
			b.ReportAllocs()
			b.ResetTimer()
			stop := benchcpu.Thread(b)
			g.run(w.p, q, b.N, func(int) int {
				k := j
				if j += st; j >= n {
					j -= n
				}
				return k
			})
			stop()
			if ps := w.p.Stats()[0]; ps.NewFlows != uint64(n) {
				b.Fatalf("NewFlows = %d, want %d (every measured packet established)", ps.NewFlows, n)
			}
		})
	}
}

// flowGen makes the frames of numbered TCP flows to ptVIP4:80 from one
// template, patching the client address and port (198.19.0.0/16, 65,536
// clients, then the next source port), as a poller's frames arrive: in
// cache, not loaded from a big array. The IPv4 and TCP checksums are left
// as they were: the pipeline updates them incrementally and never checks
// them.
type flowGen struct {
	tmpl []byte
	fs   []dataplane.Frame
	bufs [][]byte
}

func newFlowGen(b *testing.B, flags string) *flowGen {
	const batchN = 64
	g := &flowGen{tmpl: tcpPkt(netip.MustParseAddr("198.19.0.0"), 1024, ptVIP4, 80, flags).build(b),
		fs: make([]dataplane.Frame, batchN), bufs: make([][]byte, batchN)}
	for i := range g.bufs {
		g.bufs[i] = make([]byte, 2048)
	}
	return g
}

// run sends count frames in batches of 64, frame i of flow key(i).
func (g *flowGen) run(p *Pipeline, q *dataplane.Queue, count int, key func(i int) int) {
	for done := 0; done < count; done += len(g.fs) {
		n := min(len(g.fs), count-done)
		for i := range n {
			k := key(done + i)
			buf := g.bufs[i]
			copy(buf[256:], g.tmpl)
			buf[256+28], buf[256+29] = byte(k>>8), byte(k) // client 198.19.x.y
			port := 1024 + k>>16
			buf[256+34], buf[256+35] = byte(port>>8), byte(port)
			g.fs[i] = dataplane.Frame{Buf: buf, Off: 256, Len: len(g.tmpl)}
		}
		p.Process(q, g.fs[:n])
	}
}

// stride returns a step coprime with n: j = (j+step) mod n visits every
// flow in an order unrelated to their order in memory.
func stride(n int) int {
	s := n/2 + 7919
	for gcdInt(s, n) != 1 {
		s++
	}
	return s % n
}

func gcdInt(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// BenchmarkPipelineNewFlowFull: every packet a new TCP flow (a SYN, no
// affinity) into a full table of 1M unassured flows, so every insert
// evicts: the rig's tcp-syn scenario without the I/O.
func BenchmarkPipelineNewFlowFull(b *testing.B) {
	const n = 1 << 20
	w := newWorldSized(b, ptSnapshot(b, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), nil),
	}}), n)
	g := newFlowGen(b, "S")
	q := &dataplane.Queue{Index: 0}
	g.run(w.p, q, n, func(i int) int { return i })
	if st := w.ct.Stats(); st.Entries != int64(n) {
		b.Fatalf("set up %d flows, table holds %d", n, st.Entries)
	}
	next := n
	b.ReportAllocs()
	b.ResetTimer()
	stop := benchcpu.Thread(b)
	for done := 0; done < b.N; done += 64 {
		w.clock.t += 1000 // 1 µs per batch: the oldest flows are the victims
		g.run(w.p, q, min(64, b.N-done), func(int) int { next++; return next })
	}
	stop()
	if st := w.ct.Stats(); st.Evictions < uint64(b.N)/2 {
		b.Fatalf("evictions %d for %d new flows: the table was not full", st.Evictions, b.N)
	}
}

// BenchmarkPipelineNewFlow: a new flow per packet to a ClientIP-affinity
// service (frontend lookup, affinity lookup + pin, Maglev, conntrack insert).
func BenchmarkPipelineNewFlow(b *testing.B) {
	s := ptSnapshot(b, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), func(sp *snapshot.ServicePort) { sp.AffinitySeconds = 100 }),
	}})
	w := newWorld(b, s, nil)
	// Enough distinct flows that each packet is new: 1024 clients x ports.
	const clients = 1024
	frames := make([][]byte, clients)
	c := netip.MustParseAddr("198.19.0.0")
	for i := range frames {
		c = c.Next()
		frames[i] = tcpPkt(c, 1, ptVIP4, 80, "S").build(b)
	}
	const batchN = 64
	fs := make([]dataplane.Frame, batchN)
	bufs := make([][]byte, batchN)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	q := &dataplane.Queue{Index: 0}
	k := 0
	b.ReportAllocs()
	b.ResetTimer()
	stop := benchcpu.Thread(b)
	defer stop()
	for done := 0; done < b.N; done += batchN {
		n := min(batchN, b.N-done)
		for i := 0; i < n; i++ {
			src := frames[k%clients]
			port := uint16(k/clients + 2)
			k++
			copy(bufs[i][256:], src)
			bufs[i][256+34], bufs[i][256+35] = byte(port>>8), byte(port)
			fs[i] = dataplane.Frame{Buf: bufs[i], Off: 256, Len: len(src)}
		}
		p := w.p
		p.Process(q, fs[:n])
		if k%(1<<13) < batchN {
			// Keep the table from filling: expire everything now and then
			// (outside the measured work would need StopTimer, whose cost
			// distorts ns/op at this scale; the sweep is amortised).
			w.clock.t += 200 * second
			w.ct.Sweep(w.clock.t, 1<<16)
		}
	}
}

// BenchmarkPipelineParallel: established flows from two goroutines (two
// queues) against one; compare ns/op with -cpu 1,2.
func BenchmarkPipelineParallel(b *testing.B) {
	w, frames := benchWorld(b, 10000, 0)
	var next atomic.Int32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		q := &dataplane.Queue{Index: int(next.Add(1)-1) % 2}
		const batchN = 64
		fs := make([]dataplane.Frame, batchN)
		bufs := make([][]byte, batchN)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		k := q.Index * 5000
		for {
			n := 0
			for n < batchN && pb.Next() {
				src := frames[k%len(frames)]
				k++
				copy(bufs[n][256:], src)
				fs[n] = dataplane.Frame{Buf: bufs[n], Off: 256, Len: len(src)}
				n++
			}
			if n == 0 {
				return
			}
			w.p.Process(q, fs[:n])
			if n < batchN {
				return
			}
		}
	})
}
