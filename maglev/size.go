package maglev

// sizes are the table sizes SizeFor chooses from: for N backends the table
// has the smallest listed prime >= 100*N (the Maglev paper's bound for
// about 1% imbalance), capped at 65537. The list is fixed so that every
// gateway builds the same table for the same endpoints, and coarse (primes
// just below powers of two) so that adding or removing an endpoint rarely
// changes the size: a size change reshuffles the whole table, while within
// one size Maglev moves little more than the changed endpoint's slots.
var sizes = [...]uint32{251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65537}

// maxChain is the longest chain SlotsFor builds a table for. It is one
// less than MaxBackends, which Build would accept: chains longer than any
// real Service get no table and Pick falls back to hash modulo the chain
// length.
const maxChain = MaxBackends - 1

// SizeFor returns the table size for n backends (0 for n < 2: a chain of
// one endpoint needs no table).
func SizeFor(n int) uint32 {
	if n < 2 {
		return 0
	}
	want := uint64(n) * 100
	for _, s := range sizes {
		if uint64(s) >= want {
			return s
		}
	}
	return sizes[len(sizes)-1]
}

// SlotsFor returns the slots of the table of SizeFor(len(ids)) slots for
// backends identified by stable 64-bit IDs (BackendID of "ip:port"), all
// with weight 1: slots[i] is the index of a backend in ids. The assignment
// of slots to IDs does not depend on the order of ids, so gateways that
// agree on the endpoints agree on the table. It returns nil for fewer than
// two backends or more than the longest chain given a table; Pick then
// falls back to hash modulo the chain length.
func SlotsFor(ids []uint64) []uint16 {
	n := len(ids)
	if n < 2 || n > maxChain {
		return nil
	}
	backends := make([]Backend, n)
	for i, id := range ids {
		backends[i] = Backend{ID: id, Weight: 1}
	}
	m, err := Build(backends, SizeFor(n))
	if err != nil {
		// Unreachable for distinct IDs: sizes are primes below MaxSize
		// and n is within MaxBackends and the size. Without a table Pick
		// falls back to hash modulo n.
		return nil
	}
	return m.Slots()
}
