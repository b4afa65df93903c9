package pktgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xdpgate/xdpgate/nat"
)

var (
	testSrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	testDstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// testConfig is a valid config for family v6 and mode m; mutators adjust it.
func testConfig(v6 bool, m Mode, size int, mut ...func(*Config)) Config {
	c := Config{
		Ifname: "gen0", SrcMAC: testSrcMAC, DstMAC: testDstMAC,
		Src: netip.MustParseAddr("198.18.64.0"), Clients: 37, PortsPerClient: 11,
		Dst:  netip.MustParseAddrPort("198.18.3.1:80"),
		Mode: m, FrameSize: size, Count: 1, Seed: 42,
	}
	if v6 {
		c.Src = netip.MustParseAddr("2001:2::40:0")
		c.Dst = netip.MustParseAddrPort("[2001:2::3:1]:80")
	}
	for _, f := range mut {
		f(&c)
	}
	return c
}

// checkFrame decodes f with gopacket and checks it is flow i's frame: the
// headers, the size, and both checksums, recomputed by gopacket (an
// independent oracle: re-serialising the decoded layers must give f back).
func checkFrame(t *testing.T, g *Generator, f []byte, i uint64) {
	t.Helper()
	c := g.Config()
	if len(f) != c.FrameSize-4 {
		t.Fatalf("flow %d: len = %d, want FrameSize-4 = %d", i, len(f), c.FrameSize-4)
	}
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil && p.TransportLayer() == nil {
		// Past the transport layer gopacket guesses applications from
		// ports (DHCP on 67/68...) and may fail on the zero payload.
		t.Fatalf("flow %d: decode: %v", i, el.Error())
	}
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth == nil || !bytes.Equal(eth.SrcMAC, c.SrcMAC) || !bytes.Equal(eth.DstMAC, c.DstMAC) {
		t.Fatalf("flow %d: ethernet = %+v", i, eth)
	}
	want := g.FlowSource(i)
	var src, dst netip.Addr
	var nl gopacket.NetworkLayer
	var l3 gopacket.SerializableLayer
	if c.Src.Is4() {
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip == nil {
			t.Fatalf("flow %d: no IPv4 layer", i)
		}
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
		if int(ip.Length) != len(f)-nat.EthHdrLen || ip.TTL != ipTTL {
			t.Errorf("flow %d: IPv4 length %d ttl %d, want %d %d", i, ip.Length, ip.TTL, len(f)-nat.EthHdrLen, ipTTL)
		}
		nl, l3 = ip, ip
	} else {
		ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if ip == nil {
			t.Fatalf("flow %d: no IPv6 layer", i)
		}
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
		if int(ip.Length) != len(f)-nat.EthHdrLen-nat.IPv6HdrLen {
			t.Errorf("flow %d: IPv6 payload length %d, want %d", i, ip.Length, len(f)-nat.EthHdrLen-nat.IPv6HdrLen)
		}
		nl, l3 = ip, ip
	}
	if src != want.Addr() || dst != c.Dst.Addr() {
		t.Errorf("flow %d: addresses %v -> %v, want %v -> %v", i, src, dst, want.Addr(), c.Dst.Addr())
	}
	var l4 gopacket.SerializableLayer
	var gotCsum uint16
	var sport, dport uint16
	var payload []byte
	switch c.Mode {
	case UDP:
		u, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if u == nil {
			t.Fatalf("flow %d: no UDP layer", i)
		}
		sport, dport, gotCsum, payload = uint16(u.SrcPort), uint16(u.DstPort), u.Checksum, u.Payload
		cp := *u
		if err := cp.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
		l4 = &cp
	default:
		tc, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tc == nil {
			t.Fatalf("flow %d: no TCP layer", i)
		}
		sport, dport, gotCsum, payload = uint16(tc.SrcPort), uint16(tc.DstPort), tc.Checksum, tc.Payload
		if c.Mode == TCPSyn && (!tc.SYN || tc.ACK || tc.RST || tc.FIN) {
			t.Errorf("flow %d: flags SYN=%v ACK=%v RST=%v FIN=%v, want a bare SYN", i, tc.SYN, tc.ACK, tc.RST, tc.FIN)
		}
		if c.Mode == TCPEstablished && (tc.SYN || !tc.ACK || tc.RST || tc.FIN) {
			t.Errorf("flow %d: flags SYN=%v ACK=%v RST=%v FIN=%v, want ACK", i, tc.SYN, tc.ACK, tc.RST, tc.FIN)
		}
		cp := *tc
		if err := cp.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
		l4 = &cp
	}
	if sport != want.Port() || dport != c.Dst.Port() {
		t.Errorf("flow %d: ports %d -> %d, want %d -> %d", i, sport, dport, want.Port(), c.Dst.Port())
	}
	if len(payload) != len(f)-headerLen(c.Src.Is6(), c.Mode) {
		t.Errorf("flow %d: payload %d bytes, want %d", i, len(payload), len(f)-headerLen(c.Src.Is6(), c.Mode))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, l3, l4, gopacket.Payload(payload)); err != nil {
		t.Fatalf("flow %d: reserialize: %v", i, err)
	}
	ref := buf.Bytes()
	l4Csum := l4OffV4
	if c.Src.Is6() {
		l4Csum = l4OffV6
	}
	if c.Mode == UDP {
		l4Csum += nat.UDPChecksumOff
		if binary.BigEndian.Uint16(ref[l4Csum:]) == 0 {
			// RFC 768: a computed 0 is sent as all ones; gopacket leaves 0.
			binary.BigEndian.PutUint16(ref[l4Csum:], 0xffff)
		}
	} else {
		l4Csum += nat.TCPChecksumOff
	}
	if !c.Src.Is6() {
		if got, want := binary.BigEndian.Uint16(f[ipv4CsumOff:]), binary.BigEndian.Uint16(ref[ipv4CsumOff:]); got != want {
			t.Errorf("flow %d: IPv4 checksum = %#04x, want %#04x (gopacket)", i, got, want)
		}
	}
	if want := binary.BigEndian.Uint16(ref[l4Csum:]); gotCsum != want {
		t.Errorf("flow %d: %s checksum = %#04x, want %#04x (gopacket)", i, c.Mode, gotCsum, want)
	}
	if !bytes.Equal(f, ref) {
		t.Errorf("flow %d: frame differs from gopacket's re-serialisation:\n got %x\nwant %x", i, f, ref)
	}
}

func TestFrameDecodes(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, m := range []Mode{UDP, TCPSyn, TCPEstablished} {
			for _, size := range []int{64, 128, 1518} {
				name := fmt.Sprintf("%s/%s/%d", map[bool]string{false: "v4", true: "v6"}[v6], m, size)
				t.Run(name, func(t *testing.T) {
					cfg := testConfig(v6, m, size)
					if size < MinFrameSizeFor(v6, m) {
						// An IPv6 frame cannot be 64 bytes: refused, naming the field.
						_, err := newGenerator(cfg)
						if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "FrameSize") {
							t.Fatalf("newGenerator(FrameSize %d) error = %v, want one naming FrameSize", size, err)
						}
						cfg.FrameSize = MinFrameSizeFor(v6, m)
					}
					g, err := newGenerator(cfg)
					if err != nil {
						t.Fatal(err)
					}
					seen := map[netip.AddrPort]uint64{}
					for i := range g.Flows() {
						f := g.Frame(i)
						checkFrame(t, g, f, i)
						if t.Failed() {
							return
						}
						src := g.FlowSource(i)
						if j, dup := seen[src]; dup {
							t.Fatalf("flows %d and %d share source %v", j, i, src)
						}
						seen[src] = i
					}
					// Beyond Flows, i wraps around.
					if f, w := g.Frame(g.Flows()+3), g.Frame(3); !bytes.Equal(f, w) {
						t.Errorf("Frame(Flows+3) != Frame(3)")
					}
				})
			}
		}
	}
}

// TestFrameEdges covers carries: IPv6 clients across a 64-bit boundary,
// IPv4 clients across octets, the highest source port.
func TestFrameEdges(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"v6-carry", testConfig(true, UDP, 128, func(c *Config) {
			c.Src = netip.MustParseAddr("2001:2:0:1:ffff:ffff:ffff:fff0")
			c.Clients = 40
		})},
		{"v4-octets", testConfig(false, TCPSyn, 64, func(c *Config) {
			c.Src = netip.MustParseAddr("198.18.255.200")
			c.Clients = 300
			c.PortsPerClient = 2
		})},
		{"top-port", testConfig(false, TCPEstablished, 100, func(c *Config) {
			c.SrcPortBase = 65535 - 9
			c.PortsPerClient = 10
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := newGenerator(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i := range g.Flows() {
				checkFrame(t, g, g.Frame(i), i)
				for _, v := range []uint64{1, 2, 1 << 20} {
					checkFrame(t, g, g.FrameVisit(i, v), i)
				}
			}
			last := g.FlowSource(g.Flows() - 1)
			c := g.Config()
			wantLast, _ := addAddr(c.Src, uint64(c.Clients-1))
			if last.Addr() != wantLast || last.Port() != c.SrcPortBase+uint16(c.PortsPerClient-1) {
				t.Errorf("FlowSource(last) = %v, want %v:%d", last, wantLast, c.SrcPortBase+uint16(c.PortsPerClient-1))
			}
		})
	}
}

// TestEstablishedSequence: a flow's visits advance its sequence number by
// the payload length.
func TestEstablishedSequence(t *testing.T) {
	g, err := newGenerator(testConfig(false, TCPEstablished, 128))
	if err != nil {
		t.Fatal(err)
	}
	step := uint32(128 - 4 - headerLen(false, TCPEstablished))
	seq := func(f []byte) uint32 { return binary.BigEndian.Uint32(f[l4OffV4+nat.TCPSeqOff:]) }
	s0 := seq(g.Frame(5))
	for v := uint64(0); v < 5; v++ {
		if got, want := seq(g.FrameVisit(5, v)), s0+uint32(v)*step; got != want {
			t.Errorf("seq(FrameVisit(5, %d)) = %d, want %d", v, got, want)
		}
	}
}

// TestFillMatchesFrame: what the send loop writes into the UMEM is exactly
// Frame's bytes for the stream's flows, for each queue of several.
func TestFillMatchesFrame(t *testing.T) {
	for _, m := range []Mode{UDP, TCPSyn, TCPEstablished} {
		for _, v6 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/v6=%v", m, v6), func(t *testing.T) {
				cfg := testConfig(v6, m, 200, func(c *Config) { c.Clients, c.PortsPerClient = 5, 3 })
				g, err := newGenerator(cfg)
				if err != nil {
					t.Fatal(err)
				}
				const q, batch, batches = 3, 8, 7 // 168 frames: several rounds of 15 flows
				size := uint64(umemFrameSize)
				umem := make([]byte, batch*size)
				addrs := make([]uint64, batch)
				for k := range addrs {
					addrs[k] = uint64(batch-1-k) * size // any order
					copy(umem[addrs[k]:], g.t.buf)
				}
				for k := uint64(0); k < q; k++ {
					cur := newCursor(k, q, g.Flows())
					s := k
					for range batches {
						g.t.fill(umem, addrs, &cur)
						for _, a := range addrs {
							got := umem[a : a+uint64(len(g.t.buf))]
							want := g.FrameVisit(g.FlowAt(s), s/g.Flows())
							if !bytes.Equal(got, want) {
								t.Fatalf("queue %d stream frame %d: UMEM has\n%x\nwant FrameVisit(%d, %d)\n%x",
									k, s, got, g.FlowAt(s), s/g.Flows(), want)
							}
							s += q
						}
					}
				}
			})
		}
	}
}

// TestStreamCoversFlows: every run of Flows() consecutive stream frames
// visits every flow once, and consecutive frames hit different flows.
func TestStreamCoversFlows(t *testing.T) {
	for _, seed := range []uint64{0, 1, 0xdeadbeef} {
		g, err := newGenerator(testConfig(false, UDP, 64, func(c *Config) { c.Seed = seed }))
		if err != nil {
			t.Fatal(err)
		}
		n := g.Flows()
		seen := make([]bool, n)
		for s := uint64(0); s < n; s++ {
			f := g.FlowAt(s)
			if f >= n || seen[f] {
				t.Fatalf("seed %d: FlowAt(%d) = %d: out of range or repeated", seed, s, f)
			}
			seen[f] = true
			if s > 0 && g.FlowAt(s-1) == f {
				t.Fatalf("seed %d: frames %d and %d hit the same flow", seed, s-1, s)
			}
		}
	}
}

// TestNoAllocs: the steady-state send loop's per-batch work allocates
// nothing.
func TestNoAllocs(t *testing.T) {
	for _, m := range []Mode{UDP, TCPSyn, TCPEstablished} {
		for _, v6 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/v6=%v", m, v6), func(t *testing.T) {
				g, err := newGenerator(testConfig(v6, m, 128, func(c *Config) { c.Clients, c.PortsPerClient = 1000, 100 }))
				if err != nil {
					t.Fatal(err)
				}
				umem := make([]byte, 64*umemFrameSize)
				addrs := make([]uint64, 64)
				for k := range addrs {
					addrs[k] = uint64(k) * umemFrameSize
				}
				cur := newCursor(0, 1, g.Flows())
				if n := testing.AllocsPerRun(100, func() { g.t.fill(umem, addrs, &cur) }); n != 0 {
					t.Errorf("fill allocs = %v per batch, want 0", n)
				}
				lim := newLimiter(1e6, 64)
				now := time.Duration(0)
				if n := testing.AllocsPerRun(100, func() {
					now += 100 * time.Microsecond
					k, _ := lim.take(now, 64)
					lim.refund(k / 2)
				}); n != 0 {
					t.Errorf("limiter allocs = %v per batch, want 0", n)
				}
			})
		}
	}
}

// FuzzFrame: any valid configuration and flow yields a frame whose
// checksums gopacket agrees with.
func FuzzFrame(f *testing.F) {
	f.Add(uint64(1), uint32(0), uint16(1), uint16(1), uint16(10000), uint8(0), uint16(64), false, uint64(0), uint64(0))
	f.Add(uint64(7), uint32(65535), uint16(500), uint16(64), uint16(1), uint8(2), uint16(1518), true, uint64(999), uint64(3))
	f.Fuzz(func(t *testing.T, seed uint64, srcOff uint32, clients, ports, base uint16, mode uint8, size uint16,
		v6 bool, i, visit uint64) {
		cfg := testConfig(v6, Mode(mode%uint8(numModes)), int(size), func(c *Config) {
			c.Seed = seed
			c.Clients, c.PortsPerClient, c.SrcPortBase = int(clients), int(ports), base
			if v6 {
				c.Src = netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
					byte(srcOff >> 24), byte(srcOff >> 16), byte(srcOff >> 8), byte(srcOff)})
			} else {
				c.Src = netip.AddrFrom4([4]byte{198, 18, byte(srcOff >> 8), byte(srcOff)})
			}
		})
		if cfg.Validate() != nil {
			return
		}
		g, err := newGenerator(cfg)
		if err != nil {
			t.Fatalf("valid config %+v: %v", cfg, err)
		}
		i %= g.Flows()
		checkFrame(t, g, g.FrameVisit(i, visit), i)
	})
}

// TestRandomFlowsMatchReference compares the incremental frames with
// gopacket's full recomputation on random configurations (seeded).
func TestRandomFlowsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		v6 := r.IntN(2) == 1
		m := Mode(r.IntN(int(numModes)))
		size := MinFrameSizeFor(v6, m) + r.IntN(MaxFrameSize-MinFrameSizeFor(v6, m)+1)
		cfg := testConfig(v6, m, size, func(c *Config) {
			c.Seed = r.Uint64()
			c.Clients = 1 + r.IntN(5000)
			c.PortsPerClient = 1 + r.IntN(1000)
			c.SrcPortBase = uint16(1 + r.IntN(60000))
			c.Dst = netip.AddrPortFrom(c.Dst.Addr(), uint16(1+r.IntN(65535)))
		})
		if err := cfg.Validate(); err != nil {
			continue
		}
		g, err := newGenerator(cfg)
		if err != nil {
			t.Fatal(err)
		}
		i := r.Uint64N(g.Flows())
		checkFrame(t, g, g.FrameVisit(i, r.Uint64N(1<<40)), i)
	}
}

// BenchmarkFill measures the generator's own per-frame cost (no kernel):
// permutation, address and port rewrite, incremental checksums.
func BenchmarkFill(b *testing.B) {
	for _, bc := range []struct {
		name string
		v6   bool
		m    Mode
	}{{"udp-v4", false, UDP}, {"tcpsyn-v4", false, TCPSyn}, {"tcpest-v6", true, TCPEstablished}} {
		b.Run(bc.name, func(b *testing.B) {
			g, err := newGenerator(testConfig(bc.v6, bc.m, 128, func(c *Config) { c.Clients, c.PortsPerClient = 65536, 64 }))
			if err != nil {
				b.Fatal(err)
			}
			umem := make([]byte, 64*umemFrameSize)
			addrs := make([]uint64, 64)
			for k := range addrs {
				addrs[k] = uint64(k) * umemFrameSize
				copy(umem[addrs[k]:], g.t.buf)
			}
			cur := newCursor(0, 1, g.Flows())
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n += len(addrs) {
				g.t.fill(umem, addrs, &cur)
			}
		})
	}
}
