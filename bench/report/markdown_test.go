package report

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// splitRow splits a Markdown table row into trimmed cells, honouring \|.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	line = strings.TrimSuffix(line, "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

// table returns the rows of the first table after heading, keyed by their
// first cell, with the header row under "".
func table(t *testing.T, md, heading string) map[string][]string {
	t.Helper()
	i := strings.Index(md, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("Markdown has no heading %q:\n%s", heading, md)
	}
	rows := make(map[string][]string)
	inTable := false
	for _, line := range strings.Split(md[i+len(heading)+2:], "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		cells := splitRow(line)
		switch {
		case !inTable:
			rows[""] = cells
			inTable = true
		case strings.HasPrefix(cells[0], "---"):
		default:
			rows[cells[0]] = cells
		}
	}
	return rows
}

func render(t *testing.T, r *Run) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteMarkdown(&b, r); err != nil {
		t.Fatalf("WriteMarkdown = %v, want nil", err)
	}
	return b.String()
}

func TestMarkdownScenarioRows(t *testing.T) {
	md := render(t, goodRun())
	rows := table(t, md, "### udp64-1k-flows")
	header := rows[""]
	col := func(name string) int {
		for i, h := range header {
			if h == name {
				return i
			}
		}
		t.Fatalf("scenario table has no column %q: %v", name, header)
		return -1
	}
	tests := []struct {
		row, column, want string
	}{
		{"xdpgate", "Delivered Mpps", "2.500"},
		{"xdpgate", "Offered Mpps", "4.000"},
		{"xdpgate", "Loss %", "37.50"},
		{"xdpgate", "CPU ms/Mpkt", "380.0"},
		{"xdpgate", "vs nftables", "2.50x"},
		{"xdpgate", "vs iptables", "3.12x"},
		{"xdpgate", "vs afxdp-forwarder", "0.86x"},
		{"xdpgate", "Retention", "–"},
		{"xdpgate", "Checksum / translation errors", "0 / 0 of 4096 sampled"},
		{"xdpgate", "Error", ""},
		{"xdpgate (unsteered)", "Delivered Mpps", "2.000"},
		// Ratios compare with the steered baseline, also for unsteered rows.
		{"xdpgate (unsteered)", "vs nftables", "2.00x"},
		{"nftables", "vs nftables", "1.00x"},
		{"nftables (unsteered)", "vs nftables", "0.70x"},
		{"afxdp-forwarder", "Delivered Mpps", "2.900"},
		{"iptables", "vs iptables", "1.00x"},
	}
	for _, tc := range tests {
		cells, ok := rows[tc.row]
		if !ok {
			t.Errorf("udp64-1k-flows table has no row %q; rows %v", tc.row, rows)
			continue
		}
		if got := cells[col(tc.column)]; got != tc.want {
			t.Errorf("row %q column %q = %q, want %q", tc.row, tc.column, got, tc.want)
		}
	}
	if len(rows) != 8 { // header + 7 results
		t.Errorf("udp64-1k-flows table has %d rows, want 8: %v", len(rows), rows)
	}
	inOrder := func(heading string, order []string) {
		t.Helper()
		sec := md[strings.Index(md, "\n"+heading+"\n")+1:]
		if end := strings.Index(sec, "\n### "); end >= 0 {
			sec = sec[:end]
		}
		last := -1
		for _, o := range order {
			i := strings.Index(sec, o)
			if i <= last {
				t.Errorf("%s: row %q out of order (at %d, previous at %d)", heading, o, i, last)
			}
			last = i
		}
	}
	inOrder("### udp64-1k-flows", []string{"| xdpgate |", "| xdpgate (unsteered) |", "| afxdp-forwarder |", "| xdp-redirect |",
		"| nftables |", "| nftables (unsteered) |", "| iptables |"})
	inOrder("### udp64-1k-flows-reply", []string{"| xdpgate |", "| xdpgate-fastpath |", "| afxdp-forwarder |", "| xdp-redirect |", "| nftables |"})
	reply := table(t, md, "### udp64-1k-flows-reply")
	if got := reply["xdpgate-fastpath"]; len(got) < 9 || got[5] != "2.40x" || got[8] != "0.80x" {
		t.Errorf("udp64-1k-flows-reply xdpgate-fastpath row %q: want 2.40x vs nftables and 0.80x vs xdp-redirect", got)
	}

	aff := table(t, md, "### affinity-100k")
	if got := aff["iptables"][col("Retention")]; got != "0.7312 of 100000 clients" {
		t.Errorf("affinity-100k iptables retention = %q, want %q", got, "0.7312 of 100000 clients")
	}
	// A scenario without the baseline shows no ratio to it.
	syn := table(t, md, "### tcp-syn")
	if got := syn["xdpgate"][col("vs iptables")]; got != "–" {
		t.Errorf("tcp-syn xdpgate vs iptables = %q, want –", got)
	}
}

func TestMarkdownHeaderAndNotes(t *testing.T) {
	r := goodRun()
	r.Command = "go run ./bench -flag '```x'"
	md := render(t, r)
	for _, want := range []string{
		"# xdpgate benchmark, 2026-11-21 19:30:05 UTC",
		"````sh\ngo run ./bench -flag '```x'\n````",
		"| Kernel | 6.12.0 |",
		"| Go | go1.26.8 |",
		"| Commit | abc1234 |",
		"| CPUs | 2 |",
		"| burst | 10s |\n| frame_size | 64 |",
		"## Notes\n\n- conntrack-1m: only [xdpgate]",
		"Sweep, delivered vs offered:",
		"| afxdp-forwarder | 2.500 | 2.450 | 2.00 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "![") {
		t.Errorf("WriteMarkdown links images, but it writes no plots:\n%s", md)
	}
}

func TestMarkdownTargets(t *testing.T) {
	tests := []struct {
		name string
		run  *Run
		want map[string]string // target -> status
	}{
		{"all met", goodRun(), map[string]string{"T1": "met", "T2": "met", "T3": "met", "T4": "met", "T5": "met", "T6": "met"}},
		{"missed and no data", edit(drop(goodRun(), ScenarioTCPSYN, DataplaneNFTables), ScenarioUDP1kFlows, DataplaneNFTables, true,
			func(res *Result) { res.DeliveredPPS = 2e6 }),
			map[string]string{"T1": "**MISSED**", "T2": "met", "T3": "met", "T4": "no data", "T5": "met", "T6": "met"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			md := render(t, tc.run)
			rows := table(t, md, "## Targets")
			for name, want := range tc.want {
				cells, ok := rows[name]
				if !ok {
					t.Errorf("targets table has no row %s", name)
					continue
				}
				if got := cells[len(cells)-1]; got != want {
					t.Errorf("target %s status = %q, want %q", name, got, want)
				}
			}
			if got, want := strings.Contains(md, "MISSED"), tc.want["T1"] == "**MISSED**"; got != want {
				t.Errorf("Markdown contains MISSED = %v, want %v", got, want)
			}
		})
	}
}

func TestMarkdownErrorRowAndEscaping(t *testing.T) {
	r := goodRun()
	r.Results = append(r.Results, makeResult(ScenarioConntrack1M, DataplaneXDPGate, 0,
		withError("prefill failed | table\nfull")))
	md := render(t, r)
	rows := table(t, md, "### conntrack-1m")
	cells := rows["xdpgate"]
	if n := len(rows[""]); len(cells) != n {
		t.Fatalf("conntrack-1m xdpgate row has %d cells, want %d as the header: %q", len(cells), n, cells)
	}
	if got, want := cells[len(cells)-1], "prefill failed | table full"; got != want {
		t.Errorf("error cell = %q, want %q", got, want)
	}
	if got := cells[1]; got != "–" {
		t.Errorf("delivered cell of a failed result = %q, want –", got)
	}
}

func TestMarkdownEmptyAndNil(t *testing.T) {
	md := render(t, &Run{})
	if !strings.Contains(md, "The run has no results.") || !strings.Contains(md, "| T1 |") {
		t.Errorf("empty run Markdown = %q, want the no-results line and the targets table", md)
	}
	if err := WriteMarkdown(&bytes.Buffer{}, nil); !errors.Is(err, ErrNoRun) {
		t.Errorf("WriteMarkdown(nil) = %v, want ErrNoRun", err)
	}
}

func TestShares(t *testing.T) {
	for _, tc := range []struct {
		per  []uint64
		want string
	}{
		{nil, "–"},
		{[]uint64{0, 0}, "–"},
		{[]uint64{10, 20, 30, 40}, "10/20/30/40"},
		{[]uint64{1, 2}, "33/67"},
	} {
		if got := shares(tc.per); got != tc.want {
			t.Errorf("shares(%v) = %q, want %q", tc.per, got, tc.want)
		}
	}
}

func TestFmtDelivered(t *testing.T) {
	r := &Result{DeliveredPPS: 412_000}
	if got := fmtDelivered(r); got != "0.412" {
		t.Errorf("no repeats: %q", got)
	}
	r.Repeats = []float64{498_000, 350_000, 412_000}
	if got, want := fmtDelivered(r), "0.412 (0.350-0.498)"; got != want {
		t.Errorf("repeats: %q, want %q", got, want)
	}
}

func testGateway() *GatewayCounters {
	return &GatewayCounters{Redirected: 39_000_000, Passed: 12, NoSocket: 2, RxRingFull: 700_000, FillRingEmpty: 300_000,
		RxDropped: 300_001, InvalidDescs: 0, TxRingEmpty: 5, KernelRingStats: true, RxFrames: 38_000_000,
		Dropped: 1200, TxFrames: 37_998_800, TxRingFull: 3,
		DropReasons: map[string]uint64{"conntrack_full": 1000, "no_route": 150, "ttl_expired": 40, "malformed": 10}}
}

// TestMarkdownGateway: a result with the gateway's counters gets a row in
// the scenario's "where the frames went" table, with the kernel's ring
// losses and the largest drop reasons; results without counters get none,
// and a kernel without ring counters shows n/a rather than 0.
func TestMarkdownGateway(t *testing.T) {
	r := goodRun()
	edit(r, ScenarioTCPSYN, DataplaneXDPGate, true, func(res *Result) { res.Gateway = testGateway() })
	var b bytes.Buffer
	if err := WriteMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	res := r.Lookup(ScenarioTCPSYN, DataplaneXDPGate)
	row := fmt.Sprintf("| xdpgate | %d | 39000000 (12) | 300001 (300000) | 700000 | 0 | 38000000 | 1200 (conntrack_full 1000, no_route 150, ttl_expired 40) | 37998800 (3) | %d |",
		res.Offered, res.Delivered)
	if !strings.Contains(md, row) {
		t.Errorf("markdown lacks the gateway row %q:\n%s", row, md)
	}
	if n := strings.Count(md, "| Dataplane | Offered | Redirected"); n != 1 {
		t.Errorf("%d gateway tables, want 1 (only tcp-syn has counters)", n)
	}
	edit(r, ScenarioTCPSYN, DataplaneXDPGate, true, func(res *Result) { res.Gateway.KernelRingStats = false })
	b.Reset()
	if err := WriteMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| 39000000 (12) | 300001 (n/a) | n/a |") {
		t.Errorf("without ring counters the row must say n/a:\n%s", b.String())
	}
}
