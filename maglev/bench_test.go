package maglev

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// Benchmarks measure; nothing here asserts a time:
//
//	go test -run '^$' -bench . -benchtime 200ms ./maglev/

// cpuMeter reports CPU nanoseconds per operation ("cpu-ns/op") for the
// timed part of a benchmark: start it right before the loop, stop it
// right after.
type cpuMeter struct{ start int64 }

func startCPU() cpuMeter { return cpuMeter{processCPU()} }

func (m cpuMeter) stop(b *testing.B) {
	if m.start == 0 || b.N == 0 {
		return
	}
	b.ReportMetric(float64(processCPU()-m.start)/float64(b.N), "cpu-ns/op")
}

func BenchmarkBuildMaglev(b *testing.B) {
	for _, tc := range []struct {
		n    int
		size uint32
	}{{100, DefaultSize}, {1000, DefaultSize}, {1000, 655373}} {
		b.Run(fmt.Sprintf("%d-backends/%d", tc.n, tc.size), func(b *testing.B) {
			bs := randBackends(rand.New(rand.NewPCG(1, 2)), tc.n, 0)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if _, err := Build(bs, tc.size); err != nil {
					b.Fatal(err)
				}
			}
			cpu.stop(b)
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
	cpu := startCPU()
	for b.Loop() {
		sum += m.Pick(h)
		h += 0x9E3779B97F4A7C15
	}
	cpu.stop(b)
	_ = sum
}

func BenchmarkHashClientIP(b *testing.B) {
	for _, a := range []netip.Addr{c1, c6} {
		b.Run(a.String(), func(b *testing.B) {
			b.ReportAllocs()
			var s uint64
			cpu := startCPU()
			for b.Loop() {
				s += HashClientIP(a)
			}
			cpu.stop(b)
			_ = s
		})
	}
}

func BenchmarkHashFlow(b *testing.B) {
	b.ReportAllocs()
	var s uint64
	cpu := startCPU()
	for b.Loop() {
		s += HashFlow(c1, c2, 40000, 443, 6)
	}
	cpu.stop(b)
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
