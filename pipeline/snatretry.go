package pipeline

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"

	"github.com/xdpgate/xdpgate/conntrack"
)

// SNAT port exhaustion under a spoofed flood (snatInsert): real clients
// repeat, floods do not.
//
// When no SNAT port is free, a new flow may take one back from an idle
// unassured flow (conntrack.Table.Reclaim). A flood of forged SYNs is new
// flows too, arriving much faster than real ones, so if every new flow
// could reclaim on the same terms the flood would take nearly every port
// the moment it became reclaimable. What tells a real client from a forged
// one at its first packet is nothing; at its second, that there is one: a
// TCP client retransmits its SYN with the same tuple after about a second
// (RFC 6298), a DNS or QUIC client retries, while a flood from random
// sources never repeats a tuple. So the pipeline remembers (lossily) the
// tuples it refused, and one port in snatReserveEvery of the range can be
// reclaimed only by a repeat of one of them: first packets take those
// ports only when they are free, so under a flood they sit reclaimable
// until a repeat comes. A real client under a flood therefore waits one
// retransmission, not the flood; first packets lose that share of the
// range's turnover. An attacker who repeats every forged tuple gets a real
// client's terms, at twice the packets.

// retryReclaimAge is how long a flow on a reserved port must have been
// idle for a repeat to reclaim it (conntrack.ReclaimAge elsewhere): a
// flood's half-open flows are touched again only by the endpoint's SYN-ACK
// retransmissions (1 s, 3 s, 7 s ... after the SYN), which would otherwise
// keep them from ever being idle for a second in their first two seconds,
// while a real client on a reserved port completes its handshake within a
// round trip.
const retryReclaimAge = int64(100e6)

// snatReserveEvery: every snatReserveEvery-th port of a SNAT range of at
// least snatReserveMin ports (offset snatReserveEvery-1, 2*snatReserveEvery-1
// ...) is reclaimed only for repeated tuples.
const (
	snatReserveEvery = 8
	snatReserveMin   = 2 * snatReserveEvery
)

// retrySlots is the size of the refused-tuple memory (8 bytes each, shared
// by the queues), in buckets of retryWays; a new refusal replaces the
// oldest entry of its bucket. At 4,000 forged SYNs/s a refused real tuple
// is lost within a second only if four newer refusals land in its bucket,
// with probability about 1.5e-4 (Poisson, 0.24 per bucket per second).
const (
	retrySlots = 1 << 16
	retryWays  = 4
)

// retryWindowMs is how long a refused tuple is remembered: a TCP client's
// first two SYN retransmissions come 1 s and 3 s after its SYN.
const retryWindowMs = 10_000

// retryFilter remembers refused original tuples: per slot, a 32-bit tag of
// the tuple's keyed hash and the refusal time in milliseconds. Lock-free:
// a lost update forgets a refusal, which costs that client one more
// retransmission.
type retryFilter struct {
	seed  uint64
	slots []atomic.Uint64
}

func newRetryFilter(seed uint64) retryFilter {
	return retryFilter{seed: seed, slots: make([]atomic.Uint64, retrySlots)}
}

// repeat reports whether k was refused within the last retryWindowMs, and
// records it as refused at now either way (a refresh keeps a client that
// is refused again within the window).
func (f *retryFilter) repeat(k *conntrack.Tuple, now int64) bool {
	h := f.hash(k)
	b := f.slots[h&(retrySlots-retryWays) : h&(retrySlots-retryWays)+retryWays]
	tag := uint32(h>>32) | 1 // never 0: an empty slot matches nothing
	ms := uint32(now / 1e6)
	oldest, oldestAge := 0, uint32(0)
	for i := range b {
		v := b[i].Load()
		age := ms - uint32(v)
		if v == 0 {
			age = ^uint32(0)
		}
		if uint32(v>>32) == tag {
			b[i].Store(uint64(tag)<<32 | uint64(ms))
			return age <= retryWindowMs
		}
		if age >= oldestAge {
			oldest, oldestAge = i, age
		}
	}
	b[oldest].Store(uint64(tag)<<32 | uint64(ms))
	return false
}

// hash is a keyed hash of k's fields (a spoofer cannot aim tuples at a
// real client's bucket without the seed).
func (f *retryFilter) hash(k *conntrack.Tuple) uint64 {
	var b [48]byte
	binary.LittleEndian.PutUint64(b[0:8], f.seed)
	copy(b[8:24], k.Src[:])
	copy(b[24:40], k.Dst[:])
	binary.BigEndian.PutUint16(b[40:42], k.SrcPort)
	binary.BigEndian.PutUint16(b[42:44], k.DstPort)
	b[44], b[45] = byte(k.Proto), byte(k.Family)
	return xxhash.Sum64(b[:])
}
