package pktgen

// The one place where checksum fields are updated incrementally.
//
// RFC 1624, section 3, eqn. 3:
//
//	HC' = ~(~HC + ~m + m')
//
// A frame differs from the template only in a few 16-bit words (source
// address, source port, TCP sequence number). Every frame is derived from
// the template, never from the frame previously sent in the same UMEM
// frame, so HC and every m are the template's: ~HC + sum(~m) is one
// constant per checksum (base), computed once, and a frame costs the sum of
// its new words m' plus a fold. Eqn. 3 never yields 0xFFFF (-0) from a
// non-zero sum, so the result equals a full recomputation bit for bit; UDP's
// rule that a computed 0 is sent as 0xFFFF (RFC 768; mandatory over IPv6,
// RFC 8200 section 8.1) is applied by the caller.

// csumBase returns ~HC + sum(~m) over the template's checksum hc and its
// words that frames replace.
func csumBase(hc uint16, words ...uint16) uint32 {
	s := uint32(^hc)
	for _, w := range words {
		s += uint32(^w)
	}
	return s
}

// csumFinish folds base + sum(m') (accumulated by the caller in 32 bits,
// below 2^24) with end-around carries and complements it.
func csumFinish(s uint32) uint16 {
	s = (s & 0xffff) + (s >> 16)
	s = (s & 0xffff) + (s >> 16)
	return ^uint16(s)
}

// words32 is the sum of the two 16-bit words of v.
func words32(v uint32) uint32 { return v>>16 + v&0xffff }

// words64 is the sum of the four 16-bit words of v.
func words64(v uint64) uint32 {
	return uint32(v>>48) + uint32(v>>32&0xffff) + uint32(v>>16&0xffff) + uint32(v&0xffff)
}
