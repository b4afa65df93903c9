package dataplane

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

const (
	xdpPass     = 2
	xdpRedirect = 4
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// pkt describes a test frame; build serialises it with gopacket.
type pkt struct {
	vlans    []uint16 // outer first
	src, dst string
	proto    layers.IPProtocol
	sport    uint16
	dport    uint16
	fragMF   bool
	fragOff  uint16 // IPv4 fragment offset in 8-byte units
	v6ext    string // "hbh", "frag0", "frag8", "esp": an IPv6 extension header first
	icmpType uint8
	icmpCode uint8
	inner    *pkt // embedded packet of an ICMP error
}

func (p pkt) l3(t *testing.T) []gopacket.SerializableLayer {
	t.Helper()
	src, dst := netip.MustParseAddr(p.src), netip.MustParseAddr(p.dst)
	var ls []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: p.proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		if p.fragMF {
			ip.Flags = layers.IPv4MoreFragments
		}
		ip.FragOffset = p.fragOff
		nl = ip
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: p.proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		nl = ip
		ls = append(ls, ip)
		switch p.v6ext {
		case "hbh": // hop-by-hop, 8 bytes: next header, length 0, PadN
			ip.NextHeader = layers.IPProtocolIPv6HopByHop
			ls = append(ls, gopacket.Payload([]byte{byte(p.proto), 0, 1, 4, 0, 0, 0, 0}))
		case "frag0", "frag8": // fragment header, M set
			ip.NextHeader = layers.IPProtocolIPv6Fragment
			off := byte(0)
			if p.v6ext == "frag8" {
				off = 8
			}
			ls = append(ls, gopacket.Payload([]byte{byte(p.proto), 0, 0, off | 1, 0, 0, 0, 1}))
		case "esp":
			ip.NextHeader = layers.IPProtocolESP
			ls = append(ls, gopacket.Payload([]byte{0, 0, 0, 1, 0, 0, 0, 1}))
		}
	}
	switch p.proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), SYN: true, Window: 1000}
		tcp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, tcp)
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
		udp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, udp, gopacket.Payload([]byte("hello")))
	case layers.IPProtocolICMPv4:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(p.icmpType, p.icmpCode)})
		if p.inner != nil {
			ls = append(ls, gopacket.Payload(p.inner.bytes(t, false)))
		} else {
			ls = append(ls, gopacket.Payload(make([]byte, 8)))
		}
	case layers.IPProtocolICMPv6:
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(p.icmpType, p.icmpCode)}
		icmp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, icmp, gopacket.Payload(make([]byte, 4))) // unused/MTU word
		if p.inner != nil {
			ls = append(ls, gopacket.Payload(p.inner.bytes(t, false)))
		}
	}
	return ls
}

func (p pkt) bytes(t *testing.T, eth bool) []byte {
	t.Helper()
	var ls []gopacket.SerializableLayer
	if eth {
		etype := layers.EthernetTypeIPv4
		if netip.MustParseAddr(p.src).Is6() {
			etype = layers.EthernetTypeIPv6
		}
		first := etype
		if len(p.vlans) > 0 {
			first = layers.EthernetTypeQinQ
			if len(p.vlans) == 1 {
				first = layers.EthernetTypeDot1Q
			}
		}
		ls = append(ls, &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: first})
		for i, id := range p.vlans {
			next := etype
			if i+1 < len(p.vlans) {
				next = layers.EthernetTypeDot1Q
			}
			ls = append(ls, &layers.Dot1Q{VLANIdentifier: id, Type: next})
		}
	}
	ls = append(ls, p.l3(t)...)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize %+v: %v", p, err)
	}
	return buf.Bytes()
}

func arpFrame(t *testing.T) []byte {
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true},
		&layers.Ethernet{SrcMAC: macA, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6,
			ProtAddressSize: 4, Operation: layers.ARPRequest, SourceHwAddress: macA,
			SourceProtAddress: []byte{198, 18, 0, 1}, DstHwAddress: make([]byte, 6),
			DstProtAddress: []byte{198, 18, 0, 10}})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testRules() Rules {
	a := netip.MustParseAddr
	return Rules{
		Frontends: []L4Addr{
			{a("198.18.1.1"), 80, 6},
			{a("2001:2::1:1"), 53, 17},
		},
		NodePorts:     []PortProto{{30080, 6}, {30053, 17}},
		NodePortAddrs: []netip.Addr{a("198.18.0.10"), a("2001:2::10")},
		Endpoints: []L4Addr{
			{a("198.18.2.2"), 8080, 6},
			{a("2001:2::2:2"), 8080, 6},
		},
		SNATAddrs:   []netip.Addr{a("198.18.0.20")},
		LocalAddrs:  []netip.Addr{a("198.18.0.10"), a("198.18.0.20"), a("2001:2::10")},
		SNATPortMin: 40000,
		SNATPortMax: 40100,
	}
}

// newTestInstance loads the classifier with testRules and an unbound AF_XDP
// socket in XSKMAP slot 0, so that a redirect verdict is observable with
// BPF_PROG_RUN (queue 0).
func newTestInstance(t *testing.T) (*Classifier, *classifierInstance) {
	t.Helper()
	testnet.RequirePriv(t)
	c, err := NewClassifier(ClassifierConfig{})
	if err != nil {
		t.Fatalf("NewClassifier: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Update(testRules()); err != nil {
		t.Fatalf("Update: %v", err)
	}
	ci, err := c.instance(1)
	if err != nil {
		t.Fatalf("instance: %v", err)
	}
	t.Cleanup(func() { ci.close() })
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket(AF_XDP): %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := ci.xsks.Put(uint32(0), uint32(fd)); err != nil {
		t.Fatalf("xsks put: %v", err)
	}
	return c, ci
}

func runProg(t *testing.T, prog *ebpf.Program, frame []byte) uint32 {
	t.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		t.Fatalf("prog.Run: %v", err)
	}
	return ret
}

func TestPrivClassifier(t *testing.T) {
	c, ci := newTestInstance(t)
	tcp, udp := layers.IPProtocolTCP, layers.IPProtocolUDP
	icmp4, icmp6 := layers.IPProtocolICMPv4, layers.IPProtocolICMPv6
	fe := func(s ClassifierCounters) uint64 { return s.RedirectFrontend }
	np := func(s ClassifierCounters) uint64 { return s.RedirectNodePort }
	ep := func(s ClassifierCounters) uint64 { return s.RedirectEndpoint }
	sn := func(s ClassifierCounters) uint64 { return s.RedirectSNAT }
	ie := func(s ClassifierCounters) uint64 { return s.RedirectICMPError }
	notOwned := func(s ClassifierCounters) uint64 { return s.PassNotOwned }
	pIcmp := func(s ClassifierCounters) uint64 { return s.PassICMP }
	notIP := func(s ClassifierCounters) uint64 { return s.PassNotIP }
	frag := func(s ClassifierCounters) uint64 { return s.PassFragment }
	rfrag := func(s ClassifierCounters) uint64 { return s.RedirectFragment }
	trunc := func(s ClassifierCounters) uint64 { return s.PassTruncated }
	node := func(s ClassifierCounters) uint64 { return s.PassNodeTraffic }

	cases := []struct {
		name    string
		frame   func(t *testing.T) []byte
		want    uint32
		counter func(ClassifierCounters) uint64
	}{
		{"frontend v4 tcp", pkt{src: "198.18.9.9", dst: "198.18.1.1", proto: tcp, sport: 1234, dport: 80}.frame, xdpRedirect, fe},
		{"frontend wrong port", pkt{src: "198.18.9.9", dst: "198.18.1.1", proto: tcp, sport: 1234, dport: 81}.frame, xdpPass, notOwned},
		{"frontend wrong proto", pkt{src: "198.18.9.9", dst: "198.18.1.1", proto: udp, sport: 1234, dport: 80}.frame, xdpPass, notOwned},
		{"frontend v6 udp", pkt{src: "2001:2::9:9", dst: "2001:2::1:1", proto: udp, sport: 1234, dport: 53}.frame, xdpRedirect, fe},
		{"nodeport v4", pkt{src: "198.18.9.9", dst: "198.18.0.10", proto: tcp, sport: 1234, dport: 30080}.frame, xdpRedirect, np},
		{"nodeport v6 udp", pkt{src: "2001:2::9:9", dst: "2001:2::10", proto: udp, sport: 1234, dport: 30053}.frame, xdpRedirect, np},
		{"nodeport on other address", pkt{src: "198.18.9.9", dst: "198.18.0.11", proto: tcp, sport: 1234, dport: 30080}.frame, xdpPass, notOwned},
		{"nodeport on SNAT-only address", pkt{src: "198.18.9.9", dst: "198.18.0.20", proto: tcp, sport: 1234, dport: 30080}.frame, xdpPass, notOwned},
		{"ssh to node", pkt{src: "198.18.9.9", dst: "198.18.0.10", proto: tcp, sport: 1234, dport: 22}.frame, xdpPass, notOwned},
		{"endpoint reply v4", pkt{src: "198.18.2.2", dst: "198.18.9.9", proto: tcp, sport: 8080, dport: 1234}.frame, xdpRedirect, ep},
		{"endpoint reply v6", pkt{src: "2001:2::2:2", dst: "2001:2::9:9", proto: tcp, sport: 8080, dport: 1234}.frame, xdpRedirect, ep},
		{"node to endpoint v4, reply", pkt{src: "198.18.2.2", dst: "198.18.0.10", proto: tcp, sport: 8080, dport: 45000}.frame, xdpPass, node},
		{"node to endpoint v6, reply", pkt{src: "2001:2::2:2", dst: "2001:2::10", proto: tcp, sport: 8080, dport: 45000}.frame, xdpPass, node},
		{"masqueraded reply from endpoint", pkt{src: "198.18.2.2", dst: "198.18.0.20", proto: tcp, sport: 8080, dport: 40050}.frame, xdpRedirect, sn},
		{"node to endpoint from a SNAT address, outside the range", pkt{src: "198.18.2.2", dst: "198.18.0.20", proto: tcp, sport: 8080, dport: 45000}.frame, xdpPass, node},
		{"endpoint other port", pkt{src: "198.18.2.2", dst: "198.18.9.9", proto: tcp, sport: 22, dport: 1234}.frame, xdpPass, notOwned},
		{"snat reply", pkt{src: "198.18.2.2", dst: "198.18.0.20", proto: udp, sport: 53, dport: 40050}.frame, xdpRedirect, sn},
		{"snat range min", pkt{src: "198.18.2.3", dst: "198.18.0.20", proto: tcp, sport: 53, dport: 40000}.frame, xdpRedirect, sn},
		{"snat range max+1", pkt{src: "198.18.2.3", dst: "198.18.0.20", proto: tcp, sport: 53, dport: 40101}.frame, xdpPass, notOwned},
		{"snat port on nodeport-only addr", pkt{src: "198.18.2.3", dst: "198.18.0.10", proto: tcp, sport: 53, dport: 40050}.frame, xdpPass, notOwned},
		{"vlan frontend", pkt{vlans: []uint16{100}, src: "198.18.9.9", dst: "198.18.1.1", proto: tcp, sport: 1234, dport: 80}.frame, xdpRedirect, fe},
		{"qinq frontend", pkt{vlans: []uint16{100, 200}, src: "198.18.9.9", dst: "198.18.1.1", proto: tcp, sport: 1234, dport: 80}.frame, xdpRedirect, fe},
		{"three tags pass", pkt{vlans: []uint16{1, 2, 3}, src: "198.18.9.9", dst: "198.18.1.1", proto: tcp, sport: 1234, dport: 80}.frame, xdpPass, notIP},
		{"v4 first fragment to frontend", pkt{src: "198.18.9.9", dst: "198.18.1.1", proto: tcp, sport: 1234, dport: 80, fragMF: true}.frame, xdpRedirect, fe},
		{"v4 first fragment elsewhere", pkt{src: "198.18.9.9", dst: "198.18.1.1", proto: udp, sport: 1234, dport: 80, fragMF: true}.frame, xdpPass, notOwned},
		{"v4 later fragment to frontend addr", pkt{src: "198.18.9.9", dst: "198.18.1.1", proto: udp, fragOff: 185}.frame, xdpRedirect, rfrag},
		{"v4 later fragment from endpoint addr", pkt{src: "198.18.2.2", dst: "198.18.9.9", proto: udp, fragMF: true, fragOff: 1}.frame, xdpRedirect, rfrag},
		{"v4 later fragment from endpoint addr to node", pkt{src: "198.18.2.2", dst: "198.18.0.10", proto: udp, fragOff: 185}.frame, xdpPass, node},
		{"v4 later fragment to node", pkt{src: "198.18.9.9", dst: "198.18.0.10", proto: udp, fragOff: 185}.frame, xdpPass, frag},
		{"v6 hop-by-hop to frontend", pkt{v6ext: "hbh", src: "2001:2::9:9", dst: "2001:2::1:1", proto: udp, sport: 1234, dport: 53}.frame, xdpRedirect, fe},
		{"v6 first fragment to frontend", pkt{v6ext: "frag0", src: "2001:2::9:9", dst: "2001:2::1:1", proto: udp, sport: 1234, dport: 53}.frame, xdpRedirect, fe},
		{"v6 later fragment from endpoint addr", pkt{v6ext: "frag8", src: "2001:2::2:2", dst: "2001:2::9:9", proto: udp}.frame, xdpRedirect, rfrag},
		{"v6 later fragment elsewhere", pkt{v6ext: "frag8", src: "2001:2::9:9", dst: "2001:2::10", proto: udp}.frame, xdpPass, frag},
		{"v6 esp", pkt{v6ext: "esp", src: "2001:2::9:9", dst: "2001:2::1:1", proto: udp}.frame, xdpPass, notOwned},
		{"arp", arpFrame, xdpPass, notIP},
		{"ping to frontend", pkt{src: "198.18.9.9", dst: "198.18.1.1", proto: icmp4, icmpType: 8}.frame, xdpPass, pIcmp},
		{"icmp unreach inner dst endpoint", pkt{src: "198.18.3.3", dst: "198.18.0.20", proto: icmp4, icmpType: 3, icmpCode: 4,
			inner: &pkt{src: "198.18.0.20", dst: "198.18.2.2", proto: tcp, sport: 40050, dport: 8080}}.frame, xdpRedirect, ie},
		{"icmp unreach about the node's own packet to an endpoint", pkt{src: "198.18.3.3", dst: "198.18.0.10", proto: icmp4, icmpType: 3, icmpCode: 4,
			inner: &pkt{src: "198.18.0.10", dst: "198.18.2.2", proto: tcp, sport: 45000, dport: 8080}}.frame, xdpPass, pIcmp},
		{"icmp time exceeded inner src frontend", pkt{src: "198.18.3.3", dst: "198.18.1.1", proto: icmp4, icmpType: 11,
			inner: &pkt{src: "198.18.1.1", dst: "198.18.9.9", proto: tcp, sport: 80, dport: 1234}}.frame, xdpRedirect, ie},
		{"icmp unreach inner src nodeport", pkt{src: "198.18.3.3", dst: "198.18.0.10", proto: icmp4, icmpType: 3, icmpCode: 3,
			inner: &pkt{src: "198.18.0.10", dst: "198.18.9.9", proto: udp, sport: 30053, dport: 1234}}.frame, xdpRedirect, ie},
		{"icmp unreach inner src snat", pkt{src: "198.18.3.3", dst: "198.18.0.20", proto: icmp4, icmpType: 3, icmpCode: 1,
			inner: &pkt{src: "198.18.0.20", dst: "198.18.7.7", proto: udp, sport: 40001, dport: 53}}.frame, xdpRedirect, ie},
		{"icmp unreach unrelated", pkt{src: "198.18.3.3", dst: "198.18.0.10", proto: icmp4, icmpType: 3, icmpCode: 3,
			inner: &pkt{src: "198.18.0.10", dst: "198.18.9.9", proto: udp, sport: 5000, dport: 53}}.frame, xdpPass, pIcmp},
		{"icmp redirect not an error we take", pkt{src: "198.18.3.3", dst: "198.18.1.1", proto: icmp4, icmpType: 5,
			inner: &pkt{src: "198.18.1.1", dst: "198.18.9.9", proto: tcp, sport: 80, dport: 1234}}.frame, xdpPass, pIcmp},
		{"icmpv6 too big inner src frontend", pkt{src: "2001:2::3:3", dst: "2001:2::1:1", proto: icmp6, icmpType: 2,
			inner: &pkt{src: "2001:2::1:1", dst: "2001:2::9:9", proto: udp, sport: 53, dport: 1234}}.frame, xdpRedirect, ie},
		{"icmpv6 unreach inner dst endpoint", pkt{src: "2001:2::3:3", dst: "2001:2::10", proto: icmp6, icmpType: 1,
			inner: &pkt{src: "2001:2::9:9", dst: "2001:2::2:2", proto: tcp, sport: 40000, dport: 8080}}.frame, xdpRedirect, ie},
		{"icmpv6 echo", pkt{src: "2001:2::3:3", dst: "2001:2::1:1", proto: icmp6, icmpType: 128}.frame, xdpPass, pIcmp},
		{"icmpv6 neighbour solicitation", pkt{src: "2001:2::3:3", dst: "2001:2::10", proto: icmp6, icmpType: 135}.frame, xdpPass, pIcmp},
		{"truncated ipv4", func(t *testing.T) []byte {
			return append(append(append([]byte{}, macB...), macA...), 0x08, 0x00)
		}, xdpPass, trunc},
		{"truncated tcp ports", func(t *testing.T) []byte {
			f := pkt{src: "198.18.9.9", dst: "198.18.1.1", proto: tcp, sport: 1234, dport: 80}.frame(t)
			return f[:14+20+2]
		}, xdpPass, trunc},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, err := c.Counters()
			if err != nil {
				t.Fatal(err)
			}
			got := runProg(t, ci.prog, tc.frame(t))
			if got != tc.want {
				t.Errorf("classify(%s) = %d, want %d", tc.name, got, tc.want)
			}
			after, err := c.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if d := tc.counter(after) - tc.counter(before); d != 1 {
				t.Errorf("classify(%s): expected counter moved by %d, want 1 (before %+v after %+v)", tc.name, d, before, after)
			}
			if after.RedirectNoSocket != before.RedirectNoSocket {
				t.Errorf("classify(%s): RedirectNoSocket moved with a socket on the queue", tc.name)
			}
		})
	}
}

// TestPrivClassifierNoSocket: a packet the classifier redirects to a queue
// without an AF_XDP socket goes to the kernel and is counted as such, so
// that metrics show frames that never reached xdpgate.
func TestPrivClassifierNoSocket(t *testing.T) {
	c, ci := newTestInstance(t)
	if err := ci.xsks.Delete(uint32(0)); err != nil {
		t.Fatalf("xsks delete: %v", err)
	}
	before, err := c.Counters()
	if err != nil {
		t.Fatal(err)
	}
	frame := pkt{src: "198.18.9.9", dst: "198.18.1.1", proto: layers.IPProtocolTCP, sport: 1234, dport: 80}.frame(t)
	if got := runProg(t, ci.prog, frame); got != xdpPass {
		t.Errorf("classify(frontend, no socket) = %d, want %d (pass)", got, xdpPass)
	}
	after, err := c.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if d := after.RedirectNoSocket - before.RedirectNoSocket; d != 1 {
		t.Errorf("RedirectNoSocket moved by %d, want 1", d)
	}
	if d := after.RedirectFrontend - before.RedirectFrontend; d != 0 {
		t.Errorf("RedirectFrontend moved by %d, want 0 (not redirected)", d)
	}
	if after.Redirected() != before.Redirected() || after.Passed() != before.Passed()+1 {
		t.Errorf("Redirected %d -> %d, Passed %d -> %d: want unchanged, +1", before.Redirected(), after.Redirected(), before.Passed(), after.Passed())
	}
}

func (p pkt) frame(t *testing.T) []byte { return p.bytes(t, true) }

func TestPrivClassifierUpdate(t *testing.T) {
	c, ci := newTestInstance(t)
	a := netip.MustParseAddr
	oldFE := pkt{src: "198.18.9.9", dst: "198.18.1.1", proto: layers.IPProtocolTCP, sport: 1, dport: 80}.frame(t)
	newFE := pkt{src: "198.18.9.9", dst: "198.18.1.2", proto: layers.IPProtocolTCP, sport: 1, dport: 80}.frame(t)
	snat := pkt{src: "198.18.2.2", dst: "198.18.0.20", proto: layers.IPProtocolUDP, sport: 53, dport: 40050}.frame(t)

	if got := runProg(t, ci.prog, oldFE); got != xdpRedirect {
		t.Fatalf("before update: classify(old frontend) = %d, want %d", got, xdpRedirect)
	}
	r := testRules()
	r.Frontends = []L4Addr{{a("198.18.1.2"), 80, 6}}
	r.SNATPortMax = 0
	if err := c.Update(r); err != nil {
		t.Fatalf("Update: %v", err)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  uint32
	}{
		{"old frontend removed", oldFE, xdpPass},
		{"new frontend added", newFE, xdpRedirect},
		{"snat disabled", snat, xdpPass},
	} {
		if got := runProg(t, ci.prog, tc.frame); got != tc.want {
			t.Errorf("after update: classify(%s) = %d, want %d", tc.name, got, tc.want)
		}
	}
	// Capacity is enforced with a clear error.
	small, err := NewClassifier(ClassifierConfig{MaxFrontends: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	err = small.Update(Rules{Frontends: []L4Addr{{a("198.18.1.1"), 1, 6}, {a("198.18.1.1"), 2, 6}}})
	if err == nil {
		t.Errorf("Update(2 frontends, capacity 1) = nil, want ErrTooManyRules")
	}
	// Replacing a full map's content works (stale entries make room).
	for i := uint16(1); i <= 3; i++ {
		if err := small.Update(Rules{Frontends: []L4Addr{{a("198.18.1.1"), i, 6}}}); err != nil {
			t.Errorf("Update(full map, new key %d) = %v, want nil", i, err)
		}
	}
}

// BenchmarkPrivClassifier measures the classifier's cost per frame in the
// kernel (BPF_PROG_RUN with repeat) for each kind of decision, with the
// test rules loaded. "reply to a client" and "node's own traffic" show the
// cost of telling a reply of a translated flow from the node's own
// traffic with an endpoint (one more hash lookup for frames from
// endpoints).
func BenchmarkPrivClassifier(b *testing.B) {
	testnet.RequirePriv(b)
	c, err := NewClassifier(ClassifierConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Update(testRules()); err != nil {
		b.Fatal(err)
	}
	ci, err := c.instance(1)
	if err != nil {
		b.Fatal(err)
	}
	defer ci.close()
	tcp := layers.IPProtocolTCP
	for _, bc := range []struct {
		name string
		p    pkt
	}{
		{"frontend", pkt{src: "198.18.9.9", dst: "198.18.1.1", proto: tcp, sport: 1234, dport: 80}},
		{"reply to a client", pkt{src: "198.18.2.2", dst: "198.18.9.9", proto: tcp, sport: 8080, dport: 1234}},
		{"node's own traffic", pkt{src: "198.18.2.2", dst: "198.18.0.10", proto: tcp, sport: 8080, dport: 45000}},
		{"masqueraded reply", pkt{src: "198.18.2.2", dst: "198.18.0.20", proto: tcp, sport: 8080, dport: 40050}},
		{"not owned", pkt{src: "198.18.9.9", dst: "198.18.0.10", proto: tcp, sport: 1234, dport: 22}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			frame := bc.p.bytes(&testing.T{}, true)
			var total time.Duration
			for b.Loop() {
				_, d, err := ci.prog.Benchmark(frame, 1000, nil)
				if err != nil {
					b.Fatal(err)
				}
				total += d * 1000
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N*1000), "ns/frame")
		})
	}
}
