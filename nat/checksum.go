package nat

import (
	"encoding/binary"
	"hash/crc32"
)

// ChecksumAdjust is the one place where a one's complement checksum field is
// updated incrementally. diff is the one's complement sum, over every 16-bit
// word of the covered data that changed, of the complement of its old value
// and its new value (~m + m'), accumulated in 32 bits by the helpers below
// (below 2^24). Exported for the packet generator (bench/pktgen), which
// precomputes the sum of ~m over a template's words.
//
// RFC 1624, section 3, eqn. 3:
//
//	HC' = ~(~HC + ~m + m')
//
// Eqn. 3 (not eqn. 2) is used because it never turns a checksum into
// 0xFFFF (-0) unless the old one was 0xFFFF, which RFC 1624 section 4
// warns about. The UDP exceptions (RFC 768: a zero field means "no
// checksum"; a computed zero is sent as all ones) are applied by the caller,
// adjustUDP.
func ChecksumAdjust(hc uint16, diff uint32) uint16 {
	s := uint32(^hc) + diff
	s = (s & 0xffff) + (s >> 16) // end-around carry, twice: diff < 2^24
	s = (s & 0xffff) + (s >> 16)
	return ^uint16(s)
}

// adjustUDP applies diff to a UDP checksum field: 0 stays 0 (no checksum,
// RFC 768; over IPv6 RFC 6936 zero-checksum tunnels are left alone too) and
// a computed 0 is written as 0xFFFF.
func adjustUDP(hc uint16, diff uint32) uint16 {
	if hc == 0 {
		return 0
	}
	if n := ChecksumAdjust(hc, diff); n != 0 {
		return n
	}
	return 0xffff
}

// diff16 is ~m + m' for one 16-bit word.
func diff16(old, new uint16) uint32 { return uint32(^old) + uint32(new) }

// diff32 is the sum of ~m + m' over the two 16-bit words of a 32-bit value.
func diff32(old, new uint32) uint32 {
	o := ^old
	return o>>16 + o&0xffff + new>>16 + new&0xffff
}

// diff4 is the sum of ~m + m' over the two words of an IPv4 address.
func diff4(old, new []byte) uint32 {
	return diff32(binary.BigEndian.Uint32(old[:4]), binary.BigEndian.Uint32(new[:4]))
}

// diff16B is the sum of ~m + m' over the eight words of an IPv6 address.
func diff16B(old, new []byte) uint32 {
	old, new = old[:16], new[:16]
	var s uint32
	for i := 0; i < 16; i += 4 {
		s += diff4(old[i:], new[i:])
	}
	return s
}

// SumWords adds b to acc as a sequence of big-endian 16-bit words (an odd last
// byte is padded with zero), reading four bytes at a time: because
// 2^16 = 1 (mod 2^16-1), summing 32-bit words and folding gives the same
// one's complement sum (RFC 1071). Used only to build new headers (reply
// builders) and to verify them (bench/sink); rewrites never re-sum a packet.
func SumWords(b []byte, acc uint64) uint64 {
	for len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b)) << 16
		b = b[2:]
		if len(b) == 1 {
			acc += uint64(b[0]) << 8
		}
	} else if len(b) == 1 {
		acc += uint64(b[0]) << 24
	}
	return acc
}

// FoldSum reduces a sum from SumWords to the 16-bit one's complement sum;
// a header whose checksum is right folds to 0xFFFF.
func FoldSum(acc uint64) uint16 {
	acc = (acc & 0xffffffff) + (acc >> 32)
	acc = (acc & 0xffffffff) + (acc >> 32)
	acc = (acc & 0xffff) + (acc >> 16)
	acc = (acc & 0xffff) + (acc >> 16)
	acc = (acc & 0xffff) + (acc >> 16)
	return uint16(acc)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var zero4 [4]byte

// sctpCRC is the SCTP CRC32c (RFC 9260 appendix A) of an SCTP packet with the
// checksum field taken as zero, without writing to it.
func sctpCRC(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[:sctpChecksum])
	c = crc32.Update(c, castagnoli, zero4[:])
	return crc32.Update(c, castagnoli, b[sctpChecksum+4:])
}

// CRC32c is linear over GF(2): for two messages of the same length,
// crc(a) ^ crc(b) = raw(a ^ b), where raw is the CRC register run from zero
// with no final complement. A port change in an SCTP header quoted by an ICMP
// error (whose packet is not all there) therefore changes the stored CRC by
// raw(delta): delta is the four port bytes XORed, followed by n-4 zero bytes
// for an SCTP packet of n bytes, and running a register over m zero bytes
// multiplies it by x^(8m) modulo the polynomial (zlib's crc32_combine).
const crc32cPolyReflected = 0x82F63B78

// crc32cX2N[k] is x^(2^k) modulo the CRC32c polynomial, reflected.
var crc32cX2N = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	t[0] = p
	for k := 1; k < 32; k++ {
		p = crc32cMulMod(p, p)
		t[k] = p
	}
	return t
}()

// crc32cMulMod multiplies a and b modulo the CRC32c polynomial (reflected
// representation: bit 31 is x^0).
func crc32cMulMod(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				break
			}
		}
		if b&1 != 0 {
			b = b>>1 ^ crc32cPolyReflected
		} else {
			b >>= 1
		}
	}
	return p
}

// crc32cShift returns the raw register x after running it over n zero
// bytes: x * x^(8n) modulo the polynomial.
func crc32cShift(x uint32, n int) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n != 0; n, k = n>>1, k+1 {
		if n&1 != 0 {
			p = crc32cMulMod(crc32cX2N[k&31], p)
		}
	}
	return crc32cMulMod(p, x)
}

// sctpCRCDelta is what an SCTP CRC32c (as stored, little-endian) changes by
// when the first four bytes of an n-byte SCTP packet change from old to new.
func sctpCRCDelta(old, new uint32, n int) uint32 {
	// The register from zero over the four delta bytes, in wire order,
	// with the table (crc32.Update would make a local buffer escape).
	d := old ^ new
	var raw uint32
	for s := 24; s >= 0; s -= 8 {
		raw = castagnoli[byte(raw)^byte(d>>s)] ^ raw>>8
	}
	return crc32cShift(raw, n-4)
}
