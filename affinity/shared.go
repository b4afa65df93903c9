package affinity

import (
	"fmt"
	"unsafe"
)

// StateVersion is the format version of the slot array NewShared maps:
// change it with any change to slot or the meaning of its words.
const StateVersion = 1

// StateLayout returns what a table for cfg keeps in shared memory: the
// parameters a state file must match (slots, shards, probe window, slot
// size; together they decide where every key may live) and the number of
// bytes NewShared needs. cfg.Seed plays no part.
func StateLayout(cfg Config) (params []uint64, size int, err error) {
	cfg.Seed = 1 // not part of the layout; keeps withDefaults from drawing one
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, 0, fmt.Errorf("affinity state layout: %w", err)
	}
	ps := perShard(cfg)
	params = []uint64{ps, uint64(cfg.Shards), uint64(cfg.ProbeWindow), slotBytes}
	return params, int(ps) * cfg.Shards * slotBytes, nil
}

// Adoption reports what NewShared found in adopted memory.
type Adoption struct {
	// Entries counts the live entries adopted.
	Entries int
	// Dropped counts slots that failed their consistency check (an
	// invalid state word, a timeout out of range, an IPv4 flag on an
	// address that is not IPv4, a key its lookup cannot reach or that
	// another slot already holds); they became tombstones.
	Dropped int
}

// NewShared is New over caller-provided memory, for example a state file
// mapped by the previous xdpgate process: mem holds the slot arrays of
// every shard. It must be exactly StateLayout's size, 8-byte aligned, and
// not used by anything else while the table is; cfg.Seed must be set (the
// seed stored with the memory: it decides where every key lives).
//
// With adopt false, mem must be zero (a new table). With adopt true, mem
// holds slots another process wrote, perhaps until it crashed, and
// NewShared checks every slot before returning. What a crash can leave:
//
//   - A Pin into a free slot stores the data words and then the control
//     word: stopped before the control word, the slot is still free.
//   - A rewrite goes through a tombstone (doc.go): stopped in the middle,
//     the slot is a tombstone, an absent entry (that client's pin is
//     lost; its next connection is balanced anew). A refresh stores one
//     word at a time, each of which is a state the entry really had.
//   - A removal turns tombstones before an empty slot into empty slots
//     from the last one backwards; each step keeps the table's invariant
//     (no empty slot between a key's home slot and the key), so any prefix
//     of them does too.
//   - The shard locks and counters are not in mem: they start unlocked
//     and are recounted.
//
// So a table written by a correct process is consistent at every
// instant, and the check is for everything else (a bug, a stray write):
// a live slot whose words do not make an entry, or that Lookup could not
// reach, or a second copy of a key, becomes a tombstone and is counted in
// Adoption.Dropped. Pin times are the previous process's clock: the
// caller must use a clock shared by both (CLOCK_MONOTONIC, see
// internal/statefile.Now).
func NewShared(cfg Config, mem []byte, adopt bool) (*Table, Adoption, error) {
	if cfg.Seed == 0 {
		return nil, Adoption{}, fmt.Errorf("affinity table: no seed (shared memory needs its stored one): %w", ErrSharedMemory)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, Adoption{}, fmt.Errorf("affinity table: %w", err)
	}
	_, size, _ := StateLayout(cfg)
	switch {
	case len(mem) != size:
		return nil, Adoption{}, fmt.Errorf("affinity table: shared memory is %d bytes, want %d: %w", len(mem), size, ErrSharedMemory)
	case uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%8 != 0:
		return nil, Adoption{}, fmt.Errorf("affinity table: shared memory not 8-byte aligned: %w", ErrSharedMemory)
	}
	slots := unsafe.Slice((*slot)(unsafe.Pointer(unsafe.SliceData(mem))), size/slotBytes)
	t := newShardedTable(cfg, slots)
	var a Adoption
	if adopt {
		for i := range t.shards {
			t.adoptShard(&t.shards[i], &a)
		}
	}
	return t, a, nil
}

// adoptShard checks every slot of sh (see NewShared), drops what fails,
// reclaims tombstone runs and recounts the entries. Single-threaded.
func (t *Table) adoptShard(sh *shard, a *Adoption) {
	var live int64
	for i := range sh.n {
		s := &sh.slots[i]
		c := s.ctl.Load()
		switch ctlState(c) {
		case stEmpty, stTomb:
			continue
		case stLive:
			if t.reachable(sh, i, c) {
				live++
				continue
			}
		}
		s.ctl.Store(nextCtl(c, 0, stTomb))
		a.Dropped++
	}
	for i := range sh.n {
		if ctlState(sh.slots[i].ctl.Load()) == stTomb {
			sh.reclaim(i)
		}
	}
	sh.entries.Store(live)
	a.Entries += int(live)
}

// reachable reports whether the live slot i of sh (control word c) holds
// a well-formed entry that Lookup finds there: in this shard, within the
// probe window of its home slot, no empty slot before it, and no earlier
// copy of the same key.
func (t *Table) reachable(sh *shard, i, c uint64) bool {
	s := &sh.slots[i]
	v := s.val.Load()
	k := key{a0: s.a0.Load(), a1: s.a1.Load(), svc: ctlSvc(c), is4: valIsV4(v)}
	if !validTimeout(valTimeout(v)) || (k.is4 && (k.a0 != 0 || k.a1>>32 != 0xffff)) {
		return false
	}
	home, j := t.locate(k)
	if home != sh {
		return false
	}
	for range t.window {
		o := &sh.slots[j]
		oc := o.ctl.Load()
		switch ctlState(oc) {
		case stEmpty:
			return false
		case stLive:
			if ctlSvc(oc) == k.svc && o.a0.Load() == k.a0 && o.a1.Load() == k.a1 && valIsV4(o.val.Load()) == k.is4 {
				return j == i // the first copy is the one Lookup finds
			}
		}
		j = sh.next(j)
	}
	return false
}
