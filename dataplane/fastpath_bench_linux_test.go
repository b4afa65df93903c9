package dataplane

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xdpgate/xdpgate/internal/testnet"
	"github.com/xdpgate/xdpgate/nat"
)

// BenchmarkPrivFastPathXDP measures the XDP program per frame in the
// kernel (BPF_PROG_TEST_RUN, 100 runs per call): an installed flow's frame
// translated and sent back out (what the fast path costs instead of the
// AF_XDP round trip through userspace), and a frame for a frontend that
// goes on to classification with the fast path on and off (what the fast
// path adds to frames it does not take). Times are wall time per run as the
// kernel reports it.
func BenchmarkPrivFastPathXDP(b *testing.B) {
	testnet.RequirePriv(b)
	x, y := netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("198.18.0.20")
	vip := netip.MustParseAddr("198.18.100.1")
	flowFrame := fastUDPFrame(x, y, 1000, 2000)
	feFrame := fastUDPFrame(x, vip, 1000, 80)
	for _, tc := range []struct {
		name  string
		fast  bool
		frame []byte
		want  uint32
	}{
		{"fast path/installed flow, XDP_TX", true, flowFrame, 3},
		{"fast path on/frontend, to classification", true, feFrame, 2},
		{"fast path off/frontend, to classification", false, feFrame, 2},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := ClassifierConfig{}
			if tc.fast {
				cfg.FastPathFlows = 1024
			}
			c, err := NewClassifier(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if err := c.Update(Rules{Frontends: []L4Addr{{Addr: vip, Port: 80, Proto: 17}}}); err != nil {
				b.Fatal(err)
			}
			prog, err := c.Program()
			if err != nil {
				b.Fatal(err)
			}
			defer prog.Close()
			if tc.fast {
				// A flow whose two directions rewrite into each other, so
				// the kernel's repeated runs on one buffer keep hitting it.
				f := c.FastPath()
				if err := f.SetDevices([]int{1}); err != nil {
					b.Fatal(err)
				}
				xy := MakeFastTuple(x, y, 1000, 2000, nat.ProtoUDP)
				yx := MakeFastTuple(y, x, 2000, 1000, nat.ProtoUDP)
				e := [2]FastEntry{{In: xy, Out: yx, Ifindex: 1, MTU: 1500}, {In: yx, Out: xy, Ifindex: 1, MTU: 1500, Dir: 1}}
				if err := f.Install(0, 1, &e); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			var total float64
			for i := 0; i < b.N; i++ {
				ret, d, err := prog.Benchmark(tc.frame, 100, nil)
				if err != nil {
					b.Fatal(err)
				}
				if ret != tc.want {
					b.Fatalf("XDP action %d, want %d", ret, tc.want)
				}
				total += float64(d.Nanoseconds())
			}
			b.ReportMetric(total/float64(b.N), "xdp-ns/frame")
		})
	}
}

// fastUDPFrame is a 64-byte Ethernet/IPv4/UDP frame with TTL 255 and valid
// checksums, as received on ifindex 1.
func fastUDPFrame(src, dst netip.Addr, sport, dport uint16) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0], ip[8], ip[9] = 0x45, 255, 17
	binary.BigEndian.PutUint16(ip[2:], 50)
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], ^nat.FoldSum(nat.SumWords(ip[:20], 0)))
	u := ip[20:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], 30)
	return b
}
