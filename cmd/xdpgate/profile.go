package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// cpuProfileEnv names a file that `xdpgate run` writes a CPU profile of its
// whole run to (written at exit). The benchmark rig sets it to show where
// xdpgate's time goes; it is an environment variable rather than a flag
// because it is a diagnostic of the process, not configuration.
const cpuProfileEnv = "XDPGATE_CPUPROFILE"

// startCPUProfile starts profiling into path ("": no profile); the returned
// function stops and closes it.
func startCPUProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cpuProfileEnv, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", cpuProfileEnv, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
