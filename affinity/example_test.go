package affinity_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/maglev"
)

// Example shows the new-flow path of a ClientIP service: affinity lookup,
// eligibility check, Maglev choice on a miss, Pin.
func Example() {
	table, err := affinity.New(affinity.Config{Capacity: 1000})
	if err != nil {
		panic(err)
	}
	// The chain of usable endpoints and their stable Maglev identities.
	endpoints := []netip.AddrPort{
		netip.MustParseAddrPort("198.18.1.1:8080"),
		netip.MustParseAddrPort("198.18.1.2:8080"),
		netip.MustParseAddrPort("198.18.1.3:8080"),
	}
	ids := []uint32{101, 102, 103} // the control plane's endpoint IDs
	backends := make([]maglev.Backend, len(endpoints))
	for i, ep := range endpoints {
		backends[i] = maglev.Backend{ID: maglev.BackendID(ep), Weight: 1}
	}
	choice, err := maglev.Build(backends, 0)
	if err != nil {
		panic(err)
	}
	usable := func(id uint32) bool { return id != 0 }

	const svcPort, timeout = 7, affinity.DefaultTimeoutSeconds
	client := netip.MustParseAddr("198.18.0.10")
	newFlow := func(now time.Duration) {
		ep, ok := table.Lookup(svcPort, client, timeout, int64(now))
		hit := ok && usable(ep)
		if !hit {
			ep = ids[choice.Pick(maglev.HashClientIP(client))]
		}
		res := table.Pin(svcPort, client, ep, timeout, int64(now))
		fmt.Printf("t=%v hit=%v pin=%v same=%v\n", now, hit, res, ep == ids[choice.Pick(maglev.HashClientIP(client))])
	}
	newFlow(0)
	newFlow(time.Hour)
	newFlow(5 * time.Hour) // idle 4 h > 3 h: the affinity expired
	// Output:
	// t=0s hit=false pin=inserted same=true
	// t=1h0m0s hit=true pin=refreshed same=true
	// t=5h0m0s hit=false pin=inserted same=true
}
