package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// keepOffCPUs moves every thread of the process off the given CPUs (the
// pollers'), onto the rest of the CPUs the process may use. Called before
// any poller starts: threads the Go runtime creates later inherit the mask
// (a poller's locked thread spawns through the runtime's template thread,
// which is created after this), and each poller then pins its own thread
// to its CPU. Without it the runtime's other threads (GC workers, the
// control loop, housekeeping sweeps) are placed wherever the scheduler
// likes, poller CPUs included, and a poller that loses its CPU for a few
// milliseconds overflows its receive ring. When the pollers' CPUs are all
// the process has, nothing changes.
func keepOffCPUs(cpus []int) (moved int, err error) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return 0, fmt.Errorf("sched_getaffinity: %w", err)
	}
	rest := allowed
	for _, c := range cpus {
		rest.Clear(c)
	}
	if rest.Count() == 0 {
		return 0, nil
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &rest); err != nil {
			if err == unix.ESRCH { // the thread exited meanwhile
				continue
			}
			return moved, fmt.Errorf("sched_setaffinity(%d): %w", tid, err)
		}
		moved++
	}
	return moved, nil
}
