package conntrack

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/xdpgate/xdpgate/nat"
)

// fragBucket is the probe window of the fragment table: one bucket.
const fragBucket = 8

// Flood resistance of the fragment table. A first fragment whose later
// fragments have not come yet ("unmatched") is remembered for
// fragUnmatchedLife only (or Timeouts.Fragment if shorter); the first later
// fragment found extends it to Timeouts.Fragment. Real datagrams' fragments
// arrive within milliseconds of each other, so spoofed first fragments now
// have to arrive MaxFragments/fragUnmatchedLife a second (4,096/s with the
// defaults) to fill the table, rather than MaxFragments/Timeouts.Fragment
// (about 270/s).
//
// Each source address (hashed into one counter per bucket, so sources that
// share a counter share its budget) may remember at most
// MaxFragments/fragSourceShareDiv first fragments per fragUnmatchedLife
// window while the table is full: beyond that it may reuse only free or
// expired slots or its own entries. A full bucket evicts, among the entries
// of other sources, one of the source with the most first fragments in the
// current window (then the one closest to expiry), and entries that a
// later fragment matched (real datagrams) only when no unmatched one is
// left, so a flood pushes out its own entries first. What it cannot tell apart: a
// flood spoofing many source addresses at more than the rate above.
const (
	fragUnmatchedLife  = int64(2 * time.Second)
	fragSourceShareDiv = 16
)

// FragKey identifies the fragments of one datagram: addresses, protocol and
// the IP identification (IPv4, 16 bits) or fragment header identification
// (IPv6, 32 bits). It is comparable; IPv4 addresses use the first 4 bytes.
type FragKey struct {
	Src, Dst [16]byte
	ID       uint32
	Proto    nat.Proto
	Family   Family
}

// MakeFragKey builds a FragKey from netip addresses; mixed or invalid
// families give the zero key, which never matches.
func MakeFragKey(src, dst netip.Addr, proto nat.Proto, id uint32) FragKey {
	t := MakeTuple(src, dst, 0, 0, proto)
	if t.Family == 0 {
		return FragKey{}
	}
	return FragKey{Src: t.Src, Dst: t.Dst, ID: id, Proto: proto, Family: t.Family}
}

func (k *FragKey) hash(key *hashKey) uint64 {
	a := mix(le64(k.Src[:8])^key[0], le64(k.Src[8:])^key[1])
	b := mix(le64(k.Dst[:8])^key[2], le64(k.Dst[8:])^key[3])
	p := uint64(k.ID)<<32 | uint64(k.Proto)<<8 | uint64(k.Family)
	return mix(a^p^key[3], b^key[0])
}

// fragEntry remembers the Flow decided for the first fragment of a datagram.
// ctl = gen<<2 | fragFree/fragWriting/fragLive; a writer claims a slot by
// CAS (bumping gen), writes, then stores live; readers validate gen like
// flow records (doc.go).
type fragEntry struct {
	ctl      atomic.Uint64
	src, dst [2]atomic.Uint64
	id       atomic.Uint64 // ID<<16 | Proto<<8 | Family
	expires  atomic.Int64
	rwSrc    [2]atomic.Uint64
	rwDst    [2]atomic.Uint64
	rwPorts  atomic.Uint64 // SrcPort<<32 | DstPort<<16 | Proto<<8 | Family
	ids      atomic.Uint64 // ServicePort<<32 | Endpoint
	handle   atomic.Uint64
	dirState atomic.Uint32
	srcSlot  atomic.Uint32 // index into fragTable.srcs of the source | fragMatched
}

// fragMatched marks an entry a later fragment has matched (a real
// datagram): eviction prefers unmatched entries.
const fragMatched = 1 << 31

const (
	fragFree    = 0
	fragWriting = 1
	fragLive    = 2
)

// fragTable is the fragment table: slots (buckets of fragBucket entries)
// and srcs, the per-source counters, each window<<32 | count of first
// fragments remembered in the current fragUnmatchedLife window (updated by
// CAS).
type fragTable struct {
	slots     []fragEntry
	srcs      []atomic.Uint64
	nb        uint64
	timeout   int64 // matched entries
	unmatched int64 // unmatched entries
	share     uint64
}

func (ft *fragTable) init(n int, timeout int64) {
	ft.slots = make([]fragEntry, n)
	ft.nb = uint64(n / fragBucket)
	ft.srcs = make([]atomic.Uint64, ft.nb)
	ft.timeout = timeout
	ft.unmatched = min(timeout, fragUnmatchedLife)
	ft.share = uint64(max(n/fragSourceShareDiv, fragBucket))
}

// window is the current per-source counting window.
func (ft *fragTable) window(now int64) uint64 {
	return uint64(now/ft.unmatched) & 0xffffffff
}

// srcCount returns how many first fragments source slot i remembered in
// the current window.
func (ft *fragTable) srcCount(i uint32, now int64) uint64 {
	v := ft.srcs[i].Load()
	if v>>32 != ft.window(now) {
		return 0
	}
	return v & 0xffffffff
}

// srcAdd counts one first fragment of source slot i.
func (ft *fragTable) srcAdd(i uint32, now int64) {
	w := ft.window(now)
	for {
		v := ft.srcs[i].Load()
		n := uint64(1)
		if v>>32 == w {
			n = v&0xffffffff + 1
		}
		if ft.srcs[i].CompareAndSwap(v, w<<32|n&0xffffffff) {
			return
		}
	}
}

// srcSlot is k's source counter.
func (ft *fragTable) srcSlot(k *FragKey, key *hashKey) uint32 {
	h := mix(le64(k.Src[:8])^key[1], le64(k.Src[8:])^key[2]^uint64(k.Family))
	return uint32(uint64(uint32(h)) * ft.nb >> 32)
}

func (e *fragEntry) match(k *FragKey) bool {
	return e.src[0].Load() == le64(k.Src[:8]) && e.src[1].Load() == le64(k.Src[8:]) &&
		e.dst[0].Load() == le64(k.Dst[:8]) && e.dst[1].Load() == le64(k.Dst[8:]) &&
		e.id.Load() == uint64(k.ID)<<16|uint64(k.Proto)<<8|uint64(k.Family)
}

func (ft *fragTable) bucket(h uint64) []fragEntry {
	b := uint64(uint32(h)) * ft.nb >> 32
	return ft.slots[b*fragBucket : b*fragBucket+fragBucket : b*fragBucket+fragBucket]
}

// RememberFragment stores f, the flow decided for the first fragment of the
// datagram k, so that LookupFragment finds it for the datagram's later
// fragments: for fragUnmatchedLife, extended to Timeouts.Fragment by the
// first later fragment. A full bucket loses an entry of its heaviest
// source (counted in FragmentEvictions); a source over its share of the
// table replaces only its own entries, or is not remembered (its later
// fragments are FragmentMisses). It never blocks and never allocates.
func (t *Table) RememberFragment(k FragKey, f Flow, now int64) {
	if k.Family != IPv4 && k.Family != IPv6 {
		return
	}
	ft := &t.frags
	h := k.hash(&t.key)
	w := ft.bucket(h)
	src := ft.srcSlot(&k, &t.key)
	over := ft.srcCount(src, now) >= ft.share
	for attempt := 0; attempt < 4; attempt++ {
		// victim: a free or expired slot or the key's own entry first; else
		// (evict) the entry of the heaviest source, closest to expiry;
		// a source over its share may evict only its own entries.
		victim, evict := -1, false
		var vc, vload uint64
		var vexp int64
	scan:
		for i := range w {
			e := &w[i]
			c := e.ctl.Load()
			switch c & 3 {
			case fragWriting:
				continue
			case fragFree:
				if victim < 0 || evict {
					victim, vc, evict = i, c, false
				}
				continue
			}
			exp := e.expires.Load()
			if e.match(&k) && e.ctl.Load() == c {
				victim, vc, evict = i, c, false
				break scan
			}
			if exp <= now {
				if victim < 0 || evict {
					victim, vc, evict = i, c, false
				}
				continue
			}
			es := e.srcSlot.Load()
			if over && es&^fragMatched != src {
				continue
			}
			// Eviction order: unmatched first, then the heaviest source,
			// then the closest to expiry.
			load := ft.srcCount(es&^fragMatched, now)
			if es&fragMatched == 0 {
				load += 1 << 33 // above any count
			}
			if victim < 0 || evict && (load > vload || load == vload && exp < vexp) {
				victim, vc, vexp, vload, evict = i, c, exp, load, true
			}
		}
		if victim < 0 {
			if over {
				break // over its share, and nothing of its own to replace
			}
			continue // every slot being written: retry
		}
		e := &w[victim]
		gen := vc>>2 + 1
		if !e.ctl.CompareAndSwap(vc, gen<<2|fragWriting) {
			continue
		}
		e.src[0].Store(le64(k.Src[:8]))
		e.src[1].Store(le64(k.Src[8:]))
		e.dst[0].Store(le64(k.Dst[:8]))
		e.dst[1].Store(le64(k.Dst[8:]))
		e.id.Store(uint64(k.ID)<<16 | uint64(k.Proto)<<8 | uint64(k.Family))
		e.expires.Store(now + ft.unmatched)
		e.srcSlot.Store(src)
		rw := &f.Rewrite
		e.rwSrc[0].Store(le64(rw.Src[:8]))
		e.rwSrc[1].Store(le64(rw.Src[8:]))
		e.rwDst[0].Store(le64(rw.Dst[:8]))
		e.rwDst[1].Store(le64(rw.Dst[8:]))
		e.rwPorts.Store(uint64(rw.SrcPort)<<32 | uint64(rw.DstPort)<<16 | uint64(rw.Proto)<<8 | uint64(rw.Family))
		e.ids.Store(uint64(f.ServicePort)<<32 | uint64(f.Endpoint))
		e.handle.Store(uint64(f.Handle))
		e.dirState.Store(uint32(f.Dir)<<8 | uint32(f.State))
		e.ctl.Store(gen<<2 | fragLive)
		ft.srcAdd(src, now)
		st := t.stripe(uint32(h))
		st.fragRemembered.Add(1)
		if evict {
			st.fragEvictions.Add(1)
		}
		return
	}
}

// LookupFragment returns the flow remembered for datagram k by
// RememberFragment, extending the entry's life to Timeouts.Fragment. A miss is counted in FragmentMisses: the caller drops
// the fragment (a non-first fragment that arrived before its first one, or
// after the entry expired). It never blocks and never allocates.
func (t *Table) LookupFragment(k FragKey, now int64) (Flow, bool) {
	ft := &t.frags
	h := k.hash(&t.key)
	w := ft.bucket(h)
	for i := range w {
		e := &w[i]
		c := e.ctl.Load()
		if c&3 != fragLive || !e.match(&k) {
			continue
		}
		var f Flow
		rw := &f.Rewrite
		putLE64(rw.Src[:8], e.rwSrc[0].Load())
		putLE64(rw.Src[8:], e.rwSrc[1].Load())
		putLE64(rw.Dst[:8], e.rwDst[0].Load())
		putLE64(rw.Dst[8:], e.rwDst[1].Load())
		p := e.rwPorts.Load()
		rw.SrcPort, rw.DstPort, rw.Proto, rw.Family = uint16(p>>32), uint16(p>>16), nat.Proto(p>>8), Family(p)
		ids := e.ids.Load()
		f.ServicePort, f.Endpoint = uint32(ids>>32), uint32(ids)
		f.Handle = Handle(e.handle.Load())
		ds := e.dirState.Load()
		f.Dir, f.State = Dir(ds>>8&1), State(ds)
		exp := e.expires.Load()
		if e.ctl.Load() != c || exp <= now {
			continue
		}
		if ext := now + ft.timeout; exp < ext {
			// Fails if a writer reusing the slot stored its expiry meanwhile;
			// a writer that has not yet stored it overwrites this.
			e.expires.CompareAndSwap(exp, ext)
			e.srcSlot.Or(fragMatched)
		}
		t.stripe(uint32(h)).fragHits.Add(1)
		return f, true
	}
	t.stripe(uint32(h)).fragMisses.Add(1)
	return Flow{}, false
}

func putLE64(b []byte, v uint64) {
	_ = b[7]
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	b[4], b[5], b[6], b[7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
}
