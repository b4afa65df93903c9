//go:build !linux

package pipeline

import "testing"

// pipeCPUTimer reports nothing outside Linux (no RUSAGE_THREAD).
func pipeCPUTimer(*testing.B) (stop func()) { return func() {} }
