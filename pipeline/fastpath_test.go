package pipeline

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/internal/benchcpu"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// fakeFast is a dataplane.FastPath in memory: the test plays the XDP
// program by writing stats.
type fakeFast struct {
	mu       sync.Mutex
	gen      []uint32
	entries  [][2]dataplane.FastEntry
	stats    [][2]dataplane.FastDirStats
	credited [][4]uint64
	can      map[int]bool
	installs int
	removes  int
}

func newFakeFast(n int, devices ...int) *fakeFast {
	f := &fakeFast{gen: make([]uint32, n), entries: make([][2]dataplane.FastEntry, n),
		stats: make([][2]dataplane.FastDirStats, n), credited: make([][4]uint64, n), can: map[int]bool{}}
	for _, d := range devices {
		f.can[d] = true
	}
	return f
}

func (f *fakeFast) Slots() int { return len(f.gen) }
func (f *fakeFast) CanForward(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.can[i]
}
func (f *fakeFast) Install(slot int, gen uint32, e *[2]dataplane.FastEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen[slot], f.entries[slot] = gen, *e
	f.stats[slot], f.credited[slot] = [2]dataplane.FastDirStats{}, [4]uint64{}
	f.installs++
	return nil
}
func (f *fakeFast) Remove(slot int, e *[2]dataplane.FastEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen[slot] = 0
	f.removes++
	return nil
}
func (f *fakeFast) Installed(slot int, gen uint32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return gen != 0 && f.gen[slot] == gen
}
func (f *fakeFast) Stats(slot, dir int) dataplane.FastDirStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats[slot][dir]
}
func (f *fakeFast) Credit(slot, dir int, p, b uint64) (uint64, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &f.credited[slot]
	dp, db := p-min(p, c[2*dir]), b-min(b, c[2*dir+1])
	c[2*dir], c[2*dir+1] = max(p, c[2*dir]), max(b, c[2*dir+1])
	return dp, db
}
func (f *fakeFast) Refresh() error { return nil }
func (f *fakeFast) Counters() (dataplane.FastPathCounters, error) {
	return dataplane.FastPathCounters{}, nil
}

// installed returns the slots installed now.
func (f *fakeFast) installed() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for i, g := range f.gen {
		if g != 0 {
			out = append(out, i)
		}
	}
	return out
}

// forward plays XDP: n packets of dir in slot at time now, the latest TCP
// segment ending at seqEnd.
func (f *fakeFast) forward(slot, dir, n int, now int64, seqEnd uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &f.stats[slot][dir]
	s.Packets += uint64(n)
	s.Bytes += uint64(100 * n)
	s.Last = now
	s.SeqEnd = seqEnd
}

func fastWorld(t *testing.T, f *fakeFast, eps []netip.Addr) *ptWorld {
	s := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, eps, nil),
		ptPort(2, nat.ProtoUDP, ptVIP4, eps, nil),
	}})
	return newWorld(t, s, func(c *Config) { c.FastPath = f })
}

// openTCP runs a handshake client:sport -> VIP:80 and returns the
// endpoint's address.
func openTCP(t *testing.T, w *ptWorld, sport uint16) netip.Addr {
	t.Helper()
	fr := w.run(t, tcpPkt(ptClient4, sport, ptVIP4, 80, "S").build(t))
	out := ptDecode(t, fr.Data())
	syn := tcpPkt(out.dst, 8080, ptClient4, sport, "SA")
	syn.seq, syn.ack = 5000, 101
	w.run(t, syn.build(t))
	ack := tcpPkt(ptClient4, sport, ptVIP4, 80, "A")
	ack.seq, ack.ack = 101, 5001
	w.run(t, ack.build(t))
	return out.dst
}

// TestFastPathInstallTCP: a TCP flow is installed once its handshake is
// seen both ways, with both directions' translation and next hop; what XDP
// forwarded is credited to conntrack by housekeeping; a FIN (judged
// against the credited sequence numbers) takes it out.
func TestFastPathInstallTCP(t *testing.T) {
	f := newFakeFast(16, 2, 3)
	w := fastWorld(t, f, []netip.Addr{ptEP4a})
	// The SYN and SYN-ACK do not install anything.
	fr := w.run(t, tcpPkt(ptClient4, 1111, ptVIP4, 80, "S").build(t))
	out := ptDecode(t, fr.Data())
	syn := tcpPkt(out.dst, 8080, ptClient4, 1111, "SA")
	syn.seq, syn.ack = 5000, 101
	w.run(t, syn.build(t))
	if got := f.installed(); len(got) != 0 {
		t.Fatalf("installed after SYN, SYN-ACK: %v, want none", got)
	}
	ack := tcpPkt(ptClient4, 1111, ptVIP4, 80, "A")
	ack.seq, ack.ack = 101, 5001
	w.run(t, ack.build(t))
	got := f.installed()
	if len(got) != 1 {
		t.Fatalf("installed after the handshake: %v, want one flow", got)
	}
	slot := got[0]
	e := f.entries[slot]
	wantIn := dataplane.MakeFastTuple(ptClient4, ptVIP4, 1111, 80, nat.ProtoTCP)
	wantOut := dataplane.MakeFastTuple(ptClient4, ptEP4a, 1111, 8080, nat.ProtoTCP)
	if e[0].In != wantIn || e[0].Out != wantOut || e[0].Ifindex != 3 || e[0].DstMAC != ptEPMAC || e[0].SrcMAC != ptGWMAC || e[0].MTU != 1500 || e[0].Dir != 0 {
		t.Errorf("original entry = %+v, want %v -> %v via 3", e[0], wantIn, wantOut)
	}
	rIn := dataplane.MakeFastTuple(ptEP4a, ptClient4, 8080, 1111, nat.ProtoTCP)
	rOut := dataplane.MakeFastTuple(ptVIP4, ptClient4, 80, 1111, nat.ProtoTCP)
	if e[1].In != rIn || e[1].Out != rOut || e[1].Ifindex != 2 || e[1].DstMAC != ptRouter || e[1].Dir != 1 {
		t.Errorf("reply entry = %+v, want %v -> %v via 2", e[1], rIn, rOut)
	}

	// XDP forwards 5 MiB: housekeeping credits counters and last-seen.
	fl, _ := w.ct.Lookup(conntrack.MakeTuple(ptClient4, ptVIP4, 1111, 80, nat.ProtoTCP), w.clock.now())
	before, _ := w.ct.Get(fl.Handle)
	w.clock.t += 100 * second
	f.forward(slot, 0, 7, w.clock.t, 101+5<<20)
	w.p.Housekeep(w.clock.t, 1<<20, 1<<20)
	after, _ := w.ct.Get(fl.Handle)
	if after.Packets[0]-before.Packets[0] != 7 || after.LastSeen != w.clock.t {
		t.Errorf("after housekeeping: packets %d -> %d, last seen %d; want +7 and %d", before.Packets[0], after.Packets[0], after.LastSeen, w.clock.t)
	}

	// A FIN 5 MiB on (outside the window of what the pipeline itself saw)
	// applies, and removes the flow from XDP.
	fin := tcpPkt(ptClient4, 1111, ptVIP4, 80, "FA")
	fin.seq, fin.ack = 101+5<<20, 5001
	w.run(t, fin.build(t))
	if st := w.ct.Stats(); st.OutOfWindow != 0 {
		t.Errorf("FIN out of window (%d): XDP's sequence numbers were not credited", st.OutOfWindow)
	}
	if e, _ := w.ct.Get(fl.Handle); e.State == conntrack.StateEstablished {
		t.Errorf("state after FIN = %v, want a closing state", e.State)
	}
	if got := f.installed(); len(got) != 0 {
		t.Errorf("installed after FIN: %v, want none", got)
	}
	if s, _ := w.p.FastPathStats(); s.Installs != 1 || s.Removals != 1 || s.Installed != 0 {
		t.Errorf("FastPathStats = %+v, want 1 install, 1 removal", s)
	}
}

// TestFastPathRemoval: entries leave with their flow: RST, a UDP endpoint
// removed from the snapshot (at once), an idle timeout; a busy flow is not
// expired; a capture takes every flow back while it runs.
func TestFastPathRemoval(t *testing.T) {
	t.Run("RST", func(t *testing.T) {
		f := newFakeFast(16, 2, 3)
		w := fastWorld(t, f, []netip.Addr{ptEP4a})
		openTCP(t, w, 1111)
		rst := tcpPkt(ptClient4, 1111, ptVIP4, 80, "RA")
		rst.seq, rst.ack = 101, 5001
		w.run(t, rst.build(t))
		if got := f.installed(); len(got) != 0 || f.installs != 1 {
			t.Errorf("after RST: installed %v (installs %d), want none (1)", got, f.installs)
		}
	})
	udpFlow := func(t *testing.T, w *ptWorld, sport uint16) {
		t.Helper()
		fr := w.run(t, udpPkt(ptClient4, sport, ptVIP4, 80).build(t))
		out := ptDecode(t, fr.Data())
		w.run(t, udpPkt(out.dst, 8080, ptClient4, sport).build(t))
		w.run(t, udpPkt(ptClient4, sport, ptVIP4, 80).build(t))
	}
	t.Run("UDP endpoint removed", func(t *testing.T) {
		f := newFakeFast(16, 2, 3)
		w := fastWorld(t, f, []netip.Addr{ptEP4a, ptEP4b})
		for sport := uint16(1000); sport < 1010; sport++ {
			udpFlow(t, w, sport)
		}
		if n := len(f.installed()); n != 10 {
			t.Fatalf("installed %d UDP flows, want 10", n)
		}
		w.p.Publish(ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
			ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a, ptEP4b}, nil),
			ptPort(2, nat.ProtoUDP, ptVIP4, []netip.Addr{ptEP4a}, nil), // ptEP4b leaves
		}}))
		for _, s := range f.installed() {
			if f.entries[s][0].Out.DstAddr() != ptEP4a {
				t.Errorf("slot %d still forwards to %v after its endpoint left", s, f.entries[s][0].Out.DstAddr())
			}
		}
		if f.removes == 0 {
			t.Errorf("no flow removed; the 10 flows were spread over both endpoints")
		}
	})
	t.Run("timeout and busy", func(t *testing.T) {
		f := newFakeFast(16, 2, 3)
		w := fastWorld(t, f, []netip.Addr{ptEP4a})
		udpFlow(t, w, 1000) // idle
		udpFlow(t, w, 1001) // busy in XDP
		got := f.installed()
		if len(got) != 2 {
			t.Fatalf("installed %v, want 2 flows", got)
		}
		busy := got[1]
		if f.entries[busy][0].In.SrcPort != 1001 {
			busy = got[0]
		}
		for i := 0; i < 400; i++ { // 400 s, beyond UDP's timeouts; a tick a second
			w.clock.t += second
			f.forward(busy, 0, 1, w.clock.t, 0)
			w.p.Housekeep(w.clock.t, 1<<20, 1<<20)
		}
		if got := f.installed(); len(got) != 1 || got[0] != busy {
			t.Errorf("after 400 s: installed %v, want only the busy flow (slot %d)", got, busy)
		}
		if _, ok := w.ct.Lookup(conntrack.MakeTuple(ptClient4, ptVIP4, 1001, 80, nat.ProtoUDP), w.clock.t); !ok {
			t.Errorf("the busy flow expired in conntrack")
		}
	})
	t.Run("capture", func(t *testing.T) {
		f := newFakeFast(16, 2, 3)
		w := fastWorld(t, f, []netip.Addr{ptEP4a})
		openTCP(t, w, 1111)
		c, err := w.p.StartCapture(CaptureConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.installed(); len(got) != 0 {
			t.Fatalf("installed while capturing: %v", got)
		}
		est := tcpPkt(ptClient4, 1111, ptVIP4, 80, "A")
		est.seq, est.ack = 101, 5001
		w.run(t, est.build(t))
		if got := f.installed(); len(got) != 0 {
			t.Fatalf("installed while capturing: %v", got)
		}
		c.Stop()
		w.run(t, est.build(t))
		if got := f.installed(); len(got) != 1 {
			t.Errorf("after the capture: installed %v, want the flow back", got)
		}
	})
	t.Run("device without XDP transmit", func(t *testing.T) {
		f := newFakeFast(16, 2) // the endpoints' device 3 cannot
		w := fastWorld(t, f, []netip.Addr{ptEP4a})
		openTCP(t, w, 1111)
		est := tcpPkt(ptClient4, 1111, ptVIP4, 80, "A")
		est.seq, est.ack = 101, 5001
		for i := 0; i < 3; i++ {
			if fr := w.run(t, est.build(t)); fr.Verdict != dataplane.VerdictTX {
				t.Fatalf("verdict %v, want forwarded by the pipeline", fr.Verdict)
			}
		}
		if s, _ := w.p.FastPathStats(); len(f.installed()) != 0 || s.Ineligible != 1 {
			t.Errorf("installed %v, stats %+v; want none, 1 ineligible (counted once)", f.installed(), s)
		}
	})
}

// TestFastPathNoAllocs: with the fast path on, packets of installed flows
// that still reach the pipeline allocate nothing.
func TestFastPathNoAllocs(t *testing.T) {
	f := newFakeFast(16, 2, 3)
	w := fastWorld(t, f, []netip.Addr{ptEP4a})
	openTCP(t, w, 1111)
	if len(f.installed()) != 1 {
		t.Fatal("flow not installed")
	}
	est := tcpPkt(ptClient4, 1111, ptVIP4, 80, "A")
	est.seq, est.ack = 101, 5001
	b := est.build(t)
	frames := make([]dataplane.Frame, 1)
	buf := make([]byte, 2048)
	q := &dataplane.Queue{Index: 1}
	allocs := testing.AllocsPerRun(200, func() {
		copy(buf[256:], b)
		frames[0] = dataplane.Frame{Buf: buf, Off: 256, Len: len(b)}
		w.p.Process(q, frames)
	})
	if allocs != 0 {
		t.Errorf("Process(installed flow) allocs = %v, want 0", allocs)
	}
}

// BenchmarkPipelineEstablishedFastPathOn is BenchmarkPipelineEstablished
// with the fast path on: the flows (picked up mid-stream, never answered)
// are not established both ways, so they stay in userspace and this
// measures what the fast path adds to packets it does not take.
func BenchmarkPipelineEstablishedFastPathOn(b *testing.B) {
	w, frames := benchWorld(b, 10000, 0, func(c *Config) { c.FastPath = newFakeFast(1024, 2, 3) })
	b.ReportAllocs()
	b.ResetTimer()
	stop := benchcpu.Thread(b)
	processBatches(b, w.p, &dataplane.Queue{Index: 0}, frames, b.N, 0)
	stop()
}
