package pipeline

import (
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
// flows, in batches of 64 (includes copying the frame back in).
func BenchmarkPipelineEstablished(b *testing.B) {
	w, frames := benchWorld(b, 10000, 0)
	b.ReportAllocs()
	b.ResetTimer()
	stop := benchcpu.Thread(b)
	processBatches(b, w.p, &dataplane.Queue{Index: 0}, frames, b.N, 0)
	stop()
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
