package benchcpu

import (
	"runtime"
	"testing"
)

// Process starts measuring the whole process's CPU time (user + system) and
// returns the function that stops and reports it per b.N operations. Use it
// for benchmarks whose work may run on several threads.
func Process(b *testing.B) (stop func()) {
	start, ok := processCPU()
	return func() {
		end, ok2 := processCPU()
		report(b, start, end, ok && ok2)
	}
}

// Thread locks the benchmark goroutine to its OS thread and measures that
// thread's CPU time until the returned function is called, which reports
// it per b.N operations and unlocks the thread. Other threads' work (GC,
// other goroutines) is not counted. Where the OS has no per-thread CPU
// time, it reports nothing.
func Thread(b *testing.B) (stop func()) {
	runtime.LockOSThread()
	start, ok := threadCPU()
	return func() {
		end, ok2 := threadCPU()
		runtime.UnlockOSThread()
		report(b, start, end, ok && ok2)
	}
}

func report(b *testing.B, start, end int64, ok bool) {
	if ok && b.N > 0 {
		b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
	}
}
