package maglev

import "net/netip"

var (
	c1 = netip.MustParseAddr("198.18.0.1")
	c2 = netip.MustParseAddr("198.18.0.2")
	c6 = netip.MustParseAddr("2001:2::1")
)
