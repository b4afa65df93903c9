//go:build unix

package benchcpu

import "syscall"

// processCPU returns the CPU time the process has used, in nanoseconds.
func processCPU() (int64, bool) { return rusage(syscall.RUSAGE_SELF) }

func rusage(who int) (int64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0, false
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), true
}
