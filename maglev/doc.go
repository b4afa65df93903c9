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
// table, to backend hash mod N. The hash is HashFlow of the 5-tuple, for
// services without ClientIP affinity. Pick is the one place a flow hash
// becomes an endpoint: snapshot.Snapshot.Pick and Table.Pick both call it.
//
// # ClientIP sessions
//
// A ClientIP client without a valid affinity entry is not sent through a
// Maglev table: its choice is Rendezvous (highest random weight over the
// backends' BackendIDs) of HashSession(client, Epoch(client, wall clock,
// timeoutSeconds)). The epoch makes a client that was away for the
// timeout draw afresh, as Kubernetes requires, while gateways with the
// same endpoints and synchronised clocks agree within an epoch; rendezvous
// is minimally disruptive (adding one of N+1 backends moves 1/(N+1) of
// clients, all to it; removing one moves only its own) with no table size
// to step. It costs O(N) per choice, paid once per client session.
// ARCHITECTURE.md ("ClientIP choice") says what this guarantees across
// gateways and where it cannot.
//
// RendezvousBounded is the same choice with bounded loads (Mirrokni,
// Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads", SODA
// 2018): the highest-scoring backend whose load stays within
// ceil(c·(m+1)/n), which is Rendezvous's answer whenever that backend has
// room and otherwise the next in the hash's preference order. The loads
// are the caller's (pinned clients per endpoint, one gateway's view), so
// gateways agree on a bounded choice only while their loads do.
//
// Consistency across gateways needs the same IDs, weights and size, and
// the fixed seeds of HashClientIP, HashFlow, HashSession and the
// permutation, which TestHashGolden, TestSessionGolden and
// TestMaglevGolden pin.
package maglev
