package affinity

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/xdpgate/xdpgate/internal/benchcpu"
	"github.com/xdpgate/xdpgate/internal/testaddr"
)

// Benchmarks measure; nothing here asserts a time. The 10M-client ones
// allocate ~600 MB, take seconds to fill and are skipped under -short:
//
//	go test -run '^$' -bench . -benchtime 200ms ./affinity/

func skipBig(b *testing.B, n int) {
	if n >= 10_000_000 && testing.Short() {
		b.Skip("10M clients: ~600 MB and seconds of setup; run without -short")
	}
}

var benchSizes = []int{1 << 20, 10_000_000}

// scatter visits 0..n-1 in a cache-hostile order (stride coprime to n).
func scatter(i, n uint64) uint32 { return uint32(i * 0x9E3779B1 % n) }

func BenchmarkLookup(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("hit/%d", n), func(b *testing.B) {
			skipBig(b, n)
			tb := newTable(b, Config{Capacity: n})
			fill(tb, n)
			b.ReportAllocs()
			i := uint64(0)
			cpu := benchcpu.Process(b)
			for b.Loop() {
				svc, c := fillKey(scatter(i, uint64(n)))
				tb.Lookup(svc, testaddr.Mixed(c), DefaultTimeoutSeconds, 1)
				i++
			}
			cpu()
		})
		b.Run(fmt.Sprintf("miss/%d", n), func(b *testing.B) {
			skipBig(b, n)
			tb := newTable(b, Config{Capacity: n})
			fill(tb, n)
			b.ReportAllocs()
			i := uint64(0)
			cpu := benchcpu.Process(b)
			for b.Loop() {
				_, c := fillKey(scatter(i, uint64(n)))
				tb.Lookup(1000, testaddr.Mixed(c), DefaultTimeoutSeconds, 1) // service port 1000 holds nothing
				i++
			}
			cpu()
		})
		b.Run(fmt.Sprintf("parallel-hit/%d", n), func(b *testing.B) {
			skipBig(b, n)
			tb := newTable(b, Config{Capacity: n})
			fill(tb, n)
			b.ReportAllocs()
			var seed atomic.Uint64
			b.ResetTimer()
			cpu := benchcpu.Process(b)
			b.RunParallel(func(pb *testing.PB) {
				i := seed.Add(1) << 32
				for pb.Next() {
					svc, c := fillKey(scatter(i, uint64(n)))
					tb.Lookup(svc, testaddr.Mixed(c), DefaultTimeoutSeconds, 1)
					i++
				}
			})
			cpu()
		})
	}
}

// BenchmarkKeyGen is the cost of producing the benchmark keys, to subtract
// from the Lookup and Pin figures.
func BenchmarkKeyGen(b *testing.B) {
	b.ReportAllocs()
	var sink netip.Addr
	i := uint64(0)
	cpu := benchcpu.Process(b)
	for b.Loop() {
		_, c := fillKey(scatter(i, 10_000_000))
		sink = testaddr.Mixed(c)
		i++
	}
	cpu()
	_ = sink
}

func BenchmarkPin(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("refresh/%d", n), func(b *testing.B) {
			skipBig(b, n)
			tb := newTable(b, Config{Capacity: n})
			fill(tb, n)
			b.ReportAllocs()
			i := uint64(0)
			cpu := benchcpu.Process(b)
			for b.Loop() {
				k := scatter(i, uint64(n))
				svc, c := fillKey(k)
				tb.Pin(svc, testaddr.Mixed(c), k+1, DefaultTimeoutSeconds, int64(i))
				i++
			}
			cpu()
		})
		b.Run(fmt.Sprintf("repin/%d", n), func(b *testing.B) {
			skipBig(b, n)
			tb := newTable(b, Config{Capacity: n})
			fill(tb, n)
			b.ReportAllocs()
			i := uint64(0)
			cpu := benchcpu.Process(b)
			for b.Loop() {
				k := scatter(i, uint64(n))
				svc, c := fillKey(k)
				tb.Pin(svc, testaddr.Mixed(c), uint32(i), DefaultTimeoutSeconds, int64(i))
				i++
			}
			cpu()
		})
	}
	// Inserts of new clients into a table already holding half its
	// capacity; past capacity the figure includes evictions.
	b.Run("insert/4M", func(b *testing.B) {
		const n = 1 << 22
		tb := newTable(b, Config{Capacity: n})
		fill(tb, n/2)
		b.ReportAllocs()
		i := uint32(n / 2)
		cpu := benchcpu.Process(b)
		for b.Loop() {
			svc, c := fillKey(i)
			tb.Pin(svc, testaddr.Mixed(c), i+1, DefaultTimeoutSeconds, 0)
			i++
		}
		cpu()
		b.ReportMetric(float64(tb.Stats().Evictions), "evictions")
	})
}

// BenchmarkFill10M pins 10M distinct clients into a 10M table once and
// reports the heap bytes per client (runtime.MemStats), empty slots
// included.
func BenchmarkFill10M(b *testing.B) {
	skipBig(b, 10_000_000)
	b.ReportAllocs()
	var perEntry float64
	var ev uint64
	cpu := benchcpu.Process(b)
	for b.Loop() {
		tb, pe, _ := measureFill(b, 10_000_000)
		perEntry, ev = pe, tb.Stats().Evictions
	}
	cpu()
	b.ReportMetric(perEntry, "B/entry")
	b.ReportMetric(float64(ev), "evictions")
}

func BenchmarkSweep(b *testing.B) {
	const n = 1 << 20
	tb := newTable(b, Config{Capacity: n})
	fill(tb, n)
	b.ReportAllocs()
	cpu := benchcpu.Process(b)
	for b.Loop() {
		tb.Sweep(1, 1024) // nothing expired: the cost of examining slots
	}
	cpu()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1024, "ns/slot")
}

// BenchmarkBaselineDependentLoad is the machine's floor for a Lookup that
// misses the caches: one dependent random 8-byte load (pointer chasing)
// in an array as large as the table's slots at 1M and 10M clients.
func BenchmarkBaselineDependentLoad(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			skipBig(b, n)
			slots := int(totalSlots(n))
			arr := make([]uint64, slots*slotBytes/8) // one chain link per slot
			perm := rand.New(rand.NewPCG(1, 1)).Perm(slots)
			for i := range slots {
				arr[perm[i]*slotBytes/8] = uint64(perm[(i+1)%slots])
			}
			b.ReportAllocs()
			p := uint64(0)
			cpu := benchcpu.Process(b)
			for b.Loop() {
				p = arr[p*slotBytes/8]
			}
			cpu()
			_ = p
		})
	}
}
