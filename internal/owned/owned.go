// Package owned stores into sync/atomic values with plain stores, for the
// writer of a lock-free table entry that no one else writes and that
// readers ignore until it is published, and for counters whose writers
// share a lock.
//
// xdpgate's tables (conntrack records, affinity slots) keep every field in
// a sync/atomic value because readers look at them without locks; a
// generation or state word tells a reader whether what it read is whole,
// as in a seqlock. Filling a new entry with atomic stores pays a locked
// instruction per word on amd64 (an XCHG, which drains the store buffer):
// a new connection writes about twenty words, which cost more than the
// rest of its insert. While an entry is unpublished (its control word
// says free, building, empty or deleted, so a reader discards it) its
// writer may use these plain stores instead; the atomic store of the
// control word that publishes the entry orders them before it (every store
// is ordered on amd64; STLR on arm64). The control word must have been
// made unpublished by an atomic operation that precedes these stores (a
// CAS, or a store followed by a lock hand-over).
//
// A lock-free reader may load such a word while it is written: aligned
// words do not tear on the 64-bit platforms xdpgate runs on (the Go memory
// model's rule for word-sized races), and a reader that reads a new value
// sees the control word's change when it re-checks it, because the atomic
// operation that unpublished the entry precedes these stores and the
// machine keeps that order for an observer using atomic loads (amd64 orders
// all stores; arm64 has acquire loads and is multi-copy atomic). That last
// step is the hardware's guarantee, not the Go memory model's, which says
// nothing about what a racy read implies. go:norace keeps the race
// detector from reporting the intended race; every other access stays
// atomic and checked.
package owned

import (
	"sync/atomic"
	"unsafe"
)

// The casts rely on each atomic type being its word and nothing else
// (their other fields have size zero).
var (
	_ [unsafe.Sizeof(atomic.Uint32{}) - 4]byte
	_ [4 - unsafe.Sizeof(atomic.Uint32{})]byte
	_ [unsafe.Sizeof(atomic.Uint64{}) - 8]byte
	_ [8 - unsafe.Sizeof(atomic.Uint64{})]byte
	_ [unsafe.Sizeof(atomic.Int64{}) - 8]byte
	_ [8 - unsafe.Sizeof(atomic.Int64{})]byte
)

// Set32 stores v in *p with a plain store.
//
//go:norace
func Set32(p *atomic.Uint32, v uint32) { *(*uint32)(unsafe.Pointer(p)) = v }

// Set64 stores v in *p with a plain store.
//
//go:norace
func Set64(p *atomic.Uint64, v uint64) { *(*uint64)(unsafe.Pointer(p)) = v }

// SetI64 stores v in *p with a plain store.
//
//go:norace
func SetI64(p *atomic.Int64, v int64) { *(*int64)(unsafe.Pointer(p)) = v }

// Add64 adds d to *p with a plain load and store, for a counter whose
// writers all hold one lock (readers load it atomically and may see it a
// moment late, as with any counter).
//
//go:norace
func Add64(p *atomic.Uint64, d uint64) { *(*uint64)(unsafe.Pointer(p)) += d }

// AddI64 is Add64 for an atomic.Int64.
//
//go:norace
func AddI64(p *atomic.Int64, d int64) { *(*int64)(unsafe.Pointer(p)) += d }
