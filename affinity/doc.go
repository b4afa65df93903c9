// Package affinity holds the ClientIP session-affinity table of the xdpgate
// dataplane. The backend choice on a miss, and for services without
// affinity, is Maglev, in package maglev.
//
// It is pure Go: no syscalls, no client-go; tests never need root.
//
// # Use on the packet path
//
// For the first packet of a flow to a service port with sessionAffinity
// ClientIP (timeout T seconds), with now read once per batch from the
// dataplane's injected monotonic clock (nanoseconds):
//
//	ep, ok := table.Lookup(svcPort, client, T, now)
//	if !ok || !usable(ep) {             // e.g. snapshot.Usable
//		epoch := maglev.Epoch(client, wallNow, T) // a fresh draw after a timeout
//		ep = chain[maglev.Rendezvous(chainIDs, maglev.HashSession(client, epoch))]
//	}
//	table.Pin(svcPort, client, ep, T, now) // every new flow, never per packet
//
// Services without affinity skip the table and pick with
// maglev.HashFlow(src, dst, sport, dport, proto).
//
// # Semantics compared with kube-proxy
//
//   - Key: (service port, client address). The service port is kube-proxy's
//     ServicePortName (namespace, name, port name, protocol), so ClusterIP,
//     NodePort, LoadBalancer IPs and externalIPs of one port share the entry,
//     as in the iptables and nftables proxiers (IPVS keeps one per virtual
//     server); two ports of one Service are independent
//     (kubernetes/kubernetes#103000). The source port is ignored; the address
//     is the full /32 or /128. IPv4 and IPv4-mapped IPv6 are different
//     clients.
//   - Timer: the entry expires timeoutSeconds after the client's last new
//     connection. Pin restarts it (`recent --set`, nft `update`); Lookup does
//     not (`--rcheck` without --update). It is expired at exactly
//     lastPin + timeout: valid while now - lastPin < timeout. Expired entries
//     are removed by the Lookup that finds them (when the shard lock is free),
//     by the Pin that overwrites them, or by the incremental Sweep; the clock
//     is a value the caller passes in, so tests never sleep.
//   - Timeout: 1..86400 seconds, default 10800 (ValidateTimeoutSeconds has
//     the API server's rule and message). Lookup uses the timeout it is
//     given, so a changed timeoutSeconds applies to existing entries at once,
//     as the iptables rule's --seconds does. Pin records the timeout with the
//     entry; Sweep and eviction use that recorded value (they have no
//     service context), so after a timeout is raised, entries pinned before
//     the change may be swept at the old timeout.
//   - Eligibility: an entry whose endpoint is no longer usable in the chain
//     (removed, not ready, terminating while a ready endpoint exists) is
//     ignored by the caller and overwritten by the next Pin, which counts a
//     re-pin. Endpoint IDs are never reused, so no flush is needed when an
//     endpoint leaves; DeleteEndpoint exists to free slots early.
//   - Affinity switched off and on again (None -> ClientIP) must start empty:
//     the control plane calls DeleteServicePort.
//   - Capacity: xt_recent remembers 100 clients per endpoint and Cilium 64k
//     per node; this table is sized by Config.Capacity (tested at 10
//     million) and, when a client's probe window is full, replaces an expired
//     entry first, then the least recently pinned one, counting both.
//   - One entry per (service port, client), shared by the cluster and local
//     chains. kube-proxy keeps one list per endpoint, so a client can be in
//     several lists and iptables takes the first match in chain order. The
//     difference shows only for a client that reaches an ETP=Local service
//     both internally and externally while pinned to a remote endpoint:
//     here the external flow re-pins it to a local endpoint (which the
//     cluster chain also accepts, so it then stays there); kube-proxy would
//     remember both.
//
// # Layout
//
// The table is split into a power-of-two number of shards. xxhash64 of
// (client address xor a per-table seed, service port, family) chooses the
// shard with its top bits and the home slot within the shard with its low
// 32 bits (multiply-shift, so shard sizes need not be powers of two). The
// random seed keeps an attacker from aiming many source addresses at one
// probe window; the bounded window limits the damage if one does.
//
// Each shard is one pointer-free array of 40-byte slots (five 64-bit words:
// control, address high, address low, endpoint+timeout+family, last pin
// time; see slot). The garbage collector never scans it. Collisions are
// resolved by linear probing confined to a probe window of
// Config.ProbeWindow slots from the home slot. Deleted entries leave
// tombstones, which lookups step over and inserts reuse; a tombstone run
// followed by an empty slot is turned back into empty slots, which keeps
// the invariant "no empty slot lies between a key's home slot and the key",
// so lookups stop at the first empty slot. The table holds Capacity·3/2
// slots, a load factor of 2/3 at capacity: 60 bytes per client of capacity.
//
// # Concurrency
//
// Writers (Pin, Sweep, Delete*) take the shard's mutex; there is no global
// lock. Readers (Lookup, Range) never wait for a lock: they read slots
// without one, and a Lookup that finds an expired entry removes it only if
// sync.Mutex.TryLock succeeds (re-checking the entry under the lock), else
// leaves it. A reader re-reads a slot only when a writer changed it in the
// meantime, so readers are lock-free. Every slot word is read with
// sync/atomic operations and written with them too, which are sequentially
// consistent in the Go memory model, so the argument below is about which
// combinations of values a reader can observe. One exception: Pin fills
// the data words of an empty or tombstone slot with plain stores
// (internal/owned) before the atomic store that makes it live. A reader
// reads data words only after seeing the slot live; one that saw it live
// before it became a tombstone and reads a word Pin is filling sees a later
// control word on its second load, because the tombstone store precedes
// those plain stores (through the shard lock) and the machine orders them
// (amd64 orders all stores; arm64's acquire loads and multi-copy atomicity),
// so it starts the slot again, as it would for an atomic rewrite.
//
// The control word holds the service port, the slot state (empty, live,
// tombstone) and a 30-bit sequence number that advances on every store to
// the control word. A reader loads the control word, and, if the slot is
// live for the wanted service port, the four data words, then the control
// word again; if it changed, the reader starts that slot again. Writers
// change a slot's identity or endpoint only through a tombstone:
//
//	ctl = tombstone (seq+1); store data words; ctl = live (seq+2)
//
// Suppose a reader's two control loads return the same value, live with
// sequence s. Any data store of a later rewrite is preceded, in the single
// total order of atomic operations, by that rewrite's tombstone store to
// the control word. That store cannot precede the reader's first load
// (which would then not see sequence s) and, if it precedes a data load the
// reader made, it precedes the reader's second load, which would then see a
// later sequence. So every data word the reader saw was written by the
// rewrite that published s, or is a single-word refresh within it (below);
// and it saw no older value, because those data stores precede the live
// store the reader observed. A tombstone in the middle of a rewrite means
// "absent" to a reader, which then continues probing: a concurrent Lookup
// of a key being re-pinned can therefore miss and the caller choose and
// Pin again, the same outcome as if the Lookup had come just before.
// The sequence wraps after 2^30 stores to one slot, far more than can
// happen between a reader's two loads.
//
// A refresh (Pin with the endpoint unchanged) stores only the last-pin
// time and possibly the recorded timeout, each one word that readers do not
// use to identify the entry, so any mix of old and new values is a state the
// entry really had; it needs no tombstone.
//
// A key never moves once inserted (no backward-shift deletion), so a
// Lookup for a key present throughout finds it: slots before it in its
// window are never empty (the invariant above; emptying requires an empty
// successor, which a slot before a live key does not have).
//
// NewShared places the slots in caller-provided memory (a state file
// mapped by internal/statefile) so that the next process adopts the pins;
// since every store above leaves the table consistent, a crash at any
// instant does too, and adoption only checks and recounts (NewShared).
//
// # Observing changes
//
// OnChange registers one hook told of every change to the live entries
// (pin, re-pin, expiry, eviction, delete) with the endpoint before and
// after, under the shard lock: summed per endpoint it gives each
// endpoint's pinned clients exactly, which is how package pipeline keeps
// per-endpoint load without a field in the slot (the state file's format
// is unchanged). Unpin removes one client's entry while it still names a
// given endpoint (pipeline's rebalance-on-scale).
//
// Counters are per shard: writer counters are updated under the shard lock
// (with plain adds: the lock serialises them), hit and miss counters by
// readers with atomic adds on a cache line of their own; Stats sums them
// without locking.
package affinity
