package xdpfwd

import (
	"bytes"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// XDP verdicts (linux/bpf.h).
const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
)

// xdpMD is struct xdp_md, the context BPF_PROG_RUN takes: the ingress
// device makes bpf_fib_lookup route as on that device.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// gateway is a namespace routing like the rig's gateway: in (198.18.1.1,
// 2001:2:0:1::1) towards the clients, out (198.18.2.1, 2001:2:0:2::1)
// towards a next hop 198.18.2.2 / 2001:2:0:2::2 with a static neighbour
// entry, through which 198.18.3.0/24 and 2001:2:0:3::/64 are routed; the
// program attached to both.
type gateway struct {
	ns       *testnet.NS
	in, out  *testnet.Veth
	nextHop  [6]byte // the next hop's MAC (out's peer)
	fwd      *Forwarder
	ingress  uint32
	outIndex uint32
}

func newGateway(t *testing.T) *gateway {
	t.Helper()
	testnet.RequirePriv(t)
	g := &gateway{ns: testnet.NewNS(t)}
	peer := testnet.NewNS(t)
	g.in = testnet.NewVeth(t, g.ns, "in", peer, "inp", testnet.VethOpts{})
	g.out = testnet.NewVeth(t, g.ns, "out", peer, "outp", testnet.VethOpts{})
	g.nextHop = g.out.BMAC
	g.ingress, g.outIndex = uint32(g.in.AIndex), uint32(g.out.AIndex)
	g.ns.Sysctl(t, "net.ipv4.ip_forward=1")
	g.ns.Sysctl(t, "net.ipv6.conf.all.forwarding=1")
	g.ns.AddAddr(t, g.in.AName, "198.18.1.1/24")
	g.ns.AddAddr(t, g.out.AName, "198.18.2.1/24")
	g.ns.AddAddr(t, g.in.AName, "2001:2:0:1::1/64")
	g.ns.AddAddr(t, g.out.AName, "2001:2:0:2::1/64")
	mac := net.HardwareAddr(g.nextHop[:]).String()
	for _, nh := range []string{"198.18.2.2", "2001:2:0:2::2"} {
		g.ns.MustRun(t, "ip", "neigh", "replace", nh, "lladdr", mac, "dev", g.out.AName, "nud", "permanent")
	}
	g.ns.AddRoute(t, "198.18.3.0/24", "198.18.2.2")
	g.ns.AddRoute(t, "2001:2:0:3::/64", "2001:2:0:2::2")
	if err := g.ns.Do(func() (err error) { g.fwd, err = Attach([]string{g.in.AName, g.out.AName}); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.fwd.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return g
}

// run runs the program on frame as received on the gateway's in device and
// returns the verdict and the frame as the program left it.
func (g *gateway) run(t *testing.T, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	opts := &ebpf.RunOptions{Data: frame, DataOut: out,
		Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: g.ingress}}
	var ret uint32
	// bpf_fib_lookup routes in the caller's namespace.
	if err := g.ns.Do(func() (err error) { ret, err = g.fwd.program().Run(opts); return err }); err != nil {
		t.Fatalf("run: %v", err)
	}
	return ret, opts.DataOut
}

var clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}

// frame builds an Ethernet/IP/UDP frame to the gateway's in device with
// gopacket, which computes the checksums.
func frame(t *testing.T, inMAC [6]byte, src, dst string, ttl uint8, tos uint8, id uint16) []byte {
	t.Helper()
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: inMAC[:], EthernetType: layers.EthernetTypeIPv4}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 80}
	var ip gopacket.SerializableLayer
	if s.Is4() {
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, TOS: tos, Id: id, Protocol: layers.IPProtocolUDP, SrcIP: s.AsSlice(), DstIP: d.AsSlice()}
		udp.SetNetworkLayerForChecksum(ip4)
		ip = ip4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: ttl, TrafficClass: tos, NextHeader: layers.IPProtocolUDP, SrcIP: s.AsSlice(), DstIP: d.AsSlice()}
		udp.SetNetworkLayerForChecksum(ip6)
		ip = ip6
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(make([]byte, 18))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// wantForwarded is what the program must make of f: the Ethernet addresses
// from the FIB (out's MAC, the next hop's), the TTL or hop limit one less,
// and the IPv4 header checksum recomputed from scratch by gopacket (the
// independent oracle of the incremental update); nothing else changed.
func (g *gateway) wantForwarded(t *testing.T, f []byte) []byte {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	eth.SrcMAC, eth.DstMAC = g.out.AMAC[:], g.nextHop[:]
	ls := []gopacket.SerializableLayer{eth}
	if ip4, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		ip4.TTL--
		ls = append(ls, ip4)
	} else {
		ip6 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		ip6.HopLimit--
		ls = append(ls, ip6)
	}
	// The UDP header and payload as they are: forwarding does not touch
	// them (the TTL is not in the pseudo-header).
	ls = append(ls, gopacket.Payload(p.TransportLayer().LayerContents()), gopacket.Payload(p.ApplicationLayer().Payload()))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPrivProgram(t *testing.T) {
	g := newGateway(t)
	in := g.in.AMAC
	arp := func() []byte {
		buf := gopacket.NewSerializeBuffer()
		eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
		arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: clientMAC, SourceProtAddress: []byte{198, 18, 1, 2},
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{198, 18, 1, 1}}
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, arp); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	tests := []struct {
		name   string
		frame  []byte
		want   uint32
		reason Reason
	}{
		{"ipv4 routed", frame(t, in, "198.18.64.1", "198.18.3.1", 64, 0, 1), xdpRedirect, Forwarded},
		{"ipv4 to the next hop itself", frame(t, in, "198.18.64.1", "198.18.2.2", 2, 0, 2), xdpRedirect, Forwarded},
		{"ipv6 routed", frame(t, in, "2001:2:0:1::2", "2001:2:0:3::1", 64, 0, 0), xdpRedirect, Forwarded},
		{"ipv4 ttl 1", frame(t, in, "198.18.64.1", "198.18.3.1", 1, 0, 3), xdpPass, TTL},
		{"ipv6 hop limit 1", frame(t, in, "2001:2:0:1::2", "2001:2:0:3::1", 1, 0, 0), xdpPass, TTL},
		{"arp", arp(), xdpPass, NotIP},
		{"no route", frame(t, in, "198.18.64.1", "198.18.200.1", 64, 0, 4), xdpPass, NoRoute},
		{"to the gateway itself", frame(t, in, "198.18.64.1", "198.18.2.1", 64, 0, 5), xdpPass, NoRoute},
		{"no neighbour", frame(t, in, "198.18.64.1", "198.18.2.3", 64, 0, 6), xdpPass, NoNeigh},
		{"truncated ipv4", frame(t, in, "198.18.64.1", "198.18.3.1", 64, 0, 7)[:14+12], xdpPass, Malformed},
	}
	var want Stats
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ret, out := g.run(t, tc.frame)
			if ret != tc.want {
				t.Fatalf("verdict = %d, want %d", ret, tc.want)
			}
			expect := tc.frame
			if tc.want == xdpRedirect {
				expect = g.wantForwarded(t, tc.frame)
			}
			if !bytes.Equal(out, expect) {
				t.Errorf("frame =\n%x\nwant\n%x", out, expect)
			}
		})
		want[tc.reason]++
	}
	got, err := g.fwd.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Stats() = %v, want %v", got, want)
	}
	if p := got.Passed(); p != 7 {
		t.Errorf("Passed() = %d, want 7", p)
	}
}

// TestPrivChecksumRandom compares the program's incremental IPv4 checksum
// update with gopacket's full recomputation over random headers.
func TestPrivChecksumRandom(t *testing.T) {
	g := newGateway(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		src := netip.AddrFrom4([4]byte{198, 18, byte(64 + rng.IntN(64)), byte(rng.IntN(256))})
		dst := netip.AddrFrom4([4]byte{198, 18, 3, byte(rng.IntN(256))})
		f := frame(t, g.in.AMAC, src.String(), dst.String(), uint8(2+rng.IntN(254)), uint8(rng.IntN(256)), uint16(rng.Uint32()))
		ret, out := g.run(t, f)
		if ret != xdpRedirect {
			t.Fatalf("frame %d (%s -> %s): verdict %d, want %d", i, src, dst, ret, xdpRedirect)
		}
		if want := g.wantForwarded(t, f); !bytes.Equal(out, want) {
			t.Fatalf("frame %d: got\n%x\nwant\n%x", i, out, want)
		}
	}
}
