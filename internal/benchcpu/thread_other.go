//go:build !linux

package benchcpu

// threadCPU is unavailable here (no RUSAGE_THREAD).
func threadCPU() (int64, bool) { return 0, false }
