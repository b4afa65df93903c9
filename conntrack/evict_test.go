package conntrack

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/nat"
)

const sec = int64(time.Second)

// TestFloodKeepsEstablished: with the table full of idle and busy
// established (assured) flows, a flood of new flows evicts none of them:
// the flood's inserts are refused and counted.
func TestFloodKeepsEstablished(t *testing.T) {
	const capacity = 4096
	tb := newTestTable(t, Config{MaxFlows: capacity, MaxFlows6: -1})
	var busy []Flow
	for i := range capacity {
		now := int64(0)
		if i%2 == 1 {
			now = 100 * sec
		}
		f, res := tb.Insert(tup4(uint32(i), 1000, uint16(i), 80, nat.ProtoTCP), xlate4(2000, 8080), 1, 1, now)
		if res != Inserted {
			t.Fatalf("fill %d: Insert = %v, want inserted", i, res)
		}
		for _, p := range []struct {
			d     Dir
			flags uint8
		}{{Original, TCPSyn}, {Reply, TCPSyn | TCPAck}, {Original, TCPAck}} {
			tb.Touch(f.Handle, p.d, p.flags, 60, now)
		}
		if i%2 == 1 { // odd flows are kept busy below; even ones stay idle
			busy = append(busy, f)
		}
	}
	if st := tb.Stats(); st.States[StateEstablished] != capacity {
		t.Fatalf("established = %d, want %d", st.States[StateEstablished], capacity)
	}
	// Flood: new SYNs at t=200s. Busy flows keep being touched.
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2 * capacity {
		now := 200*sec + int64(i)
		for range 2 {
			b := busy[r.IntN(len(busy))]
			tb.Touch(b.Handle, Original, TCPAck, 60, now)
		}
		k := Tuple4([4]byte{198, 19, byte(i >> 8), byte(i)}, addr4(1000), uint16(i), 80, nat.ProtoTCP)
		f, res := tb.Insert(k, xlate4(2000, 8080), 1, 1, now)
		if res != Full {
			t.Fatalf("flood %d: Insert = %v, want full (only assured flows)", i, res)
		}
		_ = f
	}
	st := tb.Stats()
	if st.Evictions != 0 || st.Entries != capacity || st.RefusedAssured != 2*capacity {
		t.Errorf("Stats() evictions %d entries %d refused %d, want 0, %d, %d", st.Evictions, st.Entries, st.RefusedAssured, capacity, 2*capacity)
	}
}

// TestEvictionOrder is a property test of evict on one window: whatever the
// mix, the victim is an expired flow if one exists, else the oldest
// unassured flow (replied or not), else none: assured flows stay.
func TestEvictionOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for trial := range 300 {
		// Four flows in a tiny table; evict considers every bucket.
		tb := newTestTable(t, Config{MaxFlows: 4, MaxFlows6: -1, Seed: uint64(trial + 1)})
		type fl struct {
			h       Handle
			last    int64
			replied bool
			assured bool
			expired bool
		}
		var flows []fl
		now := 1000 * sec
		for i := 0; len(flows) < 4; i++ {
			k := tup4(uint32(i), 1, uint16(i), 80, nat.ProtoUDP)
			last := now - int64(r.IntN(25))*sec
			expired := r.IntN(6) == 0
			if expired {
				last = now - 200*sec
			}
			f, res := tb.Insert(k, xlate4(uint32(50000+i), 53), 1, 1, last)
			if res != Inserted {
				continue
			}
			replied := r.IntN(2) == 0
			if replied {
				tb.Touch(f.Handle, Reply, 0, 1, last)
			}
			assured := replied && r.IntN(2) == 0
			if assured {
				tb.Touch(f.Handle, Original, 0, 1, last)
			}
			if !expired && replied && now-last > tb.timeouts[StateUDPReplied] || !replied && now-last > tb.timeouts[StateUDPUnreplied] {
				expired = true
			}
			flows = append(flows, fl{f.Handle, last, replied, assured, expired})
		}
		want := -1
		for i, f := range flows {
			if f.expired {
				want = i
				break
			}
		}
		if want < 0 {
			for i, f := range flows {
				if !f.assured && (want < 0 || f.last < flows[want].last) {
					want = i
				}
			}
		}
		all := make([]uint64, tb.nb)
		for b := range all {
			all[b] = uint64(b)
		}
		removedAny, assuredOnly := tb.evict(all, now)
		if want < 0 {
			if removedAny || !assuredOnly {
				t.Fatalf("trial %d: evict = %v, %v with only assured flows, want false, true", trial, removedAny, assuredOnly)
			}
			continue
		}
		if !removedAny {
			t.Fatalf("trial %d: evict = false with %d flows in window", trial, len(flows))
		}
		anyExpired := flows[want].expired
		removed := -1
		for i, f := range flows {
			if _, live := tb.Get(f.h); !live {
				if removed >= 0 {
					t.Fatalf("trial %d: evict removed flows %d and %d, want one", trial, removed, i)
				}
				removed = i
			}
		}
		// Any expired flow is a valid victim (the first in slot order is
		// taken); otherwise the computed one or one that ties with it.
		ok := removed >= 0
		if ok && anyExpired {
			ok = flows[removed].expired
		} else if ok {
			ok = flows[removed].last == flows[want].last && !flows[removed].assured
		}
		if !ok {
			t.Fatalf("trial %d: evict removed %d, want %d (expired first, then oldest unassured) of %+v",
				trial, removed, want, flows)
		}
	}
}

// TestExpiryProperty: for random flows and times, Lookup hits exactly when
// the flow is within its state's timeout, and Sweep removes exactly the
// expired ones.
func TestExpiryProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tb := newTestTable(t, Config{MaxFlows: 2048, MaxFlows6: -1, TouchResolution: 1})
	type fl struct {
		k    Tuple
		h    Handle
		last int64
	}
	var flows []fl
	for i := range 1000 {
		proto := [...]nat.Proto{nat.ProtoTCP, nat.ProtoUDP, nat.ProtoICMP, nat.ProtoSCTP}[r.IntN(4)]
		k := tup4(uint32(i), 7, uint16(i), 80, proto)
		last := int64(r.IntN(700)) * sec
		f, _ := tb.Insert(k, xlate4(9, 80), 1, 1, last)
		if proto == nat.ProtoTCP {
			tb.Touch(f.Handle, Original, TCPSyn, 1, last)
		}
		flows = append(flows, fl{k, f.Handle, last})
	}
	now := 700 * sec
	wantExpired := 0
	for _, f := range flows {
		e, _ := tb.Get(f.h)
		if now-f.last > tb.timeouts[e.State] {
			wantExpired++
		}
	}
	if got := tb.Sweep(now, 1<<20); got != wantExpired {
		t.Fatalf("Sweep(%d) = %d, want %d", now, got, wantExpired)
	}
	for _, f := range flows {
		_, live := tb.Get(f.h)
		_, hit := tb.Lookup(f.k, now)
		if live != hit {
			t.Fatalf("flow %v: Get live %v, Lookup hit %v", f.k, live, hit)
		}
		later := now + 130*sec // beyond every timeout but ESTABLISHED/CLOSE_WAIT/OTHER
		e, _ := tb.Get(f.h)
		wantHit := live && later-f.last <= tb.timeouts[e.State]
		if _, hit := tb.Lookup(f.k, later); hit != wantHit {
			t.Fatalf("Lookup(%v, state %v, last %d, at %d) hit = %v, want %v", f.k, e.State, f.last, later, hit, wantHit)
		}
	}
	if st := tb.Stats(); st.Expiries == 0 {
		t.Fatalf("Stats().Expiries = 0")
	}
}

func TestFullTable(t *testing.T) {
	tb := newTestTable(t, Config{MaxFlows: 16, MaxFlows6: -1})
	for i := range 16 {
		if _, res := tb.Insert(tup4(uint32(i), 1, 1, 80, nat.ProtoUDP), xlate4(2, 53), 1, 1, 0); res != Inserted {
			t.Fatalf("Insert %d = %v, want inserted", i, res)
		}
	}
	// Full: the next insert evicts (every flow is in the two-bucket window
	// of this tiny table).
	if _, res := tb.Insert(tup4(100, 1, 1, 80, nat.ProtoUDP), xlate4(2, 53), 1, 1, sec); res != Inserted {
		t.Fatalf("Insert into full table = %v, want inserted (evicting)", res)
	}
	if st := tb.Stats(); st.Evictions != 1 || st.Entries != 16 {
		t.Fatalf("Stats() evictions %d entries %d, want 1 16", st.Evictions, st.Entries)
	}
	if _, res := tb.Insert(MakeTuple(netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::2"), 1, 2, nat.ProtoUDP),
		MakeTranslation(netip.MustParseAddrPort("[2001:2::3]:53"), netip.AddrPort{}), 1, 1, 0); res != Invalid {
		t.Fatalf("Insert(IPv6) with IPv6 disabled = %v, want invalid", res)
	}
}

// TestClosedConnectionsMakeRoom: a table full of assured flows, half of
// them connections that closed (TIME_WAIT, as after every short HTTP
// request), admits new flows by evicting closed ones, oldest first, and
// never an open one; with only open assured flows left the insert is
// refused. (Before, closed connections were protected like open ones: a
// gateway serving short connections refused every new flow for the 120 s
// of TIME_WAIT once its table filled.)
func TestClosedConnectionsMakeRoom(t *testing.T) {
	const capacity = 512
	tb := newTestTable(t, Config{MaxFlows: capacity, MaxFlows6: -1})
	open := map[Handle]bool{}
	var closed []Flow
	for i := range capacity {
		now := int64(i) * sec / 100
		f, res := tb.Insert(tup4(uint32(i), 1000, uint16(1000+i), 80, nat.ProtoTCP), xlate4(2000, 8080), 1, 1, now)
		if res != Inserted {
			t.Fatalf("fill %d: Insert = %v, want inserted", i, res)
		}
		handshake(tb, f, now)
		if i%2 == 0 {
			open[f.Handle] = true
			continue
		}
		// The client closes, the server closes, the client ACKs.
		tb.TouchTCP(f.Handle, Original, Segment{Flags: TCPFin | TCPAck, Seq: 1001, Ack: 5001}, 60, now)
		tb.TouchTCP(f.Handle, Reply, Segment{Flags: TCPFin | TCPAck, Seq: 5001, Ack: 1002}, 60, now)
		tb.TouchTCP(f.Handle, Original, Segment{Flags: TCPAck, Seq: 1002, Ack: 5002}, 60, now)
		if e, _ := tb.Get(f.Handle); e.State != StateTimeWait || !e.Assured {
			t.Fatalf("closed flow %d: state %v assured %v, want TIME_WAIT and assured", i, e.State, e.Assured)
		}
		closed = append(closed, f)
	}
	admitted := 0
	for i := range 2 * capacity {
		now := 10*sec + int64(i)
		k := Tuple4([4]byte{198, 19, byte(i >> 8), byte(i)}, addr4(1000), uint16(i), 80, nat.ProtoTCP)
		f, res := tb.Insert(k, xlate4(2000, 8080), 1, 1, now)
		switch res {
		case Inserted:
			admitted++
			handshake(tb, f, now) // the new connection stays open
			open[f.Handle] = true
		case Full:
		default:
			t.Fatalf("new flow %d: Insert = %v", i, res)
		}
	}
	for h := range open {
		if e, ok := tb.Get(h); !ok || e.State != StateEstablished {
			t.Fatalf("open flow: Get = %+v, %v, want live and ESTABLISHED", e, ok)
		}
	}
	// Every closed flow made room for one new flow; then only open ones
	// were left, and the rest were refused.
	if admitted != len(closed) {
		t.Errorf("admitted %d new flows, want %d (one per closed flow)", admitted, len(closed))
	}
	for i, f := range closed {
		if _, ok := tb.Get(f.Handle); ok {
			t.Errorf("closed flow %d still live", i)
		}
	}
	if st := tb.Stats(); st.RefusedAssured != uint64(2*capacity-len(closed)) {
		t.Errorf("RefusedAssured = %d, want %d", st.RefusedAssured, 2*capacity-len(closed))
	}
}

// TestEvictFamily: the index is shared by both families, their records are
// not. With both tables full of unassured flows, new IPv6 flows evict IPv6
// flows only and are all admitted; the IPv4 flows stay. (Before, eviction
// could remove an IPv4 flow, which frees no IPv6 record, or find no flow
// at all in a sample of a sparsely used index, and refuse the new flow.)
func TestEvictFamily(t *testing.T) {
	const capacity = 256
	tb := newTestTable(t, Config{MaxFlows: capacity, MaxFlows6: capacity})
	v6 := func(i int) Tuple {
		return MakeTuple(netipAddr6(i), netip.MustParseAddr("2001:2::1"), uint16(1000+i%50000), 80, nat.ProtoUDP)
	}
	for i := range capacity {
		if _, res := tb.Insert(tup4(uint32(i), 1000, uint16(i), 80, nat.ProtoUDP), xlate4(2000, 53), 1, 1, 0); res != Inserted {
			t.Fatalf("fill IPv4 %d: %v", i, res)
		}
		if _, res := tb.Insert(v6(i), Translation{}, 1, 1, 0); res != Inserted {
			t.Fatalf("fill IPv6 %d: %v", i, res)
		}
	}
	for i := capacity; i < 3*capacity; i++ {
		if _, res := tb.Insert(v6(i), Translation{}, 1, 1, sec); res != Inserted {
			t.Fatalf("new IPv6 flow %d in a full table of unassured flows: %v, want inserted", i, res)
		}
	}
	if st := tb.Stats(); st.Entries4 != capacity || st.Entries6 != capacity {
		t.Errorf("entries IPv4 %d IPv6 %d, want %d each", st.Entries4, st.Entries6, capacity)
	}
}

// TestEvictHandTurn: into a full table of unassured flows, capacity more
// inserts each evict one flow and reuse its record, and a flow inserted
// into a full table lives a whole turn of the hand: after the second wave
// every flow of it is live and every flow of the first gone. A third of
// the table is assured and survives both waves.
func TestEvictHandTurn(t *testing.T) {
	const capacity = 1024
	tb := newTestTable(t, Config{MaxFlows: capacity, MaxFlows6: -1})
	key := func(wave, i int) Tuple {
		return Tuple4([4]byte{198, 18, byte(wave), byte(i >> 8)}, addr4(1000), uint16(i), 80, nat.ProtoTCP)
	}
	var assured, first []Flow
	for i := range capacity {
		f, res := tb.Insert(key(0, i), xlate4(2000, 8080), 1, 1, 0)
		if res != Inserted {
			t.Fatalf("fill %d: Insert = %v", i, res)
		}
		if i%3 == 0 {
			handshake(tb, f, 0)
			assured = append(assured, f)
		} else {
			first = append(first, f)
		}
	}
	var second []Flow
	for wave := 1; wave <= 2; wave++ {
		second = second[:0]
		for i := range len(first) {
			now := int64(wave*capacity+i) * 1000
			f, res := tb.Insert(key(wave, i), xlate4(2000, 8080), 1, 1, now)
			if res != Inserted {
				t.Fatalf("wave %d insert %d: Insert = %v, want inserted (evicting)", wave, i, res)
			}
			second = append(second, f)
		}
		for i, f := range second {
			if _, ok := tb.Get(f.Handle); !ok {
				t.Fatalf("wave %d flow %d evicted by its own wave", wave, i)
			}
		}
		for i, f := range first {
			if _, ok := tb.Get(f.Handle); ok {
				t.Fatalf("wave %d: flow %d of the previous wave still live", wave, i)
			}
		}
		first = append(first[:0], second...)
	}
	for i, f := range assured {
		if !tb.Assured(f.Handle) {
			t.Fatalf("assured flow %d evicted", i)
		}
	}
	if st := tb.Stats(); st.Evictions != uint64(2*len(second)) || st.Entries != capacity {
		t.Errorf("Stats() evictions %d entries %d, want %d %d", st.Evictions, st.Entries, 2*len(second), capacity)
	}
}

// TestClosingAssuredEvictable: as the kernel's early_drop, an assured TCP
// flow that is closing (here TIME_WAIT) may be evicted for a new flow, so
// a small table full of finished connections keeps admitting new ones; an
// assured open flow may not (TestFloodKeepsEstablished).
func TestClosingAssuredEvictable(t *testing.T) {
	const capacity = 64
	tb := newTestTable(t, Config{MaxFlows: capacity, MaxFlows6: -1})
	for i := range capacity {
		f, res := tb.Insert(tup4(uint32(i), 1000, uint16(i), 80, nat.ProtoTCP), xlate4(2000, 8080), 1, 1, 0)
		if res != Inserted {
			t.Fatalf("fill %d: Insert = %v", i, res)
		}
		handshake(tb, f, 0)
		tb.Touch(f.Handle, Original, TCPFin|TCPAck, 60, 0)
		tb.Touch(f.Handle, Reply, TCPFin|TCPAck, 60, 0)
		tb.Touch(f.Handle, Original, TCPAck, 60, 0)
		if e, _ := tb.Get(f.Handle); e.State != StateTimeWait || !e.Assured {
			t.Fatalf("flow %d: state %v assured %v, want TIME_WAIT, assured", i, e.State, e.Assured)
		}
	}
	for i := range capacity {
		k := Tuple4([4]byte{198, 19, 0, byte(i)}, addr4(1000), uint16(i), 80, nat.ProtoTCP)
		if _, res := tb.Insert(k, xlate4(2000, 8080), 1, 1, sec); res != Inserted {
			t.Fatalf("new flow %d into a table of TIME_WAIT flows: Insert = %v, want inserted", i, res)
		}
	}
	if st := tb.Stats(); st.Evictions != capacity || st.RefusedAssured != 0 {
		t.Errorf("Stats() evictions %d refused %d, want %d 0", st.Evictions, st.RefusedAssured, capacity)
	}
}
