package snapshot

// epShardBits sets the endpoint index's shard width: IDs id>>epShardBits
// share a shard. The control plane allocates endpoint IDs from a monotonic
// counter, so the endpoints of one EndpointSlice change fall in one or two
// shards, and Update copies only those.
const epShardBits = 10

// epIndex maps endpoint IDs to their position. It is a two-level map so
// that Update can copy on write: the outer map and the touched shards are
// copied, every other shard is shared with the previous snapshot. A shard
// is never written after the snapshot holding it is published.
type epIndex struct {
	shards map[uint32]map[uint32]endpointRef
	n      int
	// owned marks the shards this index may write (copied or created since
	// cow); nil for an index built from scratch, which owns every shard.
	owned map[uint32]bool
}

func newEPIndex() *epIndex {
	return &epIndex{shards: make(map[uint32]map[uint32]endpointRef)}
}

func (x *epIndex) get(id uint32) (endpointRef, bool) {
	if x == nil {
		return endpointRef{}, false
	}
	r, ok := x.shards[id>>epShardBits][id]
	return r, ok
}

func (x *epIndex) len() int {
	if x == nil {
		return 0
	}
	return x.n
}

// cow returns a copy that shares every shard with x until written.
func (x *epIndex) cow() *epIndex {
	out := &epIndex{shards: make(map[uint32]map[uint32]endpointRef, len(x.shards)), n: x.n, owned: make(map[uint32]bool)}
	for k, v := range x.shards {
		out.shards[k] = v
	}
	return out
}

// shard returns shard k for writing, copying it first if it is shared.
func (x *epIndex) shard(k uint32) map[uint32]endpointRef {
	m := x.shards[k]
	if x.owned != nil && !x.owned[k] {
		c := make(map[uint32]endpointRef, len(m)+1)
		for id, r := range m {
			c[id] = r
		}
		m = c
		x.shards[k] = m
		x.owned[k] = true
	}
	if m == nil {
		m = make(map[uint32]endpointRef)
		x.shards[k] = m
	}
	return m
}

func (x *epIndex) put(id uint32, r endpointRef) {
	m := x.shard(id >> epShardBits)
	if _, ok := m[id]; !ok {
		x.n++
	}
	m[id] = r
}

func (x *epIndex) del(id uint32) {
	k := id >> epShardBits
	if _, ok := x.shards[k][id]; !ok {
		return
	}
	m := x.shard(k)
	delete(m, id)
	x.n--
	if len(m) == 0 {
		delete(x.shards, k)
	}
}
