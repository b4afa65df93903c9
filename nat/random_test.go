package nat

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"
)

// refFix recomputes, from scratch with the slow reference, every checksum of
// a parsed frame that is not an ICMP error: the obviously correct version of
// what the rewrites do incrementally.
func refFix(f []byte, p *Packet) {
	l3, l4, end := int(p.L3Off), int(p.L4Off), int(p.End)
	if p.Version == 4 {
		put16(f[l3+IPv4ChecksumOff:], 0)
		put16(f[l3+IPv4ChecksumOff:], ^refSum(f[l3:l4], 0))
	}
	if !p.HasL4 {
		return
	}
	seg := f[l4:end]
	switch p.Proto {
	case ProtoTCP:
		put16(seg[16:], 0)
		put16(seg[16:], ^refSum(seg, refPseudo(p.Src, p.Dst, ProtoTCP, len(seg))))
	case ProtoUDP:
		if be16(seg[6:]) == 0 {
			return // no checksum
		}
		ul := int(be16(seg[4:]))
		put16(seg[6:], 0)
		c := ^refSum(seg[:ul], refPseudo(p.Src, p.Dst, ProtoUDP, ul))
		if c == 0 {
			c = 0xffff
		}
		put16(seg[6:], c)
	case ProtoICMP:
		put16(seg[2:], 0)
		put16(seg[2:], ^refSum(seg, 0))
	case ProtoICMPv6:
		put16(seg[2:], 0)
		put16(seg[2:], ^refSum(seg, refPseudo(p.Src, p.Dst, ProtoICMPv6, len(seg))))
	case ProtoSCTP:
		copy(seg[8:12], []byte{0, 0, 0, 0})
		binary.LittleEndian.PutUint32(seg[8:], refCRC32c(seg))
	}
}

func randAddr(r *rand.Rand, v4 bool) netip.Addr {
	if v4 {
		return netip.AddrFrom4([4]byte{198, 18 + byte(r.IntN(2)), byte(r.IntN(256)), byte(r.IntN(256))})
	}
	var a [16]byte
	copy(a[:], []byte{0x20, 0x01, 0, 2, 0, byte(r.IntN(256))})
	for i := 6; i < 16; i++ {
		a[i] = byte(r.IntN(256))
	}
	return netip.AddrFrom16(a)
}

func randSpec(r *rand.Rand, v4 bool, protos []Proto) frameSpec {
	s := frameSpec{src: randAddr(r, v4), dst: randAddr(r, v4), sport: uint16(r.Uint32()), dport: uint16(r.Uint32()),
		ttl: byte(1 + r.IntN(255))}
	s.proto = protos[r.IntN(len(protos))]
	if s.proto == ProtoICMP && !v4 {
		s.proto = ProtoICMPv6
	}
	for i := r.IntN(3); i > 0; i-- {
		s.vlans = append(s.vlans, uint16(r.IntN(4095)))
	}
	s.payload = make([]byte, r.IntN(300))
	for i := range s.payload {
		s.payload[i] = byte(r.Uint32())
	}
	if v4 {
		for i := r.IntN(4); i > 0; i-- {
			s.v4opts = append(s.v4opts, layers.IPv4Option{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}})
		}
	} else {
		for _, e := range []Proto{ProtoHopByHop, ProtoDstOpts, ProtoRouting, ProtoFragment} {
			if r.IntN(3) == 0 {
				s.ext = append(s.ext, e)
			}
		}
	}
	return s
}

// TestRandomIncrementalVsFull compares each incremental rewrite with the
// slow reference: write the new bytes plainly and recompute every checksum
// from scratch.
func TestRandomIncrementalVsFull(t *testing.T) {
	r := rand.New(rand.NewPCG(20261121, 1))
	for i := 0; i < 3000; i++ {
		v4 := r.IntN(2) == 0
		s := randSpec(r, v4, []Proto{ProtoTCP, ProtoUDP, ProtoSCTP, ProtoICMP})
		orig := buildFrame(t, s)
		var p Packet
		if rr := Parse(orig, &p); rr != DropNone {
			t.Fatalf("case %d: Parse() = %v", i, rr)
		}
		addr, port := randAddr(r, v4), uint16(r.Uint32())
		op := r.IntN(5)
		got := append([]byte(nil), orig...)
		want := append([]byte(nil), orig...)
		var res DropReason
		l3, l4 := int(p.L3Off), int(p.L4Off)
		srcOff, dstOff, alen := l3+IPv4SrcOff, l3+IPv4DstOff, 4
		if !v4 {
			srcOff, dstOff, alen = l3+IPv6SrcOff, l3+IPv6DstOff, 16
		}
		portOff := func(dst bool) int {
			if p.Proto == ProtoICMP || p.Proto == ProtoICMPv6 {
				return l4 + 4
			}
			if dst {
				return l4 + 2
			}
			return l4
		}
		wp := p
		switch op {
		case 0:
			res = SetDst(got, &p, addr, port)
			copy(want[dstOff:dstOff+alen], addr.AsSlice())
			put16(want[portOff(true):], port)
		case 1:
			res = SetSrc(got, &p, addr, port)
			copy(want[srcOff:srcOff+alen], addr.AsSlice())
			put16(want[portOff(false):], port)
		case 2:
			res = SetDstAddr(got, &p, addr)
			copy(want[dstOff:dstOff+alen], addr.AsSlice())
		case 3:
			res = SetSrcAddr(got, &p, addr)
			copy(want[srcOff:srcOff+alen], addr.AsSlice())
		case 4:
			res = DecrementTTL(got, &p)
			if wp.TTL <= 1 {
				if res != DropTTLExpired {
					t.Fatalf("case %d: DecrementTTL() = %v, want ttl-expired", i, res)
				}
				continue
			}
			if v4 {
				want[l3+ipv4TTL]--
			} else {
				want[l3+IPv6HopLimitOff]--
			}
		}
		if res != DropNone {
			t.Fatalf("case %d op %d: = %v, want none", i, op, res)
		}
		Parse(want, &wp)
		refFix(want, &wp)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d op %d (%+v):\nincremental %x\nfull        %x", i, op, s, got, want)
		}
		// And gopacket, serialising the translated packet from scratch.
		echo := s.proto == ProtoICMP || s.proto == ProtoICMPv6
		switch op {
		case 0:
			s.dst, s.dport = addr, port
			if echo {
				s.sport = port
			}
		case 1:
			s.src, s.sport = addr, port
		case 2:
			s.dst = addr
		case 3:
			s.src = addr
		case 4:
			s.ttl--
		}
		if gp := buildFrame(t, s); !bytes.Equal(got, gp) {
			t.Fatalf("case %d op %d:\nincremental %x\ngopacket    %x", i, op, got, gp)
		}
	}
}

// TestRandomICMPErrors translates random ICMP errors and compares with
// gopacket building the translated error from scratch.
func TestRandomICMPErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(20261121, 2))
	for i := 0; i < 1500; i++ {
		v4 := r.IntN(2) == 0
		in := randSpec(r, v4, []Proto{ProtoTCP, ProtoUDP, ProtoICMP, ProtoSCTP})
		in.vlans = nil
		out := randSpec(r, v4, []Proto{ProtoICMP})
		es := &errSpec{typ: ICMPv4DestUnreach, code: uint8(r.IntN(16)), quote: r.IntN(600)}
		if !v4 {
			es.typ = uint8(1 + r.IntN(4))
		}
		hl := 20 + 4*len(in.v4opts) + 8
		if !v4 {
			hl = 40 + 8*len(in.ext) + 8
		}
		if es.quote < hl {
			es.quote = hl
		}
		if in.proto == ProtoTCP && es.quote == hl-8+17 {
			// A quote ending inside the TCP checksum field leaves half of
			// it that cannot be updated (documented at InnerL4Checksum).
			es.quote++
		}
		if q := es.quote - (hl - 8); in.proto == ProtoSCTP && q > 8 && q < 12 {
			es.quote = hl - 8 + 12 // likewise inside the SCTP CRC32c
		}
		es.inner = in
		out.icmpErr = es
		orig := buildFrame(t, out)
		var p Packet
		if rr := Parse(orig, &p); rr != DropNone {
			t.Fatalf("case %d: Parse() = %v", i, rr)
		}
		got := append([]byte(nil), orig...)
		isrc, idst, osrc := randAddr(r, v4), randAddr(r, v4), randAddr(r, v4)
		sp, dp := uint16(r.Uint32()), uint16(r.Uint32())
		if in.proto != ProtoTCP && in.proto != ProtoUDP {
			dp = sp
		}
		for j, rr := range []DropReason{
			RewriteICMPErrorInnerSrc(got, &p, isrc, sp),
			RewriteICMPErrorInnerDst(got, &p, idst, dp),
			SetSrcAddr(got, &p, osrc),
		} {
			if rr != DropNone {
				t.Fatalf("case %d step %d = %v", i, j, rr)
			}
		}
		in.src, in.dst, in.sport, in.dport = isrc, idst, sp, dp
		es.inner = in
		out.src = osrc
		want := buildFrame(t, out)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d:\nincremental %x\ngopacket    %x", i, got, want)
		}
	}
}
