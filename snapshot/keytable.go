package snapshot

import (
	"encoding/binary"
	"math/bits"
	"net/netip"

	"github.com/xdpgate/xdpgate/nat"
)

// keyTable answers the first question about every new flow: is its
// destination a frontend, a NodePort, a node address? It replaces Go maps
// keyed by netip.Addr, whose generic hashing of the address and its zone
// handle cost about as much as the rest of the classification: a
// pointer-free open-addressing table (linear probing, at most half full)
// with a multiply-xorshift hash of the key's words. It is built once per
// snapshot and never written after, so lookups need no synchronisation.
// Its keys come from the Services an operator configured, not from
// packets, so nobody sending traffic can shape its clusters.
type keyTable struct {
	slots []keySlot
	mask  uint64
}

// keySlot is one key and its value; meta 0 marks an empty slot.
type keySlot struct {
	a0, a1 uint64 // the address (addrWords; zero for NodePorts)
	meta   uint64 // keyMeta
	sp     int32
	kind   FrontendKind
}

// key spaces: one table serves three lookups.
const (
	spaceFrontend = 1 + iota
	spaceNodePort
	spaceNodeAddr
)

// keyMeta packs everything in a key but the address, with bit 63 set so
// that no key's meta is 0. v6 distinguishes NodePorts by family, which
// have no address.
func keyMeta(space uint8, v6 bool, port uint16, proto nat.Proto) uint64 {
	m := 1<<63 | uint64(space)<<32 | uint64(proto)<<16 | uint64(port)
	if v6 {
		m |= 1 << 40
	}
	return m
}

// addrWords returns a's 16-byte form as two words; an IPv4 address and its
// IPv4-mapped IPv6 form have the same words.
func addrWords(a netip.Addr) (uint64, uint64) {
	if !a.IsValid() {
		return 0, 0
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

func keyHash(a0, a1, meta uint64) uint64 {
	h := a0*0x9e3779b97f4a7c15 ^ bits.RotateLeft64(a1*0xc2b2ae3d27d4eb4f, 31) ^ meta*0x165667b19e3779f9
	h ^= h >> 32
	h *= 0xd6e8feb86659fd93
	h ^= h >> 29
	return h
}

// keyEntry is a key and value to build the table from.
type keyEntry struct {
	addr netip.Addr
	meta uint64
	sp   int32
	kind FrontendKind
}

// newKeyTable builds a table holding entries, whose keys must be distinct.
func newKeyTable(entries []keyEntry) keyTable {
	n := 8
	for n < 2*len(entries) {
		n *= 2
	}
	t := keyTable{slots: make([]keySlot, n), mask: uint64(n - 1)}
	for _, e := range entries {
		a0, a1 := addrWords(e.addr)
		i := keyHash(a0, a1, e.meta) & t.mask
		for t.slots[i].meta != 0 {
			i = (i + 1) & t.mask
		}
		t.slots[i] = keySlot{a0: a0, a1: a1, meta: e.meta, sp: e.sp, kind: e.kind}
	}
	return t
}

// get returns the slot of the key (a, meta), or nil.
func (t *keyTable) get(a netip.Addr, meta uint64) *keySlot {
	if len(t.slots) == 0 {
		return nil
	}
	a0, a1 := addrWords(a)
	for i := keyHash(a0, a1, meta) & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.meta == meta && s.a0 == a0 && s.a1 == a1 {
			return s
		}
		if s.meta == 0 {
			return nil
		}
	}
}
