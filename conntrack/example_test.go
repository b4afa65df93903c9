package conntrack_test

import (
	"fmt"
	"net/netip"

	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/nat"
)

// Example shows the per-packet use by a poller: look the packet's tuple up;
// on a miss choose an endpoint and insert; apply the packet with Touch;
// rewrite the packet to Flow.Rewrite. The reply finds the same flow.
func Example() {
	ct, err := conntrack.New(conntrack.Config{MaxFlows: 1024})
	if err != nil {
		panic(err)
	}
	now := int64(0) // the caller's clock, in nanoseconds
	client := netip.MustParseAddrPort("198.18.0.10:40000")
	vip := netip.MustParseAddrPort("198.18.1.1:80")
	endpoint := netip.MustParseAddrPort("198.18.2.7:8080")
	node := netip.MustParseAddrPort("198.18.3.1:50001") // SNAT (masquerade)

	// First packet, client -> VIP (SYN).
	k := conntrack.MakeTuple(client.Addr(), vip.Addr(), client.Port(), vip.Port(), nat.ProtoTCP)
	f, ok := ct.Lookup(k, now)
	if !ok {
		var res conntrack.InsertResult
		f, res = ct.Insert(k, conntrack.MakeTranslation(endpoint, node), 7 /* service port */, 42 /* endpoint */, now)
		fmt.Println("insert:", res)
	}
	ct.Touch(f.Handle, f.Dir, conntrack.TCPSyn, 60, now)
	fmt.Println("forward as:", f.Rewrite)

	// The endpoint answers to the SNAT address (SYN+ACK).
	r := conntrack.MakeTuple(endpoint.Addr(), node.Addr(), endpoint.Port(), node.Port(), nat.ProtoTCP)
	f, ok = ct.Lookup(r, now+1000)
	ct.Touch(f.Handle, f.Dir, conntrack.TCPSyn|conntrack.TCPAck, 60, now+1000)
	fmt.Println("reply found:", ok, f.Dir, "endpoint", f.Endpoint)
	fmt.Println("reply as:", f.Rewrite)
	e, _ := ct.Get(f.Handle)
	fmt.Println("state:", e.State)
	// Output:
	// insert: inserted
	// forward as: 6 198.18.3.1:50001 -> 198.18.2.7:8080
	// reply found: true reply endpoint 42
	// reply as: 6 198.18.1.1:80 -> 198.18.0.10:40000
	// state: SYN_RECV
}
