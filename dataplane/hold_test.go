package dataplane

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// fakeNeigh is a NeighbourTable backed by a map; lookups counts calls.
type fakeNeigh struct {
	macs    map[neighKey][6]byte
	lookups int
}

func (f *fakeNeigh) Neighbour(ifindex int, addr netip.Addr) ([6]byte, bool) {
	f.lookups++
	m, ok := f.macs[makeNeighKey(ifindex, addr)]
	return m, ok
}

func holdKey(ifindex int, a string) neighKey { return makeNeighKey(ifindex, netip.MustParseAddr(a)) }

// chunks returns the chunk of each frame, in order.
func chunksOf(fs []heldFrame) []uint64 {
	var out []uint64
	for _, f := range fs {
		out = append(out, f.chunk)
	}
	return out
}

func TestHoldTableBounds(t *testing.T) {
	a, b, c := holdKey(2, "198.18.3.1"), holdKey(2, "2001:2:0:3::1"), holdKey(3, "198.18.3.1")
	h := newHoldTable(5, 2, 100)
	for _, tc := range []struct {
		name string
		k    neighKey
		want bool
	}{
		{"a first", a, true},
		{"a second", a, true},
		{"a third: per-neighbour bound", a, false},
		{"b (IPv6) first", b, true},
		{"c: same address, other interface", c, true},
		{"c second", c, true},
		{"b second: queue bound", b, false},
	} {
		if got := h.add(tc.k, uint64(h.len())*2048, 256, 60, 0); got != tc.want {
			t.Errorf("%s: add = %v, want %v", tc.name, got, tc.want)
		}
	}
	if h.len() != 5 {
		t.Errorf("len = %d, want 5", h.len())
	}
	if d := newHoldTable(0, 2, 100); d.enabled() || d.add(a, 0, 256, 60, 0) {
		t.Errorf("a table of 0 frames is enabled or holds a frame, want neither")
	}
}

func TestHoldTableReleaseOrderAndExpiry(t *testing.T) {
	a, b, c := holdKey(2, "198.18.3.1"), holdKey(2, "198.18.3.2"), holdKey(2, "198.18.3.3")
	macA := [6]byte{2, 0, 0, 0, 0, 0xa}
	nb := &fakeNeigh{macs: map[neighKey][6]byte{}}
	h := newHoldTable(16, 8, 3000)
	// Arrival order: a0 b1 a2 c3 (at t=0), b4 a5 (at t=1000).
	for i, k := range []neighKey{a, b, a, c} {
		h.add(k, uint64(i), 256+i, 60+i, 0)
	}
	for i, k := range []neighKey{b, a} {
		h.add(k, uint64(4+i), 256, 60, 1000)
	}
	rel, exp := h.sweep(500, nb, nil, nil)
	if len(rel) != 0 || len(exp) != 0 || h.len() != 6 {
		t.Fatalf("sweep with nothing resolved = %v released, %v expired, %d held, want 0, 0, 6", rel, exp, h.len())
	}
	nb.macs[a] = macA
	rel, exp = h.sweep(2000, nb, nil, nil)
	if got, want := chunksOf(rel), []uint64{0, 2, 5}; !slices.Equal(got, want) || len(exp) != 0 {
		t.Fatalf("sweep after a resolved: released %v expired %v, want %v and none", got, chunksOf(exp), want)
	}
	for _, f := range rel {
		if f.mac != macA || f.key != a {
			t.Errorf("released frame %+v, want MAC %x for %v", f, macA, a)
		}
	}
	if rel[1].off != 258 || rel[1].len != 62 {
		t.Errorf("released frame 2 at %d+%d, want 258+62", rel[1].off, rel[1].len)
	}
	// At 3000 the frames of t=0 expire (b1, c3); b4 (deadline 4000) stays.
	rel, exp = h.sweep(3000, nb, rel[:0], nil)
	if got, want := chunksOf(exp), []uint64{1, 3}; !slices.Equal(got, want) || len(rel) != 0 {
		t.Fatalf("sweep at the deadline: expired %v released %v, want %v and none", got, chunksOf(rel), want)
	}
	if h.len() != 1 || h.held[0].chunk != 4 {
		t.Fatalf("held after expiry = %v, want chunk 4", chunksOf(h.held))
	}
	// Resolution wins over expiry when both apply.
	nb.macs[b] = macA
	rel, exp = h.sweep(9000, nb, nil, nil)
	if got := chunksOf(rel); !slices.Equal(got, []uint64{4}) || len(exp) != 0 || h.len() != 0 {
		t.Fatalf("sweep of a resolved, expired frame: released %v expired %v, want [4] and none", got, chunksOf(exp))
	}
	// A freed slot is usable again; flush empties the table.
	h.add(c, 7, 256, 60, 9000)
	if got := chunksOf(h.flush(nil)); !slices.Equal(got, []uint64{7}) || h.len() != 0 {
		t.Errorf("flush = %v (%d left), want [7] (0 left)", got, h.len())
	}
}

func TestHoldTableOneLookupPerRun(t *testing.T) {
	a, b := holdKey(2, "198.18.3.1"), holdKey(2, "198.18.3.2")
	nb := &fakeNeigh{macs: map[neighKey][6]byte{}}
	h := newHoldTable(16, 16, 3000)
	for i, k := range []neighKey{a, a, a, b, b, a} {
		h.add(k, uint64(i), 256, 60, 0)
	}
	h.sweep(1, nb, nil, nil)
	if nb.lookups != 3 {
		t.Errorf("lookups for runs a,a,a b,b a = %d, want 3", nb.lookups)
	}
}

// TestHoldTableRandom compares holdTable with a plain slice model on seeded
// random adds, resolutions and sweeps.
func TestHoldTableRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	keys := []neighKey{holdKey(2, "198.18.3.1"), holdKey(2, "198.18.3.2"), holdKey(3, "2001:2:0:3::1"), holdKey(3, "198.18.3.1")}
	const size, per, ttl = 12, 4, 50
	for round := 0; round < 200; round++ {
		h := newHoldTable(size, per, ttl)
		nb := &fakeNeigh{macs: map[neighKey][6]byte{}}
		var model []heldFrame
		now := int64(0)
		next := uint64(0)
		for step := 0; step < 100; step++ {
			now += int64(r.IntN(10))
			switch op := r.IntN(10); {
			case op < 6:
				k := keys[r.IntN(len(keys))]
				n := 0
				for _, f := range model {
					if f.key == k {
						n++
					}
				}
				want := len(model) < size && n < per
				if got := h.add(k, next, 256, 60, now); got != want {
					t.Fatalf("round %d step %d: add(%v) = %v, want %v", round, step, k, got, want)
				}
				if want {
					model = append(model, heldFrame{key: k, chunk: next, deadline: now + ttl})
				}
				next++
			case op < 8:
				k := keys[r.IntN(len(keys))]
				if _, ok := nb.macs[k]; ok {
					delete(nb.macs, k)
				} else {
					nb.macs[k] = [6]byte{2, byte(k.ifindex), k.addr[15]}
				}
			default:
				var wantRel, wantExp []uint64
				var kept []heldFrame
				for _, f := range model {
					if _, ok := nb.macs[f.key]; ok {
						wantRel = append(wantRel, f.chunk)
					} else if now >= f.deadline {
						wantExp = append(wantExp, f.chunk)
					} else {
						kept = append(kept, f)
					}
				}
				model = kept
				rel, exp := h.sweep(now, nb, nil, nil)
				if !slices.Equal(chunksOf(rel), wantRel) || !slices.Equal(chunksOf(exp), wantExp) {
					t.Fatalf("round %d step %d: sweep = %v released, %v expired, want %v, %v",
						round, step, chunksOf(rel), chunksOf(exp), wantRel, wantExp)
				}
				for _, f := range rel {
					if f.mac != nb.macs[f.key] {
						t.Fatalf("released %v with MAC %x, want %x", f.key, f.mac, nb.macs[f.key])
					}
				}
			}
			if !slices.Equal(chunksOf(h.held), chunksOf(model)) {
				t.Fatalf("round %d step %d: held %v, want %v", round, step, chunksOf(h.held), chunksOf(model))
			}
		}
	}
}

func TestNoAllocsHoldTable(t *testing.T) {
	a, b := holdKey(2, "198.18.3.1"), holdKey(2, "2001:2:0:3::1")
	nb := &fakeNeigh{macs: map[neighKey][6]byte{a: {2, 0, 0, 0, 0, 1}}}
	h := newHoldTable(32, 16, 10)
	rel, exp := make([]heldFrame, 0, 32), make([]heldFrame, 0, 32)
	now := int64(0)
	if n := testing.AllocsPerRun(1000, func() {
		for i := 0; i < 8; i++ {
			h.add(a, uint64(i), 256, 60, now)
			h.add(b, uint64(i), 256, 60, now)
		}
		now += 20
		rel, exp = h.sweep(now, nb, rel[:0], exp[:0])
	}); n != 0 {
		t.Errorf("holdTable add+sweep allocs = %v, want 0", n)
	}
}

func BenchmarkHoldTableSweep(b *testing.B) {
	nb := &fakeNeigh{macs: map[neighKey][6]byte{}}
	h := newHoldTable(256, 32, 1<<62)
	for i := 0; i < 256; i++ {
		h.add(holdKey(2, netip.AddrFrom4([4]byte{198, 18, 3, byte(i / 32)}).String()), uint64(i), 256, 60, 0)
	}
	rel, exp := make([]heldFrame, 0, 256), make([]heldFrame, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		rel, exp = h.sweep(1, nb, rel[:0], exp[:0])
	}
}
