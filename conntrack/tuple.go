package conntrack

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"

	"github.com/xdpgate/xdpgate/nat"
)

// Family is the IP version of a tuple: IPv4 or IPv6. The zero Family marks
// an invalid (zero) Tuple.
type Family uint8

// Families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// Tuple identifies one direction of a flow: source and destination address
// and port, IP protocol and family. It is a comparable value without
// pointers. For IPv4 only the first 4 bytes of Src and Dst are used and the
// other 12 are zero (the constructors guarantee it; == relies on it).
//
// For ICMP echo, both ports carry the echo identifier, so that the reply
// tuple (the original one reversed) matches the echo reply; a translation
// that rewrites the identifier sets both DNATPort and SNATPort to the new
// identifier.
type Tuple struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
	Proto            nat.Proto
	Family           Family
}

// MakeTuple builds a Tuple from netip addresses. Both must be of the same
// family (an IPv4-mapped IPv6 address is IPv6: it arrived in an IPv6
// header); otherwise, or for invalid addresses, it returns the zero Tuple,
// which no operation matches.
func MakeTuple(src, dst netip.Addr, sport, dport uint16, proto nat.Proto) Tuple {
	switch {
	case src.Is4() && dst.Is4():
		return Tuple4(src.As4(), dst.As4(), sport, dport, proto)
	case src.Is6() && dst.Is6():
		return Tuple6(src.As16(), dst.As16(), sport, dport, proto)
	}
	return Tuple{}
}

// Tuple4 builds an IPv4 Tuple from raw addresses (as read from an IPv4
// header).
func Tuple4(src, dst [4]byte, sport, dport uint16, proto nat.Proto) Tuple {
	t := Tuple{SrcPort: sport, DstPort: dport, Proto: proto, Family: IPv4}
	copy(t.Src[:4], src[:])
	copy(t.Dst[:4], dst[:])
	return t
}

// Tuple6 builds an IPv6 Tuple from raw addresses (as read from an IPv6
// header).
func Tuple6(src, dst [16]byte, sport, dport uint16, proto nat.Proto) Tuple {
	return Tuple{Src: src, Dst: dst, SrcPort: sport, DstPort: dport, Proto: proto, Family: IPv6}
}

// Valid reports whether t has a known family and, for IPv4, zero padding.
func (t Tuple) Valid() bool {
	switch t.Family {
	case IPv4:
		return *(*[12]byte)(t.Src[4:]) == [12]byte{} && *(*[12]byte)(t.Dst[4:]) == [12]byte{}
	case IPv6:
		return true
	}
	return false
}

// SrcAddr returns the source address as a netip.Addr.
func (t Tuple) SrcAddr() netip.Addr { return t.addr(&t.Src) }

// DstAddr returns the destination address as a netip.Addr.
func (t Tuple) DstAddr() netip.Addr { return t.addr(&t.Dst) }

func (t Tuple) addr(a *[16]byte) netip.Addr {
	switch t.Family {
	case IPv4:
		return netip.AddrFrom4([4]byte(a[:4]))
	case IPv6:
		return netip.AddrFrom16(*a)
	}
	return netip.Addr{}
}

// Reverse returns the tuple of a packet going the other way, untranslated.
func (t Tuple) Reverse() Tuple {
	t.Src, t.Dst = t.Dst, t.Src
	t.SrcPort, t.DstPort = t.DstPort, t.SrcPort
	return t
}

// String formats t as "proto src:sport -> dst:dport".
func (t Tuple) String() string {
	return fmt.Sprintf("%d %s -> %s", t.Proto,
		netip.AddrPortFrom(t.SrcAddr(), t.SrcPort), netip.AddrPortFrom(t.DstAddr(), t.DstPort))
}

// Translation is the NAT applied to original-direction packets of a flow:
// the destination becomes DNATAddr:DNATPort (the endpoint) and, when SNAT is
// set, the source becomes SNATAddr:SNATPort. Addresses follow the Tuple
// convention (IPv4 in the first 4 bytes). Family, when set (MakeTranslation
// sets it), must equal the original tuple's: there is no NAT64.
type Translation struct {
	DNATAddr [16]byte
	SNATAddr [16]byte
	DNATPort uint16
	SNATPort uint16
	SNAT     bool
	Family   Family
}

// MakeTranslation builds a Translation from netip values; an invalid snat
// means no SNAT.
func MakeTranslation(dnat, snat netip.AddrPort) Translation {
	x := Translation{DNATPort: dnat.Port(), SNATPort: snat.Port(), SNAT: snat.IsValid(), Family: IPv6}
	if dnat.Addr().Is4() {
		x.Family = IPv4
	}
	putAddr(&x.DNATAddr, dnat.Addr())
	if x.SNAT {
		putAddr(&x.SNATAddr, snat.Addr())
		if snat.Addr().Is4() != dnat.Addr().Is4() {
			x.Family = 0xff // mixed: Reply reports an invalid tuple
		}
	}
	return x
}

func putAddr(dst *[16]byte, a netip.Addr) {
	if a.Is4() {
		b := a.As4()
		*dst = [16]byte{}
		copy(dst[:4], b[:])
		return
	}
	*dst = a.As16()
}

// Reply returns the tuple that reply-direction packets of a flow with
// original tuple orig and translation x carry: from the DNAT target to the
// SNAT address (or the original source without SNAT). The table derives the
// reply tuple this way, so the two can never disagree. A translation of
// another family gives the zero (invalid) Tuple.
func (x Translation) Reply(orig Tuple) Tuple {
	if x.Family != 0 && x.Family != orig.Family {
		return Tuple{}
	}
	r := Tuple{Src: x.DNATAddr, SrcPort: x.DNATPort, Dst: orig.Src, DstPort: orig.SrcPort,
		Proto: orig.Proto, Family: orig.Family}
	if x.SNAT {
		r.Dst, r.DstPort = x.SNATAddr, x.SNATPort
	}
	return r
}

// hashKey is the per-table secret that keys the tuple hash.
type hashKey [4]uint64

// mix is the wyhash/MUM mixing step: the folded 128-bit product.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash returns the 64-bit keyed hash of t. The low 32 bits pick the home
// bucket, the high 32 bits become the index tag.
func (t *Tuple) hash(k *hashKey) uint64 {
	p := uint64(t.SrcPort)<<32 | uint64(t.DstPort)<<16 | uint64(t.Proto)<<8 | uint64(t.Family)
	if t.Family == IPv4 {
		a := uint64(binary.LittleEndian.Uint32(t.Src[:4]))<<32 | uint64(binary.LittleEndian.Uint32(t.Dst[:4]))
		return mix(mix(a^k[0], p^k[1])^k[2], a^p^k[3])
	}
	a := mix(binary.LittleEndian.Uint64(t.Src[:8])^k[0], binary.LittleEndian.Uint64(t.Src[8:])^k[1])
	b := mix(binary.LittleEndian.Uint64(t.Dst[:8])^k[2], binary.LittleEndian.Uint64(t.Dst[8:])^k[3])
	return mix(a^p^k[1], b^k[2])
}
