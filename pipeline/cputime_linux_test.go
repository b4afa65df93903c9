package pipeline

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// pipeThreadCPU returns the calling OS thread's CPU time (RUSAGE_THREAD).
func pipeThreadCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// pipeCPUTimer reports the benchmark goroutine's thread CPU time per op as
// "cpu-ns/op": on the shared, loaded build machines wall-clock ns/op
// mostly measures waiting for a CPU. It locks the goroutine to its thread
// until the returned stop is called.
func pipeCPUTimer(b *testing.B) (stop func()) {
	runtime.LockOSThread()
	start, ok := pipeThreadCPU()
	return func() {
		end, ok2 := pipeThreadCPU()
		runtime.UnlockOSThread()
		if ok && ok2 && b.N > 0 {
			b.ReportMetric(float64((end-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}
