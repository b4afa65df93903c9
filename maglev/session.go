package maglev

import (
	"encoding/binary"
	"net/netip"

	"github.com/cespare/xxhash/v2"
)

// seedSession is the fixed seed of HashSession; like the other seeds it is
// part of the contract between gateways (TestSessionGolden pins it).
const seedSession = 0x7365_7373_696f_6e21 // "session!"

// Epoch returns the session epoch of client at wallNanos (Unix
// nanoseconds) for a ClientIP timeout of timeoutSeconds: the number of
// whole periods of timeoutSeconds since the Unix epoch, with the period
// boundaries shifted per client by a phase taken from HashClientIP, so that
// clients do not all change epoch at the same instant. Gateways with
// synchronised clocks compute the same epoch for a client at the same time.
//
// Two times less than one period apart are in the same or in adjacent
// epochs; two times at least one period apart are always in different
// epochs. The second property is what makes an expired affinity entry
// lead to a fresh choice: the next connection comes at least
// timeoutSeconds after the entry was made. A timeoutSeconds of 0 returns 0.
// Times before the Unix epoch count as the epoch itself.
func Epoch(client netip.Addr, wallNanos int64, timeoutSeconds uint32) uint64 {
	if timeoutSeconds == 0 {
		return 0
	}
	period := uint64(timeoutSeconds) * 1e9
	phase := HashClientIP(client) % period
	return (uint64(max(wallNanos, 0)) + phase) / period
}

// HashSession returns the backend-choice hash of a ClientIP client without
// a valid affinity entry: it depends on the client address and its session
// epoch (Epoch), not on the port, so gateways agree on it while the epoch
// lasts and it changes, for every client, once a timeout has passed. IPv6
// zones are ignored. It does not allocate.
//
// Layout hashed with xxhash64: seed (8, LE) | As16 (16) | family (1) |
// epoch (8, LE).
func HashSession(client netip.Addr, epoch uint64) uint64 {
	var b [33]byte
	binary.LittleEndian.PutUint64(b[0:8], seedSession)
	a := client.As16()
	copy(b[8:24], a[:])
	b[24] = family(client)
	binary.LittleEndian.PutUint64(b[25:33], epoch)
	return xxhash.Sum64(b[:])
}

// Rendezvous returns the index in ids of the backend with the highest
// score for hash (rendezvous or highest-random-weight hashing, Thaler and
// Ravishankar 1998), or -1 when ids is empty. The score of backend b is
// the splitmix64 finaliser of hash xor ids[b]: a bijection of the ID for a
// given hash, so distinct IDs never tie, and the answer depends on the set
// of IDs, not their order.
//
// Unlike a Maglev table it is minimally disruptive: adding a backend moves
// exactly the hashes the new backend wins (1/(N+1) of them on average) and
// removing one moves only its own hashes, whatever N is, and there is no
// table whose size could step. It costs one multiply-xor round per backend
// (O(N), no memory beyond ids), so it is used where a choice is made once
// per client session (ClientIP affinity), not once per flow. It does not
// allocate.
func Rendezvous(ids []uint64, hash uint64) int {
	best, bestScore := -1, uint64(0)
	for i, id := range ids {
		if s := mix64(hash ^ id); best < 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// RendezvousBounded is Rendezvous with bounded loads ("consistent hashing
// with bounded loads", Mirrokni, Thorup and Zadimoghaddam, SODA 2018): it
// returns the index of the highest-scoring backend for hash whose load,
// with one more, stays within ceil(c·(m+1)/n), where load(i) is backend
// i's current load, m the sum over the n backends and c = maxLoadPercent/100
// (at least 1). It returns -1 when ids is empty.
//
// Backends are tried in the order of their scores, so the answer is
// Rendezvous's whenever that backend has room, and otherwise the next
// backend in hash's preference order that has. Some backend always has
// room: with m = qn + r (0 <= r < n) the least loaded holds at most q,
// and q+1 <= ceil((m+1)/n) <= ceil(c·(m+1)/n). It calls load 2n times and
// does not allocate (load must not let its closure escape).
func RendezvousBounded(ids []uint64, hash uint64, maxLoadPercent uint32, load func(i int) uint64) int {
	var m uint64
	for i := range ids {
		m += load(i)
	}
	limit := BoundedLimit(m, len(ids), maxLoadPercent)
	best, bestScore := -1, uint64(0)
	for i, id := range ids {
		if load(i) >= limit {
			continue
		}
		if s := mix64(hash ^ id); best < 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// BoundedLimit is RendezvousBounded's bound: a backend may take one more
// client while its load is below ceil(c·(m+1)/n), m the total load of n
// backends and c = maxLoadPercent/100, at least 1.
func BoundedLimit(m uint64, n int, maxLoadPercent uint32) uint64 {
	if n == 0 {
		return 0
	}
	c := uint64(max(maxLoadPercent, 100))
	d := 100 * uint64(n)
	return (c*(m+1) + d - 1) / d
}
