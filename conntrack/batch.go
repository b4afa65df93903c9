package conntrack

// batchChunk is how many lookups LookupBatch keeps in flight.
const batchChunk = 32

// LookupBatch looks up every keys[i] like Lookup, storing the result in
// out[i] and found[i], and returns the number of hits. Only the first
// min(len(keys), len(out), len(found)) keys are looked up.
//
// It does the same work as len(keys) Lookups but in phases over chunks of
// 32 keys: hash all and load their first index bucket, then load the record
// each first bucket points to, then validate. The loads of one phase are
// independent of each other, so the CPU overlaps their cache misses
// instead of paying them one after another; at millions of flows this is
// several times faster per packet than single lookups. Results are as
// linearizable as Lookup's: each key is validated individually at the end.
func (t *Table) LookupBatch(keys []Tuple, now int64, out []Flow, found []bool) int {
	n := min(len(keys), len(out), len(found))
	keys, out, found = keys[:n], out[:n], found[:n]
	hits := 0
	var hs [batchChunk]uint64
	var es [batchChunk]uint64
	for base := 0; base < len(keys); base += batchChunk {
		ks := keys[base:min(base+batchChunk, len(keys))]
		// Phase 1: hash, touch the first bucket.
		for i := range ks {
			h := ks[i].hash(&t.key)
			hs[i] = h
			b1 := uint64(uint32(h)) * t.nb >> 32
			_ = t.header(b1).Load() // atomic loads are never elided
		}
		// Phase 2: find the candidate entry in the first bucket, touch its
		// record.
		for i := range ks {
			h := hs[i]
			want := entryKey(h, ks[i].Family == IPv6)
			es[i] = 0
			if ks[i].Family != IPv4 && ks[i].Family != IPv6 {
				continue
			}
			b1 := uint64(uint32(h)) * t.nb >> 32
			w := t.bucket(b1)
			for j := range w {
				if e := w[j].Load(); e&keyMask == want {
					es[i] = e
					if e&fam6Bit != 0 {
						if idx := e & idxMask; idx < uint64(len(t.r6)) {
							_ = t.r6[idx].ctl.Load()
						}
					} else {
						_ = t.r4[e&idxMask].ctl.Load()
					}
					break
				}
			}
		}
		// Phase 3: validate; fall back to a full lookup (second bucket,
		// tag collision, concurrent change).
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
			}
			if !ok {
				*f, ok = t.Lookup(*k, now)
			}
			found[base+i] = ok
			if ok {
				hits++
			}
		}
	}
	return hits
}
