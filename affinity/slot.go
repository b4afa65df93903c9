package affinity

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
)

// slot is one cell of a shard's open-addressing array: 40 bytes, five
// 64-bit words, no pointers (the garbage collector never scans the array).
// Every word is accessed atomically: writers hold the shard lock, readers
// hold nothing (see doc.go for the protocol).
//
//	ctl   bits  0..31  service port ID
//	      bits 32..33  state: stEmpty, stLive, stTomb
//	      bits 34..63  sequence, +1 on every ctl store (wraps)
//	a0    client address bytes 0..7  (As16, big endian)
//	a1    client address bytes 8..15 (As16, big endian)
//	val   bits  0..31  endpoint ID
//	      bits 32..62  timeoutSeconds in force at the last Pin
//	      bit  63      client is IPv4 (distinguishes 1.2.3.4 from ::ffff:1.2.3.4)
//	seen  last Pin time, nanoseconds of the caller's monotonic clock
type slot struct {
	ctl  atomic.Uint64
	a0   atomic.Uint64
	a1   atomic.Uint64
	val  atomic.Uint64
	seen atomic.Int64
}

// slotBytes is the size of one slot; the capacity arithmetic depends on it.
const slotBytes = 40

// Slot states, kept in ctl bits 32..33. The zero value of a slot is empty,
// so fresh memory from make needs no initialisation.
const (
	stEmpty = 0
	stLive  = 1
	stTomb  = 2
)

const (
	ctlStateShift = 32
	ctlStateMask  = 3 << ctlStateShift
	ctlSeqShift   = 34
	ctlSeqOne     = 1 << ctlSeqShift

	valTimeoutShift = 32
	valTimeoutMask  = 0x7fffffff
	valIs4          = 1 << 63
)

func ctlState(c uint64) uint64 { return (c & ctlStateMask) >> ctlStateShift }
func ctlSvc(c uint64) uint32   { return uint32(c) }

// nextCtl returns the ctl word that follows c with the given service port
// and state: the sequence always advances, so a reader that saw c and sees
// the result knows the slot changed in between.
func nextCtl(c uint64, svc uint32, state uint64) uint64 {
	seq := (c &^ (ctlSeqOne - 1)) + ctlSeqOne // overflow drops the top bit: wraps
	return seq | state<<ctlStateShift | uint64(svc)
}

func valEP(v uint64) uint32      { return uint32(v) }
func valTimeout(v uint64) uint32 { return uint32(v>>valTimeoutShift) & valTimeoutMask }
func valIsV4(v uint64) bool      { return v&valIs4 != 0 }

func makeVal(ep, timeoutSeconds uint32, is4 bool) uint64 {
	v := uint64(ep) | uint64(timeoutSeconds&valTimeoutMask)<<valTimeoutShift
	if is4 {
		v |= valIs4
	}
	return v
}

// expired reports whether an entry last pinned at seen has expired at now
// under timeoutSeconds: the affinity lasts while now - seen < timeout, so
// it is gone exactly at seen + timeout (xt_recent --rcheck --seconds and
// nft set timeouts agree). A seen in the future (another poller's later
// clock reading) counts as fresh.
func expired(seen, now int64, timeoutSeconds uint32) bool {
	return now-seen >= int64(timeoutSeconds)*1e9
}

// key is a table key in the form the slots store it.
type key struct {
	a0, a1 uint64
	svc    uint32
	is4    bool
}

func makeKey(svc uint32, client netip.Addr) key {
	b := client.As16()
	return key{
		a0:  binary.BigEndian.Uint64(b[0:8]),
		a1:  binary.BigEndian.Uint64(b[8:16]),
		svc: svc,
		is4: client.Is4(),
	}
}

// addr rebuilds the client address of a key.
func (k key) addr() netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], k.a0)
	binary.BigEndian.PutUint64(b[8:16], k.a1)
	a := netip.AddrFrom16(b)
	if k.is4 {
		return a.Unmap()
	}
	return a
}
