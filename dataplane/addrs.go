package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// InterfaceAddrs returns the global unicast addresses of the named
// interfaces, unmapped, sorted and without duplicates: the addresses
// replies to masqueraded flows arrive on (the pipeline masquerades to the
// egress interface's address) and, in standalone mode, the default node
// addresses.
func InterfaceAddrs(names []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, n := range names {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", n, err)
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("interface %s addresses: %w", n, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if ok && ip.Unmap().IsGlobalUnicast() {
				out = append(out, ip.Unmap())
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}
