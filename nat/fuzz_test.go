package nat

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// checkPacketInvariants asserts what every successful parse promises.
func checkPacketInvariants(t *testing.T, frame []byte, p *Packet) {
	t.Helper()
	if !(p.L3Off <= p.L4Off && p.L4Off <= p.End && int(p.End) <= len(frame)) {
		t.Fatalf("offsets L3 %d L4 %d End %d len %d out of order", p.L3Off, p.L4Off, p.End, len(frame))
	}
	l3 := int(p.L3Off)
	switch p.Version {
	case 4:
		if got := netip.AddrFrom4([4]byte(frame[l3+12 : l3+16])); got != p.Src {
			t.Fatalf("Src = %v, frame has %v", p.Src, got)
		}
		if int(be16(frame[l3+2:])) != int(p.End)-l3 {
			t.Fatalf("End = %d, IPv4 total length says %d", p.End, l3+int(be16(frame[l3+2:])))
		}
	case 6:
		if got := netip.AddrFrom16([16]byte(frame[l3+24 : l3+40])); got != p.Dst {
			t.Fatalf("Dst = %v, frame has %v", p.Dst, got)
		}
	default:
		t.Fatalf("Version = %d after a successful parse", p.Version)
	}
	if p.HasPorts && !p.HasL4 {
		t.Fatalf("HasPorts without HasL4")
	}
	if p.HasL4 && p.FragOffset != 0 {
		t.Fatalf("HasL4 on a non-first fragment")
	}
	if p.ICMPError {
		if !(p.L4Off+8 == p.InnerL3Off && p.InnerL3Off <= p.InnerL4Off && p.InnerL4Off <= p.End) {
			t.Fatalf("inner offsets L4 %d InnerL3 %d InnerL4 %d End %d", p.L4Off, p.InnerL3Off, p.InnerL4Off, p.End)
		}
		if p.InnerHasPorts && int(p.InnerL4Off)+8 > int(p.End) {
			t.Fatalf("InnerHasPorts with fewer than 8 quoted bytes")
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		orig := append([]byte(nil), frame...)
		var p Packet
		r := Parse(frame, &p)
		if r >= NumDropReasons {
			t.Fatalf("Parse() = %d, beyond NumDropReasons", r)
		}
		if !bytes.Equal(frame, orig) {
			t.Fatalf("Parse() changed the frame")
		}
		if r == DropNone {
			checkPacketInvariants(t, frame, &p)
		}
		var q Packet
		if r2 := Parse(frame, &q); r2 != r || (r == DropNone && q != p) {
			t.Fatalf("Parse() not deterministic")
		}
	})
}

// checkReply asserts that a built reply parses as an ICMP error with valid
// IP and ICMP checksums (the quoted packet's own checksums are whatever the
// offending packet had).
func checkReply(t *testing.T, reply []byte) {
	t.Helper()
	var p Packet
	if r := Parse(reply, &p); r != DropNone || !p.ICMPError {
		t.Fatalf("reply: Parse() = %v, ICMPError %v, want none, true", r, p.ICMPError)
	}
	for _, r := range refRegions(reply, &p) {
		switch r.name {
		case "ipv4", "icmp", "icmpv6":
			if r.sum%0xffff != 0 {
				t.Fatalf("reply: %s sum = %#04x, want 0xffff", r.name, r.sum)
			}
		}
	}
}

// csumOffsets lists the checksum fields of regions (for equalModNegZero).
func csumOffsets(rs []region) []int {
	var o []int
	for _, r := range rs {
		o = append(o, r.off)
	}
	return o
}

func addrFrom(v4 bool, b []byte) netip.Addr {
	var a [16]byte
	copy(a[:], b)
	if v4 {
		return netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.AddrFrom16(a)
}

// FuzzRewrite: on every input that parses, each rewrite either refuses
// without touching the frame, or keeps every checksum sum unchanged (valid
// stays valid; a wrong one stays wrong by the same amount), keeps Packet and
// frame in step, and its reverse restores the frame (up to -0 -> +0 in a
// checksum field, see the package documentation).
func FuzzRewrite(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s, []byte{198, 18, 7, 7, 0x20, 1, 0, 2, 9, 9, 9, 9, 9, 9, 9, 9}, uint16(8080))
	}
	type op struct {
		name string
		do   func(b []byte, p *Packet, a netip.Addr, port uint16) DropReason
		old  func(p *Packet) (netip.Addr, uint16)
	}
	ops := []op{
		{"SetDst", SetDst, func(p *Packet) (netip.Addr, uint16) { return p.Dst, p.DstPort }},
		{"SetSrc", SetSrc, func(p *Packet) (netip.Addr, uint16) { return p.Src, p.SrcPort }},
		{"SetDstAddr", func(b []byte, p *Packet, a netip.Addr, _ uint16) DropReason { return SetDstAddr(b, p, a) }, func(p *Packet) (netip.Addr, uint16) { return p.Dst, 0 }},
		{"SetSrcAddr", func(b []byte, p *Packet, a netip.Addr, _ uint16) DropReason { return SetSrcAddr(b, p, a) }, func(p *Packet) (netip.Addr, uint16) { return p.Src, 0 }},
		{"InnerSrc", RewriteICMPErrorInnerSrc, func(p *Packet) (netip.Addr, uint16) { return p.InnerSrc, p.InnerSrcPort }},
		{"InnerDst", RewriteICMPErrorInnerDst, func(p *Packet) (netip.Addr, uint16) { return p.InnerDst, p.InnerDstPort }},
	}
	f.Fuzz(func(t *testing.T, frame []byte, addr []byte, port uint16) {
		var p0 Packet
		if Parse(frame, &p0) != DropNone {
			return
		}
		a := addrFrom(p0.Version == 4, addr)
		for _, o := range ops {
			b := append([]byte(nil), frame...)
			p := p0
			before := refRegions(b, &p)
			oldA, oldPort := o.old(&p)
			if r := o.do(b, &p, a, port); r != DropNone {
				if !bytes.Equal(b, frame) || p != p0 {
					t.Fatalf("%s refused (%v) but changed the frame or Packet", o.name, r)
				}
				continue
			}
			checkRegions(t, o.name, before, frame, b, &p)
			var q Packet
			if r := Parse(b, &q); r != DropNone || q != p {
				t.Fatalf("%s: reparse = %v %+v, want Packet %+v", o.name, r, q, p)
			}
			if r := o.do(b, &p, oldA, oldPort); r != DropNone {
				t.Fatalf("%s reverse = %v, want none", o.name, r)
			}
			if !equalModNegZero(b, frame, csumOffsets(before)) {
				t.Fatalf("%s and reverse = \n%x, want\n%x", o.name, b, frame)
			}
			if p != p0 {
				t.Fatalf("%s and reverse: Packet = %+v, want %+v", o.name, p, p0)
			}
		}
		b := append([]byte(nil), frame...)
		p := p0
		before := refRegions(b, &p)
		if r := DecrementTTL(b, &p); r == DropNone {
			checkRegions(t, "DecrementTTL", before, frame, b, &p)
		} else if !bytes.Equal(b, frame) {
			t.Fatalf("DecrementTTL refused (%v) but changed the frame", r)
		}
		buf := make([]byte, 1600)
		for _, build := range []func([]byte, []byte, *Packet, netip.Addr) (int, error){BuildICMPPortUnreachable, BuildICMPTimeExceeded, tooBig(1280)} {
			if n, err := build(buf, frame, &p0, a); err == nil {
				checkReply(t, buf[:n])
			}
		}
	})
}

// seedFrames are gopacket-built frames covering every parser path; they seed
// both fuzz targets and are written to testdata/fuzz by -writecorpus.
func seedFrames(t testing.TB) [][]byte {
	var out [][]byte
	for _, tc := range rewriteSpecs() {
		out = append(out, buildFrame(t, tc.spec))
	}
	out = append(out,
		buildFrame(t, frameSpec{src: rtr4, dst: gw4, proto: ProtoICMP, icmpErr: &errSpec{typ: 3, code: 4, mtu: 1400, quote: 28,
			inner: frameSpec{src: gw4, dst: be4, proto: ProtoTCP, sport: 61000, dport: 8080}}}),
		buildFrame(t, frameSpec{src: be4, dst: gw4, proto: ProtoICMP, icmpErr: &errSpec{typ: 3, code: 3,
			inner: frameSpec{src: gw4, dst: be4, proto: ProtoUDP, sport: 61000, dport: 5300, payload: []byte("q")}}}),
		buildFrame(t, frameSpec{vlans: []uint16{2}, src: rtr6, dst: gw6, proto: ProtoICMPv6, icmpErr: &errSpec{typ: 2, mtu: 1280,
			inner: frameSpec{src: gw6, dst: be6, proto: ProtoTCP, sport: 61000, dport: 8080, ext: []Proto{ProtoDstOpts}}}}),
		buildFrame(t, frameSpec{src: rtr6, dst: gw6, proto: ProtoICMPv6, icmpErr: &errSpec{typ: 3,
			inner: frameSpec{src: gw6, dst: be6, proto: ProtoICMPv6, sport: 61000}}}),
		buildFrame(t, frameSpec{src: rtr4, dst: gw4, proto: ProtoICMP, icmpErr: &errSpec{typ: 11,
			inner: frameSpec{src: gw4, dst: be4, proto: ProtoSCTP, sport: 61000, dport: 3868, payload: []byte("data")}}}),
	)
	return out
}

var writeCorpus = flag.Bool("writecorpus", false, "write the seed frames to testdata/fuzz/{FuzzParse,FuzzRewrite}")

// TestWriteFuzzCorpus regenerates the committed seed corpus when run with
// -writecorpus; otherwise it checks that the committed corpus exists.
func TestWriteFuzzCorpus(t *testing.T) {
	dirP := filepath.Join("testdata", "fuzz", "FuzzParse")
	dirR := filepath.Join("testdata", "fuzz", "FuzzRewrite")
	if !*writeCorpus {
		for _, d := range []string{dirP, dirR} {
			if es, err := os.ReadDir(d); err != nil || len(es) == 0 {
				t.Errorf("seed corpus %s missing (go test -run TestWriteFuzzCorpus -writecorpus): %v", d, err)
			}
		}
		return
	}
	for _, d := range []string{dirP, dirR} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, fr := range seedFrames(t) {
		p := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", fr)
		r := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\nuint16(%d)\n", fr,
			[]byte{198, 18, byte(i), 9, 0x20, 1, 0, 2, 0, byte(i), 1, 2, 3, 4, 5, 6}, 1000+i)
		if err := os.WriteFile(filepath.Join(dirP, fmt.Sprintf("seed-%02d", i)), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dirR, fmt.Sprintf("seed-%02d", i)), []byte(r), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
