package conntrack

import "sync/atomic"

// statStripe is one stripe of the counters; a goroutine updates the stripe
// of the record (or hash) it works on, so pollers rarely share a line.
type statStripe struct {
	inserts, full, conflicts, invalid atomic.Uint64
	evictions, expiries, deletes      atomic.Uint64
	states                            [NumStates]atomic.Int64
	live6                             atomic.Int64
	fragRemembered, fragHits          atomic.Uint64
	fragMisses, fragEvictions         atomic.Uint64
	outOfWindow, refusedAssured       atomic.Uint64
	_                                 [64]byte
}

// Stats is a snapshot of the table's counters. Counters are cumulative
// since New; gauges (Entries, States, ...) are current values. The
// snapshot is not atomic across fields.
type Stats struct {
	// Entries is the number of live flows (IPv4 and IPv6); Entries4 and
	// Entries6 split it by family.
	Entries, Entries4, Entries6 int64
	// Inserts counts flows created.
	Inserts uint64
	// InsertFailures counts inserts that found neither a free record nor
	// a victim to evict, or no index slot (table full).
	InsertFailures uint64
	// Conflicts counts inserts refused because a tuple of the new flow is
	// already used by another flow (for example a SNAT port in use).
	Conflicts uint64
	// Invalid counts inserts refused because of malformed input.
	Invalid uint64
	// RefusedAssured counts inserts refused because every flow that could
	// have been evicted for them was assured (also in InsertFailures).
	RefusedAssured uint64
	// OutOfWindow counts TCP segments TouchTCP did not apply: they would
	// have changed a flow's state but their sequence numbers were not
	// within SeqWindow of the flow's tracking (spoofed RST, FIN or ACK).
	OutOfWindow uint64
	// Evictions counts live, unexpired flows removed to make room.
	Evictions uint64
	// Expiries counts flows removed because they timed out (sweeper,
	// lookups and eviction of expired flows).
	Expiries uint64
	// Deletes counts flows removed by Delete, DeleteByEndpoint and
	// DeleteUDPByServicePort.
	Deletes uint64
	// States counts live flows per State (index State).
	States [NumStates]int64
	// FragmentsRemembered counts first fragments whose decision was
	// stored; FragmentHits later fragments that found it; FragmentMisses
	// non-first fragments without a stored decision (the caller drops
	// them); FragmentEvictions unexpired fragment entries overwritten
	// because their window was full.
	FragmentsRemembered, FragmentHits, FragmentMisses, FragmentEvictions uint64
}

// Stats sums the striped counters. It does not block any other operation.
func (t *Table) Stats() Stats {
	var s Stats
	for i := range t.stats {
		st := &t.stats[i]
		s.Inserts += st.inserts.Load()
		s.InsertFailures += st.full.Load()
		s.Conflicts += st.conflicts.Load()
		s.Invalid += st.invalid.Load()
		s.Evictions += st.evictions.Load()
		s.RefusedAssured += st.refusedAssured.Load()
		s.OutOfWindow += st.outOfWindow.Load()
		s.Expiries += st.expiries.Load()
		s.Deletes += st.deletes.Load()
		s.Entries6 += st.live6.Load()
		for j := range st.states {
			s.States[j] += st.states[j].Load()
		}
		s.FragmentsRemembered += st.fragRemembered.Load()
		s.FragmentHits += st.fragHits.Load()
		s.FragmentMisses += st.fragMisses.Load()
		s.FragmentEvictions += st.fragEvictions.Load()
	}
	for _, n := range s.States {
		s.Entries += n
	}
	s.Entries4 = s.Entries - s.Entries6
	return s
}

func (t *Table) stripe(x uint32) *statStripe { return &t.stats[x%statStripes] }
