package conntrack

import (
	"math/rand/v2"
	"testing"

	"github.com/xdpgate/xdpgate/nat"
)

// handshake applies a full TCP handshake to f at now.
func handshake(tb *Table, f Flow, now int64) {
	tb.TouchTCP(f.Handle, Original, Segment{Flags: TCPSyn, Seq: 1000}, 60, now)
	tb.TouchTCP(f.Handle, Reply, Segment{Flags: TCPSyn | TCPAck, Seq: 5000, Ack: 1001}, 60, now)
	tb.TouchTCP(f.Handle, Original, Segment{Flags: TCPAck, Seq: 1001, Ack: 5001}, 60, now)
}

// TestAnsweredSYNFloodKeepsAssured: a flood of spoofed SYNs that the
// backends answer with SYN-ACKs (so every flood flow is replied) fills a
// table holding idle established flows. Every established flow survives,
// a legitimate client arriving during the flood is admitted (it evicts a
// flood flow), and the flood's inserts are never admitted at an assured
// flow's expense. (Before assured tracking, SYN-ACKs made flood flows look
// as good as established ones and eviction fell back to least recently
// seen: the idle established flows went first.)
func TestAnsweredSYNFloodKeepsAssured(t *testing.T) {
	const capacity = 1024
	tb := newTestTable(t, Config{MaxFlows: capacity, MaxFlows6: -1})
	var est []Flow
	for i := range capacity / 2 {
		f, res := tb.Insert(tup4(uint32(i), 1000, uint16(1000+i), 80, nat.ProtoTCP), xlate4(2000, 8080), 1, 1, 0)
		if res != Inserted {
			t.Fatalf("Insert(established %d) = %v, want inserted", i, res)
		}
		handshake(tb, f, 0)
		if !tb.Assured(f.Handle) {
			t.Fatalf("Assured(after handshake) = false, want true")
		}
		est = append(est, f)
	}
	r := rand.New(rand.NewPCG(5, 6))
	admitted := 0
	for i := range 20 * capacity {
		now := 100*sec + int64(i)*1000
		k := Tuple4([4]byte{198, 19, byte(r.Uint32()), byte(r.Uint32())}, addr4(1000), uint16(r.Uint32()), 80, nat.ProtoTCP)
		f, res := tb.Insert(k, xlate4(2000, 8080), 1, 1, now)
		if res == Inserted {
			tb.TouchTCP(f.Handle, Original, Segment{Flags: TCPSyn, Seq: r.Uint32()}, 60, now)
			tb.TouchTCP(f.Handle, Reply, Segment{Flags: TCPSyn | TCPAck, Seq: r.Uint32(), Ack: r.Uint32()}, 60, now)
			// The spoofer's blind ACK does not complete the handshake.
			tb.TouchTCP(f.Handle, Original, Segment{Flags: TCPAck, Seq: r.Uint32(), Ack: r.Uint32()}, 60, now)
			if tb.Assured(f.Handle) {
				t.Fatalf("flood flow %d assured by a blind ACK", i)
			}
		}
		if i%64 == 0 { // a legitimate client
			c, res := tb.Insert(tup4(uint32(3000+i), 1000, 4000, 80, nat.ProtoTCP), xlate4(2000, 8080), 1, 1, now)
			if res != Inserted {
				t.Fatalf("legitimate client %d during the flood: Insert = %v, want inserted", i, res)
			}
			handshake(tb, c, now)
			admitted++
		}
	}
	for i, f := range est {
		if e, ok := tb.Get(f.Handle); !ok || e.State != StateEstablished {
			t.Fatalf("established flow %d: Get = %+v, %v, want live and ESTABLISHED", i, e, ok)
		}
	}
	if admitted == 0 || tb.Stats().Evictions == 0 {
		t.Fatalf("admitted %d, evictions %d: want both > 0", admitted, tb.Stats().Evictions)
	}
}

// TestAssuredRules: which packets make a flow assured.
func TestAssuredRules(t *testing.T) {
	type pkt struct {
		d     Dir
		flags uint8
	}
	for _, tc := range []struct {
		name  string
		proto nat.Proto
		pkts  []pkt
		want  bool
	}{
		{"tcp syn", nat.ProtoTCP, []pkt{{Original, TCPSyn}}, false},
		{"tcp syn-ack", nat.ProtoTCP, []pkt{{Original, TCPSyn}, {Reply, TCPSyn | TCPAck}}, false},
		{"tcp handshake", nat.ProtoTCP, []pkt{{Original, TCPSyn}, {Reply, TCPSyn | TCPAck}, {Original, TCPAck}}, true},
		{"tcp pickup", nat.ProtoTCP, []pkt{{Original, TCPAck}}, false},
		{"tcp pickup answered", nat.ProtoTCP, []pkt{{Original, TCPAck}, {Reply, TCPAck}}, true},
		{"udp one way", nat.ProtoUDP, []pkt{{Original, 0}, {Original, 0}}, false},
		{"udp answered", nat.ProtoUDP, []pkt{{Original, 0}, {Reply, 0}}, false},
		{"udp stream", nat.ProtoUDP, []pkt{{Original, 0}, {Reply, 0}, {Original, 0}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestTable(t, Config{MaxFlows: 16, MaxFlows6: -1})
			f, _ := tb.Insert(tup4(1, 2, 3, 80, tc.proto), xlate4(4, 8080), 1, 1, 0)
			for _, p := range tc.pkts {
				tb.Touch(f.Handle, p.d, p.flags, 60, 0)
			}
			if got := tb.Assured(f.Handle); got != tc.want {
				t.Errorf("Assured = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLoosePickupCapped: a flow picked up from one (spoofed) ACK is
// ESTABLISHED but lives only Timeouts.Unacknowledged (300 s), not a day;
// once the endpoint answers it gets the full timeout.
func TestLoosePickupCapped(t *testing.T) {
	tb := newTestTable(t, Config{MaxFlows: 16, MaxFlows6: -1})
	k := tup4(1, 2, 3, 80, nat.ProtoTCP)
	f, _ := tb.Insert(k, xlate4(4, 8080), 1, 1, 0)
	tb.TouchTCP(f.Handle, Original, Segment{Flags: TCPAck, Seq: 77, Ack: 99}, 60, 0)
	if fl, ok := tb.Lookup(k, 299*sec); !ok || fl.State != StateEstablished {
		t.Fatalf("Lookup(picked up, 299 s) = %v, %v, want ESTABLISHED hit", fl.State, ok)
	}
	if _, ok := tb.Lookup(k, 600*sec); ok {
		t.Fatalf("Lookup(unanswered pickup, 301 s idle) = hit, want miss (Unacknowledged timeout)")
	}
	f, _ = tb.Insert(k, xlate4(4, 8080), 1, 1, 1000*sec)
	tb.TouchTCP(f.Handle, Original, Segment{Flags: TCPAck, Seq: 77, Ack: 99}, 60, 1000*sec)
	tb.TouchTCP(f.Handle, Reply, Segment{Flags: TCPAck, Seq: 99, Ack: 77}, 60, 1000*sec)
	if _, ok := tb.Lookup(k, 1000*sec+3600*sec); !ok {
		t.Fatalf("Lookup(answered pickup, 1 h idle) = miss, want hit")
	}
}

// TestSpoofedRSTAndFIN: RST and FIN whose sequence numbers are outside the
// tracked window change nothing; in-window ones close the flow.
func TestSpoofedRSTAndFIN(t *testing.T) {
	for _, tc := range []struct {
		name  string
		d     Dir
		seg   Segment
		state State
	}{
		{"rst far", Original, Segment{Flags: TCPRst, Seq: 1001 + 1<<30}, StateEstablished},
		{"rst behind", Reply, Segment{Flags: TCPRst, Seq: 5001 + 1<<31 + 3*SeqWindow}, StateEstablished},
		{"rst-ack bad ack", Original, Segment{Flags: TCPRst | TCPAck, Seq: 1001, Ack: 5001 + 1<<31}, StateEstablished},
		{"fin far", Reply, Segment{Flags: TCPFin | TCPAck, Seq: 1 << 31, Ack: 1001}, StateEstablished},
		{"rst exact", Original, Segment{Flags: TCPRst, Seq: 1001}, StateClose},
		{"rst near", Reply, Segment{Flags: TCPRst, Seq: 5001 + 1000}, StateClose},
		{"fin exact", Reply, Segment{Flags: TCPFin | TCPAck, Seq: 5001, Ack: 1001}, StateFinWait},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestTable(t, Config{MaxFlows: 16, MaxFlows6: -1})
			k := tup4(1, 2, 3, 80, nat.ProtoTCP)
			f, _ := tb.Insert(k, xlate4(4, 8080), 1, 1, 0)
			handshake(tb, f, 0)
			tb.TouchTCP(f.Handle, tc.d, tc.seg, 60, sec)
			e, _ := tb.Get(f.Handle)
			if e.State != tc.state {
				t.Fatalf("state after %+v = %v, want %v", tc.seg, e.State, tc.state)
			}
			if tc.state == StateEstablished && (e.LastSeen != 0 || tb.Stats().OutOfWindow != 1) {
				t.Fatalf("out-of-window segment: last seen %d, OutOfWindow %d, want 0 and 1", e.LastSeen, tb.Stats().OutOfWindow)
			}
		})
	}
}

// TestSeqTracksData: the window follows a data transfer well beyond
// SeqWindow, so the final FIN and RST still apply.
func TestSeqTracksData(t *testing.T) {
	tb := newTestTable(t, Config{MaxFlows: 16, MaxFlows6: -1})
	f, _ := tb.Insert(tup4(1, 2, 3, 80, nat.ProtoTCP), xlate4(4, 8080), 1, 1, 0)
	handshake(tb, f, 0)
	seq := uint32(5001)
	for range 4 * SeqWindow / 1400 {
		tb.TouchTCP(f.Handle, Reply, Segment{Flags: TCPAck, Seq: seq, Ack: 1001, Len: 1400}, 1440, sec)
		seq += 1400
		tb.TouchTCP(f.Handle, Original, Segment{Flags: TCPAck, Seq: 1001, Ack: seq}, 40, sec)
	}
	tb.TouchTCP(f.Handle, Reply, Segment{Flags: TCPRst, Seq: seq}, 40, sec)
	if e, _ := tb.Get(f.Handle); e.State != StateClose {
		t.Fatalf("state after in-window RST at the end of a transfer = %v, want CLOSE", e.State)
	}
}

// TestPressureShortensHalfOpen: once a full table is under pressure,
// unassured half-open flows expire after Timeouts.Embryonic, assured and
// established ones keep their timeouts.
func TestPressureShortensHalfOpen(t *testing.T) {
	tb := newTestTable(t, Config{MaxFlows: 8, MaxFlows6: -1})
	syn, _ := tb.Insert(tup4(1, 2, 3, 80, nat.ProtoTCP), xlate4(4, 8080), 1, 1, 0)
	tb.Touch(syn.Handle, Original, TCPSyn, 60, 0)
	est, _ := tb.Insert(tup4(5, 2, 3, 80, nat.ProtoTCP), xlate4(4, 8080), 1, 1, 0)
	handshake(tb, est, 0)
	if _, ok := tb.Lookup(tup4(1, 2, 3, 80, nat.ProtoTCP), 6*sec); !ok {
		t.Fatalf("Lookup(SYN_SENT, 6 s, no pressure) = miss, want hit")
	}
	tb.Pressure(6 * sec)
	if !tb.UnderPressure(7 * sec) {
		t.Fatalf("UnderPressure = false after Pressure")
	}
	if _, ok := tb.Lookup(tup4(1, 2, 3, 80, nat.ProtoTCP), 7*sec); ok {
		t.Fatalf("Lookup(SYN_SENT idle 7 s, under pressure) = hit, want miss")
	}
	if _, ok := tb.Lookup(tup4(5, 2, 3, 80, nat.ProtoTCP), 7*sec); !ok {
		t.Fatalf("Lookup(ESTABLISHED, under pressure) = miss, want hit")
	}
	if tb.UnderPressure(30 * sec) {
		t.Fatalf("UnderPressure(24 s after the last mark) = true, want false")
	}
}

// TestReclaim: a SNAT tuple held by an idle unassured flow or an idle
// ended connection can be taken back; one held by an open assured or a
// fresh flow cannot.
func TestReclaim(t *testing.T) {
	tb := newTestTable(t, Config{MaxFlows: 16, MaxFlows6: -1})
	x := xlate4(4, 8080)
	x.SNAT = true
	a := addr4(9)
	copy(x.SNATAddr[:4], a[:])
	x.SNATPort = 20000
	half, _ := tb.Insert(tup4(1, 2, 3, 80, nat.ProtoTCP), x, 1, 1, 0)
	tb.Touch(half.Handle, Original, TCPSyn, 60, 0)
	reply := x.Reply(tup4(1, 2, 3, 80, nat.ProtoTCP))
	if tb.Reclaim(reply, ReclaimAge, ReclaimAge/2) {
		t.Fatalf("Reclaim(fresh half-open) = true, want false")
	}
	if !tb.Reclaim(reply, ReclaimAge, ReclaimAge) {
		t.Fatalf("Reclaim(idle half-open) = false, want true")
	}
	if _, res := tb.Insert(tup4(7, 2, 3, 80, nat.ProtoTCP), x, 1, 1, ReclaimAge); res != Inserted {
		t.Fatalf("Insert(reclaimed tuple) = %v, want inserted", res)
	}
	f, _ := tb.Lookup(reply, ReclaimAge)
	handshake(tb, Flow{Handle: f.Handle}, ReclaimAge)
	if tb.Reclaim(reply, ReclaimAge, 100*sec) {
		t.Fatalf("Reclaim(assured) = true, want false")
	}
	// The connection ends: its tuple may be reused once idle.
	tb.TouchTCP(f.Handle, Original, Segment{Flags: TCPFin | TCPAck, Seq: 1001, Ack: 5001}, 60, 100*sec)
	tb.TouchTCP(f.Handle, Reply, Segment{Flags: TCPFin | TCPAck, Seq: 5001, Ack: 1002}, 60, 100*sec)
	tb.TouchTCP(f.Handle, Original, Segment{Flags: TCPAck, Seq: 1002, Ack: 5002}, 60, 100*sec)
	if e, _ := tb.Get(f.Handle); e.State != StateTimeWait {
		t.Fatalf("state after the close: %v, want TIME_WAIT", e.State)
	}
	if tb.Reclaim(reply, ReclaimAge, 100*sec+ReclaimAge/2) {
		t.Fatalf("Reclaim(fresh TIME_WAIT) = true, want false")
	}
	if !tb.Reclaim(reply, ReclaimAge, 100*sec+ReclaimAge) {
		t.Fatalf("Reclaim(idle TIME_WAIT) = false, want true")
	}
}

// TestReusedRecordForgetsSequence: a flow built in a record another flow
// used starts without that flow's sequence tracking, so its first packet,
// a mid-stream ACK picked up loosely, applies as in an empty table (before,
// the old numbers made it out of window: the flow stayed TCP_NONE).
func TestReusedRecordForgetsSequence(t *testing.T) {
	tb := newTestTable(t, Config{MaxFlows: 1, MaxFlows6: -1})
	old, _ := tb.Insert(tup4(1, 2, 3, 80, nat.ProtoTCP), xlate4(4, 8080), 1, 1, 0)
	handshake(tb, old, 0)
	tb.Delete(old.Handle)
	f, res := tb.Insert(tup4(5, 2, 6, 80, nat.ProtoTCP), xlate4(4, 8080), 1, 1, sec)
	if res != Inserted || f.Handle.idx() != old.Handle.idx() {
		t.Fatalf("Insert = %v in record %d, want inserted in record %d", res, f.Handle.idx(), old.Handle.idx())
	}
	tb.TouchTCP(f.Handle, Original, Segment{Flags: TCPAck, Seq: 3_000_000_000, Ack: 7}, 60, sec)
	if e, _ := tb.Get(f.Handle); e.State != StateEstablished || e.Packets[Original] != 1 {
		t.Errorf("after a picked-up ACK: state %v, packets %d, want ESTABLISHED, 1", e.State, e.Packets[Original])
	}
}

// TestInsertFirst: InsertFirst leaves exactly what Insert followed by the
// packet's Touch or TouchTCP leaves (the slow reference): state, flags,
// counters, last-seen and sequence tracking, for random first packets into
// records that earlier flows used, and for an existing flow.
func TestInsertFirst(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	fast := newTestTable(t, Config{MaxFlows: 8, MaxFlows6: -1, Seed: 3, TouchResolution: 1})
	slow := newTestTable(t, Config{MaxFlows: 8, MaxFlows6: -1, Seed: 3, TouchResolution: 1})
	flagSets := []uint8{TCPSyn, TCPSyn | TCPAck, TCPAck, TCPFin | TCPAck, TCPRst, TCPAck | 0x08, 0}
	for i := range 2000 {
		proto := [...]nat.Proto{nat.ProtoTCP, nat.ProtoTCP, nat.ProtoUDP}[r.IntN(3)]
		k := tup4(uint32(r.IntN(6)), 2, uint16(r.IntN(3)), 80, proto)
		pkt := Packet{Seg: Segment{Flags: flagSets[r.IntN(len(flagSets))], Seq: r.Uint32(), Ack: r.Uint32(), Len: uint32(r.IntN(100))},
			HasSeq: r.IntN(4) != 0, Bytes: 40 + r.IntN(1400)}
		now := int64(i) * sec
		ff, fres := fast.InsertFirst(k, xlate4(9, 8080), 1, 2, pkt, now)
		sf, sres := slow.Insert(k, xlate4(9, 8080), 1, 2, now)
		if sres == Inserted || sres == Exists {
			if pkt.HasSeq && proto == nat.ProtoTCP {
				slow.TouchTCP(sf.Handle, Original, pkt.Seg, pkt.Bytes, now)
			} else {
				slow.Touch(sf.Handle, Original, pkt.Seg.Flags, pkt.Bytes, now)
			}
		}
		if fres != sres || ff.Handle != sf.Handle {
			t.Fatalf("packet %d: InsertFirst = %v %v, Insert = %v %v", i, fres, ff.Handle, sres, sf.Handle)
		}
		fe, fok := fast.Get(ff.Handle)
		se, sok := slow.Get(sf.Handle)
		fn, sn := fast.ctr(false, ff.Handle.idx()), slow.ctr(false, sf.Handle.idx())
		if fok != sok || fe != se || fn.nxt[0].Load() != sn.nxt[0].Load() || fn.nxt[1].Load() != sn.nxt[1].Load() {
			t.Fatalf("packet %d (%+v, %v): InsertFirst left %+v nxt %d,%d; Insert+Touch %+v nxt %d,%d", i, pkt, fres,
				fe, fn.nxt[0].Load(), fn.nxt[1].Load(), se, sn.nxt[0].Load(), sn.nxt[1].Load())
		}
		if fres == Inserted && ff.State != fe.State {
			t.Fatalf("packet %d: InsertFirst Flow.State %v, flow is %v", i, ff.State, fe.State)
		}
		if r.IntN(3) == 0 { // free records for reuse
			fast.Delete(ff.Handle)
			slow.Delete(sf.Handle)
		}
	}
}
