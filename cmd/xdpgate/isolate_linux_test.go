package main

import (
	"os"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestKeepOffCPUs moves the test process's threads off its last CPU and
// checks every thread's mask, then restores them.
func TestKeepOffCPUs(t *testing.T) {
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	if orig.Count() < 2 {
		t.Skip("needs two CPUs in the process's affinity mask")
	}
	last := -1
	for c := range runtime.NumCPU() * 2 {
		if orig.IsSet(c) {
			last = c
		}
	}
	threads := func() []int {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		var tids []int
		for _, e := range ents {
			if tid, err := strconv.Atoi(e.Name()); err == nil {
				tids = append(tids, tid)
			}
		}
		return tids
	}
	t.Cleanup(func() {
		for _, tid := range threads() {
			unix.SchedSetaffinity(tid, &orig)
		}
	})
	moved, err := keepOffCPUs([]int{last})
	if err != nil {
		t.Fatal(err)
	}
	if moved == 0 {
		t.Fatal("no thread moved")
	}
	for _, tid := range threads() {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			continue // exited
		}
		if set.IsSet(last) || set.Count() != orig.Count()-1 {
			t.Errorf("thread %d: mask has %d CPUs, CPU %d set: %v", tid, set.Count(), last, set.IsSet(last))
		}
	}
	// All of a process's CPUs: nothing to move to, nothing changes.
	all := make([]int, 0, orig.Count())
	for c := range runtime.NumCPU() * 2 {
		if orig.IsSet(c) {
			all = append(all, c)
		}
	}
	if moved, err := keepOffCPUs(all); err != nil || moved != 0 {
		t.Errorf("keepOffCPUs(all) = %d, %v; want 0, nil", moved, err)
	}
}
