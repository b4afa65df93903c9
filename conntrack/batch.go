package conntrack

import "sync/atomic"

// batchChunk is how many lookups LookupBatch keeps in flight.
const batchChunk = 32

// LookupBatch looks up every keys[i] like Lookup, storing the result in
// out[i] and found[i], and returns the number of hits. Only the first
// min(len(keys), len(out), len(found)) keys are looked up.
//
// It does the same work as len(keys) Lookups but in phases over chunks of
// 32 keys: hash all and load their first index bucket; then find each
// key's candidate entry there, and load the candidates' records or, for a
// key absent from a first bucket that has overflowed, its second bucket;
// then load the records the second buckets point to; then validate. The loads
// of one phase are independent of each other, so the CPU overlaps their
// cache misses instead of paying them one after another; at millions of
// flows this is several times faster per packet than single lookups, and
// a miss (a new flow) costs one pass over its window, not a second Lookup.
// Results are as linearizable as Lookup's: each key is validated
// individually at the end.
func (t *Table) LookupBatch(keys []Tuple, now int64, out []Flow, found []bool) int {
	n := min(len(keys), len(out), len(found))
	keys, out, found = keys[:n], out[:n], found[:n]
	hits := 0
	var hs [batchChunk]uint64
	var es [batchChunk]uint64
	var second [batchChunk]bool // look in the second bucket too
	for base := 0; base < len(keys); base += batchChunk {
		ks := keys[base:min(base+batchChunk, len(keys))]
		// Phase 1: hash all, then touch every first bucket in a loop of
		// a few instructions per key, so that the reorder buffer holds
		// many of these loads (misses) at once.
		for i := range ks {
			hs[i] = ks[i].hash(&t.key)
		}
		for i := range ks {
			_ = t.header(t.bucketOf(hs[i])).Load() // atomic loads are never elided
		}
		// Phase 2: find the candidate entry in the first bucket and touch
		// its record; without one, touch the second bucket if the first
		// has overflowed.
		for i := range ks {
			h := hs[i]
			es[i], second[i] = 0, false
			if ks[i].Family != IPv4 && ks[i].Family != IPv6 {
				continue
			}
			b1 := t.bucketOf(h)
			// The overflow count is read before the slots, as in Lookup,
			// so a flow live at this load is in the slots read next.
			overflow := t.header(b1).Load() >= hdrOverflow
			es[i] = t.candidate(t.bucket(b1), entryKey(h, ks[i].Family == IPv6))
			second[i] = es[i] == 0 && overflow
		}
		// Touch the records of the candidates, and the second buckets of
		// keys without one, again in a tight loop.
		for i := range ks {
			if e := es[i]; e != 0 {
				t.touchRecord(e)
			} else if second[i] {
				_, b2 := t.buckets(hs[i])
				_ = t.header(b2).Load()
			}
		}
		// Phase 3: the candidates of keys that needed the second bucket.
		for i := range ks {
			if second[i] {
				_, b2 := t.buckets(hs[i])
				if es[i] = t.candidate(t.bucket(b2), entryKey(hs[i], ks[i].Family == IPv6)); es[i] != 0 {
					t.touchRecord(es[i])
				}
			}
		}
		// Phase 4: validate; fall back to a full window scan after a tag
		// collision or a concurrent change.
		for i := range ks {
			k := &ks[i]
			f := &out[base+i]
			ok := false
			if e := es[i]; e != 0 {
				if e&fam6Bit != 0 {
					ok = t.resolve6(e, k, now, f)
				} else {
					ok = t.resolve4(e, k, now, f)
				}
				if !ok {
					*f, ok = t.lookupHashed(k, hs[i], now)
				}
			}
			found[base+i] = ok
			if ok {
				hits++
			}
		}
	}
	return hits
}

// candidate returns the first entry of w whose tag and family are want (0
// if none).
func (t *Table) candidate(w []atomic.Uint64, want uint64) uint64 {
	for j := range w {
		if e := w[j].Load(); e&keyMask == want {
			return e
		}
	}
	return 0
}

// touchRecord loads the record entry e names, so that its cache misses
// start now: its first word, which the lookup reads, and its last, on the
// line the packet's Touch will write when the record spans two.
func (t *Table) touchRecord(e uint64) {
	if e&fam6Bit != 0 {
		if idx := e & idxMask; idx < uint64(len(t.r6)) {
			r := &t.r6[idx]
			_, _ = r.ctl.Load(), r.nxt[Reply].Load()
		}
		return
	}
	r := &t.r4[e&idxMask]
	_, _ = r.ctl.Load(), r.nxt[Reply].Load()
}
