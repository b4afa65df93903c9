package e2e

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// TestPrivPMTUThroughNAT: a router behind the gateway with a 1280-byte link
// answers a too-big DF datagram to a ClusterIP with ICMP "fragmentation
// needed" about the translated packet (client -> endpoint); xdpgate
// translates the quote back (client -> ClusterIP), so the client's kernel
// learns the path MTU of the service address.
func TestPrivPMTUThroughNAT(t *testing.T) {
	w := newWorld(t, 1, 0, 1)
	// Endpoint namespace e behind the backend namespace b, over an MTU
	// 1280 link; b routes.
	e := testnet.NewNS(t)
	be := testnet.NewVeth(t, w.b, "be", e, "e", testnet.VethOpts{MTU: 1280})
	w.b.AddAddr(t, be.AName, "198.18.4.1/24")
	e.AddAddr(t, be.BName, "198.18.4.2/24")
	e.AddAddr(t, "lo", "198.18.5.10/32")
	e.AddRoute(t, "198.18.0.0/15", "198.18.4.1")
	w.b.AddRoute(t, "198.18.5.0/24", "198.18.4.2")
	w.g.AddRoute(t, "198.18.5.0/24", "198.18.2.2")
	w.b.Sysctl(t, "net.ipv4.ip_forward=1")
	e.TxOff(t, be.BName)
	ep := netip.MustParseAddr("198.18.5.10")
	identityServers(t, e, ep)

	w.writeManifest(manifest(svc{name: "web4", family: "IPv4", clusterIP: vip4, endpoints: []netip.Addr{ep}}))
	w.start()
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)

	var conn *net.UDPConn
	err := w.c.Do(func() (err error) {
		conn, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(ap(client4(0), 0)), net.UDPAddrFromAddrPort(ap(vip4, 80)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc, _ := conn.SyscallConn()
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
	})
	big := make([]byte, 1400)
	mtu := 0
	for try := 0; try < 20 && mtu != 1280; try++ {
		conn.Write(big) // the first one leaves (1428 < 1500), the router answers
		time.Sleep(100 * time.Millisecond)
		rc.Control(func(fd uintptr) { mtu, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU) })
	}
	if mtu != 1280 {
		t.Errorf("path MTU to %s = %d, want 1280 (ICMP fragmentation needed translated through the NAT)", vip4, mtu)
	}
	if v := metricValue(w.metrics(), `xdpgate_pipeline_packets_total{event="icmp_error"`); v < 1 {
		t.Errorf("icmp_error events = %v, want >= 1", v)
	}
}
