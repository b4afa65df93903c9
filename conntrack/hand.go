package conntrack

// The eviction hand: how Insert frees a record when none is free.
//
// Before, Insert sampled the flows referenced by six index buckets (the two
// windows of both new tuples and two hash-chosen ones, about 24 flows at
// full load) and evicted the least recently seen unassured one. Each of
// those flows is a random record: about 24 cache misses, and the branches
// between them kept the CPU from overlapping many, so a new flow into a full
// table of 1M flows cost about 2.7 µs in the pipeline. The hand reads
// records in their array order instead, handScan neighbours at a time (a
// few consecutive cache lines, loaded together before any decision), and
// hands the victim's record to the inserter, whose writes then hit lines
// already in cache.
//
// The choice among the records at the hand, in order: the first expired
// flow; else the first evictable flow idle for at least ReclaimAge (a busy
// one-way flow or a handshake under way is passed over); else the least
// recently seen evictable flow. Evictable: unassured, or an assured TCP
// flow already closing (protected). An assured open flow is never evicted:
// when handScans scans in a row found only those (or flows in flux) the
// insert is refused. The hand then moves just past the victim.
//
// Fairness: the insert that frees a record fills it at once, just behind
// the hand, so a new flow is examined again only after a whole turn of the
// hand (capacity inserts, fewer the assured flows skipped): under a flood
// the table turns over first in, first out, which is what LRU does for
// flows that are not touched again. The hand is not aimed by packets, so an
// outsider can no more steer it at chosen flows than the keyed hash
// buckets, and it still never takes an assured flow.

// handScan is how many consecutive records of one family the hand examines
// at a time; handScans bounds the scans one insert makes before it gives up.
const (
	handScan  = 16
	handScans = 8
)

// evictHand frees one record of the family for Insert. With ok the caller
// owns record idx (detached: even generation, no index entries); without
// it, assuredOnly reports whether every live flow the hand saw was assured.
func (t *Table) evictHand(fam6 bool, now int64) (idx uint32, ok, assuredOnly bool) {
	n := uint64(len(t.r4))
	hand := &t.hand[0]
	if fam6 {
		n, hand = uint64(len(t.r6)), &t.hand[1]
	}
	if n == 0 {
		return 0, false, false
	}
	m := min(handScan, n)
	var (
		cs      [handScan]uint64
		ls      [handScan]int64
		assured bool
	)
	for range handScans {
		h := hand.Load()
		start := h % n
		// Load the records first, then decide: the loads are independent,
		// so their misses overlap.
		for j := range m {
			i := start + j
			if i >= n {
				i -= n
			}
			r := t.hdr(fam6, uint32(i))
			cs[j], ls[j] = r.ctl.Load(), r.last.Load()
		}
		best, why := -1, reasonEvicted
		for j := range int(m) {
			c := cs[j]
			if !ctlLive(c) {
				continue // free, being built or being removed
			}
			if t.expired(c, ls[j], now) {
				best, why = j, reasonExpired
				break
			}
			if protected(c) {
				assured = true
				continue
			}
			if now-ls[j] >= ReclaimAge {
				best = j
				break
			}
			if best < 0 || ls[j] < ls[best] {
				best = j
			}
		}
		if best < 0 {
			hand.CompareAndSwap(h, h+m)
			continue
		}
		// Best effort: if another inserter moved the hand, its position
		// stands.
		hand.CompareAndSwap(h, h+uint64(best)+1)
		i := start + uint64(best)
		if i >= n {
			i -= n
		}
		if t.detach(fam6, uint32(i), cs[best], why) {
			return uint32(i), true, false
		}
		// Another goroutine removed or changed it: look again.
	}
	return 0, false, assured
}
