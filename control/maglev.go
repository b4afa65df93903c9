package control

import (
	"runtime"
	"slices"
	"sync"

	"github.com/xdpgate/xdpgate/maglev"
)

// maglevCache keeps the Maglev tables (maglev.SlotsFor) of the previous
// build keyed by service port ID and chain, so an unchanged chain reuses
// its table (and the snapshot shares the slice with its predecessor). Tables are requested while the
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
				q.table = maglev.SlotsFor(q.ids)
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
