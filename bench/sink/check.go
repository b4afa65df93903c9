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

// checker verifies samples. It is immutable after newChecker and safe for
// concurrent use.
type checker struct {
	endpoints    map[netip.AddrPort]int // keyed by unmapped address
	replySources map[netip.AddrPort]int // the same
	expectSrc    []netip.Prefix
}

func newChecker(endpoints []netip.AddrPort, expectSrc []netip.Prefix, replySources []netip.AddrPort) *checker {
	c := &checker{endpoints: unmapped(endpoints), replySources: unmapped(replySources)}
	for _, p := range expectSrc {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		c.expectSrc = append(c.expectSrc, p.Masked())
	}
	return c
}

// unmapped indexes aps by their unmapped form.
func unmapped(aps []netip.AddrPort) map[netip.AddrPort]int {
	m := make(map[netip.AddrPort]int, len(aps))
	for i, ap := range aps {
		m[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = i
	}
	return m
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
func (c *checker) check(frame []byte) verdict { return c.checkFrame(frame, false) }

// checkReply verifies a sampled reply (a frame the program counted as from
// a reply source): its checksums as check does, and that its source is one
// of the reply sources (what the program matched; the endpoint and
// ExpectSrc expectations are about the other direction).
func (c *checker) checkReply(frame []byte) verdict { return c.checkFrame(frame, true) }

func (c *checker) checkFrame(frame []byte, reply bool) verdict {
	var v verdict
	if len(frame) < nat.EthHdrLen {
		v.csumFail("frame of %d bytes is shorter than Ethernet", len(frame))
		return v
	}
	off := nat.EthHdrLen
	etype := binary.BigEndian.Uint16(frame[nat.EthTypeOff:])
	if etype == nat.EtherTypeVLAN || etype == nat.EtherTypeQinQ {
		if len(frame) < nat.EthHdrLen+nat.VLANTagLen {
			v.csumFail("truncated VLAN tag")
			return v
		}
		etype = binary.BigEndian.Uint16(frame[nat.EthTypeOff+nat.VLANTagLen:])
		off += nat.VLANTagLen
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
	case nat.EtherTypeIPv4:
		ip := frame[off:]
		if len(ip) < nat.IPv4MinLen {
			v.csumFail("truncated IPv4 header")
			return v
		}
		hl := int(ip[0]&0x0f) * 4
		tot := int(binary.BigEndian.Uint16(ip[nat.IPv4TotalLenOff:]))
		if ip[0]>>4 != 4 || hl < nat.IPv4MinLen || len(ip) < hl || tot < hl {
			v.csumFail("malformed IPv4 header (version/IHL %#02x, total length %d)", ip[0], tot)
			return v
		}
		// RFC 791: "The checksum field is the 16 bit one's complement of
		// the one's complement sum of all 16 bit words in the header";
		// summing a correct header including its checksum gives 0xffff.
		if s := nat.FoldSum(nat.SumWords(ip[:hl], 0)); s != 0xffff {
			v.csumFail("IPv4 header checksum %#04x wrong", binary.BigEndian.Uint16(ip[10:]))
		}
		src = netip.AddrFrom4([4]byte(ip[nat.IPv4SrcOff : nat.IPv4SrcOff+4]))
		dst = netip.AddrFrom4([4]byte(ip[nat.IPv4DstOff : nat.IPv4DstOff+4]))
		proto = nat.Proto(ip[nat.IPv4ProtoOff])
		frag := binary.BigEndian.Uint16(ip[nat.IPv4FlagsFragOff:])
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
		pseudo = nat.SumWords(ip[nat.IPv4SrcOff:nat.IPv4DstOff+4], 0) + uint64(proto)
	case nat.EtherTypeIPv6:
		ip := frame[off:]
		if len(ip) < nat.IPv6HdrLen || ip[0]>>4 != 6 {
			v.csumFail("truncated or malformed IPv6 header")
			return v
		}
		src = netip.AddrFrom16([16]byte(ip[nat.IPv6SrcOff : nat.IPv6SrcOff+16]))
		dst = netip.AddrFrom16([16]byte(ip[nat.IPv6DstOff : nat.IPv6DstOff+16]))
		proto = nat.Proto(ip[nat.IPv6NextHeaderOff])
		l4Len = int(binary.BigEndian.Uint16(ip[nat.IPv6PayloadLenOff:]))
		if len(ip) >= nat.IPv6HdrLen+4 {
			ports = ip[nat.IPv6HdrLen : nat.IPv6HdrLen+4]
		}
		if len(ip) >= nat.IPv6HdrLen+l4Len {
			l4 = ip[nat.IPv6HdrLen : nat.IPv6HdrLen+l4Len]
		}
		pseudo = nat.SumWords(ip[nat.IPv6SrcOff:nat.IPv6DstOff+16], 0) + uint64(proto)
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
	case proto == nat.ProtoUDP && src.Is4() && len(l4) >= 8 && l4[nat.UDPChecksumOff] == 0 && l4[nat.UDPChecksumOff+1] == 0:
		v.l4Skipped = true // RFC 768: zero means no checksum (IPv4 only)
	default:
		// RFC 768 / RFC 793 / RFC 8200 8.1: the checksum covers a
		// pseudo-header (addresses, protocol, L4 length) and the segment;
		// a correct segment sums to 0xffff.
		if s := nat.FoldSum(nat.SumWords(l4, pseudo+uint64(l4Len))); s != 0xffff {
			v.csumFail("%s checksum wrong (%v -> %v, sum %#04x)", proto, src, dst, s)
		}
	}

	if reply {
		if !isL4 || ports == nil {
			v.transFail("reply %v -> %v protocol %d has no ports", src, dst, proto)
		} else {
			from := netip.AddrPortFrom(src, binary.BigEndian.Uint16(ports))
			if _, ok := c.replySources[from]; !ok {
				v.transFail("reply source %v is not a listed reply source", from)
			}
		}
		return v
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
