package pipeline

import (
	"bytes"
	"cmp"
	"net"
	"net/netip"
	"testing"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/snapshot"
)

// The unit-test world: clients behind a router, a gateway with one address
// per family, endpoints on a backend network.
var (
	ptGW4      = netip.MustParseAddr("198.18.0.2")
	ptGW6      = netip.MustParseAddr("2001:2::2")
	ptVIP4     = netip.MustParseAddr("198.18.100.1")
	ptVIP6     = netip.MustParseAddr("2001:2:0:100::1")
	ptLB4      = netip.MustParseAddr("198.18.200.1")
	ptExt4     = netip.MustParseAddr("198.18.201.1")
	ptEP4a     = netip.MustParseAddr("198.18.64.10")
	ptEP4b     = netip.MustParseAddr("198.18.65.10")
	ptEP6a     = netip.MustParseAddr("2001:2:0:64::10")
	ptEP6b     = netip.MustParseAddr("2001:2:0:65::10")
	ptClient4  = netip.MustParseAddr("198.19.1.10")
	ptClient6  = netip.MustParseAddr("2001:2:0:1::10")
	ptGWMAC    = [6]byte{0x02, 0x67, 0, 0, 0, 1}
	ptRouter   = [6]byte{0x02, 0x72, 0, 0, 0, 1}
	ptEPMAC    = [6]byte{0x02, 0x65, 0, 0, 0, 1}
	ptUnknown4 = netip.MustParseAddr("198.18.66.10") // endpoint without a neighbour entry
)

// ptHops resolves everything: endpoints and clients on interface 3 and 2,
// except ptUnknown4 (unresolved) and addresses outside the test ranges (no
// route).
type ptHops struct{}

var (
	ptEPNet4   = netip.MustParsePrefix("198.18.64.0/18")
	ptEPNet6   = netip.MustParsePrefix("2001:2:0:64::/58")
	ptTestNet4 = netip.MustParsePrefix("198.18.0.0/15")
	ptTestNet6 = netip.MustParsePrefix("2001:2::/48")
)

func (ptHops) Lookup(dst netip.Addr) (dataplane.Hop, dataplane.LookupStatus) {
	switch {
	case dst == ptUnknown4:
		return dataplane.Hop{Ifindex: 3, SrcMAC: ptGWMAC, Src: ptGW4}, dataplane.LookupUnresolved
	case dst.Is4() && ptEPNet4.Contains(dst):
		return dataplane.Hop{Ifindex: 3, SrcMAC: ptGWMAC, DstMAC: ptEPMAC, Src: ptGW4, MTU: 1500}, dataplane.LookupOK
	case dst.Is6() && ptEPNet6.Contains(dst):
		return dataplane.Hop{Ifindex: 3, SrcMAC: ptGWMAC, DstMAC: ptEPMAC, Src: ptGW6, MTU: 1500}, dataplane.LookupOK
	case dst.Is4() && ptTestNet4.Contains(dst):
		return dataplane.Hop{Ifindex: 2, SrcMAC: ptGWMAC, DstMAC: ptRouter, Src: ptGW4, Gateway: dst, MTU: 1500}, dataplane.LookupOK
	case dst.Is6() && ptTestNet6.Contains(dst):
		return dataplane.Hop{Ifindex: 2, SrcMAC: ptGWMAC, DstMAC: ptRouter, Src: ptGW6, Gateway: dst, MTU: 1500}, dataplane.LookupOK
	}
	return dataplane.Hop{}, dataplane.LookupNoRoute
}

// ptClock is an injected clock.
type ptClock struct{ t int64 }

func (c *ptClock) now() int64 { return c.t }

const second = int64(1e9)

// ptPort builds a TCP service port with the given endpoints, all ready and
// in the cluster chain (no Maglev table: Pick falls back to modulo).
func ptPort(id uint32, proto nat.Proto, vip netip.Addr, eps []netip.Addr, mutate func(*snapshot.ServicePort)) snapshot.ServicePort {
	sp := snapshot.ServicePort{ID: id, Namespace: "ns", Name: "svc", PortName: "p", Protocol: proto, Port: 80,
		ClusterIPs: []netip.Addr{vip}, HasEndpoints: len(eps) > 0}
	for i, a := range eps {
		sp.Endpoints = append(sp.Endpoints, snapshot.Endpoint{ID: id*100 + uint32(i) + 1, Addr: a, Port: 8080,
			Ready: true, Serving: true, Local: i == 0})
		sp.Cluster = append(sp.Cluster, int32(i))
		if i == 0 {
			sp.Local = append(sp.Local, 0)
		}
	}
	if mutate != nil {
		mutate(&sp)
	}
	return sp
}

func ptSnapshot(t testing.TB, s snapshot.Snapshot) *snapshot.Snapshot {
	t.Helper()
	out, errs := snapshot.New(s)
	for _, err := range errs {
		t.Fatalf("snapshot.New: %v", err)
	}
	return out
}

// ptWorld is a pipeline with its tables and clock.
type ptWorld struct {
	p     *Pipeline
	ct    *conntrack.Table
	aff   *affinity.Table
	clock *ptClock
}

func newWorld(t testing.TB, s *snapshot.Snapshot, mutate func(*Config)) *ptWorld {
	t.Helper()
	return newWorldIn(t, s, mutate, 1<<14)
}

// newWorldSized is newWorld with a flow table of maxFlows IPv4 flows.
func newWorldSized(t testing.TB, s *snapshot.Snapshot, maxFlows int) *ptWorld {
	t.Helper()
	return newWorldIn(t, s, nil, maxFlows)
}

func newWorldIn(t testing.TB, s *snapshot.Snapshot, mutate func(*Config), maxFlows int) *ptWorld {
	t.Helper()
	ct, err := conntrack.New(conntrack.Config{MaxFlows: maxFlows, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	aff, err := affinity.New(affinity.Config{Capacity: 1 << 12, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	clock := &ptClock{t: 1000 * second}
	cfg := Config{Conntrack: ct, Affinity: aff, Hops: ptHops{}, NumQueues: 2, Now: clock.now}
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s != nil {
		p.Publish(s)
	}
	return &ptWorld{p: p, ct: ct, aff: aff, clock: clock}
}

// ptPkt describes a test packet.
type ptPkt struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        layers.IPProtocol
	tcpFlags     string // "S", "SA", "A", "F"...
	seq, ack     uint32 // TCP sequence numbers (seq 0 means 100)
	ttl          uint8
	payload      []byte
}

func (k ptPkt) build(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(ptRouter[:]), DstMAC: net.HardwareAddr(ptGWMAC[:])}
	ttl := k.ttl
	if ttl == 0 {
		ttl = 64
	}
	var nl gopacket.NetworkLayer
	var ip gopacket.SerializableLayer
	if k.src.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		l := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Protocol: k.proto, SrcIP: k.src.AsSlice(), DstIP: k.dst.AsSlice(), Id: 7}
		nl, ip = l, l
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		l := &layers.IPv6{Version: 6, HopLimit: ttl, NextHeader: k.proto, SrcIP: k.src.AsSlice(), DstIP: k.dst.AsSlice()}
		nl, ip = l, l
	}
	var l4 gopacket.SerializableLayer
	switch k.proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(k.sport), DstPort: layers.TCPPort(k.dport), Seq: cmp.Or(k.seq, 100), Ack: k.ack, Window: 1000}
		for _, c := range k.tcpFlags {
			switch c {
			case 'S':
				tcp.SYN = true
			case 'A':
				tcp.ACK = true
			case 'F':
				tcp.FIN = true
			case 'R':
				tcp.RST = true
			}
		}
		tcp.SetNetworkLayerForChecksum(nl)
		l4 = tcp
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(k.sport), DstPort: layers.UDPPort(k.dport)}
		udp.SetNetworkLayerForChecksum(nl)
		l4 = udp
	}
	payload := k.payload
	if payload == nil {
		payload = []byte("hello, xdpgate")
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, l4, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

func tcpPkt(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, flags string) ptPkt {
	return ptPkt{src: src, dst: dst, sport: sport, dport: dport, proto: layers.IPProtocolTCP, tcpFlags: flags}
}

func udpPkt(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) ptPkt {
	return ptPkt{src: src, dst: dst, sport: sport, dport: dport, proto: layers.IPProtocolUDP}
}

// run processes one frame on queue 0 and returns it.
func (w *ptWorld) run(t testing.TB, b []byte) dataplane.Frame {
	t.Helper()
	fs := []dataplane.Frame{ptFrame(b)}
	w.p.Process(&dataplane.Queue{Index: 0, Ifindex: 2}, fs)
	return fs[0]
}

func ptFrame(b []byte) dataplane.Frame {
	buf := make([]byte, 2048)
	copy(buf[256:], b)
	return dataplane.Frame{Buf: buf, Off: 256, Len: len(b)}
}

// decoded is what a test reads back from a frame.
type decoded struct {
	src, dst     netip.Addr
	sport, dport uint16
	ttl          uint8
	ethSrc       [6]byte
	ethDst       [6]byte
	pkt          gopacket.Packet
}

// decode parses a frame with gopacket and checks every checksum by
// re-serialising the layers with ComputeChecksums (gopacket is the oracle).
func ptDecode(t testing.TB, b []byte) decoded {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket decode: %v", el.Error())
	}
	var d decoded
	d.pkt = p
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	copy(d.ethSrc[:], eth.SrcMAC)
	copy(d.ethDst[:], eth.DstMAC)
	var nl gopacket.NetworkLayer
	ls := []gopacket.SerializableLayer{eth}
	if ip4, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		d.src, _ = netip.AddrFromSlice(ip4.SrcIP)
		d.dst, _ = netip.AddrFromSlice(ip4.DstIP)
		d.src, d.dst = d.src.Unmap(), d.dst.Unmap()
		d.ttl = ip4.TTL
		nl = ip4
		ls = append(ls, ip4)
	} else if ip6, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		d.src, _ = netip.AddrFromSlice(ip6.SrcIP)
		d.dst, _ = netip.AddrFromSlice(ip6.DstIP)
		d.ttl = ip6.HopLimit
		nl = ip6
		ls = append(ls, ip6)
	} else {
		t.Fatalf("no IP layer in %v", p)
	}
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		d.sport, d.dport = uint16(l.SrcPort), uint16(l.DstPort)
		l.SetNetworkLayerForChecksum(nl)
		ls = append(ls, l, gopacket.Payload(l.Payload))
	case *layers.UDP:
		d.sport, d.dport = uint16(l.SrcPort), uint16(l.DstPort)
		l.SetNetworkLayerForChecksum(nl)
		ls = append(ls, l, gopacket.Payload(l.Payload))
	default:
		return d // ICMP: checked by the tests that build them
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), b) {
		t.Fatalf("checksums wrong:\n got  %x\n want %x", b, buf.Bytes())
	}
	return d
}

// csum is the Internet checksum of b (0 when b carries a valid checksum).
func csum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// dst processes k and returns the destination of the forwarded frame.
func (w *ptWorld) dst(t testing.TB, k ptPkt) netip.Addr {
	t.Helper()
	f := w.run(t, k.build(t))
	if f.Verdict != dataplane.VerdictTX {
		t.Fatalf("Process = %v/%v, want TX", f.Verdict, f.Reason)
	}
	return ptDecode(t, f.Data()).dst
}
