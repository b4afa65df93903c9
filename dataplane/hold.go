package dataplane

// heldFrame is a frame waiting for its next hop's MAC: where it is in its
// UMEM chunk, the neighbour it waits for and when it is given up. Plain
// data: a table of them is never scanned by the garbage collector.
type heldFrame struct {
	key      neighKey
	chunk    uint64 // the RX chunk (UMEM offset) holding the frame
	off, len int32  // the frame within its chunk (Frame.Off, Frame.Len)
	deadline int64  // monotonic ns after which the frame is dropped
	mac      [6]byte
}

// holdTable is one poller's frames held for unresolved next hops
// (VerdictHold), the dataplane's version of the queue Linux keeps per
// neighbour in state INCOMPLETE (neigh->arp_queue in net/core/neighbour.c).
//
// It is a fixed array in arrival order, bounded per queue (cap(held)) and
// per neighbour (perNeigh); every frame leaves it after at most ttl. The
// table is owned by its poller goroutine: no locks. Counting one
// neighbour's frames is a linear scan, bounded by the table's size (at
// most 1/8 of the RX frames) and paid only by frames being held.
type holdTable struct {
	held     []heldFrame
	perNeigh int
	ttl      int64
}

// newHoldTable returns a table of at most frames frames, perNeigh per
// neighbour, each held at most ttl ns. frames <= 0 disables holding.
func newHoldTable(frames, perNeigh int, ttl int64) holdTable {
	return holdTable{held: make([]heldFrame, 0, max(frames, 0)), perNeigh: perNeigh, ttl: ttl}
}

// enabled reports whether the table can hold anything.
func (h *holdTable) enabled() bool { return cap(h.held) > 0 }

// len returns the number of held frames.
func (h *holdTable) len() int { return len(h.held) }

// add holds the frame at off/n in chunk for neighbour k; false when the
// table or k's share of it is full (the caller drops the frame).
func (h *holdTable) add(k neighKey, chunk uint64, off, n int, now int64) bool {
	if len(h.held) == cap(h.held) {
		return false
	}
	same := 0
	for i := range h.held {
		if h.held[i].key == k {
			if same++; same >= h.perNeigh {
				return false
			}
		}
	}
	h.held = append(h.held, heldFrame{key: k, chunk: chunk, off: int32(off), len: int32(n), deadline: now + h.ttl})
	return true
}

// sweep takes out of the table, in arrival order, the frames whose
// neighbour nb now knows (appended to released with the MAC set) and those
// held past their deadline (appended to expired); the others stay, in
// order. Frames of one neighbour therefore leave in the order they came.
// released and expired must have room for len() frames, or append
// allocates. Consecutive frames of one neighbour cost one lookup.
func (h *holdTable) sweep(now int64, nb NeighbourTable, released, expired []heldFrame) ([]heldFrame, []heldFrame) {
	var lastKey neighKey
	var lastMAC [6]byte
	lastOK, have := false, false
	kept := h.held[:0]
	for _, f := range h.held {
		if !have || f.key != lastKey {
			lastKey, have = f.key, true
			lastMAC, lastOK = nb.Neighbour(int(f.key.ifindex), f.key.Addr())
		}
		switch {
		case lastOK:
			f.mac = lastMAC
			released = append(released, f)
		case now >= f.deadline:
			expired = append(expired, f)
		default:
			kept = append(kept, f)
		}
	}
	clear(h.held[len(kept):])
	h.held = kept
	return released, expired
}

// flush empties the table into out (the poller is stopping).
func (h *holdTable) flush(out []heldFrame) []heldFrame {
	out = append(out, h.held...)
	h.held = h.held[:0]
	return out
}
