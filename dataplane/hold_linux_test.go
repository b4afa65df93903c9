package dataplane

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// switchNeigh is a NeighbourTable the test fills while pollers read it.
type switchNeigh struct {
	mu   sync.Mutex
	macs map[neighKey][6]byte
}

func (s *switchNeigh) Neighbour(ifindex int, addr netip.Addr) ([6]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.macs[makeNeighKey(ifindex, addr)]
	return m, ok
}

func (s *switchNeigh) set(ifindex int, addr netip.Addr, mac [6]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.macs[makeNeighKey(ifindex, addr)] = mac
}

// bounceHeld turns a received IPv4/UDP frame into its answer (addresses and
// ports swapped, which keeps both checksums right; source MAC the receiving
// interface's, destination MAC zeroed) and holds it for the neighbour the
// last payload byte names: 'h' the sender, anything else an address that
// never resolves.
func bounceHeld(sender, never netip.Addr) Processor {
	return ProcessorFunc(func(q *Queue, frames []Frame) {
		for i := range frames {
			f := &frames[i]
			d := f.Data()
			if len(d) < 14+20+8 || d[12] != 0x08 || d[13] != 0x00 || d[14+9] != 17 {
				f.Drop(DropNotIP)
				continue
			}
			copy(d[6:12], d[0:6])
			clear(d[0:6])
			var a [4]byte
			copy(a[:], d[26:30])
			copy(d[26:30], d[30:34])
			copy(d[30:34], a[:])
			var p [2]byte
			copy(p[:], d[34:36])
			copy(d[34:36], d[36:38])
			copy(d[36:38], p[:])
			nh := never
			if d[len(d)-1] == 'h' {
				nh = sender
			}
			f.Hold(0, nh)
		}
	})
}

// rxChunksAccounted checks that every RX chunk of s is in exactly one place
// once its poller has stopped: rxFree, the fill ring, the RX ring or (sent
// in place) the TX ring.
func rxChunksAccounted(t *testing.T, s *xsk) {
	t.Helper()
	reclaimOwn(s)
	var all []uint64
	all = append(all, s.rxFree...)
	for i := s.fill.cons.Load(); i != s.fill.cachedProd; i++ {
		all = append(all, s.fill.addrs[i&s.fill.mask]&s.chunkMask)
	}
	for i := s.rx.cachedCons; i != s.rx.prod.Load(); i++ {
		all = append(all, s.rx.descs[i&s.rx.mask].Addr&s.chunkMask)
	}
	for i := s.tx.cons.Load(); i != s.tx.cachedProd; i++ {
		if c := s.tx.descs[i&s.tx.mask].Addr & s.chunkMask; c < s.txBase {
			all = append(all, c)
		}
	}
	slices.Sort(all)
	var want []uint64
	for c := uint64(0); c < s.txBase; c += s.frameSize {
		want = append(want, c)
	}
	if !slices.Equal(all, want) {
		t.Errorf("RX chunks after stop: %d accounted (%d distinct), want each of %d exactly once",
			len(all), len(slices.Compact(slices.Clone(all))), len(want))
	}
}

// TestPrivNeighHold holds frames for unresolved neighbours and checks the
// bounds, the release (with the resolved MAC, through the normal TX path),
// the expiry, the drop of what is still held when the poller stops, and
// that every RX chunk is accounted for afterwards.
func TestPrivNeighHold(t *testing.T) {
	testnet.RequirePriv(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	v := testnet.NewVeth(t, a, "ha", b, "hb", testnet.VethOpts{})
	a.AddAddr(t, v.AName, "198.18.51.1/24")
	b.AddAddr(t, v.BName, "198.18.51.2/24")
	b.TxOff(t, v.BName)
	sender, never := netip.MustParseAddr("198.18.51.2"), netip.MustParseAddr("198.18.51.99")
	nb := &switchNeigh{macs: map[neighKey][6]byte{}}
	cfg := smallConfig(t, v.AName)
	cfg.Neighbours = nb
	cfg.NeighHoldPerNeighbour = 4
	cfg.NeighHoldTime = 500 * time.Millisecond
	var dp *Dataplane
	if err := a.Do(func() (err error) { dp, err = Open(cfg); return err }); err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer dp.Close()
	if err := dp.Classifier().Update(Rules{Frontends: []L4Addr{{mustAddr("198.18.51.1"), 9000, 17}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dp.Run(ctx, bounceHeld(sender, never)) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	defer stop()

	var conn *net.UDPConn
	if err := b.Do(func() (err error) {
		conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IP(sender.AsSlice())})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gw := &net.UDPAddr{IP: net.ParseIP("198.18.51.1"), Port: 9000}
	send := func(payloads ...string) {
		t.Helper()
		for _, p := range payloads {
			if _, err := conn.WriteTo([]byte(p), gw); err != nil {
				t.Fatal(err)
			}
		}
	}
	stats := func() (st QueueStats) {
		for _, q := range dp.Stats() {
			st.NeighHeld += q.NeighHeld
			st.NeighReleased += q.NeighReleased
			for r, n := range q.Drops {
				st.Drops[r] += n
			}
		}
		return st
	}
	waitFor := func(what string, ok func(QueueStats) bool) {
		t.Helper()
		for i := 0; i < 100; i++ {
			if ok(stats()) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		st := stats()
		t.Fatalf("%s: not within 2 s: held %d released %d drops hold_full %d failed %d unresolved %d",
			what, st.NeighHeld, st.NeighReleased, st.Drops[DropNeighHoldFull], st.Drops[DropNeighFailed], st.Drops[DropNeighUnresolved])
	}

	// Six frames for the sender: four held (its bound), two dropped.
	send("1h", "2h", "3h", "4h", "5h", "6h")
	waitFor("4 held, 2 hold_full", func(st QueueStats) bool {
		return st.NeighHeld == 4 && st.Drops[DropNeighHoldFull] == 2
	})
	// Two for a neighbour that never resolves.
	send("1x", "2x")
	waitFor("6 held", func(st QueueStats) bool { return st.NeighHeld == 6 })
	conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 64)
	if n, _, err := conn.ReadFrom(buf); err == nil {
		t.Fatalf("received %q before the neighbour resolved, want nothing", buf[:n])
	}

	// The sender resolves: its frames leave in order, with its MAC.
	nb.set(v.AIndex, sender, v.BMAC)
	var got []string
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for len(got) < 4 {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after resolution received %q, want 4 answers: %v", got, err)
		}
		got = append(got, string(buf[:n]))
	}
	if want := []string{"1h", "2h", "3h", "4h"}; !slices.Equal(got, want) {
		t.Errorf("released frames = %q, want %q in order", got, want)
	}
	// The other two expire.
	waitFor("released 4, 2 failed", func(st QueueStats) bool {
		return st.NeighReleased == 4 && st.Drops[DropNeighFailed] == 2
	})

	// Frames still held when the poller stops are dropped and their
	// chunks returned.
	send("3x", "4x")
	waitFor("8 held", func(st QueueStats) bool { return st.NeighHeld == 8 })
	stop()
	if st := stats(); st.Drops[DropNeighFailed] != 4 || st.NeighReleased != 4 {
		t.Errorf("after stop: failed %d released %d, want 4 and 4", st.Drops[DropNeighFailed], st.NeighReleased)
	}
	for _, qs := range dp.queues {
		rxChunksAccounted(t, qs.s)
	}
	if t.Failed() {
		for _, q := range dp.Stats() {
			t.Logf("%+v", q)
		}
	}
}

// TestPrivNoAllocsHoldRelease: holding a frame, then releasing it through
// the TX path, allocates nothing. The poller is not running; the test plays
// it, with frames in TX chunks (owned by userspace: txFree) so that the RX
// chunk accounting stays exact.
func TestPrivNoAllocsHoldRelease(t *testing.T) {
	testnet.RequirePriv(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	v := testnet.NewVeth(t, a, "na", b, "nb", testnet.VethOpts{})
	nh := netip.MustParseAddr("198.18.52.2")
	nb := &switchNeigh{macs: map[neighKey][6]byte{}}
	cfg := smallConfig(t, v.AName)
	cfg.Neighbours = nb
	var dp *Dataplane
	if err := a.Do(func() (err error) { dp, err = Open(cfg); return err }); err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer dp.Close()
	qs := dp.queues[0]
	s := qs.s
	sc := dp.newScratch(qs)
	frames, chunks := make([]Frame, 1), make([]uint64, 1)
	run := func() {
		if len(s.txFree) == 0 {
			reclaimOwn(s)
		}
		chunk := s.txFree[len(s.txFree)-1]
		s.txFree = s.txFree[:len(s.txFree)-1]
		buf := s.umem[chunk : chunk+s.frameSize : chunk+s.frameSize]
		copy(buf[256+6:], v.AMAC[:])
		frames[0] = Frame{Buf: buf, Off: 256, Len: 60}
		chunks[0] = chunk
		frames[0].Hold(0, nh)
		dp.dispatch(qs, &sc, frames, chunks)
		if sc.hold.len() != 1 {
			t.Fatalf("held %d frames, want 1", sc.hold.len())
		}
		nb.set(v.AIndex, nh, v.BMAC)
		dp.releaseHeld(qs, &sc)
		delete(nb.macs, makeNeighKey(v.AIndex, nh))
	}
	run()
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Errorf("hold and release allocs = %v, want 0", n)
	}
	if c := &qs.c; c.neighHeld.Load() != 202 || c.neighReleased.Load() != 202 || c.txFrames.Load() == 0 {
		t.Errorf("held %d released %d sent %d, want 202 (AllocsPerRun runs once more), 202 and > 0", c.neighHeld.Load(), c.neighReleased.Load(), c.txFrames.Load())
	}
}
