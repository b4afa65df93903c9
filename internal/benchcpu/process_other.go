//go:build !unix

package benchcpu

// processCPU is unavailable here.
func processCPU() (int64, bool) { return 0, false }
