package conntrack

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdpgate/xdpgate/nat"
)

func TestNoAllocs(t *testing.T) {
	tb := newTestTable(t, Config{MaxFlows: 1 << 12})
	k4 := tup4(1, 2, 1000, 80, nat.ProtoTCP)
	x4 := xlate4(3, 8080)
	k6 := MakeTuple(netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::2"), 1000, 80, nat.ProtoTCP)
	x6 := MakeTranslation(netip.MustParseAddrPort("[2001:2::3]:8080"), netip.MustParseAddrPort("[2001:2::4]:40000"))
	f4, _ := tb.Insert(k4, x4, 1, 1, 0)
	f6, _ := tb.Insert(k6, x6, 1, 1, 0)
	fk := MakeFragKey(k4.SrcAddr(), k4.DstAddr(), nat.ProtoUDP, 7)
	tb.RememberFragment(fk, f4, 0)
	n := uint16(0)
	tests := []struct {
		name string
		fn   func()
	}{
		{"Lookup hit v4", func() { tb.Lookup(k4, 1) }},
		{"Lookup reply v4", func() { tb.Lookup(x4.Reply(k4), 1) }},
		{"Lookup miss v4", func() { tb.Lookup(tup4(9, 9, 9, 9, nat.ProtoTCP), 1) }},
		{"Lookup hit v6", func() { tb.Lookup(k6, 1) }},
		{"Insert exists", func() { tb.Insert(k4, x4, 1, 1, 1) }},
		{"Insert new and Delete", func() {
			n++
			f, _ := tb.Insert(tup4(5, 6, n, 80, nat.ProtoUDP), x4, 1, 1, 1)
			tb.Delete(f.Handle)
		}},
		{"InsertFirst new and Delete", func() {
			n++
			f, _ := tb.InsertFirst(tup4(5, 7, n, 80, nat.ProtoTCP), x4, 1, 1, Packet{Seg: Segment{Flags: TCPSyn, Seq: 9}, HasSeq: true, Bytes: 60}, 1)
			tb.Delete(f.Handle)
		}},
		{"InsertFirst exists", func() { tb.InsertFirst(k4, x4, 1, 1, Packet{Seg: Segment{Flags: TCPAck}, Bytes: 60}, 1) }},
		{"Touch", func() { tb.Touch(f4.Handle, Reply, TCPAck, 1500, 2) }},
		{"Touch v6", func() { tb.Touch(f6.Handle, Original, TCPAck, 1500, 2) }},
		{"Sweep", func() { tb.Sweep(3, 64) }},
		{"RememberFragment", func() { tb.RememberFragment(fk, f4, 4) }},
		{"LookupFragment", func() { tb.LookupFragment(fk, 4) }},
		{"MakeTuple", func() { MakeTuple(k6.SrcAddr(), k6.DstAddr(), 1, 2, nat.ProtoTCP) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(200, tc.fn); got != 0 {
				t.Errorf("AllocsPerRun(%s) = %v, want 0", tc.name, got)
			}
		})
	}
}

// TestNoAllocsFullTable: eviction (table full) allocates nothing either.
func TestNoAllocsFullTable(t *testing.T) {
	tb := newTestTable(t, Config{MaxFlows: 64, MaxFlows6: -1})
	i := uint32(0)
	got := testing.AllocsPerRun(500, func() {
		i++
		if _, res := tb.Insert(tup4(i, 2, uint16(i), 80, nat.ProtoUDP), xlate4(3, 53), 1, 1, int64(i)); res != Inserted {
			t.Fatalf("Insert = %v, want inserted", res)
		}
	})
	if got != 0 {
		t.Errorf("AllocsPerRun(Insert into full table) = %v, want 0", got)
	}
	if tb.Stats().Evictions == 0 {
		t.Errorf("Stats().Evictions = 0, want > 0")
	}
}

// TestLookupBatch compares LookupBatch with Lookup on hits, misses, IPv6 and
// expired flows (the slow reference is Lookup itself).
func TestLookupBatch(t *testing.T) {
	tb := newTestTable(t, Config{MaxFlows: 4096, TouchResolution: 1})
	var keys []Tuple
	for i := range 300 {
		k := tup4(uint32(i), 2, uint16(i), 80, [...]nat.Proto{nat.ProtoTCP, nat.ProtoUDP}[i%2])
		if i%5 == 0 {
			k = MakeTuple(netipAddr6(i), netipAddr6(1000), uint16(i), 80, nat.ProtoUDP)
		}
		keys = append(keys, k)
		if i%3 != 0 {
			tb.Insert(k, MakeTranslation(netipAddrPort(k, i), netipAddrPortZero()), 1, uint32(i), int64(i)*int64(1e9))
		}
	}
	keys = append(keys, keys[7].Reverse(), Tuple{})
	now := int64(100e9) // the UDP flows inserted before t=70s are expired
	want := make([]Flow, len(keys))
	wantOK := make([]bool, len(keys))
	// LookupBatch runs first and expires what it meets, so the Lookups
	// after it must agree on expired flows as well.
	out := make([]Flow, len(keys))
	found := make([]bool, len(keys))
	hits := tb.LookupBatch(keys, now, out, found)
	wantHits := 0
	for i, k := range keys {
		want[i], wantOK[i] = tb.Lookup(k, now)
		if wantOK[i] {
			wantHits++
		}
		if found[i] != wantOK[i] || out[i] != want[i] && wantOK[i] {
			t.Fatalf("LookupBatch key %d (%v) = %+v, %v, want %+v, %v", i, k, out[i], found[i], want[i], wantOK[i])
		}
	}
	if st := tb.Stats(); hits != wantHits || hits == 0 || hits == len(keys) || st.Expiries == 0 {
		t.Fatalf("LookupBatch hits = %d, want %d (and neither 0 nor all, with expiries %d > 0)", hits, wantHits, st.Expiries)
	}
	if got := testing.AllocsPerRun(100, func() { tb.LookupBatch(keys, now, out, found) }); got != 0 {
		t.Errorf("AllocsPerRun(LookupBatch) = %v, want 0", got)
	}
}

// TestLookupBatchFullTable: in full tables, where about a quarter of the
// buckets have overflowed into their second bucket, LookupBatch finds
// exactly the flows a map of the inserted tuples holds (both directions),
// and nothing else, for random batches of hits and misses.
func TestLookupBatchFullTable(t *testing.T) {
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 11))
		const n = 4096
		tb := newTestTable(t, Config{MaxFlows: n, MaxFlows6: -1, Seed: seed + 1})
		live := make(map[Tuple]Dir)
		var all []Tuple
		for i := range n {
			k := Tuple4([4]byte{198, 18, byte(r.Uint32()), byte(r.Uint32())}, addr4(1000), uint16(r.Uint32()), 80, nat.ProtoTCP)
			x := xlate4(uint32(2000+i%7), 8080)
			if _, res := tb.Insert(k, x, 1, 1, 0); res != Inserted {
				continue
			}
			live[k], live[x.Reply(k)] = Original, Reply
			all = append(all, k, x.Reply(k))
		}
		second := 0
		for b := range tb.nb {
			second += int(tb.header(b).Load() >> 32)
		}
		if second == 0 {
			t.Fatalf("seed %d: no entry in a second bucket: the test covers nothing", seed)
		}
		keys := make([]Tuple, 64)
		out := make([]Flow, 64)
		found := make([]bool, 64)
		for range 200 {
			for i := range keys {
				if r.IntN(3) == 0 {
					keys[i] = Tuple4([4]byte{198, 19, byte(r.Uint32()), byte(r.Uint32())}, addr4(1000), uint16(r.Uint32()), 80, nat.ProtoTCP)
				} else {
					keys[i] = all[r.IntN(len(all))]
				}
			}
			tb.LookupBatch(keys, 1, out, found)
			for i, k := range keys {
				d, ok := live[k]
				if found[i] != ok || ok && out[i].Dir != d {
					t.Fatalf("seed %d: LookupBatch(%v) = %+v, %v, want dir %v, %v", seed, k, out[i], found[i], d, ok)
				}
			}
		}
	}
}
