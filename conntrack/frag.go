package conntrack

import (
	"net/netip"
	"sync/atomic"

	"github.com/xdpgate/xdpgate/nat"
)

// fragBucket is the probe window of the fragment table: one bucket.
const fragBucket = 8

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
}

const (
	fragFree    = 0
	fragWriting = 1
	fragLive    = 2
)

type fragTable struct {
	slots   []fragEntry
	nb      uint64
	timeout int64
}

func (ft *fragTable) init(n int, timeout int64) {
	ft.slots = make([]fragEntry, n)
	ft.nb = uint64(n / fragBucket)
	ft.timeout = timeout
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
// fragments until Timeouts.Fragment after now. A full bucket loses its
// entry closest to expiry (counted in FragmentEvictions). It never blocks
// and never allocates.
func (t *Table) RememberFragment(k FragKey, f Flow, now int64) {
	if k.Family != IPv4 && k.Family != IPv6 {
		return
	}
	ft := &t.frags
	h := k.hash(&t.key)
	w := ft.bucket(h)
	for attempt := 0; attempt < 4; attempt++ {
		victim, evict := -1, false
		var vc uint64
		var vexp int64
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
				break
			}
			if exp <= now {
				if victim < 0 || evict {
					victim, vc, evict = i, c, false
				}
			} else if victim < 0 || evict && exp < vexp {
				victim, vc, vexp, evict = i, c, exp, true
			}
		}
		if victim < 0 {
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
		e.expires.Store(now + ft.timeout)
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
		st := t.stripe(uint32(h))
		st.fragRemembered.Add(1)
		if evict {
			st.fragEvictions.Add(1)
		}
		return
	}
}

// LookupFragment returns the flow remembered for datagram k by
// RememberFragment. A miss is counted in FragmentMisses: the caller drops
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
