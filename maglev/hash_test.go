package maglev

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/xdpgate/xdpgate/internal/testaddr"
)

// Reference implementations: the layouts of hash.go written out with
// append, hashed by a streaming xxhash Digest.

func refFamily(a netip.Addr) byte {
	if a.Is4() {
		return 4
	}
	if a.Is6() {
		return 6
	}
	return 0
}

func refHashClientIP(a netip.Addr) uint64 {
	var b []byte
	b = binary.LittleEndian.AppendUint64(b, seedClientIP)
	a16 := a.As16()
	b = append(b, a16[:]...)
	b = append(b, refFamily(a))
	d := xxhash.New()
	d.Write(b)
	return d.Sum64()
}

func refHashFlow(src, dst netip.Addr, sport, dport uint16, proto uint8) uint64 {
	var b []byte
	b = binary.LittleEndian.AppendUint64(b, seedFlow)
	s, d := src.As16(), dst.As16()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = append(b, proto, refFamily(src), refFamily(dst))
	h := xxhash.New()
	h.Write(b)
	return h.Sum64()
}

func randAddr(r *rand.Rand) netip.Addr {
	switch r.IntN(5) {
	case 0:
		return testaddr.V4(r.Uint32())
	case 1:
		return testaddr.V6(r.Uint32())
	case 2:
		return netip.AddrFrom16(testaddr.V4(r.Uint32()).As16()) // v4-mapped
	case 3:
		return netip.Addr{}
	}
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return netip.AddrFrom16(b)
}

func TestHashReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		a, b := randAddr(r), randAddr(r)
		sp, dp, p := uint16(r.Uint32()), uint16(r.Uint32()), uint8(r.Uint32())
		if got, want := HashClientIP(a), refHashClientIP(a); got != want {
			t.Fatalf("HashClientIP(%v) = %#x, want %#x", a, got, want)
		}
		if got, want := HashFlow(a, b, sp, dp, p), refHashFlow(a, b, sp, dp, p); got != want {
			t.Fatalf("HashFlow(%v, %v, %d, %d, %d) = %#x, want %#x", a, b, sp, dp, p, got, want)
		}
	}
}

func FuzzHashFlow(f *testing.F) {
	f.Add([]byte{198, 18, 0, 1}, []byte{198, 19, 0, 2}, uint16(40000), uint16(80), uint8(6))
	f.Add(make([]byte, 16), []byte{0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(0), uint16(0), uint8(17))
	f.Fuzz(func(t *testing.T, s, d []byte, sp, dp uint16, p uint8) {
		src, _ := netip.AddrFromSlice(s)
		dst, _ := netip.AddrFromSlice(d)
		if got, want := HashFlow(src, dst, sp, dp, p), refHashFlow(src, dst, sp, dp, p); got != want {
			t.Fatalf("HashFlow(%v, %v, %d, %d, %d) = %#x, want %#x", src, dst, sp, dp, p, got, want)
		}
		if got, want := HashClientIP(src), refHashClientIP(src); got != want {
			t.Fatalf("HashClientIP(%v) = %#x, want %#x", src, got, want)
		}
	})
}

// TestHashGolden pins the backend-choice hashes: gateways running
// different xdpgate versions must agree, so a change here is a
// compatibility break, not a test to update casually.
func TestHashGolden(t *testing.T) {
	a, b := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("2001:2::1")
	for _, tc := range []struct {
		name string
		got  uint64
		want uint64
	}{
		{"HashClientIP(198.18.0.1)", HashClientIP(a), 0x5dff7f730da8b192},
		{"HashClientIP(2001:2::1)", HashClientIP(b), 0xcf90908a0acc3049},
		{"HashFlow(198.18.0.1, 198.19.0.1, 40000, 443, 6)", HashFlow(a, netip.MustParseAddr("198.19.0.1"), 40000, 443, 6), 0x27974b5a2c9353f6},
		{"HashFlow(2001:2::1, 2001:2::2, 53, 53, 17)", HashFlow(b, netip.MustParseAddr("2001:2::2"), 53, 53, 17), 0xccaa2182a60240b0},
		{"BackendID(198.18.1.1:8080)", BackendID(netip.MustParseAddrPort("198.18.1.1:8080")), 0x6fe7019f6c39d9a7},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
}

func TestHashProperties(t *testing.T) {
	a := netip.MustParseAddr("198.18.0.1")
	mapped := netip.AddrFrom16(a.As16())
	z := netip.MustParseAddr("2001:2::1%eth0")
	for _, tc := range []struct {
		name     string
		x, y     uint64
		wantSame bool
	}{
		{"client hash: v4 vs v4-mapped", HashClientIP(a), HashClientIP(mapped), false},
		{"client hash: zone ignored", HashClientIP(z), HashClientIP(z.WithZone("")), true},
		{"client hash: invalid vs ::", HashClientIP(netip.Addr{}), HashClientIP(netip.IPv6Unspecified()), false},
		{"flow hash: sport matters", HashFlow(a, a, 1, 2, 6), HashFlow(a, a, 3, 2, 6), false},
		{"flow hash: proto matters", HashFlow(a, a, 1, 2, 6), HashFlow(a, a, 1, 2, 17), false},
		{"flow hash: direction matters", HashFlow(a, mapped, 1, 2, 6), HashFlow(mapped, a, 2, 1, 6), false},
		{"backend id: port matters", BackendID(netip.AddrPortFrom(a, 80)), BackendID(netip.AddrPortFrom(a, 81)), false},
		{"backend id is xxhash of ip:port", BackendID(netip.AddrPortFrom(a, 80)), xxhash.Sum64String("198.18.0.1:80"), true},
		{"backend id v6 is xxhash of [ip]:port", BackendID(netip.MustParseAddrPort("[2001:2::1]:80")), xxhash.Sum64String("[2001:2::1]:80"), true},
	} {
		if got := tc.x == tc.y; got != tc.wantSame {
			t.Errorf("%s: equal = %v, want %v", tc.name, got, tc.wantSame)
		}
	}
}
