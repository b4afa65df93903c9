//go:build !unix

package maglev

// processCPU is unavailable here; benchmarks then report no CPU time.
func processCPU() int64 { return 0 }
