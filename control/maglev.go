package control

import (
	"runtime"
	"slices"
	"sync"

	"github.com/xdpgate/xdpgate/affinity"
)

// maglevSizes are the Maglev table sizes: for N backends the table has the
// smallest listed prime >= 100*N (the Maglev paper's bound for about 1%
// imbalance), capped at 65537. The list is fixed so that every gateway
// builds the same table for the same endpoints, and coarse (primes just
// below powers of two) so that adding or removing an endpoint rarely
// changes the size: a size change reshuffles the whole table, while within
// one size Maglev moves little more than the changed endpoint's slots.
var maglevSizes = [...]uint32{251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65537}

// maxMaglevBackends is the largest chain that gets a table: slots hold
// uint16 chain indices and 0xFFFF marks an empty slot while filling. Longer
// chains (beyond any real Service) get no table, and snapshot.Pick falls
// back to hash modulo the chain length.
const maxMaglevBackends = 65534

// MaglevSize returns the Maglev table size for n backends (0 for n < 2: a
// chain of one endpoint needs no table).
func MaglevSize(n int) uint32 {
	if n < 2 {
		return 0
	}
	want := uint64(n) * 100
	for _, s := range maglevSizes {
		if uint64(s) >= want {
			return s
		}
	}
	return maglevSizes[len(maglevSizes)-1]
}

// buildMaglev returns the Maglev lookup table (affinity.BuildMaglev, Eisenbud
// et al., NSDI 2016) of MaglevSize(len(ids)) slots for backends identified by
// stable 64-bit IDs (affinity.BackendID of "ip:port"), all with weight 1.
// table[slot] is the index of the backend in ids. affinity's tables do not
// depend on the order of ids beyond that index mapping, so gateways agree.
func buildMaglev(ids []uint64) []uint16 {
	n := len(ids)
	if n < 2 || n > maxMaglevBackends {
		return nil
	}
	backends := make([]affinity.Backend, n)
	for i, id := range ids {
		backends[i] = affinity.Backend{ID: id, Weight: 1}
	}
	m, err := affinity.BuildMaglev(backends, MaglevSize(n))
	if err != nil {
		// Unreachable: sizes are primes below affinity's maximum and
		// endpoints are deduplicated on IP:port, so IDs are distinct.
		// Without a table snapshot.Pick falls back to hash modulo n.
		return nil
	}
	return m.Table()
}

// maglevCache keeps the tables of the previous build keyed by service port
// ID and chain, so an unchanged chain reuses its table (and the snapshot
// shares the slice with its predecessor). Tables are requested while the
// Services are computed and resolved together, the missing ones built in
// parallel on every CPU.
type maglevCache struct {
	entries map[maglevKey]maglevEntry
	pending []maglevRequest
}

// maglevRequest asks for the table of one chain of r.ports[port].
type maglevRequest struct {
	r     *svcResult
	port  int
	local bool
	key   maglevKey
	ids   []uint64
	table []uint16
}

// request records that r.ports[port]'s cluster or local chain needs the
// table for ids.
func (c *maglevCache) request(r *svcResult, port int, local bool, k maglevKey, ids []uint64) {
	c.pending = append(c.pending, maglevRequest{r: r, port: port, local: local, key: k, ids: ids})
}

// resolve fills every requested table: from the cache when the chain's
// backends are unchanged, else built (in parallel), and stores the results
// into the service ports and the cache.
func (c *maglevCache) resolve() {
	if c.entries == nil {
		c.entries = make(map[maglevKey]maglevEntry)
	}
	var build []int
	for i := range c.pending {
		q := &c.pending[i]
		if len(q.ids) < 2 {
			delete(c.entries, q.key)
			continue
		}
		if e, ok := c.entries[q.key]; ok && slices.Equal(e.ids, q.ids) {
			q.table = e.table
			continue
		}
		build = append(build, i)
	}
	workers := min(runtime.GOMAXPROCS(0), len(build)/64+1)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := w; j < len(build); j += workers {
				q := &c.pending[build[j]]
				q.table = buildMaglev(q.ids)
			}
		}()
	}
	wg.Wait()
	for _, i := range build {
		q := &c.pending[i]
		c.entries[q.key] = maglevEntry{ids: q.ids, table: q.table}
	}
	for i := range c.pending {
		q := &c.pending[i]
		sp := &q.r.ports[q.port]
		if q.local {
			sp.LocalMaglev = q.table
		} else {
			sp.ClusterMaglev = q.table
		}
	}
	clear(c.pending)
	c.pending = c.pending[:0]
}

type maglevKey struct {
	sp    uint32
	local bool
}

type maglevEntry struct {
	ids   []uint64
	table []uint16
}

// drop forgets the tables of a service port.
func (c *maglevCache) drop(sp uint32) {
	delete(c.entries, maglevKey{sp, false})
	delete(c.entries, maglevKey{sp, true})
}
