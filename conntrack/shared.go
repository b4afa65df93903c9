package conntrack

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/xdpgate/xdpgate/nat"
)

// StateVersion is the format version of the record arrays NewShared maps:
// change it with any change to rec4, rec6 or the meaning of their fields,
// so that a new binary discards, rather than misreads, an older table.
const StateVersion = 2

// StateLayout returns what a table for cfg keeps in shared memory: the
// parameters a state file must match (capacities and record sizes) and the
// number of bytes NewShared needs.
func StateLayout(cfg Config) (params []uint64, size int, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, 0, fmt.Errorf("conntrack state layout: %w", err)
	}
	params = []uint64{uint64(cfg.MaxFlows), uint64(cfg.MaxFlows6), rec4Size, rec6Size}
	return params, cfg.MaxFlows*rec4Size + cfg.MaxFlows6*rec6Size, nil
}

// Adoption reports what NewShared found in adopted memory.
type Adoption struct {
	// Flows counts the live flows adopted (indexed and usable).
	Flows int
	// Dropped counts records that claimed to be live but failed their
	// consistency check (a state the protocol cannot be in, a malformed
	// tuple, a tuple another adopted flow already uses); they are freed.
	Dropped int
}

// NewShared is New over caller-provided memory, for example a state file
// mapped by the previous xdpgate process: mem holds the flow records (the
// index, free lists and fragment table are rebuilt in ordinary memory).
// mem must be exactly StateLayout's size, 8-byte aligned, and must not be
// used by anything else while the table is; cfg.Seed must be set (the
// seed stored with the memory).
//
// With adopt false, mem must be zero (a new table). With adopt true, mem
// holds records that another process wrote, perhaps until it crashed, and
// NewShared makes them a consistent table before returning:
//
//   - A record with an even generation (free, being built, or being
//     removed when the writer died) is free; the index entries a crashed
//     inserter or remover left are not carried over, because the index is
//     rebuilt from the live records alone. No spin bit can be held (the
//     bucket headers are rebuilt too).
//   - A record with an odd generation was complete when it went live (an
//     inserter fills every field before the store that makes it live, and
//     a live record's tuples, IDs and protocol never change), so it is
//     adopted with its tuples (SNAT port included), IDs, TCP state,
//     assured flag, sequence tracking, last-seen time and counters, after
//     a consistency check: a state and flags its protocol can have, well-formed distinct tuples, neither tuple
//     used by a flow adopted before it. A record that fails is freed and
//     counted in Adoption.Dropped.
//
// Times in adopted records are the previous process's clock: the caller
// must use a clock shared by both (CLOCK_MONOTONIC, see
// internal/statefile.Now). NewShared is not safe for concurrent use with
// anything else touching mem.
func NewShared(cfg Config, mem []byte, adopt bool) (*Table, Adoption, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, Adoption{}, fmt.Errorf("new conntrack table: %w", err)
	}
	_, size, _ := StateLayout(cfg)
	switch {
	case cfg.Seed == 0:
		return nil, Adoption{}, fmt.Errorf("new conntrack table: %w: shared memory needs its stored seed", ErrInvalidConfig)
	case len(mem) != size:
		return nil, Adoption{}, fmt.Errorf("new conntrack table: %w: shared memory is %d bytes, want %d", ErrInvalidConfig, len(mem), size)
	case uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%8 != 0:
		return nil, Adoption{}, fmt.Errorf("new conntrack table: %w: shared memory not 8-byte aligned", ErrInvalidConfig)
	}
	base := unsafe.Pointer(unsafe.SliceData(mem))
	r4 := unsafe.Slice((*rec4)(base), cfg.MaxFlows)
	var r6 []rec6
	if cfg.MaxFlows6 > 0 {
		r6 = unsafe.Slice((*rec6)(unsafe.Add(base, cfg.MaxFlows*rec4Size)), cfg.MaxFlows6)
	}
	if !adopt {
		t, err := newTable(cfg, r4, r6, nil)
		return t, Adoption{}, err
	}
	free := func(fam6 bool, idx uint32) bool {
		if fam6 {
			return !ctlLive(r6[idx].ctl.Load())
		}
		return !ctlLive(r4[idx].ctl.Load())
	}
	t, err := newTable(cfg, r4, r6, free)
	if err != nil {
		return nil, Adoption{}, err
	}
	return t, t.adopt(), nil
}

// adopt indexes every live record of a table whose free lists already
// hold the others (NewShared). Single-threaded.
func (t *Table) adopt() Adoption {
	var a Adoption
	// No flow expires or ages during adoption: expiry is the packet
	// path's and the sweeper's business, with the real clock.
	const now = math.MinInt64 / 2
	n4 := len(t.r4)
	for i := 0; i < n4+len(t.r6); i++ {
		fam6, idx := i >= n4, uint32(i)
		if fam6 {
			idx = uint32(i - n4)
		}
		r := t.hdr(fam6, idx)
		c := r.ctl.Load()
		if !ctlLive(c) {
			continue
		}
		if t.relink(fam6, idx, c, now) {
			a.Flows++
			continue
		}
		a.Dropped++
		r.ctl.Store(ctlFree(ctlGen(c) + 1))
		t.pool(fam6).push(idx)
	}
	return a
}

// relink checks live record idx (ctl c) and publishes its two index
// entries; it reports false, leaving the index as it was, when the record
// is inconsistent or collides with an adopted flow.
func (t *Table) relink(fam6 bool, idx uint32, c uint64, now int64) bool {
	proto, s := ctlProto(c), ctlState(c)
	if !stateFits(proto, s) || !flagsFit(proto, ctlFlags(c)) {
		return false
	}
	orig, reply := t.loadTuple(fam6, idx, Original, proto), t.loadTuple(fam6, idx, Reply, proto)
	if !orig.Valid() || !reply.Valid() || orig == reply {
		return false
	}
	ho, hr := orig.hash(&t.key), reply.hash(&t.key)
	if _, _, _, dup := t.findLocked(&orig, ho, now); dup {
		return false
	}
	if _, _, _, dup := t.findLocked(&reply, hr, now); dup {
		return false
	}
	eo := entryKey(ho, fam6) | uint64(idx)
	er := entryKey(hr, fam6) | dirBit | uint64(idx)
	if !t.claimSlot(hr, er, now) {
		return false
	}
	if !t.claimSlot(ho, eo, now) {
		t.unlink(hr, er)
		return false
	}
	st := t.stripe(idx)
	st.states[s].Add(1)
	if fam6 {
		st.live6.Add(1)
	}
	return true
}

// flagsFit reports whether ctl flags fl are consistent for protocol proto:
// known bits only, assured only after a reply, the closer bit only for TCP.
// (The sequence-tracking words hold any value: 0 is unknown, anything else
// a sequence number.)
func flagsFit(proto nat.Proto, fl uint8) bool {
	switch {
	case fl&^(flagReplied|flagCloserReply|flagAssured) != 0:
		return false
	case fl&flagAssured != 0 && fl&flagReplied == 0:
		return false
	case fl&flagCloserReply != 0 && proto != nat.ProtoTCP:
		return false
	}
	return true
}

// stateFits reports whether a flow of protocol proto can be in state s.
func stateFits(proto nat.Proto, s State) bool {
	switch proto {
	case 0:
		return false
	case nat.ProtoTCP:
		return s <= StateClose
	case nat.ProtoUDP:
		return s == StateUDPUnreplied || s == StateUDPReplied
	case nat.ProtoICMP, nat.ProtoICMPv6:
		return s == StateICMP
	}
	return s == StateOther
}
