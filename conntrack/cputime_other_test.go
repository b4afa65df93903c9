//go:build !linux

package conntrack

import "testing"

func cpuTimer(b *testing.B) (stop func()) { return func() {} }
