// Package maglev chooses the backend of a new flow: Maglev consistent
// hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
// Load Balancer", NSDI'16, section 3.4) over a chain of endpoints, and the
// fixed hashes that feed it.
//
// It is pure Go: no syscalls, no client-go; tests never need root. It
// imports no other xdpgate package.
//
// # The table
//
// A table is an array of M slots, M prime, each holding the index of one
// backend in the chain it was built for ([]uint16, so a chain too long
// for 16-bit indices gets no table). The control plane builds it once per chain
// (SlotsFor) and ships it in the snapshot; the dataplane only reads it.
//
// # Permutation
//
// Each backend gets a permutation of the M slots from its stable ID
// (BackendID of its "ip:port", the same on every gateway): offset =
// h1(ID) mod M, skip = h2(ID) mod (M-1) + 1, permutation[j] = (offset +
// j·skip) mod M; M being prime, it visits every slot. Backends take turns,
// in ID order, claiming their next preferred empty slot until all M are
// claimed, so each of N equal backends owns floor(M/N) or ceil(M/N) slots,
// and a backend's departure mostly hands its own slots to others. Weights
// (Envoy's and Katran's weighted Maglev): in round r a backend of weight w
// takes a turn only if r·w has reached its threshold, which then grows by
// the maximum weight, so it claims w/maxWeight slots per round on average.
// Build is the general form; SlotsFor gives every backend weight 1.
//
// # Table sizes
//
// SizeFor picks M for N backends from a fixed list of primes just below
// powers of two (251, 509, 1021, ... 65537): the smallest that is >= 100·N
// (the paper's bound for about 1% imbalance), capped at 65537. The steps
// are coarse so that adding or removing an endpoint rarely changes M: a new
// size reshuffles the whole table, while within one size Maglev moves
// little more than the changed endpoint's slots. A chain of one endpoint
// has no table.
//
// # Pick
//
// Pick maps a flow hash to the backend in slot hash mod M, or, without a
// table, to backend hash mod N. The hash is HashClientIP of the client
// address for a ClientIP-affinity service (so every gateway sends a client
// to the same endpoint without sharing state) and HashFlow of the 5-tuple
// otherwise. Pick is the one place a hash becomes an endpoint:
// snapshot.Snapshot.Pick and Table.Pick both call it.
//
// Consistency across gateways needs the same IDs, weights and size, and
// the fixed seeds of HashClientIP, HashFlow and the permutation, which
// TestHashGolden and TestMaglevGolden pin.
package maglev
