package benchcpu

// rusageThread is Linux's RUSAGE_THREAD.
const rusageThread = 1

// threadCPU returns the calling OS thread's CPU time, in nanoseconds.
func threadCPU() (int64, bool) { return rusage(rusageThread) }
