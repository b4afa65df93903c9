package pktgen

import (
	"math/rand/v2"
	"testing"
)

// TestPermBijection checks perm against the obvious reference: a bitmap of
// values seen over the whole domain.
func TestPermBijection(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sizes := []uint64{1, 2, 3, 4, 5, 7, 64, 65, 100, 1000, 4097, 65536, 100000, 1<<20 + 1}
	for range 20 {
		sizes = append(sizes, 1+r.Uint64N(50000))
	}
	for _, n := range sizes {
		for _, seed := range []uint64{0, 1, r.Uint64()} {
			p := newPerm(n, seed)
			seen := make([]bool, n)
			for x := range n {
				y := p.at(x)
				if y >= n {
					t.Fatalf("perm(n=%d, seed=%d).at(%d) = %d, out of range", n, seed, x, y)
				}
				if seen[y] {
					t.Fatalf("perm(n=%d, seed=%d).at(%d) = %d, repeated", n, seed, x, y)
				}
				seen[y] = true
			}
		}
	}
}

// TestPermScatters: consecutive stream positions land far apart, which is
// what "consecutive frames hit different flows" is for (different hash
// buckets, different clients). A weak statistical check: the permutation is
// not the identity and not a constant stride.
func TestPermScatters(t *testing.T) {
	const n = 100000
	p := newPerm(n, 42)
	fixed, strides := 0, map[uint64]int{}
	for x := uint64(0); x < n; x++ {
		y := p.at(x)
		if y == x {
			fixed++
		}
		if x > 0 {
			strides[(y+n-p.at(x-1))%n]++
		}
	}
	if fixed > 20 {
		t.Errorf("%d fixed points in %d, want about 1", fixed, n)
	}
	if len(strides) < n/4 {
		t.Errorf("%d distinct strides between consecutive values, want many", len(strides))
	}
	if q := newPerm(n, 43); q.at(0) == p.at(0) && q.at(1) == p.at(1) && q.at(2) == p.at(2) {
		t.Errorf("seeds 42 and 43 give the same start")
	}
}

// TestCursor compares the incremental cursor with s mod n, s / n.
func TestCursor(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 10, 1000} {
		for _, q := range []uint64{1, 2, 3, 7} {
			for k := uint64(0); k < q; k++ {
				c := newCursor(k, q, n)
				for s := k; s < k+50*q; s += q {
					if c.pos != s%n || c.round != s/n {
						t.Fatalf("n=%d q=%d k=%d: cursor at frame %d = (%d, %d), want (%d, %d)",
							n, q, k, s, c.pos, c.round, s%n, s/n)
					}
					c.advance(n)
				}
			}
		}
	}
}
