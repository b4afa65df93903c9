// Package conntrack is xdpgate's connection-tracking table: the flow table
// every packet touches, shared by all poller goroutines at once. It maps
// both tuples of a flow (original and reply) to one flow record holding
// the NAT translation, the service port and endpoint IDs, the protocol
// state, last-seen time and counters. It is pure Go, allocates nothing
// after New, and its big arrays hold no pointers, so the garbage collector
// never scans them whatever the number of flows.
//
// # Table layout
//
// New allocates, once, from Config:
//
//	r4    []rec4            MaxFlows IPv4 records, 88 bytes each
//	r6    []rec6            MaxFlows6 IPv6 records, 144 bytes each
//	index []atomic.Uint64   4 slots per flow of capacity, in buckets of one
//	                        64-byte cache line: a header word (insert spin
//	                        bit, overflow count) and 7 entry slots
//	free4, free6            free-record stacks: 64 sharded heads + 4 B/record
//	frags                   the fragment table (MaxFragments entries)
//
// which is about 129 bytes per IPv4 flow of capacity (88 record + 36.6
// index + 4 free list), empty slots included; TestMemory10M measures it. A record's fields are sync/atomic values: ctl (generation,
// protocol, flags, state), service port and endpoint IDs, last-seen, the
// original and reply tuples as words, then per-direction packet and byte
// counters. The translation is not stored separately: as in nf_conntrack
// it is the reply tuple (Translation.Reply), so it cannot disagree with it.
//
// # Index and probe window
//
// An index entry is one 64-bit word: the high 32 bits of the tuple's keyed
// hash (the tag, low bit forced to 1 so no entry is 0), a family bit, a
// direction bit and a 30-bit record index. 0 is an empty slot. A tuple's
// probe window is two buckets chosen from its hash (two-choice hashing):
// insert uses the first while it has four free slots, else the emptier
// one. At the index's load of at most 1/2 a window then overflows with
// negligible probability (none in 8 simulated fills of 10M flows, 160M
// placements; an overflow would evict inside the window). The first
// bucket's header counts the entries homed there but stored in the second,
// so a lookup reads the second bucket only when that count is non-zero
// (about a quarter of the buckets of a full table) and the flow is not in
// the first: a hit is usually one index cache line and one record. Lookups
// scan whole buckets and never stop at an empty slot, so deletion just
// clears a slot: no tombstones, no backward shifting. Each flow has two
// entries, one per tuple, found by one window scan each. The hash is keyed
// with a random seed (Config.Seed) so that outsiders cannot aim flows at
// one window.
//
// # Slot and record states
//
// A record's generation (ctl bits 63..32) is odd while the flow is live and
// even while the record is free or being built; a Handle carries the
// generation it was issued for. A record's life:
//
//  1. free (even): on a free stack.
//  2. building (even): popped by an inserter, which alone writes its
//     fields (with plain stores: internal/owned), then CASes the reply
//     entry and then the original entry into empty index slots. Readers
//     that meet these entries skip them, since the generation is even; a
//     reader that saw the record's previous incarnation live and reads a
//     field being written sees the freeing CAS's generation on its second
//     load of ctl (the CAS precedes the builder's stores through the free
//     stack's CASes, and the machine keeps that order: amd64 orders all
//     stores, arm64 has acquire loads and multi-copy atomicity).
//  3. live (odd): the inserter stores ctl with generation+1. From here on
//     the tuples, IDs and protocol do not change.
//  4. removed (even): whoever wins the CAS of ctl from live to
//     generation+2 (Delete, the sweeper, lazy expiry, eviction) owns the
//     record again: it clears the two index entries by CAS (their exact
//     values are unique, since only one incarnation of a record index is
//     ever indexed) and pushes the record on its free stack.
//
// # Memory ordering
//
// All shared memory is accessed through sync/atomic, which the Go memory
// model makes sequentially consistent: all atomic operations form one
// total order consistent with each goroutine's program order, and a load
// observes the latest store before it in that order. The argument:
//
//   - A reader that finds a live generation g in ctl (load c1) and then
//     reads the tuples, IDs and last-seen, and then loads ctl again (c2)
//     with the same generation g, has read the fields of incarnation g
//     only. Suppose one field load returned a value written by a later
//     incarnation. That write comes after the removal's CAS of ctl (g ->
//     g+1) in the writer's program order, so after it in the total order;
//     the reader's field load comes after that write, and its c2 load after
//     its field load. So c2 observes a generation >= g+1, a contradiction
//     (the generation only grows; it would take 2^31 reuses of one record
//     during one read to wrap). Fields of the building phase are written
//     before the store that makes g live, so a reader that saw g live sees
//     them too. This is a seqlock whose writer section is the time a record
//     spends off the live state.
//   - Index entries are published after the record is built, and only CAS
//     writes them, so an entry either is absent or names a record the
//     reader validates as above; stale entries (removed flows) fail the
//     validation (generation even, or tuples differ) and are skipped. A hit
//     is therefore a flow that was live and held the tuple at the moment of
//     the c1 load: Lookup is linearizable at that load.
//   - The overflow count is raised before an entry is published in a
//     second bucket and lowered after it is cleared, so a lookup that reads
//     0 from the header cannot miss a flow that was live when it read it:
//     such a flow's increment precedes that read.
//   - Uniqueness: every Insert takes the spin bits (bucket headers) of the
//     home buckets (first window bucket) of both new tuples, in ascending bucket order
//     (no deadlock), scans both windows for live flows using either tuple,
//     and publishes before releasing. All inserters of a tuple contend on
//     the same bit, so at most one live flow uses a tuple, and racing
//     inserts of one original tuple return the same winner (Exists) so
//     both pollers apply the same translation. These bits are not a global
//     lock: they cover one bucket each, only inserters take them, and a
//     waiter yields the processor after a few spins. Lookups, Touch,
//     deletion, sweeping and Range take no lock and never wait.
//   - Protocol state changes are CASes on ctl, which also holds the
//     generation, so a transition can never be applied to a later
//     incarnation; counters and last-seen are plain atomic adds and stores
//     that a Touch racing with removal may apply to the next incarnation
//     (approximate, documented on Touch).
//   - The free stacks are Treiber stacks whose heads carry a 32-bit
//     version, so a pop that raced with a pop and push of the same record
//     fails its CAS (no ABA).
//
// # Timeouts, expiry and eviction
//
// Each State has an idle timeout (Timeouts; defaults are nf_conntrack's,
// with kube-proxy's ESTABLISHED 86,400 s and CLOSE_WAIT 3,600 s). A flow
// expires when now - last-seen exceeds its state's timeout. Expired flows
// are removed lazily by Lookup and Insert when they meet them, and by
// Sweep, which walks a slice of the record array per call (a shared
// cursor; never stop-the-world). Time is whatever int64 clock the caller
// passes as now (nanoseconds): tests never sleep.
//
// A TCP flow that never saw a reply is capped at Timeouts.Unacknowledged
// (300 s, nf_conntrack_tcp_timeout_unacknowledged), so a spoofed ACK
// picked up mid-stream does not live a day.
//
// # Assured flows, eviction and pressure
//
// A flow is assured (flagAssured, nf_conntrack's IPS_ASSURED) once it
// proved both ends are real: for TCP the ACK that moves SYN_RECV to
// ESTABLISHED, or a reply to a flow picked up ESTABLISHED; for other
// protocols a reply followed by more traffic from the originator. A reply
// alone (an answered SYN flood's SYN-ACK) does not assure a flow, and the
// handshake's last ACK applies only with sequence numbers in the tracked
// window (seq.go), which an off-path spoofer has to guess.
//
// When Insert finds no free record it marks the table under pressure and
// an eviction hand (hand.go), a shared position that moves through the
// record array, frees a flow among the 16 records at the hand (loaded
// together: consecutive cache lines): an expired flow if any, else an
// evictable flow idle for ReclaimAge, else the least recently seen
// evictable flow. Evictable: unassured, or, as the kernel's early_drop
// (tcp_can_early_drop), an assured TCP flow already closing (FIN_WAIT,
// CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE): else a small table fills with
// TIME_WAIT flows for 120 s and refuses everything. The new flow takes the
// victim's record, just behind the hand, so it is looked at again only a
// whole turn later: a flood turns the table over first in, first out. An
// assured open flow is never evicted to make room for a new (so
// unassured) one: if the hand finds only those over 128 records, the
// insert is refused (Full, counted in Stats.RefusedAssured; the pipeline
// drops with conntrack_full). A flood therefore evicts itself, never an
// established connection. When a window has no empty slot (vanishingly
// rare) a victim is chosen inside the window (expired, else least recently
// seen evictable). Both count in Stats.Evictions.
//
// Under pressure (Pressure: set by Insert when the table is full, and by
// the pipeline when SNAT probing fails; it lasts 10 s after the last mark)
// unassured TCP flows in TCP_NONE, SYN_SENT and SYN_RECV time out after
// Timeouts.Embryonic (5 s) instead of 120/60 s, as the kernel's early_drop
// frees non-assured entries first; Reclaim takes back the tuple (SNAT
// port) of an unassured flow idle for ReclaimAge. The mark is one shared
// word written at most about once a second.
//
// # Shared memory and adoption
//
// NewShared places the record arrays in caller-provided memory (a state
// file mapped by internal/statefile) instead of the heap; the index, free
// lists, fragment table and counters stay in process memory. With adopt,
// it rebuilds them from the live (odd-generation) records another process
// left, which is why a crash at any instant leaves an adoptable table: see
// NewShared for what is kept and what is dropped.
//
// # Fragments
//
// A small fixed table (Config.MaxFragments, 8-slot buckets) remembers, per
// (source, destination, protocol, IP ID), the Flow decided for a
// datagram's first fragment, so later fragments (which carry no ports)
// follow it; LookupFragment counts a miss for a non-first fragment that
// arrived first, which the caller drops. Entries live Timeouts.Fragment
// (30 s); a full bucket overwrites its expired or soonest-expiring entry.
//
// # Offloaded flows
//
// A flow may be forwarded by someone else once established (the XDP fast
// path): it stays here, Offloadable says which flows qualify, and Credit
// brings back what the other forwarder counted (packets, bytes, last-seen,
// TCP sequence ends) so timeouts, eviction and sequence checks see the
// flow as busy as it is (offload.go). RecordSlot and Handle.Generation let
// callers keep per-flow state beside the table.
package conntrack
