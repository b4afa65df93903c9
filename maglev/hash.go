package maglev

import (
	"encoding/binary"
	"net/netip"

	"github.com/cespare/xxhash/v2"
)

// Fixed seeds of the backend-choice hashes. Every gateway must hash the
// same way to choose the same endpoint for the same client, so these are
// part of the wire contract between xdpgate versions: changing one moves
// every client. TestHashGolden pins them.
const (
	seedClientIP = 0x6166_6669_6e69_7479 // "affinity"
	seedFlow     = 0x7864_7067_6174_6521 // "xdpgate!"
)

// Address family tags hashed with addresses, so that 1.2.3.4 and
// ::ffff:1.2.3.4 differ and an invalid address differs from ::.
const (
	famInvalid = 0
	famV4      = 4
	famV6      = 6
)

func family(a netip.Addr) byte {
	switch {
	case a.Is4():
		return famV4
	case a.Is6():
		return famV6
	}
	return famInvalid
}

// HashClientIP returns the backend-choice hash for a ClientIP-affinity
// service: it depends on the client address only (not its port), so
// gateways behind ECMP choose the same endpoint for the client without
// sharing state. IPv6 zones are ignored. It does not allocate.
//
// Layout hashed with xxhash64: seed (8, little endian) | As16 (16) | family (1).
func HashClientIP(client netip.Addr) uint64 {
	var b [25]byte
	binary.LittleEndian.PutUint64(b[0:8], seedClientIP)
	a := client.As16()
	copy(b[8:24], a[:])
	b[24] = family(client)
	return xxhash.Sum64(b[:])
}

// HashFlow returns the backend-choice hash of a new flow's 5-tuple (as
// received, before any translation) for services without ClientIP
// affinity. It does not allocate.
//
// Layout hashed with xxhash64: seed (8, LE) | src As16 (16) | dst As16 (16)
// | sport (2, BE) | dport (2, BE) | proto (1) | src family (1) | dst family (1).
func HashFlow(src, dst netip.Addr, sport, dport uint16, proto uint8) uint64 {
	var b [47]byte
	binary.LittleEndian.PutUint64(b[0:8], seedFlow)
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	binary.BigEndian.PutUint16(b[40:42], sport)
	binary.BigEndian.PutUint16(b[42:44], dport)
	b[44] = proto
	b[45] = family(src)
	b[46] = family(dst)
	return xxhash.Sum64(b[:])
}

// BackendID returns the stable Maglev identity of an endpoint: xxhash64 of
// its "ip:port" text (netip.AddrPort.String form, "[v6]:port" for IPv6).
// Gateways derive the same ID from the same endpoint, unlike the control
// plane's endpoint IDs, which are local to each gateway.
func BackendID(ap netip.AddrPort) uint64 {
	// 64 bytes hold every AddrPort text but one with a long IPv6 zone,
	// for which AppendTo grows the slice (an allocation, nothing worse).
	var buf [64]byte
	return xxhash.Sum64(ap.AppendTo(buf[:0]))
}
