package affinity

import (
	"net/netip"

	"github.com/xdpgate/xdpgate/internal/owned"
)

// Sweep examines up to budget slots, continuing where the previous call
// stopped and wrapping around the table, and removes entries that have
// expired at now under the timeout in force at their last Pin. It returns
// how many it removed (counted as expiries). Call it periodically from one
// housekeeping goroutine; to visit every slot once a minute with a 1 s
// tick, use a budget of Stats().Slots/60 (250,000 slots for a 10M-client
// table; a full sweep of its 15M slots took 1 s on the loaded 2-core test
// VM). Expired entries are invisible to Lookup anyway; sweeping only frees
// their slots and keeps Stats().Entries meaningful.
//
// Sweep holds one shard lock for at most sweepChunk slots at a time, so
// writers wait briefly and readers not at all. Concurrent Sweep calls are
// serialised.
func (t *Table) Sweep(now int64, budget int) (removed int) {
	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	for budget > 0 {
		sh := &t.shards[t.sweepShard]
		end := min(t.sweepSlot+uint64(min(budget, sweepChunk)), sh.n)
		sh.mu.Lock()
		for i := t.sweepSlot; i < end; i++ {
			c := sh.slots[i].ctl.Load()
			switch ctlState(c) {
			case stLive:
				s := &sh.slots[i]
				if v := s.val.Load(); expired(s.seen.Load(), now, valTimeout(v)) {
					sh.remove(i)
					sh.expired(ctlSvc(c), valEP(v), 0)
					removed++
				}
			case stTomb:
				sh.reclaim(i)
			}
		}
		sh.mu.Unlock()
		budget -= int(end - t.sweepSlot)
		t.sweepSlot = end
		if end == sh.n {
			t.sweepSlot = 0
			t.sweepShard = (t.sweepShard + 1) % len(t.shards)
		}
	}
	return removed
}

// DeleteServicePort removes every entry of service port svcPort and
// returns how many it removed. Call it when a service port stops using
// ClientIP affinity or goes away, so that switching affinity back on
// starts from empty state as in kube-proxy. It scans the whole table, a
// control-plane operation (0.3 s for 10 million clients on the loaded
// 2-core test VM); DeleteServicePorts removes several in one scan. Readers
// never wait for it; a writer waits at most for one chunk of 256 slots.
func (t *Table) DeleteServicePort(svcPort uint32) int {
	return t.deleteWhere(func(svc, _ uint32) bool { return svc == svcPort })
}

// DeleteServicePorts removes every entry of the given service ports in one
// scan of the table and returns how many it removed.
func (t *Table) DeleteServicePorts(svcPorts []uint32) int {
	switch len(svcPorts) {
	case 0:
		return 0
	case 1:
		return t.DeleteServicePort(svcPorts[0])
	}
	set := make(map[uint32]struct{}, len(svcPorts))
	for _, id := range svcPorts {
		set[id] = struct{}{}
	}
	return t.deleteWhere(func(svc, _ uint32) bool {
		_, ok := set[svc]
		return ok
	})
}

// DeleteEndpoint removes every entry that names endpoint ep and returns
// how many it removed. It is optional: endpoint IDs are never reused, so
// entries naming a departed endpoint never validate again and are
// replaced on the client's next connection or swept when they expire.
// It frees their slots early at the cost of a full scan.
func (t *Table) DeleteEndpoint(ep uint32) int {
	return t.deleteWhere(func(_, e uint32) bool { return e == ep })
}

// deleteWhere removes every live entry for which match(svcPort, ep) is
// true, taking each shard lock for at most sweepChunk slots at a time.
func (t *Table) deleteWhere(match func(svcPort, ep uint32) bool) int {
	removed := 0
	for si := range t.shards {
		sh := &t.shards[si]
		for start := uint64(0); start < sh.n; start += sweepChunk {
			end := min(start+sweepChunk, sh.n)
			sh.mu.Lock()
			for i := start; i < end; i++ {
				s := &sh.slots[i]
				c := s.ctl.Load()
				if ep := valEP(s.val.Load()); ctlState(c) == stLive && match(ctlSvc(c), ep) {
					sh.remove(i)
					owned.Add64(&sh.deletes, 1)
					sh.changed(ctlSvc(c), ep, 0, CauseDeleted)
					removed++
				}
			}
			sh.mu.Unlock()
		}
	}
	return removed
}

// Unpin removes the entry of client on service port svcPort if it still
// names endpoint ep, and reports whether it did (counted as a delete): the
// client's next connection chooses afresh. Pipeline's rebalance-on-scale
// uses it to expire chosen pins early. It takes the shard lock.
func (t *Table) Unpin(svcPort uint32, client netip.Addr, ep uint32) bool {
	if !client.IsValid() {
		return false
	}
	k := makeKey(svcPort, client)
	sh, i := t.locate(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for range t.window {
		s := &sh.slots[i]
		c := s.ctl.Load()
		switch ctlState(c) {
		case stEmpty:
			return false
		case stLive:
			v := s.val.Load()
			if ctlSvc(c) == k.svc && s.a0.Load() == k.a0 && s.a1.Load() == k.a1 && valIsV4(v) == k.is4 {
				if valEP(v) != ep {
					return false
				}
				sh.remove(i)
				owned.Add64(&sh.deletes, 1)
				sh.changed(k.svc, ep, 0, CauseDeleted)
				return true
			}
		}
		i = sh.next(i)
	}
	return false
}
