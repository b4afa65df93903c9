// Command xdpgate-bench is the benchmark rig (bench/rig) as a command: it
// measures the xdpgate binary next to the kernel's nftables and iptables
// rulesets (kube-proxy's, for the same services) and the raw AF_XDP
// forwarder, scenario by scenario in fresh network namespaces, and writes
// the report as JSON, Markdown and plots (bench/report).
//
// Usage, as root:
//
//	xdpgate-bench [--scenarios ...] [--dataplanes ...] [--external NAME=CMD] [--out dir] [--xdpgate PATH]
//	xdpgate-bench --cleanup
//
// `make bench` builds bin/xdpgate and bin/xdpgate-bench and runs the rig
// with BENCH_FLAGS.
//
// It is a binary of its own so that the product binary does not carry the
// rig, the traffic generator and gonum/plot with its fonts:
// `go list -deps ./cmd/xdpgate` lists none of them. The rig runs the product
// as a child process (`xdpgate run` in the gateway namespace, exactly as a
// user runs it). --xdpgate names that binary; without it, the first of
// these is used: xdpgate next to this executable (bin/ after `make build`),
// bin/xdpgate under the working directory, xdpgate on PATH. None found is an
// error, unless --dataplanes leaves the xdpgate dataplane out.
//
// Output, under --out (default bench/results): latest.json, latest.md and
// the plots in latest/ are replaced by every run. Each run's own
// <stamp>.json, <stamp>.md and <stamp>/ plots, and the CPU profiles of the
// newest run's xdpgate measurements (runs/profiles/<scenario>-xdpgate.pprof,
// `go tool pprof` reads them), go to runs/, which the repository ignores.
package main
