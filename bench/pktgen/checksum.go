package pktgen

// Checksums are updated incrementally with nat.ChecksumAdjust (RFC 1624,
// eqn. 3: HC' = ~(~HC + ~m + m')).
//
// A frame differs from the template only in a few 16-bit words (source
// address, source port, TCP sequence number). Every frame is derived from
// the template, never from the frame previously sent in the same UMEM
// frame, so HC and every m are the template's: sum(~m) is one constant per
// checksum, computed once, and a frame costs the sum of its new words m'
// plus a fold. Eqn. 3 never yields 0xFFFF (-0) from a non-zero sum, so the
// result equals a full recomputation bit for bit; UDP's rule that a
// computed 0 is sent as 0xFFFF (RFC 768; mandatory over IPv6, RFC 8200
// section 8.1) is applied by the caller.

// complementSum returns sum(~m) over the template's words that frames
// replace.
func complementSum(words []uint16) uint32 {
	var s uint32
	for _, w := range words {
		s += uint32(^w)
	}
	return s
}

// words32 is the sum of the two 16-bit words of v.
func words32(v uint32) uint32 { return v>>16 + v&0xffff }

// words64 is the sum of the four 16-bit words of v.
func words64(v uint64) uint32 {
	return uint32(v>>48) + uint32(v>>32&0xffff) + uint32(v>>16&0xffff) + uint32(v&0xffff)
}
