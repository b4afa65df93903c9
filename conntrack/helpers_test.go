package conntrack

import (
	"net/netip"
	"testing"

	"github.com/xdpgate/xdpgate/nat"
)

// addr4 returns 198.18.x.y for n = x<<8|y (RFC 2544 benchmark range).
func addr4(n uint32) [4]byte { return [4]byte{198, 18 | byte(n>>16&1), byte(n >> 8), byte(n)} }

func tup4(src, dst uint32, sport, dport uint16, proto nat.Proto) Tuple {
	return Tuple4(addr4(src), addr4(dst), sport, dport, proto)
}

// xlate4 DNATs to 198.18.x.y:port without SNAT.
func xlate4(ep uint32, port uint16) Translation {
	var x Translation
	a := addr4(ep)
	copy(x.DNATAddr[:4], a[:])
	x.DNATPort = port
	return x
}

func newTestTable(t testing.TB, cfg Config) *Table {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	tb, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", cfg, err)
	}
	return tb
}

func netipAddr6(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 14: byte(i >> 8), 15: byte(i)})
}

// netipAddrPort returns an endpoint of k's family for flow i.
func netipAddrPort(k Tuple, i int) netip.AddrPort {
	if k.Family == IPv6 {
		return netip.AddrPortFrom(netipAddr6(5000+i), 8080)
	}
	a := addr4(uint32(5000 + i))
	return netip.AddrPortFrom(netip.AddrFrom4(a), 8080)
}

func netipAddrPortZero() netip.AddrPort { return netip.AddrPort{} }
