package nat

import "net/netip"

// AddrSum is the checksum difference (ChecksumAdjust's diff: the sum of
// ~m + m' over the changed 16-bit words) of rewriting address old to new,
// as SetSrc and SetDst compute it for the IPv4 header checksum and the
// transport pseudo-header: two words for IPv4, eight for IPv6. Both must
// be of one family. For callers that precompute a rewrite applied
// elsewhere (the dataplane's XDP fast path), so the arithmetic stays here.
func AddrSum(old, new netip.Addr) uint32 {
	if old.Is4() {
		o, n := old.As4(), new.As4()
		return diff4(o[:], n[:])
	}
	o, n := old.As16(), new.As16()
	return diff16B(o[:], n[:])
}

// PortSum is the checksum difference of rewriting port old to new: 0 when
// they are equal (SetSrc and SetDst leave an unchanged port out of the
// sum).
func PortSum(old, new uint16) uint32 {
	if old == new {
		return 0
	}
	return diff16(old, new)
}
