package report

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// dataplaneOrder is the row order of every table and the series order of
// every plot: the thing under test in its configurations, its ceilings (its
// I/O path's, the rig's), then the baselines. A dataplane the package does
// not know comes after these, by name.
var dataplaneOrder = []string{DataplaneXDPGate, DataplaneXDPGateFastPath, DataplaneForwarder, DataplaneXDPRedirect,
	DataplaneNFTables, DataplaneIPTables}

// ratioBases are the dataplanes every row is compared with, in column
// order.
var ratioBases = []string{DataplaneNFTables, DataplaneIPTables, DataplaneForwarder, DataplaneXDPRedirect}

func dataplaneRank(dp string) int {
	if i := slices.Index(dataplaneOrder, dp); i >= 0 {
		return i
	}
	return len(dataplaneOrder)
}

// compareResults orders results by dataplane, steered before unsteered;
// results that tie keep run order (callers sort stably).
func compareResults(a, b *Result) int {
	if c := cmp.Compare(dataplaneRank(a.Dataplane), dataplaneRank(b.Dataplane)); c != 0 {
		return c
	}
	if c := strings.Compare(a.Dataplane, b.Dataplane); c != 0 {
		return c
	}
	switch {
	case a.Steered == b.Steered:
		return 0
	case a.Steered:
		return -1
	default:
		return 1
	}
}

// label names a result in tables and legends.
func label(res *Result) string {
	if res.Steered {
		return res.Dataplane
	}
	return res.Dataplane + " (unsteered)"
}

// scenarioResults returns the scenario's results in table order.
func scenarioResults(r *Run, scenario string) []*Result {
	var out []*Result
	for i := range r.Results {
		if r.Results[i].Scenario == scenario {
			out = append(out, &r.Results[i])
		}
	}
	slices.SortStableFunc(out, compareResults)
	return out
}

// plotLinks says which plots exist for a Markdown file, as paths relative
// to it without the extension ("latest/throughput"); empty when none.
type plotLinks struct {
	throughput string
	sweeps     map[string]string // scenario -> path
}

// WriteMarkdown renders: a header with host/settings/command, one table per
// scenario (rows = dataplanes: delivered Mpps, offered Mpps, loss %, CPU
// ms/Mpkt, ratio to nftables, ratio to iptables, ratio to the raw
// forwarder, ratio to xdp-redirect, retention, checksum/translation errors,
// error if any), the targets table (met / MISSED / no data), notes.
// Unsteered rows are marked; ratios are against the baseline result targets
// use (Run.Lookup).
func WriteMarkdown(w io.Writer, r *Run) error {
	return writeMarkdown(w, r, plotLinks{})
}

func writeMarkdown(w io.Writer, r *Run, links plotLinks) error {
	if r == nil {
		return ErrNoRun
	}
	var b bytes.Buffer
	writeHeader(&b, r)
	if links.throughput != "" {
		fmt.Fprintf(&b, "![Delivered Mpps per dataplane and scenario](%s.png)\n\n([SVG](%s.svg))\n\n", links.throughput, links.throughput)
	}
	b.WriteString("## Results\n\n")
	b.WriteString("Ratios compare delivered rates with the baseline's steered result in the same scenario; " +
		"\"(unsteered)\" marks a run without kernel softirq steered to the gateway CPU.\n\n")
	scenarios := r.Scenarios()
	if len(scenarios) == 0 {
		b.WriteString("The run has no results.\n\n")
	}
	for _, sc := range scenarios {
		writeScenario(&b, r, sc, links.sweeps[sc])
	}
	writeTargets(&b, Evaluate(r))
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", oneLine(n))
		}
		b.WriteString("\n")
	}
	_, err := w.Write(b.Bytes())
	return err
}

func writeHeader(b *bytes.Buffer, r *Run) {
	fmt.Fprintf(b, "# xdpgate benchmark, %s\n\n", r.Started.UTC().Format(time.DateTime+" UTC"))
	if r.Command != "" {
		// A fence longer than any backtick run inside keeps the command
		// verbatim whatever it contains.
		fence := strings.Repeat("`", max(3, longestRun(r.Command, '`')+1))
		fmt.Fprintf(b, "Reproduce with:\n\n%ssh\n%s\n%s\n\n", fence, r.Command, fence)
	}
	b.WriteString("| Host | |\n|---|---|\n")
	fmt.Fprintf(b, "| Kernel | %s |\n", cell(r.Host.Kernel))
	fmt.Fprintf(b, "| Go | %s |\n", cell(r.Host.GoVersion))
	fmt.Fprintf(b, "| Commit | %s |\n", cell(r.Host.Commit))
	fmt.Fprintf(b, "| CPUs | %d |\n\n", r.Host.CPUs)
	if len(r.Settings) > 0 {
		b.WriteString("| Setting | Value |\n|---|---|\n")
		keys := make([]string, 0, len(r.Settings))
		for k := range r.Settings {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(b, "| %s | %s |\n", cell(k), cell(r.Settings[k]))
		}
		b.WriteString("\n")
	}
}

func writeScenario(b *bytes.Buffer, r *Run, sc, sweepLink string) {
	fmt.Fprintf(b, "### %s\n\n", oneLine(sc))
	b.WriteString("| Dataplane | Delivered Mpps | Offered Mpps | Loss % | CPU ms/Mpkt |")
	for _, dp := range ratioBases {
		fmt.Fprintf(b, " vs %s |", dp)
	}
	b.WriteString(" Retention | Endpoint shares % | Checksum / translation errors | Error |\n")
	b.WriteString("|---|--:|--:|--:|--:|" + strings.Repeat("--:|", len(ratioBases)) + "--:|--:|--:|---|\n")
	results := scenarioResults(r, sc)
	bases := make([]*Result, 0, len(ratioBases))
	for _, dp := range ratioBases {
		base, _ := baseline(r, sc, dp)
		bases = append(bases, base)
	}
	var profiles []string
	for _, res := range results {
		if res.Profile != "" {
			profiles = append(profiles, fmt.Sprintf("%s: `%s`", label(res), strings.ReplaceAll(oneLine(res.Profile), "`", "'")))
		}
		if res.Error != "" {
			fmt.Fprintf(b, "| %s |%s %s |\n", cell(label(res)), strings.Repeat(" – |", 7+len(ratioBases)), cell(res.Error))
			continue
		}
		ratios := make([]string, len(bases))
		for i, base := range bases {
			ratios[i] = "–"
			if base != nil {
				ratios[i] = fmtRatio(res.DeliveredPPS, base.DeliveredPPS)
			}
		}
		ret := "–"
		if res.Retention != nil {
			ret = fmtRetention(res)
		}
		errs := fmt.Sprintf("%d / %d", res.ChecksumErrors, res.TranslationErrors)
		if res.Sampled > 0 {
			errs += fmt.Sprintf(" of %d sampled", res.Sampled)
		}
		fmt.Fprintf(b, "| %s | %s | %.3f | %.2f | %.1f | %s | %s | %s | %s | |\n",
			cell(label(res)), fmtDelivered(res), res.OfferedPPS/1e6, res.LossPct, res.CPUMsPerMpkt,
			strings.Join(ratios, " | "), cell(ret), shares(res.PerEndpoint), errs)
	}
	b.WriteString("\n")
	if len(profiles) > 0 {
		fmt.Fprintf(b, "CPU profiles: %s.\n\n", strings.Join(profiles, "; "))
	}
	writeSweep(b, results, sweepLink)
	writeGateway(b, results)
}

// writeGateway shows, for the results that have them, where the gateway's
// own counters say the frames of the reported burst went: the classifier,
// the kernel's side of the rings, the pollers, the transmit rings.
func writeGateway(b *bytes.Buffer, results []*Result) {
	if !slices.ContainsFunc(results, func(res *Result) bool { return res.Gateway != nil }) {
		return
	}
	b.WriteString("Where the frames went, by the gateway's counters over the reported burst: redirected to AF_XDP by the classifier " +
		"(passed to the kernel; offered frames neither redirected nor passed were lost before XDP, in veth); lost by the kernel before " +
		"the pollers: dropped (of which for an empty fill ring: no free UMEM frame) and RX ring full; invalid descriptors; " +
		"taken by the pollers; dropped by the dataplane (largest reasons); put on a TX ring (not sent: TX ring full):\n\n")
	b.WriteString("| Dataplane | Offered | Redirected (passed) | Kernel dropped (fill ring empty) | RX ring full | Invalid descs | Polled | Dropped | TX (ring full) | Delivered |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, res := range results {
		g := res.Gateway
		if g == nil {
			continue
		}
		ring := func(v uint64) string {
			if !g.KernelRingStats {
				return "n/a"
			}
			return fmt.Sprint(v)
		}
		fmt.Fprintf(b, "| %s | %d | %d (%d) | %d (%s) | %s | %d | %d | %s | %d (%d) | %d |\n",
			cell(label(res)), res.Offered, g.Redirected, g.Passed, g.RxDropped, ring(g.FillRingEmpty), ring(g.RxRingFull),
			g.InvalidDescs, g.RxFrames, cell(fmtDrops(g)), g.TxFrames, g.TxRingFull, res.Delivered)
	}
	b.WriteString("\n")
}

// fmtDrops is the dataplane's drop count with its three largest reasons:
// "1200 (conntrack_full 1000, no_route 200)".
func fmtDrops(g *GatewayCounters) string {
	if g.Dropped == 0 || len(g.DropReasons) == 0 {
		return fmt.Sprint(g.Dropped)
	}
	type reasonCount struct {
		reason string
		n      uint64
	}
	var rs []reasonCount
	for r, n := range g.DropReasons {
		rs = append(rs, reasonCount{r, n})
	}
	slices.SortFunc(rs, func(a, b reasonCount) int {
		if c := cmp.Compare(b.n, a.n); c != 0 {
			return c
		}
		return strings.Compare(a.reason, b.reason)
	})
	parts := make([]string, 0, 3)
	for _, x := range rs[:min(3, len(rs))] {
		parts = append(parts, fmt.Sprintf("%s %d", x.reason, x.n))
	}
	return fmt.Sprintf("%d (%s)", g.Dropped, strings.Join(parts, ", "))
}

// writeSweep lists every sweep point; the plot shows the shape, the table
// the numbers behind it.
func writeSweep(b *bytes.Buffer, results []*Result, link string) {
	if !slices.ContainsFunc(results, func(res *Result) bool { return len(res.Sweep) > 0 }) {
		return
	}
	b.WriteString("Sweep, delivered vs offered:\n\n")
	if link != "" {
		fmt.Fprintf(b, "![Delivered vs offered Mpps](%s.png)\n\n([SVG](%s.svg))\n\n", link, link)
	}
	b.WriteString("| Dataplane | Offered Mpps | Delivered Mpps | Loss % |\n|---|--:|--:|--:|\n")
	for _, res := range results {
		for _, p := range res.Sweep {
			fmt.Fprintf(b, "| %s | %.3f | %.3f | %.2f |\n", cell(label(res)), p.OfferedPPS/1e6, p.DeliveredPPS/1e6, p.LossPct)
		}
	}
	b.WriteString("\n")
}

// Status words of the targets table.
const (
	StatusMet    = "met"
	StatusMissed = "**MISSED**"
	StatusNoData = "no data"
)

// Status is how the targets table shows t.
func (t Target) Status() string {
	switch {
	case !t.Known:
		return StatusNoData
	case t.Met:
		return StatusMet
	default:
		return StatusMissed
	}
}

func writeTargets(b *bytes.Buffer, targets []Target) {
	b.WriteString("## Targets\n\n| Target | Want | Got | Status |\n|---|---|---|---|\n")
	for _, t := range targets {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", cell(t.Name), cell(t.Want), cell(t.Got), t.Status())
	}
	b.WriteString("\n")
}

// cell makes s safe inside a Markdown table cell: a pipe would end the
// cell and a newline the row.
func cell(s string) string {
	return strings.ReplaceAll(oneLine(s), "|", `\|`)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func longestRun(s string, c byte) int {
	best, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}

// shares renders the distribution over endpoints as rounded percentages,
// "25/25/25/25"; "–" without data.
func shares(per []uint64) string {
	var total uint64
	for _, n := range per {
		total += n
	}
	if total == 0 {
		return "–"
	}
	parts := make([]string, len(per))
	for i, n := range per {
		parts[i] = fmt.Sprintf("%.0f", 100*float64(n)/float64(total))
	}
	return strings.Join(parts, "/")
}

// fmtDelivered is the delivered Mpps, with the range over the repetitions
// when there were several: "0.412 (0.350-0.498)".
func fmtDelivered(res *Result) string {
	d := fmt.Sprintf("%.3f", res.DeliveredPPS/1e6)
	if len(res.Repeats) < 2 {
		return d
	}
	lo, hi := res.Repeats[0], res.Repeats[0]
	for _, v := range res.Repeats[1:] {
		lo, hi = min(lo, v), max(hi, v)
	}
	return fmt.Sprintf("%s (%.3f-%.3f)", d, lo/1e6, hi/1e6)
}
