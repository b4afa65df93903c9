package maglev

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdpgate/xdpgate/internal/benchcpu"
)

// Benchmarks measure; nothing here asserts a time:
//
//	go test -run '^$' -bench . -benchtime 200ms ./maglev/

func BenchmarkBuildMaglev(b *testing.B) {
	for _, tc := range []struct {
		n    int
		size uint32
	}{{100, DefaultSize}, {1000, DefaultSize}, {1000, 655373}} {
		b.Run(fmt.Sprintf("%d-backends/%d", tc.n, tc.size), func(b *testing.B) {
			bs := randBackends(rand.New(rand.NewPCG(1, 2)), tc.n, 0)
			b.ReportAllocs()
			cpu := benchcpu.Process(b)
			for b.Loop() {
				if _, err := Build(bs, tc.size); err != nil {
					b.Fatal(err)
				}
			}
			cpu()
		})
	}
}

func BenchmarkMaglevPick(b *testing.B) {
	m, err := Build(randBackends(rand.New(rand.NewPCG(1, 2)), 100, 0), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	sum, h := 0, uint64(0)
	cpu := benchcpu.Process(b)
	for b.Loop() {
		sum += m.Pick(h)
		h += 0x9E3779B97F4A7C15
	}
	cpu()
	_ = sum
}

func BenchmarkHashClientIP(b *testing.B) {
	for _, a := range []netip.Addr{c1, c6} {
		b.Run(a.String(), func(b *testing.B) {
			b.ReportAllocs()
			var s uint64
			cpu := benchcpu.Process(b)
			for b.Loop() {
				s += HashClientIP(a)
			}
			cpu()
			_ = s
		})
	}
}

func BenchmarkHashFlow(b *testing.B) {
	b.ReportAllocs()
	var s uint64
	cpu := benchcpu.Process(b)
	for b.Loop() {
		s += HashFlow(c1, c2, 40000, 443, 6)
	}
	cpu()
	_ = s
}

// BenchmarkMaglev10: one table for a 10-endpoint chain (1021 slots).
func BenchmarkMaglev10(b *testing.B) {
	ids := make([]uint64, 10)
	for i := range ids {
		ids[i] = mix64(uint64(i) + 1)
	}
	b.ReportAllocs()
	for b.Loop() {
		SlotsFor(ids)
	}
}

// BenchmarkRendezvous is the cost of a ClientIP client's choice without a
// valid affinity entry, by chain length.
func BenchmarkRendezvous(b *testing.B) {
	for _, n := range []int{3, 30, 300} {
		b.Run(fmt.Sprintf("%d-backends", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			ids := make([]uint64, n)
			for i := range ids {
				ids[i] = r.Uint64()
			}
			b.ReportAllocs()
			sum, h := 0, uint64(0)
			cpu := benchcpu.Process(b)
			for b.Loop() {
				sum += Rendezvous(ids, h)
				h += 0x9E3779B97F4A7C15
			}
			cpu()
			_ = sum
		})
	}
}
