package pktgen

import "math/bits"

// perm is a seeded pseudo-random permutation of [0, n), computed on the fly
// so that millions of flows need no table: a bijective mixer on the
// smallest power-of-two domain [0, 2^b) >= n, restricted to [0, n) by cycle
// walking (apply the mixer again until the value falls inside; because the
// mixer is a bijection, the walk from a value inside returns inside, and
// the restriction is a bijection too). Since 2^b < 2n, a walk takes fewer
// than two steps on average.
//
// The mixer is the splitmix64 finaliser cut to b bits. Each step is a
// bijection of b-bit values: adding a constant and multiplying by an odd
// constant modulo 2^b, and x ^= x>>s for s >= 1 (the top s bits are kept
// and determine what was xored into the rest).
type perm struct {
	n, mask uint64
	add     uint64
	m1, m2  uint64 // odd
	s1, s2  uint
}

func newPerm(n, seed uint64) perm {
	b := uint(0)
	if n > 1 {
		b = uint(bits.Len64(n - 1))
	}
	p := perm{n: n, mask: 1<<b - 1}
	st := seed
	p.add = splitmix64(&st) & p.mask
	p.m1 = splitmix64(&st) | 1
	p.m2 = splitmix64(&st) | 1
	p.s1 = max(1, (b+1)/2)
	p.s2 = max(1, b/3+1)
	return p
}

func (p *perm) mix(x uint64) uint64 {
	x = (x + p.add) & p.mask
	x = (x * p.m1) & p.mask
	x ^= x >> p.s1
	x = (x * p.m2) & p.mask
	x ^= x >> p.s2
	return x
}

// at returns the permutation's value at x, for x < n.
func (p *perm) at(x uint64) uint64 {
	for {
		x = p.mix(x)
		if x < p.n {
			return x
		}
	}
}

// splitmix64 is Steele, Lea and Flood's SplitMix64 step (as in
// java.util.SplittableRandom), used to derive constants from the seed.
func splitmix64(state *uint64) uint64 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
