// Package statefile keeps a table's memory in a file so that the next
// xdpgate process on the same boot can adopt it: a fixed header page
// followed by the table's data, mapped MAP_SHARED from a file on tmpfs
// (by default under /run/xdpgate). Every store the tables make is a store
// to the page cache, so the state survives SIGTERM, an upgrade and a
// crash (SIGKILL) of the process alike, and costs nothing per access: the
// mapping is ordinary memory (MAP_POPULATE faults it in at Open).
//
// The header (one 4 KiB page) is written once, when the file is created,
// and never changed afterwards:
//
//	magic     "XDPGSTAT"
//	kind      the table ("conntrack", "affinity"), 16 bytes
//	version   the table's format version (its record layout)
//	boot      the kernel's boot ID: times in the data are CLOCK_MONOTONIC
//	          nanoseconds (Now), meaningful on this boot only
//	seed      the table's hash seed
//	size      data bytes after the header page
//	params    up to 16 words the table must agree on (capacities, layout)
//	checksum  xxhash64 of everything above
//
// Open adopts a file whose header is intact and matches what the caller
// asks for, and otherwise replaces it with an empty one and says why in
// File.Discarded (an error wrapping ErrIncompatible that names the
// reason: "checksum", "version 3, want 4", "seed", ...). What the data
// means, and how to repair what a crash left half-written, is the table's
// business (conntrack.NewShared, affinity.NewShared).
//
// Outside Linux, Open returns an error wrapping ErrNotSupported and the
// tables live in ordinary memory.
package statefile
