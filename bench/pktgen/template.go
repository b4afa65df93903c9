package pktgen

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/xdpgate/xdpgate/nat"
)

// Header offsets in a frame (Ethernet without VLAN tags), from nat's
// header layouts.
const (
	ipOff        = nat.EthHdrLen
	ipv4CsumOff  = ipOff + nat.IPv4ChecksumOff
	ipv4SrcOff   = ipOff + nat.IPv4SrcOff
	ipv6SrcOff   = ipOff + nat.IPv6SrcOff
	l4OffV4      = ipOff + nat.IPv4MinLen
	l4OffV6      = ipOff + nat.IPv6HdrLen
	tcpWindow    = 65535
	ipTTL        = 64
	seedSeqSalt  = 0x7063_6b74_6765_6e31 // "pcktgen1": keeps the ISN apart from the permutation's constants
	estAckNumber = 1
)

// template is the frame of flow 0 (first client, first port, first visit)
// and what it takes to turn it into any other flow's frame. It is immutable
// after newTemplate, so queue goroutines share it.
type template struct {
	buf []byte // FrameSize-4 bytes

	v6, udp, est bool
	n            uint64 // flows
	ppc          uint64 // ports per client
	portBase     uint16
	src          netip.Addr
	src4         uint32 // IPv4 first client
	srcHi, srcLo uint64 // IPv6 first client

	srcOff, ipCsumOff, sportOff, seqOff, l4CsumOff int

	// ipCsum and l4Csum are the template's checksums (HC), ipDiff and
	// l4Diff the sums of ~m over the words frames replace (checksum.go).
	ipCsum, l4Csum uint16
	ipDiff, l4Diff uint32

	seq0, seqStep uint32 // TCPEstablished: seq = seq0 + round*seqStep

	perm perm
}

// newTemplate builds the template with gopacket. c has its defaults
// applied, is valid, and has SrcMAC set.
func newTemplate(c Config) (*template, error) {
	v6 := c.Src.Is6()
	hlen := headerLen(v6, c.Mode)
	size := c.FrameSize - fcsLen
	payload := make([]byte, size-hlen)

	t := &template{
		v6: v6, udp: c.Mode == UDP, est: c.Mode == TCPEstablished,
		n:   uint64(c.Clients) * uint64(c.PortsPerClient),
		ppc: uint64(c.PortsPerClient), portBase: c.SrcPortBase, src: c.Src,
	}
	st := c.Seed ^ seedSeqSalt
	t.seq0 = uint32(splitmix64(&st))
	t.seqStep = uint32(len(payload))
	t.perm = newPerm(t.n, c.Seed)

	eth := &layers.Ethernet{SrcMAC: c.SrcMAC, DstMAC: c.DstMAC, EthernetType: layers.EthernetTypeIPv4}
	proto := layers.IPProtocolUDP
	if c.Mode != UDP {
		proto = layers.IPProtocolTCP
	}
	var l3 gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	l4Off := l4OffV4
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: ipTTL, NextHeader: proto,
			SrcIP: c.Src.AsSlice(), DstIP: c.Dst.Addr().AsSlice()}
		l3, nl = ip, ip
		l4Off = l4OffV6
		t.srcOff = ipv6SrcOff
		a := c.Src.As16()
		t.srcHi, t.srcLo = binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	} else {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ipTTL, Flags: layers.IPv4DontFragment, Protocol: proto,
			SrcIP: c.Src.AsSlice(), DstIP: c.Dst.Addr().AsSlice()}
		l3, nl = ip, ip
		t.srcOff, t.ipCsumOff = ipv4SrcOff, ipv4CsumOff
		a := c.Src.As4()
		t.src4 = binary.BigEndian.Uint32(a[:])
	}
	t.sportOff = l4Off
	var l4 gopacket.SerializableLayer
	if c.Mode == UDP {
		u := &layers.UDP{SrcPort: layers.UDPPort(c.SrcPortBase), DstPort: layers.UDPPort(c.Dst.Port())}
		if err := u.SetNetworkLayerForChecksum(nl); err != nil {
			return nil, fmt.Errorf("udp template: %w", err)
		}
		l4 = u
		t.l4CsumOff = l4Off + nat.UDPChecksumOff
	} else {
		tcp := &layers.TCP{SrcPort: layers.TCPPort(c.SrcPortBase), DstPort: layers.TCPPort(c.Dst.Port()),
			Seq: t.seq0, Window: tcpWindow}
		if c.Mode == TCPSyn {
			tcp.SYN = true
		} else {
			tcp.ACK, tcp.PSH = true, true
			tcp.Ack = estAckNumber
		}
		if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
			return nil, fmt.Errorf("tcp template: %w", err)
		}
		l4 = tcp
		t.seqOff = l4Off + nat.TCPSeqOff
		t.l4CsumOff = l4Off + nat.TCPChecksumOff
	}
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, l3, l4, gopacket.Payload(payload)); err != nil {
		return nil, fmt.Errorf("serialize template: %w", err)
	}
	if len(sb.Bytes()) != size {
		return nil, fmt.Errorf("template is %d bytes, want FrameSize-4 = %d", len(sb.Bytes()), size)
	}
	t.buf = append([]byte(nil), sb.Bytes()...)
	b := t.buf

	l4cs := binary.BigEndian.Uint16(b[t.l4CsumOff:])
	if t.udp && l4cs == 0 {
		// gopacket writes a computed 0 as is; on the wire it means "no
		// checksum".
		l4cs = 0xffff
		binary.BigEndian.PutUint16(b[t.l4CsumOff:], l4cs)
	}
	replaced := []uint16{c.SrcPortBase}
	srcWords := make([]uint16, 0, 8)
	for i := 0; i < c.Src.BitLen()/8; i += 2 {
		srcWords = append(srcWords, binary.BigEndian.Uint16(b[t.srcOff+i:]))
	}
	replaced = append(replaced, srcWords...)
	if t.est {
		replaced = append(replaced, uint16(t.seq0>>16), uint16(t.seq0))
	}
	t.l4Csum, t.l4Diff = l4cs, complementSum(replaced)
	if !v6 {
		t.ipCsum, t.ipDiff = binary.BigEndian.Uint16(b[t.ipCsumOff:]), complementSum(srcWords)
	}
	return t, nil
}

// source returns the client address and source port of flow i < n.
func (t *template) source(i uint64) (netip.Addr, uint16) {
	c, p := i/t.ppc, i%t.ppc
	port := t.portBase + uint16(p)
	if !t.v6 {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], t.src4+uint32(c))
		return netip.AddrFrom4(a), port
	}
	var a [16]byte
	lo := t.srcLo + c
	hi := t.srcHi
	if lo < t.srcLo {
		hi++
	}
	binary.BigEndian.PutUint64(a[:8], hi)
	binary.BigEndian.PutUint64(a[8:], lo)
	return netip.AddrFrom16(a), port
}

// write turns f, a copy of the template (or any frame written from it
// before), into the frame of flow i < n on its round-th visit. It writes
// every field that differs between flows and rounds, so f's previous flow
// does not matter.
func (t *template) write(f []byte, i, round uint64) {
	c, p := i/t.ppc, i%t.ppc
	port := t.portBase + uint16(p)
	var addrSum uint32
	if t.v6 {
		lo := t.srcLo + c
		hi := t.srcHi
		if lo < t.srcLo {
			hi++
		}
		binary.BigEndian.PutUint64(f[t.srcOff:], hi)
		binary.BigEndian.PutUint64(f[t.srcOff+8:], lo)
		addrSum = words64(hi) + words64(lo)
	} else {
		a := t.src4 + uint32(c)
		binary.BigEndian.PutUint32(f[t.srcOff:], a)
		addrSum = words32(a)
		binary.BigEndian.PutUint16(f[t.ipCsumOff:], nat.ChecksumAdjust(t.ipCsum, t.ipDiff+addrSum))
	}
	binary.BigEndian.PutUint16(f[t.sportOff:], port)
	s := t.l4Diff + addrSum + uint32(port)
	if t.est {
		seq := t.seq0 + uint32(round)*t.seqStep
		binary.BigEndian.PutUint32(f[t.seqOff:], seq)
		s += words32(seq)
	}
	cs := nat.ChecksumAdjust(t.l4Csum, s)
	if t.udp && cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(f[t.l4CsumOff:], cs)
}

// cursor is one queue's position in the frame stream. Stream frame s
// carries flow perm(s mod n) on visit s / n; queue k of Q sends stream
// frames k, k+Q, k+2Q, ..., so pos = s mod n and round = s / n for its next
// frame s, and every step adds Q.
type cursor struct {
	pos, round       uint64
	stepMod, stepDiv uint64 // Q mod n, Q / n
}

func newCursor(first, step, n uint64) cursor {
	return cursor{pos: first % n, round: first / n, stepMod: step % n, stepDiv: step / n}
}

func (c *cursor) advance(n uint64) {
	c.pos += c.stepMod
	c.round += c.stepDiv
	if c.pos >= n {
		c.pos -= n
		c.round++
	}
}

// fill writes the next len(addrs) frames of cur's stream into the UMEM
// frames at addrs and advances cur. It is the steady-state send loop's
// only per-frame work; it allocates nothing.
func (t *template) fill(umem []byte, addrs []uint64, cur *cursor) {
	size := uint64(len(t.buf))
	for _, a := range addrs {
		t.write(umem[a:a+size:a+size], t.perm.at(cur.pos), cur.round)
		cur.advance(t.n)
	}
}

// frame returns a new copy of flow i's frame on visit round.
func (t *template) frame(i, round uint64) []byte {
	f := append([]byte(nil), t.buf...)
	t.write(f, i%t.n, round)
	return f
}
