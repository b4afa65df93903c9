// Package report holds what one invocation of the benchmark rig measured and
// turns it into the files people read: a JSON record (the source of truth,
// read back by ReadJSON), a Markdown summary, and plots.
//
// # Model
//
// A Run is one invocation: host, settings, the command that reproduces it,
// and one Result per (scenario, dataplane, steering) measured. Results are
// plain numbers as the rig measured them; this package derives nothing that
// it stores, only what it shows (ratios between dataplanes, target verdicts),
// so a JSON file read back renders exactly as it did when it was written.
//
// # Targets
//
// Evaluate checks the targets T1..T8 against a Run. A target about
// xdpgate takes the best of its configurations in the run (xdpgate, and
// xdpgate-fastpath with the XDP fast path on) and names the one it used;
// the untranslated ceilings (afxdp-forwarder, xdpgate's I/O path, and
// xdp-redirect, the kernel's own XDP forwarding) are rows and ratio
// columns, and T3, T6 and T7 compare with the first. When a
// (scenario, dataplane) has both a steered and an unsteered result, targets
// use the steered one (see Run.Lookup): steering the kernel's softirq to the
// gateway CPU is the fair comparison, because xdpgate's queue goroutine runs
// there too. A target is Known only when the run holds every result it
// needs; a failed xdpgate result is a miss, a failed or absent baseline is
// "no data", because a target cannot be met by the thing under test failing
// but cannot be judged against a baseline that was never measured.
//
// # Files
//
// Save lays a run out as <dir>/<stamp>.json, <dir>/<stamp>.md and the plots
// in <dir>/<stamp>/, and keeps <dir>/latest.json, <dir>/latest.md and
// <dir>/latest/ as copies (not symlinks: they survive being copied off the
// machine or committed). Every file is written to a temporary name and
// renamed, so a reader never sees half a file.
//
// # Dependency
//
// Plots use gonum.org/v1/plot: plots, PNG and SVG, pure Go. It needs no cgo,
// no system fonts (it embeds the Liberation fonts) and no external program,
// so a plot renders the same on the 2-core bench machine, in CI and on a
// laptop, which an external gnuplot or a Python stack would not promise.
package report
