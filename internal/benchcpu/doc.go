// Package benchcpu reports a benchmark's CPU time per operation
// ("cpu-ns/op") next to its wall time. On a shared, loaded machine wall time
// includes waiting for a CPU; CPU time does not, so it is the figure to
// compare across runs. Benchmarks only: nothing here asserts a time.
package benchcpu
