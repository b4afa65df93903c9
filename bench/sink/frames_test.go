package sink

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// pkt describes a test frame; frame serialises it with gopacket, which
// computes every checksum (the independent oracle).
type pkt struct {
	vlan     uint16 // 0: untagged
	src, dst string
	proto    layers.IPProtocol
	sport    uint16
	dport    uint16
	payload  int  // payload bytes
	ipOpts   bool // IPv4 with a 4-byte option (IHL 6)
	fragOff  uint16
	v6hbh    bool // IPv6 hop-by-hop extension header first (L4 checksum then wrong)
	udpNoSum bool // UDP checksum zeroed after serialising
}

func (p pkt) layers(t testing.TB) []gopacket.SerializableLayer {
	t.Helper()
	src, dst := netip.MustParseAddr(p.src), netip.MustParseAddr(p.dst)
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
	if src.Is6() {
		eth.EthernetType = layers.EthernetTypeIPv6
	}
	ls := []gopacket.SerializableLayer{eth}
	if p.vlan != 0 {
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: p.vlan, Type: eth.EthernetType})
		eth.EthernetType = layers.EthernetTypeDot1Q
	}
	var nl gopacket.NetworkLayer
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0x1234, Protocol: p.proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), FragOffset: p.fragOff}
		if p.ipOpts {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		nl = ip
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: p.proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		nl = ip
		ls = append(ls, ip)
		if p.v6hbh {
			ip.NextHeader = layers.IPProtocolIPv6HopByHop
			ls = append(ls, gopacket.Payload([]byte{byte(p.proto), 0, 1, 4, 0, 0, 0, 0}))
		}
	}
	payload := make([]byte, p.payload)
	for i := range payload {
		payload[i] = byte(i*7 + 3)
	}
	switch p.proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), Seq: 1000, SYN: true, Window: 65535}
		tcp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, tcp)
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
		udp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, udp)
	case layers.IPProtocolICMPv4:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1})
	}
	return append(ls, gopacket.Payload(payload))
}

func (p pkt) frame(t testing.TB) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, p.layers(t)...); err != nil {
		t.Fatalf("serialize %+v: %v", p, err)
	}
	f := append([]byte(nil), buf.Bytes()...)
	if p.udpNoSum {
		f[p.l4Offset()+6], f[p.l4Offset()+7] = 0, 0
	}
	return f
}

// ipEnd is where the IP packet ends in a frame built by pkt (gopacket pads
// short frames to 60 bytes).
func (p pkt) ipEnd() int {
	switch p.proto {
	case layers.IPProtocolTCP:
		return p.l4Offset() + 20 + p.payload
	case layers.IPProtocolUDP:
		return p.l4Offset() + 8 + p.payload
	}
	panic("ipEnd: only TCP and UDP")
}

func arpFrame(t testing.TB) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true},
		&layers.Ethernet{SrcMAC: macA, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: macA, SourceProtAddress: []byte{198, 18, 2, 1},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{198, 18, 2, 10}})
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// l3Offset is where the IP header starts in a frame built by pkt.
func (p pkt) l3Offset() int {
	if p.vlan != 0 {
		return 18
	}
	return 14
}

// l4Offset is where the TCP/UDP header starts in a frame built by pkt.
func (p pkt) l4Offset() int {
	off := p.l3Offset()
	if netip.MustParseAddr(p.src).Is6() {
		return off + 40
	}
	if p.ipOpts {
		return off + 24
	}
	return off + 20
}
