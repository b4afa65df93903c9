package conntrack

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/nat"
)

// modelFlow is the reference model's flow: a plain struct in a Go map.
type modelFlow struct {
	id          int
	orig, reply Tuple
	svc, ep     uint32
	state       State
	closer      Dir
	replied     bool
	last        int64
	pkts, bytes [2]uint64
	handle      Handle
}

// model is the slow, obviously-correct reference: maps from tuple to flow.
type model struct {
	timeouts [NumStates]int64
	flows    map[int]*modelFlow
	tuples   map[Tuple]*modelFlow
	nextID   int
}

func newModel(tb *Table) *model {
	return &model{timeouts: tb.timeouts, flows: map[int]*modelFlow{}, tuples: map[Tuple]*modelFlow{}}
}

func (m *model) expired(f *modelFlow, now int64) bool {
	to := m.timeouts[f.state]
	if f.orig.Proto == nat.ProtoTCP && !f.replied {
		to = min(to, int64(DefaultTimeouts().Unacknowledged))
	}
	return now-f.last > to
}

func (m *model) remove(f *modelFlow) {
	delete(m.flows, f.id)
	delete(m.tuples, f.orig)
	delete(m.tuples, f.reply)
}

// find returns the live flow using k, removing it when expired.
func (m *model) find(k Tuple, now int64) *modelFlow {
	f := m.tuples[k]
	if f != nil && m.expired(f, now) {
		m.remove(f)
		return nil
	}
	return f
}

func (m *model) insert(orig Tuple, x Translation, svc, ep uint32, now int64) (*modelFlow, InsertResult) {
	reply := x.Reply(orig)
	if !orig.Valid() || !reply.Valid() || orig == reply {
		return nil, Invalid
	}
	if f := m.find(orig, now); f != nil {
		if f.orig == orig {
			return f, Exists
		}
		return nil, Conflict
	}
	if f := m.find(reply, now); f != nil {
		return nil, Conflict
	}
	m.nextID++
	f := &modelFlow{id: m.nextID, orig: orig, reply: reply, svc: svc, ep: ep, state: initialState(orig.Proto), last: now}
	m.flows[f.id] = f
	m.tuples[orig] = f
	m.tuples[reply] = f
	return f, Inserted
}

func (m *model) touch(f *modelFlow, d Dir, flags uint8, n int, now int64) {
	f.last = now
	f.pkts[d]++
	f.bytes[d] += uint64(n)
	if d == Reply {
		f.replied = true
	}
	switch f.orig.Proto {
	case nat.ProtoTCP:
		old := f.state
		f.state, f.closer = tcpNext(f.state, f.closer, d, flags)
		if f.state == StateSynSent && old != StateSynSent && old != StateTCPNone {
			f.replied = false // port reuse: a new connection
		}
	case nat.ProtoUDP:
		if f.replied {
			f.state = StateUDPReplied
		}
	}
}

// opSource yields op codes from a seeded PRNG or fuzz input.
type opSource interface{ next(n int) int }

type randSource struct{ r *rand.Rand }

func (s randSource) next(n int) int { return s.r.IntN(n) }

type byteSource struct{ b []byte }

func (s *byteSource) next(n int) int {
	if len(s.b) == 0 {
		return 0
	}
	v := int(s.b[0])
	s.b = s.b[1:]
	return v % n
}

func (s *byteSource) done() bool { return len(s.b) == 0 }

// randTuple draws from a small universe so that inserts collide.
func randTuple(src opSource) Tuple {
	protos := [...]nat.Proto{nat.ProtoTCP, nat.ProtoUDP, nat.ProtoICMP, nat.ProtoSCTP}
	p := protos[src.next(len(protos))]
	if src.next(4) == 0 {
		var a, b [16]byte
		a[0], a[1], a[15] = 0x20, 0x01, byte(src.next(4))
		b[0], b[1], b[2], b[3], b[15] = 0x20, 0x01, 0, 2, byte(src.next(4))
		b[0], b[1], b[2] = 0x20, 0x01, 0x00
		return Tuple6(a, b, uint16(1000+src.next(4)), uint16(80+src.next(2)), p)
	}
	return tup4(uint32(src.next(6)), uint32(100+src.next(3)), uint16(1000+src.next(6)), uint16(80+src.next(2)), p)
}

func randXlate(src opSource, orig Tuple) Translation {
	x := Translation{DNATPort: uint16(8080 + src.next(2))}
	if orig.Family == IPv6 {
		x.DNATAddr = orig.Dst
		x.DNATAddr[14] = byte(1 + src.next(3))
	} else {
		a := addr4(uint32(200 + src.next(3)))
		copy(x.DNATAddr[:4], a[:])
	}
	if src.next(3) == 0 {
		x.SNAT = true
		x.SNATAddr = x.DNATAddr
		x.SNATAddr[3] ^= 0x40
		x.SNATPort = uint16(30000 + src.next(4))
	}
	if src.next(50) == 0 { // malformed: family mismatch
		x.DNATAddr[10] = 0xff
	}
	return x
}

// runModel applies ops from src to a table and to the model and fails on
// the first divergence. It returns the number of ops applied.
func runModel(t testing.TB, src opSource, maxOps int) int {
	tb := newTestTable(t, Config{MaxFlows: 4096, MaxFlows6: 1024, TouchResolution: 1})
	m := newModel(tb)
	var handles []*modelFlow // every flow ever inserted (handles go stale)
	now := int64(0)
	sec := int64(time.Second)
	ops := 0
	for ; ops < maxOps; ops++ {
		if bs, ok := src.(*byteSource); ok && bs.done() {
			break
		}
		switch op := src.next(100); {
		case op < 30: // insert
			orig := randTuple(src)
			x := randXlate(src, orig)
			svc, ep := uint32(1+src.next(3)), uint32(1+src.next(5))
			f, res := tb.Insert(orig, x, svc, ep, now)
			mf, mres := m.insert(orig, x, svc, ep, now)
			if res != mres {
				t.Fatalf("op %d: Insert(%v) = %v, want %v", ops, orig, res, mres)
			}
			if res == Inserted {
				mf.handle = f.Handle
				handles = append(handles, mf)
			}
			if res == Inserted || res == Exists {
				if f.Handle != mf.handle || f.Rewrite != mf.reply.Reverse() || f.Endpoint != mf.ep || f.ServicePort != mf.svc {
					t.Fatalf("op %d: Insert(%v) flow = %+v, want handle %x rewrite %v ep %d", ops, orig, f, mf.handle, mf.reply.Reverse(), mf.ep)
				}
			}
		case op < 55: // lookup a known tuple or a random one
			k := randTuple(src)
			if len(handles) > 0 && src.next(2) == 0 {
				h := handles[src.next(len(handles))]
				k = h.orig
				if src.next(2) == 0 {
					k = h.reply
				}
			}
			f, ok := tb.Lookup(k, now)
			mf := m.find(k, now)
			if ok != (mf != nil) {
				t.Fatalf("op %d: Lookup(%v) ok = %v, want %v", ops, k, ok, mf != nil)
			}
			if ok {
				wantDir, wantRw := Original, mf.reply.Reverse()
				if k == mf.reply {
					wantDir, wantRw = Reply, mf.orig.Reverse()
				}
				if f.Handle != mf.handle || f.Dir != wantDir || f.Rewrite != wantRw || f.State != mf.state || f.Endpoint != mf.ep {
					t.Fatalf("op %d: Lookup(%v) = %+v, want handle %x dir %v rewrite %v state %v", ops, k, f, mf.handle, wantDir, wantRw, mf.state)
				}
			}
		case op < 80: // touch
			if len(handles) == 0 {
				continue
			}
			mf := handles[max(0, len(handles)-1-src.next(32))]
			d := Dir(src.next(2))
			flags := [...]uint8{TCPSyn, TCPSyn | TCPAck, TCPAck, TCPFin | TCPAck, TCPRst, 0}[src.next(6)]
			n := 40 + src.next(1400)
			live := m.flows[mf.id] == mf
			if got := tb.Touch(mf.handle, d, flags, n, now); got != live {
				t.Fatalf("op %d: Touch(%x) = %v, want %v", ops, mf.handle, got, live)
			}
			if live {
				m.touch(mf, d, flags, n, now)
			}
		case op < 85: // delete
			if len(handles) == 0 {
				continue
			}
			mf := handles[src.next(len(handles))]
			live := m.flows[mf.id] == mf
			if got := tb.Delete(mf.handle); got != live {
				t.Fatalf("op %d: Delete(%x) = %v, want %v", ops, mf.handle, got, live)
			}
			if live {
				m.remove(mf)
			}
		case op < 88: // delete by endpoint
			ep := uint32(1 + src.next(5))
			want := 0
			for _, f := range m.flows {
				if f.ep == ep {
					m.remove(f)
					want++
				}
			}
			if got := tb.DeleteByEndpoint(ep); got != want {
				t.Fatalf("op %d: DeleteByEndpoint(%d) = %d, want %d", ops, ep, got, want)
			}
		case op < 91: // UDP reconcile
			svc := uint32(1 + src.next(3))
			keepMask := src.next(32)
			keep := func(ep uint32) bool { return keepMask>>(ep-1)&1 == 1 }
			want := 0
			for _, f := range m.flows {
				if f.orig.Proto == nat.ProtoUDP && f.svc == svc && !keep(f.ep) {
					m.remove(f)
					want++
				}
			}
			if got := tb.DeleteUDPByServicePort(svc, keep); got != want {
				t.Fatalf("op %d: DeleteUDPByServicePort(%d) = %d, want %d", ops, svc, got, want)
			}
		case op < 97: // time passes
			now += int64(src.next(4)) * []int64{sec / 10, sec, 10 * sec, 200 * sec}[src.next(4)] / 4
		default: // full sweep
			want := 0
			for _, f := range m.flows {
				if m.expired(f, now) {
					m.remove(f)
					want++
				}
			}
			got := 0
			for range 2 {
				got += tb.Sweep(now, 2560)
			}
			if got != want {
				t.Fatalf("op %d: Sweep(all) = %d, want %d", ops, got, want)
			}
		}
		if ops%64 == 0 {
			checkAgainstModel(t, tb, m)
		}
	}
	checkAgainstModel(t, tb, m)
	if tl, ok := t.(*testing.T); ok && testing.Verbose() {
		tl.Logf("ops %d, stats %+v", ops, tb.Stats())
	}
	return ops
}

// checkAgainstModel compares Range and Stats with the model.
func checkAgainstModel(t testing.TB, tb *Table, m *model) {
	t.Helper()
	seen := 0
	tb.Range(func(e *Entry) bool {
		seen++
		mf := m.tuples[e.Orig]
		if mf == nil || mf.handle != e.Handle {
			t.Fatalf("Range: entry %v (handle %x) not in model", e.Orig, e.Handle)
		}
		if e.Reply != mf.reply || e.State != mf.state || e.LastSeen != mf.last || e.Packets != mf.pkts ||
			e.Bytes != mf.bytes || e.Replied != mf.replied || e.ServicePort != mf.svc || e.Endpoint != mf.ep {
			t.Fatalf("Range: entry = %+v, want %+v", *e, *mf)
		}
		return true
	})
	if seen != len(m.flows) {
		t.Fatalf("Range saw %d flows, want %d", seen, len(m.flows))
	}
	st := tb.Stats()
	if st.Entries != int64(len(m.flows)) {
		t.Fatalf("Stats().Entries = %d, want %d", st.Entries, len(m.flows))
	}
	var states [NumStates]int64
	var v6 int64
	for _, f := range m.flows {
		states[f.state]++
		if f.orig.Family == IPv6 {
			v6++
		}
	}
	if st.States != states || st.Entries6 != v6 {
		t.Fatalf("Stats().States = %v Entries6 %d, want %v %d", st.States, st.Entries6, states, v6)
	}
}

func TestModelRandom(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 5000
	}
	for seed := uint64(1); seed <= 8; seed++ {
		runModel(t, randSource{rand.New(rand.NewPCG(seed, seed*7))}, n)
	}
}

func FuzzModel(f *testing.F) {
	for seed := uint64(1); seed <= 4; seed++ {
		b := make([]byte, 512)
		r := rand.New(rand.NewPCG(seed, 0))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runModel(t, &byteSource{b: data}, 1<<20)
	})
}

// FuzzTupleInput feeds arbitrary bytes as tuples and handles: nothing may
// panic, whatever the input.
func FuzzTupleInput(f *testing.F) {
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 48 {
			return
		}
		tb := newTestTable(t, Config{MaxFlows: 64, MaxFlows6: 64, MaxFragments: 8})
		var k Tuple
		copy(k.Src[:], data[0:16])
		copy(k.Dst[:], data[16:32])
		k.SrcPort, k.DstPort = binary.LittleEndian.Uint16(data[32:]), binary.LittleEndian.Uint16(data[34:])
		k.Proto, k.Family = nat.Proto(data[36]), Family(data[37])
		var x Translation
		copy(x.DNATAddr[:], data[0:16])
		x.DNATPort = binary.LittleEndian.Uint16(data[38:])
		x.SNAT = data[40]&1 == 1
		h := Handle(binary.LittleEndian.Uint64(data[40:]))
		now := int64(binary.LittleEndian.Uint32(data[44:]))
		tb.Lookup(k, now)
		fl, res := tb.Insert(k, x, 1, 2, now)
		if res == Inserted {
			if _, ok := tb.Lookup(k, now); !ok {
				t.Fatalf("Lookup(%v) after Insert = miss", k)
			}
		}
		tb.Touch(h, Dir(data[36]), data[37], int(int32(now)), now)
		tb.Touch(fl.Handle, Dir(data[36]), data[37], -5, now)
		tb.Get(h)
		tb.Delete(h)
		fk := FragKey{Src: k.Src, Dst: k.Dst, ID: uint32(now), Proto: k.Proto, Family: k.Family}
		tb.RememberFragment(fk, fl, now)
		tb.LookupFragment(fk, now)
		tb.Sweep(now, int(data[45]))
	})
}
