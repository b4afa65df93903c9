package nat

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// benchBatch is the number of distinct frames a benchmark cycles through,
// like one receive batch. Rewriting a single frame over and over would
// measure the store-to-load latency of its checksum fields (each iteration
// reading what the previous one wrote), not the work; the dataplane never
// rewrites the same frame twice in a row.
const benchBatch = 64

func benchFrames(b *testing.B, s frameSpec) [][]byte {
	b.Helper()
	f := buildFrame(b, s)
	fs := make([][]byte, benchBatch)
	for i := range fs {
		fs[i] = append([]byte(nil), f...)
	}
	b.SetBytes(int64(len(f)))
	return fs
}

// BenchmarkParseDNATIPv4TCP: the per-packet work of the common case, an
// IPv4/TCP frame with 64 bytes of payload parsed and DNATed (each frame
// alternates between two endpoints, so every rewrite changes bytes).
func BenchmarkParseDNATIPv4TCP(b *testing.B) {
	fs := benchFrames(b, frameSpec{src: cli4, dst: vip4, proto: ProtoTCP, sport: 40000, dport: 80, payload: make([]byte, 64)})
	addrs := [2]netip.Addr{be4, vip4}
	ports := [2]uint16{8080, 80}
	var p Packet
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		f := fs[i%benchBatch]
		k := (i / benchBatch) & 1
		if Parse(f, &p) != DropNone {
			b.Fatal("parse")
		}
		if SetDst(f, &p, addrs[k], ports[k]) != DropNone {
			b.Fatal("dnat")
		}
	}
}

// BenchmarkParseDNATIPv6UDP: the same for IPv6/UDP.
func BenchmarkParseDNATIPv6UDP(b *testing.B) {
	fs := benchFrames(b, frameSpec{src: cli6, dst: vip6, proto: ProtoUDP, sport: 40000, dport: 5300, payload: make([]byte, 64)})
	addrs := [2]netip.Addr{be6, vip6}
	ports := [2]uint16{8080, 5300}
	var p Packet
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		f := fs[i%benchBatch]
		k := (i / benchBatch) & 1
		if Parse(f, &p) != DropNone {
			b.Fatal("parse")
		}
		if SetDst(f, &p, addrs[k], ports[k]) != DropNone {
			b.Fatal("dnat")
		}
	}
}

// BenchmarkParseDNATICMPError: an IPv4 fragmentation-needed error about a
// translated TCP flow (full quote), parsed and translated back: inner
// source and destination, outer destination.
func BenchmarkParseDNATICMPError(b *testing.B) {
	fs := benchFrames(b, frameSpec{src: rtr4, dst: gw4, proto: ProtoICMP, icmpErr: &errSpec{typ: 3, code: 4, mtu: 1400,
		inner: frameSpec{src: gw4, dst: be4, proto: ProtoTCP, sport: 61000, dport: 8080, payload: make([]byte, 64)}}})
	in := [2][2]netip.Addr{{cli4, vip4}, {gw4, be4}}
	ports := [2][2]uint16{{40000, 80}, {61000, 8080}}
	var p Packet
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		f := fs[i%benchBatch]
		k := (i / benchBatch) & 1
		if Parse(f, &p) != DropNone {
			b.Fatal("parse")
		}
		if RewriteICMPErrorInnerSrc(f, &p, in[k][0], ports[k][0]) != DropNone ||
			RewriteICMPErrorInnerDst(f, &p, in[k][1], ports[k][1]) != DropNone ||
			SetDstAddr(f, &p, in[k][0]) != DropNone {
			b.Fatal("rewrite")
		}
	}
}

// BenchmarkParseIPv4TCP: Parse alone, on the frames of
// BenchmarkParseDNATIPv4TCP.
func BenchmarkParseIPv4TCP(b *testing.B) {
	fs := benchFrames(b, frameSpec{src: cli4, dst: vip4, proto: ProtoTCP, sport: 40000, dport: 80, payload: make([]byte, 64)})
	var p Packet
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if Parse(fs[i%benchBatch], &p) != DropNone {
			b.Fatal("parse")
		}
	}
}

// BenchmarkGopacketDecodingLayerParserIPv4TCP is the reference: gopacket's
// fastest decoding path (DecodingLayerParser with preallocated Ethernet,
// IPv4, TCP and payload layers) on the frames of BenchmarkParseDNATIPv4TCP,
// decoding only (no rewrite).
func BenchmarkGopacketDecodingLayerParserIPv4TCP(b *testing.B) {
	fs := benchFrames(b, frameSpec{src: cli4, dst: vip4, proto: ProtoTCP, sport: 40000, dport: 80, payload: make([]byte, 64)})
	var (
		eth     layers.Ethernet
		ip4     layers.IPv4
		tcp     layers.TCP
		payload gopacket.Payload
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &tcp, &payload)
	decoded := make([]gopacket.LayerType, 0, 4)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := parser.DecodeLayers(fs[i%benchBatch], &decoded); err != nil {
			b.Fatal(err)
		}
		if tcp.DstPort != 80 {
			b.Fatal("decode")
		}
	}
}
