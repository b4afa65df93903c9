package affinity

import (
	"net/netip"
	"time"
)

// Entry is one affinity entry as Range reports it.
type Entry struct {
	// ServicePort is the control plane's service port ID.
	ServicePort uint32
	// Client is the client address (IPv4 or IPv6, no zone).
	Client netip.Addr
	// Endpoint is the pinned endpoint ID; the caller decides whether it
	// is still usable.
	Endpoint uint32
	// LastPin is when the client last opened a connection that was
	// pinned (nanoseconds of the caller's monotonic clock).
	LastPin int64
	// TimeoutSeconds is the service port's timeout at the last Pin.
	TimeoutSeconds uint32
}

// Expires returns when the entry expires under its recorded timeout.
func (e Entry) Expires() int64 {
	return e.LastPin + int64(e.TimeoutSeconds)*1e9
}

// Remaining returns how long the entry still lasts at now under its
// recorded timeout; zero or negative means expired.
func (e Entry) Remaining(now int64) time.Duration {
	return time.Duration(e.Expires() - now)
}

// Range calls fn for each entry that has not expired at now under its
// recorded timeout, until fn returns false. Entries are visited in slot
// order, which is unrelated to time or address. Range takes no lock: each
// entry is read consistently, but the set is not a snapshot (entries
// pinned or removed during the walk may or may not be seen). It is meant
// for inspection (`xdpgate inspect affinity`), not for the packet path.
func (t *Table) Range(now int64, fn func(Entry) bool) {
	for si := range t.shards {
		sh := &t.shards[si]
		for i := range sh.slots {
			e, ok := sh.read(&sh.slots[i])
			if !ok || e.Remaining(now) <= 0 {
				continue
			}
			if !fn(e) {
				return
			}
		}
	}
}

// read returns a consistent copy of the slot if it holds a live entry.
func (sh *shard) read(s *slot) (Entry, bool) {
	for {
		c := s.ctl.Load()
		if ctlState(c) != stLive {
			return Entry{}, false
		}
		a0, a1, v, seen := s.a0.Load(), s.a1.Load(), s.val.Load(), s.seen.Load()
		if s.ctl.Load() != c {
			continue
		}
		k := key{a0: a0, a1: a1, svc: ctlSvc(c), is4: valIsV4(v)}
		return Entry{
			ServicePort:    k.svc,
			Client:         k.addr(),
			Endpoint:       valEP(v),
			LastPin:        seen,
			TimeoutSeconds: valTimeout(v),
		}, true
	}
}

// Stats are the table's counters, summed over shards. Each counter is
// read atomically but the set is not a snapshot.
type Stats struct {
	// Entries is the number of live entries, including expired ones not
	// yet removed (by Lookup or Sweep) or overwritten by Pin.
	Entries uint64
	// Capacity is Config.Capacity, Slots the number of slots and Bytes
	// the memory they occupy.
	Capacity uint64
	Slots    uint64
	Bytes    uint64
	// Hits and Misses count Lookups that found a live entry or not
	// (expired entries are misses). A hit is counted before the caller's
	// eligibility check: hits whose endpoint turned out unusable show up
	// as Repins when the caller pins its new choice.
	Hits   uint64
	Misses uint64
	// Inserts counts Pins that started a new affinity (PinInserted and
	// PinEvicted); Refreshes Pins that restarted a live entry's timer;
	// Repins Pins that moved a live entry to another endpoint.
	Inserts   uint64
	Refreshes uint64
	Repins    uint64
	// Expiries counts expired entries removed by Lookup or Sweep or
	// overwritten by Pin; Evictions live entries replaced because a probe window was
	// full; Deletes entries removed by DeleteServicePort(s) and
	// DeleteEndpoint.
	Expiries  uint64
	Evictions uint64
	Deletes   uint64
}

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	st := Stats{Capacity: uint64(t.cfg.Capacity)}
	for i := range t.shards {
		sh := &t.shards[i]
		st.Entries += uint64(max(sh.entries.Load(), 0))
		st.Slots += sh.n
		st.Hits += sh.hits.Load()
		st.Misses += sh.misses.Load()
		st.Inserts += sh.inserts.Load()
		st.Refreshes += sh.refreshes.Load()
		st.Repins += sh.repins.Load()
		st.Expiries += sh.expiries.Load()
		st.Evictions += sh.evictions.Load()
		st.Deletes += sh.deletes.Load()
	}
	st.Bytes = st.Slots * slotBytes
	return st
}
