package conntrack

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/xdpgate/xdpgate/internal/owned"
	"github.com/xdpgate/xdpgate/nat"
)

// Flow records. Every field is a sync/atomic value because a record can be
// recycled while a reader is looking at it; the reader detects that with the
// generation in ctl (see doc.go). None of these types holds a pointer, so
// the record arrays are never scanned by the garbage collector.

// recHdr is the family-independent part of a flow record. Its first 24
// bytes (ctl, svc, ep, last) and the tuples that follow it in rec4/rec6 are
// what a lookup reads; the counters, which only Touch writes, are in
// recCounters at the end of the record.
type recHdr struct {
	// ctl packs the generation and the mutable protocol state:
	//   bits 63..32 generation: odd = live, even = free or being built
	//   bits 31..24 IP protocol (immutable while live)
	//   bits 23..16 flags (flagReplied, flagCloserReply, flagAssured)
	//   bits  7..0  State
	// Deletion and state transitions are CASes on ctl, so a transition can
	// never land on a later incarnation of the record.
	ctl atomic.Uint64
	// svc and ep are immutable while live.
	svc, ep atomic.Uint32
	// last is the last-seen time (Config.TouchResolution granularity).
	last atomic.Int64
}

// recCounters counts per direction (index Dir). Approximate: see Touch.
// nxt is TCP's minimal sequence tracking (seq.go): per direction, the
// sequence number the next segment from that side should carry, 0 while
// unknown. Only Touch writes these words.
type recCounters struct {
	pkts, bytes [2]atomic.Uint64
	nxt         [2]atomic.Uint32
}

// words4 is an IPv4 tuple in words: addresses little-endian as in Tuple, ports
// sport<<16|dport. The protocol lives in recHdr.ctl.
type words4 struct {
	src, dst, ports atomic.Uint32
}

// rec4 is an IPv4 flow record: 88 bytes.
type rec4 struct {
	recHdr
	t [2]words4 // indexed by Dir
	recCounters
}

// words6 is an IPv6 tuple in words.
type words6 struct {
	src, dst [2]atomic.Uint64
	ports    atomic.Uint32
}

// rec6 is an IPv6 flow record: 144 bytes.
type rec6 struct {
	recHdr
	t [2]words6
	recCounters
}

const (
	genShift        = 32
	protoShift      = 24
	flagShift       = 16
	stateMask       = 0xff
	flagReplied     = 1 // a reply-direction packet was seen
	flagCloserReply = 2 // the first FIN came in the reply direction
	// flagAssured: the flow proved both ends are real, as nf_conntrack's
	// IPS_ASSURED: a TCP handshake completed (the originator's ACK after
	// the SYN-ACK, or a reply to a picked-up flow), or for other
	// protocols a reply followed by more traffic from the originator.
	// Eviction never removes an assured flow to make room (insert.go).
	flagAssured = 4
)

func ctlGen(c uint64) uint32           { return uint32(c >> genShift) }
func ctlLive(c uint64) bool            { return c>>genShift&1 == 1 }
func ctlProto(c uint64) nat.Proto      { return nat.Proto(c >> protoShift) }
func ctlFlags(c uint64) uint8          { return uint8(c >> flagShift) }
func ctlState(c uint64) State          { return State(c & stateMask) }
func ctlFree(gen uint32) uint64        { return uint64(gen) << genShift }
func ports(sport, dport uint16) uint32 { return uint32(sport)<<16 | uint32(dport) }

func makeCtl(gen uint32, proto nat.Proto, flags uint8, s State) uint64 {
	return uint64(gen)<<genShift | uint64(proto)<<protoShift | uint64(flags)<<flagShift | uint64(s)
}

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// store fills the tuple of a record being built (internal/owned).
func (w *words4) store(k *Tuple) {
	owned.Set32(&w.src, le32(k.Src[:4]))
	owned.Set32(&w.dst, le32(k.Dst[:4]))
	owned.Set32(&w.ports, ports(k.SrcPort, k.DstPort))
}

func (w *words4) load(proto nat.Proto) Tuple {
	var k Tuple
	binary.LittleEndian.PutUint32(k.Src[:4], w.src.Load())
	binary.LittleEndian.PutUint32(k.Dst[:4], w.dst.Load())
	p := w.ports.Load()
	k.SrcPort, k.DstPort, k.Proto, k.Family = uint16(p>>16), uint16(p), proto, IPv4
	return k
}

// store fills the tuple of a record being built (internal/owned).
func (w *words6) store(k *Tuple) {
	owned.Set64(&w.src[0], le64(k.Src[:8]))
	owned.Set64(&w.src[1], le64(k.Src[8:]))
	owned.Set64(&w.dst[0], le64(k.Dst[:8]))
	owned.Set64(&w.dst[1], le64(k.Dst[8:]))
	owned.Set32(&w.ports, ports(k.SrcPort, k.DstPort))
}

func (w *words6) load(proto nat.Proto) Tuple {
	var k Tuple
	binary.LittleEndian.PutUint64(k.Src[:8], w.src[0].Load())
	binary.LittleEndian.PutUint64(k.Src[8:], w.src[1].Load())
	binary.LittleEndian.PutUint64(k.Dst[:8], w.dst[0].Load())
	binary.LittleEndian.PutUint64(k.Dst[8:], w.dst[1].Load())
	p := w.ports.Load()
	k.SrcPort, k.DstPort, k.Proto, k.Family = uint16(p>>16), uint16(p), proto, IPv6
	return k
}

func (w *words6) match(k *Tuple) bool {
	return w.src[0].Load() == le64(k.Src[:8]) && w.src[1].Load() == le64(k.Src[8:]) &&
		w.dst[0].Load() == le64(k.Dst[:8]) && w.dst[1].Load() == le64(k.Dst[8:]) &&
		w.ports.Load() == ports(k.SrcPort, k.DstPort)
}

// Handle names one incarnation of a flow record: generation<<32 |
// family<<31 | record index. It stays valid until the flow is deleted,
// evicted or expires; after that every operation on it reports false (the
// generation no longer matches), even when the record is reused. The zero
// Handle is never valid.
type Handle uint64

func makeHandle(gen uint32, fam6 bool, idx uint32) Handle {
	h := Handle(gen)<<32 | Handle(idx)
	if fam6 {
		h |= 1 << 31
	}
	return h
}

func (h Handle) gen() uint32 { return uint32(h >> 32) }
func (h Handle) fam6() bool  { return h>>31&1 == 1 }
func (h Handle) idx() uint32 { return uint32(h) & idxMask }
