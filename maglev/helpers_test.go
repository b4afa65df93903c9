package maglev

import "net/netip"

// Test addresses come from 198.18.0.0/15 and 2001:2::/48 only.

// v4 returns the i-th address of 198.18.0.0/15.
func v4(i uint32) netip.Addr {
	i &= 1<<17 - 1
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)})
}

// v6 returns the i-th address of 2001:2::/48.
func v6(i uint32) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
}

// client returns v4 or v6 addresses alternately for i.
func client(i uint32) netip.Addr {
	if i%2 == 0 {
		return v4(i / 2)
	}
	return v6(i / 2)
}

var (
	c1 = netip.MustParseAddr("198.18.0.1")
	c2 = netip.MustParseAddr("198.18.0.2")
	c6 = netip.MustParseAddr("2001:2::1")
)
