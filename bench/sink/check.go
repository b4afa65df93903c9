package sink

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/xdpgate/xdpgate/nat"
)

// sampleBytes is how much of a frame a sample holds (SAMPLE_BYTES in
// bpf/sink.c).
const sampleBytes = 256

// Header offsets used by the checker.
//
//	Ethernet: dst(6) src(6) type(2), optional 802.1Q/802.1ad tag(4)
//	IPv4 (RFC 791):
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	|Version|  IHL  |Type of Service|          Total Length         |
//	|         Identification        |Flags|      Fragment Offset    |
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	|                       Source Address                          |
//	|                    Destination Address                        |
//	IPv6 (RFC 8200): ver/class/flow(4) payload length(2) next(1) hops(1)
//	src(16) dst(16)
const (
	ethLen       = 14
	vlanLen      = 4
	ip4MinLen    = 20
	ip4TotLen    = 2
	ip4Frag      = 6
	ip4Proto     = 9
	ip4Src       = 12
	ip4Dst       = 16
	ip6Len       = 40
	ip6PayLen    = 4
	ip6Next      = 6
	ip6Src       = 8
	ip6Dst       = 24
	udpChecksum  = 6
	etherTypeV4  = 0x0800
	etherTypeV6  = 0x86DD
	etherType1Q  = 0x8100
	etherType1AD = 0x88A8
)

// checker verifies samples. It is immutable after newChecker and safe for
// concurrent use.
type checker struct {
	endpoints map[netip.AddrPort]int // keyed by unmapped address
	expectSrc []netip.Prefix
}

func newChecker(endpoints []netip.AddrPort, expectSrc []netip.Prefix) *checker {
	c := &checker{endpoints: make(map[netip.AddrPort]int, len(endpoints))}
	for _, p := range expectSrc {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		c.expectSrc = append(c.expectSrc, p.Masked())
	}
	for i, ep := range endpoints {
		c.endpoints[netip.AddrPortFrom(ep.Addr().Unmap(), ep.Port())] = i
	}
	return c
}

// verdict is the outcome of checking one sample; the reasons are for
// humans (RecentErrors) and set only on an error.
type verdict struct {
	checksumErr    bool
	translationErr bool
	l4Skipped      bool
	reason         string
}

func (v *verdict) csumFail(format string, args ...any) {
	v.checksumErr = true
	v.addReason(format, args...)
}

func (v *verdict) transFail(format string, args ...any) {
	v.translationErr = true
	v.addReason(format, args...)
}

func (v *verdict) addReason(format string, args ...any) {
	if v.reason != "" {
		v.reason += "; "
	}
	v.reason += fmt.Sprintf(format, args...)
}

// check verifies a sampled frame (at most sampleBytes of it): the IPv4
// header checksum, the TCP/UDP checksum when the whole packet was
// captured, and the translation expectations. It never panics on bad
// input: anything it cannot parse is a checksum error.
func (c *checker) check(frame []byte) verdict {
	var v verdict
	if len(frame) < ethLen {
		v.csumFail("frame of %d bytes is shorter than Ethernet", len(frame))
		return v
	}
	off := ethLen
	etype := binary.BigEndian.Uint16(frame[12:])
	if etype == etherType1Q || etype == etherType1AD {
		if len(frame) < ethLen+vlanLen {
			v.csumFail("truncated VLAN tag")
			return v
		}
		etype = binary.BigEndian.Uint16(frame[16:])
		off += vlanLen
	}
	var (
		src, dst netip.Addr
		proto    nat.Proto
		l4       []byte // whole L4 segment, nil when not captured
		ports    []byte // first four bytes of L4, nil when absent
		pseudo   uint64 // pseudo-header sum without the length
		l4Len    int
	)
	switch etype {
	case etherTypeV4:
		ip := frame[off:]
		if len(ip) < ip4MinLen {
			v.csumFail("truncated IPv4 header")
			return v
		}
		hl := int(ip[0]&0x0f) * 4
		tot := int(binary.BigEndian.Uint16(ip[ip4TotLen:]))
		if ip[0]>>4 != 4 || hl < ip4MinLen || len(ip) < hl || tot < hl {
			v.csumFail("malformed IPv4 header (version/IHL %#02x, total length %d)", ip[0], tot)
			return v
		}
		// RFC 791: "The checksum field is the 16 bit one's complement of
		// the one's complement sum of all 16 bit words in the header";
		// summing a correct header including its checksum gives 0xffff.
		if s := nat.FoldSum(nat.SumWords(ip[:hl], 0)); s != 0xffff {
			v.csumFail("IPv4 header checksum %#04x wrong", binary.BigEndian.Uint16(ip[10:]))
		}
		src = netip.AddrFrom4([4]byte(ip[ip4Src : ip4Src+4]))
		dst = netip.AddrFrom4([4]byte(ip[ip4Dst : ip4Dst+4]))
		proto = nat.Proto(ip[ip4Proto])
		frag := binary.BigEndian.Uint16(ip[ip4Frag:])
		if frag&0x1fff != 0 { // later fragment: no L4 header
			v.l4Skipped = true
			break
		}
		if len(ip) >= hl+4 {
			ports = ip[hl : hl+4]
		}
		if frag&0x2000 != 0 { // first fragment: the checksum covers all fragments
			v.l4Skipped = true
			break
		}
		l4Len = tot - hl
		if len(ip) >= tot {
			l4 = ip[hl:tot]
		}
		pseudo = nat.SumWords(ip[ip4Src:ip4Dst+4], 0) + uint64(proto)
	case etherTypeV6:
		ip := frame[off:]
		if len(ip) < ip6Len || ip[0]>>4 != 6 {
			v.csumFail("truncated or malformed IPv6 header")
			return v
		}
		src = netip.AddrFrom16([16]byte(ip[ip6Src : ip6Src+16]))
		dst = netip.AddrFrom16([16]byte(ip[ip6Dst : ip6Dst+16]))
		proto = nat.Proto(ip[ip6Next])
		l4Len = int(binary.BigEndian.Uint16(ip[ip6PayLen:]))
		if len(ip) >= ip6Len+4 {
			ports = ip[ip6Len : ip6Len+4]
		}
		if len(ip) >= ip6Len+l4Len {
			l4 = ip[ip6Len : ip6Len+l4Len]
		}
		pseudo = nat.SumWords(ip[ip6Src:ip6Dst+16], 0) + uint64(proto)
	default:
		v.csumFail("not IP (ethertype %#04x)", etype)
		return v
	}

	isL4 := proto == nat.ProtoTCP || proto == nat.ProtoUDP
	switch {
	case v.l4Skipped:
	case !isL4:
		v.l4Skipped = true
	case l4 == nil:
		v.l4Skipped = true // longer than the sample: only the IP header was checked
	case proto == nat.ProtoUDP && src.Is4() && len(l4) >= 8 && l4[udpChecksum] == 0 && l4[udpChecksum+1] == 0:
		v.l4Skipped = true // RFC 768: zero means no checksum (IPv4 only)
	default:
		// RFC 768 / RFC 793 / RFC 8200 8.1: the checksum covers a
		// pseudo-header (addresses, protocol, L4 length) and the segment;
		// a correct segment sums to 0xffff.
		if s := nat.FoldSum(nat.SumWords(l4, pseudo+uint64(l4Len))); s != 0xffff {
			v.csumFail("%s checksum wrong (%v -> %v, sum %#04x)", proto, src, dst, s)
		}
	}

	if len(c.endpoints) > 0 {
		if !isL4 || ports == nil {
			v.transFail("%v -> %v protocol %d is not to an endpoint", src, dst, proto)
		} else {
			to := netip.AddrPortFrom(dst, binary.BigEndian.Uint16(ports[2:]))
			if _, ok := c.endpoints[to]; !ok {
				v.transFail("destination %v is not a listed endpoint", to)
			}
		}
	}
	if len(c.expectSrc) > 0 && !c.srcOK(src) {
		v.transFail("source %v is not in ExpectSrc", src)
	}
	return v
}

func (c *checker) srcOK(a netip.Addr) bool {
	for _, p := range c.expectSrc {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
