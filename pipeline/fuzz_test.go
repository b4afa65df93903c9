package pipeline

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// fuzzSnapshot has services of every kind: ClientIP with a NodePort, UDP,
// IPv6, and one without endpoints (rejects).
func fuzzSnapshot(t testing.TB) *snapshot.Snapshot {
	return ptSnapshot(t, snapshot.Snapshot{NodePortAddrs: []netip.Addr{ptGW4, ptGW6}, ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), func(sp *snapshot.ServicePort) { sp.AffinitySeconds = 10; sp.NodePort = 30000 }),
		ptPort(2, nat.ProtoUDP, ptVIP4, twoEndpoints4(), nil),
		ptPort(3, nat.ProtoTCP, ptVIP6, []netip.Addr{ptEP6a}, func(sp *snapshot.ServicePort) { sp.NodePort = 30000 }),
		ptPort(4, nat.ProtoTCP, netip.MustParseAddr("198.18.100.2"), nil, nil),
	}})
}

// freshWorld is a pipeline with small tables of its own, so every fuzz
// input starts from the same state and a finding reproduces from its input
// alone.
func freshWorld(t testing.TB, s *snapshot.Snapshot) *ptWorld {
	t.Helper()
	ct, err := conntrack.New(conntrack.Config{MaxFlows: 256, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	aff, err := affinity.New(affinity.Config{Capacity: 64, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	clock := &ptClock{t: 1000 * second}
	p, err := New(Config{Conntrack: ct, Affinity: aff, Hops: ptHops{}, NumQueues: 1, Now: clock.now,
		Wall: func() int64 { return 1_800_000_000 * second }})
	if err != nil {
		t.Fatal(err)
	}
	p.Publish(s)
	return &ptWorld{p: p, ct: ct, aff: aff, clock: clock}
}

// l4Tuple is what the fuzz checks compare: a TCP or UDP packet's addresses
// and ports, read with gopacket (the oracle, independent of package nat).
type l4Tuple struct {
	src, dst     netip.Addr
	sport, dport uint16
	tcp          bool
}

func (tu l4Tuple) String() string {
	proto := "udp"
	if tu.tcp {
		proto = "tcp"
	}
	return fmt.Sprintf("%s %v -> %v", proto, netip.AddrPortFrom(tu.src, tu.sport), netip.AddrPortFrom(tu.dst, tu.dport))
}

// fuzzDecode decodes a frame with gopacket. ok is false for anything but an
// unfragmented TCP or UDP packet in IPv4 or IPv6 (ICMP replies, fragments,
// what gopacket cannot decode). For those it checks every checksum: the
// IPv4 header's, and the TCP or UDP one over its pseudo-header; err says
// which is wrong.
func fuzzDecode(b []byte) (tu l4Tuple, ok bool, err error) {
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true, Lazy: false})
	if p.ErrorLayer() != nil {
		return l4Tuple{}, false, nil
	}
	var pseudo []byte
	var segment []byte
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		if ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
			return l4Tuple{}, false, nil
		}
		if csum(ip.Contents) != 0 {
			return l4Tuple{}, false, fmt.Errorf("IPv4 header checksum wrong in frame %x", b)
		}
		tu.src, tu.dst = netip.AddrFrom4([4]byte(ip.SrcIP.To4())), netip.AddrFrom4([4]byte(ip.DstIP.To4()))
		segment = ip.Payload
		pseudo = append(append(append([]byte{}, ip.SrcIP.To4()...), ip.DstIP.To4()...), 0, byte(ip.Protocol), byte(len(segment)>>8), byte(len(segment)))
	case *layers.IPv6:
		if p.Layer(layers.LayerTypeIPv6Fragment) != nil {
			return l4Tuple{}, false, nil
		}
		tu.src, tu.dst = netip.AddrFrom16([16]byte(ip.SrcIP)), netip.AddrFrom16([16]byte(ip.DstIP))
		tl := p.TransportLayer()
		if tl == nil {
			return l4Tuple{}, false, nil
		}
		segment = append(append([]byte{}, tl.LayerContents()...), tl.LayerPayload()...)
		proto := byte(layers.IPProtocolUDP)
		if tl.LayerType() == layers.LayerTypeTCP {
			proto = byte(layers.IPProtocolTCP)
		}
		pseudo = append(append(append([]byte{}, ip.SrcIP...), ip.DstIP...), 0, 0, byte(len(segment)>>8), byte(len(segment)), 0, 0, 0, proto)
	default:
		return l4Tuple{}, false, nil
	}
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		tu.sport, tu.dport, tu.tcp = uint16(l.SrcPort), uint16(l.DstPort), true
	case *layers.UDP:
		tu.sport, tu.dport = uint16(l.SrcPort), uint16(l.DstPort)
		if tu.src.Is4() && l.Checksum == 0 {
			return tu, true, nil // no checksum: allowed for UDP over IPv4
		}
	default:
		return l4Tuple{}, false, nil
	}
	if csum(append(pseudo, segment...)) != 0 {
		return l4Tuple{}, false, fmt.Errorf("TCP/UDP checksum wrong in frame %x", b)
	}
	return tu, true, nil
}

// reply builds the answer an endpoint would send to a forwarded frame: the
// addresses and ports swapped, an ACK for TCP, with gopacket computing the
// checksums.
func fuzzReply(t *testing.T, fwd l4Tuple) []byte {
	t.Helper()
	k := ptPkt{src: fwd.dst, dst: fwd.src, sport: fwd.dport, dport: fwd.sport, proto: layers.IPProtocolUDP}
	if fwd.tcp {
		k.proto, k.tcpFlags = layers.IPProtocolTCP, "A"
	}
	return k.build(t)
}

// FuzzPipeline feeds arbitrary frames (seeded with valid ones of every
// kind) through a pipeline with services of every kind, each input on a
// fresh pipeline: it must never panic, every dropped frame carries a
// specific reason, and every transmitted frame is right. A transmitted TCP
// or UDP frame has valid IP and L4 checksums (gopacket decodes it and the
// sums are recomputed independently), goes to one of the service's
// endpoints with the target port, from the client (or, masqueraded, from
// the gateway's address), and the endpoint's answer to it is translated
// back to exactly the reverse of the input: from the frontend the client
// addressed, to the client's address and port.
func FuzzPipeline(f *testing.F) {
	s := fuzzSnapshot(f)
	for _, k := range []ptPkt{
		tcpPkt(ptClient4, 1, ptVIP4, 80, "S"), udpPkt(ptClient4, 2, ptVIP4, 80), tcpPkt(ptClient6, 3, ptVIP6, 80, "S"),
		tcpPkt(ptClient4, 4, ptGW4, 30000, "S"), tcpPkt(ptClient4, 5, netip.MustParseAddr("198.18.100.2"), 80, "S"),
		tcpPkt(ptEP4a, 8080, ptClient4, 1, "SA"), tcpPkt(ptClient6, 6, ptGW6, 30000, "S"),
	} {
		f.Add(k.build(f))
	}
	f.Add(icmp4Error(ptEP4a, ptClient4, tcpPkt(ptClient4, 1, ptEP4a, 8080, "S").build(f)[14:42]))
	endpoints := map[netip.Addr]bool{}
	for i := range s.ServicePorts {
		for _, e := range s.ServicePorts[i].Endpoints {
			endpoints[e.Addr] = true
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1792 {
			b = b[:1792]
		}
		in, inOK, inErr := fuzzDecode(b)
		inOK = inOK && inErr == nil
		w := freshWorld(t, s)
		fs := []dataplane.Frame{ptFrame(b)}
		w.p.Process(&dataplane.Queue{Index: 0, Ifindex: 2}, fs)
		fr := fs[0]
		if fr.Verdict == dataplane.VerdictDrop && fr.Reason == dataplane.DropUnspecified {
			t.Fatalf("frame %x dropped without a reason", b)
		}
		if fr.Verdict != dataplane.VerdictTX {
			return
		}
		if fr.Off < 0 || fr.Off+fr.Len > len(fr.Buf) || fr.Len < 14 {
			t.Fatalf("TX frame out of bounds: off %d len %d", fr.Off, fr.Len)
		}
		out, outOK, err := fuzzDecode(fr.Data())
		if err != nil && inErr == nil {
			t.Fatalf("transmitted a frame with a wrong checksum for valid input %x: %v", b, err)
		}
		if !inOK || !outOK {
			return // ICMP replies, fragments: covered by the pipeline's table tests
		}
		// A fresh pipeline forwards only new flows: client -> endpoint.
		if !endpoints[out.dst] || out.dport != 8080 || out.tcp != in.tcp {
			t.Fatalf("forwarded %+v to %+v: want an endpoint's port 8080", in, out)
		}
		if out.src != in.src && out.src != ptGW4 && out.src != ptGW6 {
			t.Fatalf("forwarded %+v from %v: want the client or the gateway's address", in, out.src)
		}
		if out.src == in.src && out.sport != in.sport {
			t.Fatalf("forwarded %+v from port %d: an unmasqueraded flow keeps the client's port", in, out.sport)
		}
		// The endpoint answers; the answer must come back reversed.
		rs := []dataplane.Frame{ptFrame(fuzzReply(t, out))}
		w.p.Process(&dataplane.Queue{Index: 0, Ifindex: 3}, rs)
		if _, st := (ptHops{}).Lookup(in.src); st == dataplane.LookupNoRoute {
			// A client the node has no route back to (here: outside the
			// test ranges): its answer is dropped, and counted so.
			if rs[0].Verdict != dataplane.VerdictDrop || rs[0].Reason != dataplane.DropNoRoute {
				t.Fatalf("the endpoint's reply to %+v, whose client has no route: verdict %v (%v), want dropped as no_route", out, rs[0].Verdict, rs[0].Reason)
			}
			return
		}
		if rs[0].Verdict != dataplane.VerdictTX {
			t.Fatalf("the endpoint's reply to %+v was dropped (%v)", out, rs[0].Reason)
		}
		back, ok, err := fuzzDecode(rs[0].Data())
		if err != nil {
			t.Fatalf("reverse translation of %+v: %v", in, err)
		}
		if !ok || back.src != in.dst || back.sport != in.dport || back.dst != in.src || back.dport != in.sport {
			t.Fatalf("reverse translation of %+v gave %+v, want %v:%d -> %v:%d", in, back, in.dst, in.dport, in.src, in.sport)
		}
	})
}

// TestFuzzDecodeChecksums: the fuzz oracle itself catches a wrong checksum.
func TestFuzzDecodeChecksums(t *testing.T) {
	good := tcpPkt(ptClient4, 1, ptVIP4, 80, "S").build(t)
	if _, ok, err := fuzzDecode(good); !ok || err != nil {
		t.Fatalf("fuzzDecode(valid TCP) = %v, %v", ok, err)
	}
	for _, off := range []int{14 + 10, 14 + 20 + 16} { // IPv4 header, TCP checksum
		bad := append([]byte(nil), good...)
		binary.BigEndian.PutUint16(bad[off:], binary.BigEndian.Uint16(bad[off:])+1)
		if _, _, err := fuzzDecode(bad); err == nil {
			t.Errorf("fuzzDecode accepted a wrong checksum at offset %d", off)
		}
	}
}
