package maglev

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/xdpgate/xdpgate/internal/testaddr"
)

// refHashSession is HashSession's layout written out with append.
func refHashSession(a netip.Addr, epoch uint64) uint64 {
	var b []byte
	b = binary.LittleEndian.AppendUint64(b, seedSession)
	a16 := a.As16()
	b = append(b, a16[:]...)
	b = append(b, refFamily(a))
	b = binary.LittleEndian.AppendUint64(b, epoch)
	d := xxhash.New()
	d.Write(b)
	return d.Sum64()
}

// refRendezvous scores every backend and sorts: the obviously correct
// highest-random-weight choice.
func refRendezvous(ids []uint64, hash uint64) int {
	if len(ids) == 0 {
		return -1
	}
	order := make([]int, len(ids))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		sa, sb := mix64(hash^ids[a]), mix64(hash^ids[b])
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
	return order[0]
}

func TestSessionReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		a, e := randAddr(r), r.Uint64()
		if got, want := HashSession(a, e), refHashSession(a, e); got != want {
			t.Fatalf("HashSession(%v, %d) = %#x, want %#x", a, e, got, want)
		}
		ids := make([]uint64, r.IntN(40))
		for i := range ids {
			ids[i] = r.Uint64()
		}
		h := r.Uint64()
		if got, want := Rendezvous(ids, h), refRendezvous(ids, h); got != want {
			t.Fatalf("Rendezvous(%d ids, %#x) = %d, want %d", len(ids), h, got, want)
		}
	}
}

func FuzzRendezvous(f *testing.F) {
	f.Add(uint64(1), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Fuzz(func(t *testing.T, h uint64, raw []byte) {
		var ids []uint64
		seen := map[uint64]bool{}
		for len(raw) >= 8 {
			id := binary.LittleEndian.Uint64(raw)
			raw = raw[8:]
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		if got, want := Rendezvous(ids, h), refRendezvous(ids, h); got != want {
			t.Fatalf("Rendezvous(%v, %#x) = %d, want %d", ids, h, got, want)
		}
	})
}

// TestSessionGolden pins the session hash and one epoch: gateways running
// different xdpgate versions must agree.
func TestSessionGolden(t *testing.T) {
	a, b := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("2001:2::1")
	for _, tc := range []struct {
		name      string
		got, want uint64
	}{
		{"HashSession(198.18.0.1, 0)", HashSession(a, 0), 0x2f557e479712be2c},
		{"HashSession(2001:2::1, 123456)", HashSession(b, 123456), 0x2f32fed2dc229903},
		{"Epoch(198.18.0.1, 1.8e18 ns, 10800 s)", Epoch(a, 1.8e18, 10800), 0x28b0b},
		{"Rendezvous(1..5, 42)", uint64(Rendezvous([]uint64{1, 2, 3, 4, 5}, 42)), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
}

// TestEpoch: times a period apart are always in different epochs, times
// within one epoch share it, epochs advance by one per period, and clients
// change epoch at different instants.
func TestEpoch(t *testing.T) {
	const sec = int64(1e9)
	r := rand.New(rand.NewPCG(7, 8))
	for range 10000 {
		c := testaddr.Mixed(r.Uint32())
		timeout := uint32(1 + r.IntN(86400))
		period := int64(timeout) * sec
		t0 := 1_700_000_000*sec + r.Int64N(1e9*sec)
		e0 := Epoch(c, t0, timeout)
		for _, d := range []int64{period, period + 1, period + r.Int64N(5*period)} {
			if e := Epoch(c, t0+d, timeout); e <= e0 {
				t.Fatalf("Epoch(%v, t0+%d, %d) = %d, want > Epoch(t0) = %d", c, d, timeout, e, e0)
			}
		}
		if e := Epoch(c, t0+r.Int64N(period), timeout); e != e0 && e != e0+1 {
			t.Fatalf("Epoch(%v) within one period went from %d to %d", c, e0, e)
		}
		if e := Epoch(c, t0+period, timeout); e != e0+1 {
			t.Fatalf("Epoch(%v, t0+period) = %d, want %d", c, e, e0+1)
		}
	}
	if got := Epoch(c1, 5*sec, 0); got != 0 {
		t.Errorf("Epoch(timeout 0) = %d, want 0", got)
	}
	if got, want := Epoch(c1, -5*sec, 10), Epoch(c1, 0, 10); got != want {
		t.Errorf("Epoch(before 1970) = %d, want %d", got, want)
	}
	// Phases spread: of 1000 clients, about half change epoch in the
	// first half of any period.
	changed := 0
	base := 1_700_000_000 * sec
	for i := range uint32(1000) {
		c := testaddr.Mixed(i)
		if Epoch(c, base, 10) != Epoch(c, base+5*sec, 10) {
			changed++
		}
	}
	if changed < 400 || changed > 600 {
		t.Errorf("%d of 1000 clients changed epoch within half a period, want about 500", changed)
	}
}

// TestRendezvousScaling is the bound for unpinned ClientIP clients:
// scaling a service from N to N+1 endpoints, for every N in 1..200, moves
// at most 1.5/(N+1) of a fixed set of clients, and every client that moves
// goes to the new endpoint; removing an endpoint moves only its own
// clients. The hashes are fixed, so this is deterministic. With 40,000
// clients the expected share 1/(N+1) is at least 199 clients, so 1.5 times
// it is at least 7 standard deviations away (binomial).
func TestRendezvousScaling(t *testing.T) {
	const clients = 40000
	n := 200
	if testing.Short() {
		n = 60
	}
	ids := make([]uint64, n+1)
	for i := range ids {
		ids[i] = BackendID(netip.AddrPortFrom(testaddr.V4(uint32(0x10000+i)), 8080))
	}
	hashes := make([]uint64, clients)
	for i := range hashes {
		hashes[i] = HashSession(testaddr.Mixed(uint32(i)), 55555)
	}
	before := make([]int, clients)
	worst, worstN := 0.0, 0
	for k := 1; k <= n; k++ { // from k to k+1 endpoints
		moved := 0
		for i, h := range hashes {
			if k == 1 {
				before[i] = Rendezvous(ids[:1], h)
			}
			after := Rendezvous(ids[:k+1], h)
			if after != before[i] {
				moved++
				if after != k {
					t.Fatalf("%d -> %d endpoints: client %d moved from %d to %d, not to the new endpoint", k, k+1, i, before[i], after)
				}
			}
			before[i] = after
		}
		frac := float64(moved) / clients
		if ratio := frac * float64(k+1); ratio > worst {
			worst, worstN = ratio, k+1
		}
		if bound := 1.5 / float64(k+1); frac > bound {
			t.Errorf("%d -> %d endpoints moved %.4f of clients, want <= 1.5/(N+1) = %.4f", k, k+1, frac, bound)
		}
	}
	t.Logf("worst N -> N+1 over 1..%d: moved %.3f/(N+1) of clients (at N+1 = %d)", n, worst, worstN)

	// Removal: only the removed endpoint's clients move.
	for _, k := range []int{0, n / 2, n} {
		less := slices.Delete(slices.Clone(ids), k, k+1)
		for i, h := range hashes {
			got := less[Rendezvous(less, h)]
			if was := ids[before[i]]; was != ids[k] && got != was {
				t.Fatalf("removing endpoint %d moved client %d from %#x to %#x", k, i, was, got)
			}
		}
	}
}

// TestRendezvousBalance: with 3 endpoints and 30,000 sessions each endpoint
// gets a third (within 5 %), and re-drawing in the next epoch moves about
// two thirds of the clients, as kube-proxy's random choice does.
func TestRendezvousBalance(t *testing.T) {
	for _, n := range []int{3, 10} {
		t.Run(fmt.Sprintf("%d endpoints", n), func(t *testing.T) {
			ids := make([]uint64, n)
			for i := range ids {
				ids[i] = BackendID(netip.AddrPortFrom(testaddr.V4(uint32(i)), 80))
			}
			const clients = 30000
			count := make([]int, n)
			moved := 0
			for i := range uint32(clients) {
				c := testaddr.Mixed(i)
				a := Rendezvous(ids, HashSession(c, 1000))
				count[a]++
				if Rendezvous(ids, HashSession(c, 1001)) != a {
					moved++
				}
			}
			for i, c := range count {
				if want := clients / n; c < want*95/100 || c > want*105/100 {
					t.Errorf("endpoint %d has %d of %d clients, want %d +- 5%%", i, c, clients, want)
				}
			}
			want := float64(n-1) / float64(n)
			if got := float64(moved) / clients; got < want-0.02 || got > want+0.02 {
				t.Errorf("next epoch moved %.3f of clients, want %.3f +- 0.02", got, want)
			}
		})
	}
}

// TestRendezvousBounded: the answer has room under the bound, every
// backend the hash prefers to it is full, some backend always has room
// (c >= 1), and with room everywhere it is Rendezvous's answer.
func TestRendezvousBounded(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		n := 1 + r.IntN(12)
		ids := make([]uint64, n)
		loads := make([]uint64, n)
		for i := range ids {
			ids[i] = r.Uint64()
			loads[i] = uint64(r.IntN(40))
		}
		pct := uint32(100 + r.IntN(150))
		h := r.Uint64()
		got := RendezvousBounded(ids, h, pct, func(i int) uint64 { return loads[i] })
		var m uint64
		for _, l := range loads {
			m += l
		}
		limit := BoundedLimit(m, n, pct)
		if got < 0 || loads[got] >= limit {
			t.Fatalf("ids %v loads %v pct %d: got %d, which has no room under %d", ids, loads, pct, got, limit)
		}
		for i := range ids {
			if mix64(h^ids[i]) > mix64(h^ids[got]) && loads[i] < limit {
				t.Fatalf("loads %v pct %d: got %d, but %d scores higher and has room", loads, pct, got, i)
			}
		}
		if RendezvousBounded(ids, h, pct, func(int) uint64 { return 0 }) != Rendezvous(ids, h) {
			t.Fatalf("with no load the answer differs from Rendezvous")
		}
	}
	if RendezvousBounded(nil, 1, 125, func(int) uint64 { return 0 }) != -1 {
		t.Errorf("RendezvousBounded(nil) != -1")
	}
}
