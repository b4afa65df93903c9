// Package testaddr numbers test addresses inside the ranges xdpgate's tests
// may use: 198.18.0.0/15 (RFC 2544, benchmarking) and 2001:2::/48 (RFC
// 5180, benchmarking). Unit tests and benchmarks of the pure-Go tables use
// it to make many distinct clients without touching any other address.
package testaddr

import "net/netip"

// V4 returns the i-th address of 198.18.0.0/15 (i modulo 2^17).
func V4(i uint32) netip.Addr {
	i &= 1<<17 - 1
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)})
}

// V6 returns the i-th address of 2001:2::/48.
func V6(i uint32) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
}

// Mixed returns V4 and V6 addresses alternately: V4(i/2) for even i,
// V6(i/2) for odd i.
func Mixed(i uint32) netip.Addr {
	if i%2 == 0 {
		return V4(i / 2)
	}
	return V6(i / 2)
}
