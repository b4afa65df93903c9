package benchcpu

import "testing"

// BenchmarkSpin shows the metrics: cpu-ns/op close to ns/op on an idle
// machine, below it on a loaded one.
func BenchmarkSpin(b *testing.B) {
	for _, tc := range []struct {
		name  string
		start func(*testing.B) func()
	}{{"process", Process}, {"thread", Thread}} {
		b.Run(tc.name, func(b *testing.B) {
			stop := tc.start(b)
			x := 0
			for i := 0; i < b.N; i++ {
				x += i * i
			}
			stop()
			sink = x
		})
	}
}

var sink int

func TestCPUTimeAdvances(t *testing.T) {
	p0, ok := processCPU()
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x += i ^ x
	}
	sink = x
	p1, ok1 := processCPU()
	if ok && ok1 && p1 < p0 {
		t.Errorf("processCPU went backwards: %d then %d", p0, p1)
	}
}
