package dataplane

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xdpgate/xdpgate/nat"
)

// fakeHops is a NextHopper backed by a map.
type fakeHops map[netip.Addr]struct {
	hop Hop
	st  LookupStatus
}

func (f fakeHops) Lookup(dst netip.Addr) (Hop, LookupStatus) {
	r, ok := f[dst]
	if !ok {
		return Hop{}, LookupNoRoute
	}
	return r.hop, r.st
}

var (
	hopMACSrc = [6]byte{0x02, 0xaa, 0, 0, 0, 1}
	hopMACDst = [6]byte{0x02, 0xbb, 0, 0, 0, 2}
)

func testHops() fakeHops {
	h := Hop{Ifindex: 7, SrcMAC: hopMACSrc, DstMAC: hopMACDst}
	return fakeHops{
		netip.MustParseAddr("198.18.2.2"):  {h, LookupOK},
		netip.MustParseAddr("2001:2::2:2"): {h, LookupOK},
		netip.MustParseAddr("198.18.3.3"):  {Hop{Ifindex: 7, SrcMAC: hopMACSrc}, LookupUnresolved},
	}
}

// frameOf puts b into a 2 KiB chunk at offset 256, like a received frame.
func frameOf(b []byte) Frame {
	buf := make([]byte, 2048)
	copy(buf[256:], b)
	return Frame{Buf: buf, Off: 256, Len: len(b)}
}

func udpFrame(t testing.TB, src, dst string, ttl uint8, vlan bool) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	var ls []gopacket.SerializableLayer
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	ls = append(ls, eth)
	var nl gopacket.NetworkLayer
	if s.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Protocol: layers.IPProtocolUDP, SrcIP: s.AsSlice(), DstIP: d.AsSlice()}
		nl = ip
		ls = append(ls, ip)
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: ttl, NextHeader: layers.IPProtocolUDP, SrcIP: s.AsSlice(), DstIP: d.AsSlice()}
		nl = ip
		ls = append(ls, ip)
	}
	if vlan {
		et := eth.EthernetType
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append([]gopacket.SerializableLayer{eth, &layers.Dot1Q{VLANIdentifier: 5, Type: et}}, ls[1:]...)
	}
	udp := &layers.UDP{SrcPort: 1000, DstPort: 2000}
	udp.SetNetworkLayerForChecksum(nl)
	ls = append(ls, udp, gopacket.Payload([]byte("payload")))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestForwarder(t *testing.T) {
	fw := NewForwarder(testHops())
	cases := []struct {
		name    string
		frame   []byte
		verdict Verdict
		reason  DropReason
		ttl     uint8 // expected TTL/hop limit after, when forwarded
	}{
		{"ipv4", udpFrame(t, "198.18.1.2", "198.18.2.2", 64, false), VerdictTX, 0, 63},
		{"ipv6", udpFrame(t, "2001:2::1:2", "2001:2::2:2", 2, false), VerdictTX, 0, 1},
		{"ipv4 ttl 1", udpFrame(t, "198.18.1.2", "198.18.2.2", 1, false), VerdictDrop, DropTTLExceeded, 0},
		{"ipv6 hop limit 0", udpFrame(t, "2001:2::1:2", "2001:2::2:2", 0, false), VerdictDrop, DropTTLExceeded, 0},
		{"no route", udpFrame(t, "198.18.1.2", "198.18.9.9", 64, false), VerdictDrop, DropNoRoute, 0},
		{"unresolved", udpFrame(t, "198.18.1.2", "198.18.3.3", 64, false), VerdictHold, 0, 63},
		{"vlan", udpFrame(t, "198.18.1.2", "198.18.2.2", 64, true), VerdictDrop, DropNotIP, 0},
		{"arp", append(make([]byte, 12), 0x08, 0x06, 0, 1), VerdictDrop, DropNotIP, 0},
		{"short", make([]byte, 10), VerdictDrop, DropMalformed, 0},
		{"ipv4 truncated", udpFrame(t, "198.18.1.2", "198.18.2.2", 64, false)[:14+12], VerdictDrop, DropMalformed, 0},
		{"ipv4 bad ihl", func() []byte {
			b := udpFrame(t, "198.18.1.2", "198.18.2.2", 64, false)
			b[14] = 0x43
			return b
		}(), VerdictDrop, DropMalformed, 0},
		{"ipv6 truncated", udpFrame(t, "2001:2::1:2", "2001:2::2:2", 64, false)[:14+30], VerdictDrop, DropMalformed, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frames := []Frame{frameOf(tc.frame)}
			fw.Process(&Queue{}, frames)
			f := frames[0]
			if f.Verdict != tc.verdict || (tc.verdict == VerdictDrop && f.Reason != tc.reason) {
				t.Fatalf("Process(%s) = verdict %d reason %v, want %d %v", tc.name, f.Verdict, f.Reason, tc.verdict, tc.reason)
			}
			if tc.verdict == VerdictDrop {
				return
			}
			if f.Ifindex != 7 {
				t.Errorf("Process(%s).Ifindex = %d, want 7", tc.name, f.Ifindex)
			}
			b := f.Data()
			wantDst := hopMACDst
			if tc.verdict == VerdictHold {
				// The dataplane writes the destination MAC on release.
				wantDst = [6]byte{2, 0, 0, 0, 0, 2}
				if want := netip.MustParseAddr("198.18.3.3"); f.NextHop != want {
					t.Errorf("Process(%s).NextHop = %v, want %v", tc.name, f.NextHop, want)
				}
			}
			if [6]byte(b[0:6]) != wantDst || [6]byte(b[6:12]) != hopMACSrc {
				t.Errorf("Process(%s) MACs = %x %x, want %x %x", tc.name, b[0:6], b[6:12], wantDst, hopMACSrc)
			}
			pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
			if ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
				if ip4.TTL != tc.ttl {
					t.Errorf("TTL = %d, want %d", ip4.TTL, tc.ttl)
				}
				got := ip4.Checksum
				if want := refIPv4Checksum(b[14 : 14+20]); got != want {
					t.Errorf("IPv4 checksum = %#04x, want %#04x", got, want)
				}
			} else if ip6, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
				if ip6.HopLimit != tc.ttl {
					t.Errorf("hop limit = %d, want %d", ip6.HopLimit, tc.ttl)
				}
			} else {
				t.Errorf("forwarded frame does not decode as IP")
			}
		})
	}
}

// refIPv4Checksum recomputes the header checksum from scratch (RFC 791), the
// obviously-correct reference for nat.DecrementTTL4.
func refIPv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		if i == 10 {
			continue
		}
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return ^uint16(sum)
}

func checkDecTTL4(t *testing.T, h []byte) {
	t.Helper()
	binary.BigEndian.PutUint16(h[10:], refIPv4Checksum(h))
	ttl := h[8]
	if ttl <= 1 {
		before := string(h)
		if nat.DecrementTTL4(h) {
			t.Fatalf("nat.DecrementTTL4(ttl %d) = true, want false (must not be forwarded)", ttl)
		}
		if string(h) != before {
			t.Fatalf("nat.DecrementTTL4(ttl %d) changed the header %x, want it unchanged", ttl, h)
		}
		return
	}
	if !nat.DecrementTTL4(h) {
		t.Fatalf("nat.DecrementTTL4(ttl %d) = false, want true", ttl)
	}
	got := binary.BigEndian.Uint16(h[10:])
	want := refIPv4Checksum(h)
	// 0x0000 and 0xffff are the same value in one's complement; a valid
	// header (RFC 1624 section 3) sums to 0xffff either way.
	if got != want && !(got^want == 0xffff && (got == 0 || want == 0)) {
		t.Fatalf("nat.DecrementTTL4(ttl %d, %x) checksum = %#04x, want %#04x", ttl, h, got, want)
	}
	if h[8] != ttl-1 {
		t.Fatalf("nat.DecrementTTL4 TTL = %d, want %d", h[8], ttl-1)
	}
}

func TestDecTTL4Random(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := make([]byte, 20)
	for i := 0; i < 100000; i++ {
		for j := range h {
			h[j] = byte(r.Uint32())
		}
		checkDecTTL4(t, h)
	}
}

func FuzzDecTTL4(f *testing.F) {
	f.Add(udpFrame(f, "198.18.1.2", "198.18.2.2", 64, false)[14:34])
	f.Add(make([]byte, 20))
	f.Fuzz(func(t *testing.T, h []byte) {
		if len(h) < 20 {
			return
		}
		checkDecTTL4(t, h[:20])
	})
}

func FuzzForwarder(f *testing.F) {
	f.Add(udpFrame(f, "198.18.1.2", "198.18.2.2", 64, false))
	f.Add(udpFrame(f, "2001:2::1:2", "2001:2::2:2", 64, false))
	fw := NewForwarder(testHops())
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 2048-256 {
			return
		}
		frames := []Frame{frameOf(b)}
		fw.Process(&Queue{}, frames) // must not panic
		if frames[0].Verdict == VerdictDrop && frames[0].Reason >= NumDropReasons {
			t.Fatalf("reason %d out of range", frames[0].Reason)
		}
	})
}

func TestNoAllocsForwarder(t *testing.T) {
	fw := NewForwarder(testHops())
	tmpl := [][]byte{
		udpFrame(t, "198.18.1.2", "198.18.2.2", 255, false),
		udpFrame(t, "2001:2::1:2", "2001:2::2:2", 255, false),
		udpFrame(t, "198.18.1.2", "198.18.9.9", 255, false),
		udpFrame(t, "198.18.1.2", "198.18.3.3", 255, false), // held
	}
	frames := make([]Frame, 0, 64)
	for i := 0; i < 64; i++ {
		frames = append(frames, frameOf(tmpl[i%len(tmpl)]))
	}
	if n := testing.AllocsPerRun(100, func() {
		for i := range frames {
			frames[i].Buf[256+14+8] = 255 // reset TTL (checksum drift is irrelevant here)
			frames[i].Buf[256+14+7] = 255 // IPv6 hop limit byte
		}
		fw.Process(&Queue{}, frames)
	}); n != 0 {
		t.Errorf("Forwarder.Process allocs = %v, want 0", n)
	}
}

func BenchmarkForwarder(b *testing.B) {
	fw := NewForwarder(testHops())
	frames := make([]Frame, 64)
	tmpl := udpFrame(b, "198.18.1.2", "198.18.2.2", 255, false)
	for i := range frames {
		frames[i] = frameOf(tmpl)
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := range frames {
			frames[i].Buf[256+14+8] = 255
		}
		fw.Process(&Queue{}, frames)
	}
	b.ReportMetric(float64(b.N*len(frames))/b.Elapsed().Seconds(), "frames/s")
}
