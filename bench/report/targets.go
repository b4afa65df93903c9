package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Target is one of the goals checked against a run.
type Target struct {
	Name  string `json:"name"`
	Want  string `json:"want"`
	Got   string `json:"got"`
	Met   bool   `json:"met"`
	Known bool   `json:"known"` // false when the run lacks the data
}

// ZeroLossPct is the loss below which a sweep point counts as lossless
// (T6): a generator burst of a few million frames rarely arrives whole even
// at low rates (ARP refreshes, the first frames of a burst racing NAPI
// start-up), so "zero" means under one frame in a thousand.
const ZeroLossPct = 0.1

// Evaluate checks the targets below against a run. It never fails: a
// target whose data is missing comes back with Known false and Got saying
// what is missing. "xdpgate" in a target is the best of its configurations
// in the run (xdpgateConfigs: xdpgate, xdpgate-fastpath), and Got names the
// one used.
//
//	T1 xdpgate >= 2x nftables delivered pps, udp64-1k-flows
//	T2 xdpgate >= 3x iptables delivered pps, udp64-1k-flows
//	T3 xdpgate >= 0.8x afxdp-forwarder delivered pps, udp64-1k-flows
//	T4 xdpgate >= 2x nftables new-flow (SYN) rate, tcp-syn
//	T5 xdpgate ClientIP retention == 1 at 100k clients, affinity-100k
//	T6 xdpgate loses < 0.1% wherever afxdp-forwarder does, udp64-1k-flows sweep
//	T7 xdpgate >= 0.8x afxdp-forwarder new-flow (SYN) rate, tcp-syn (the
//	   pipeline's new-flow cost on top of the same I/O)
//	T8 xdpgate >= 2x nftables delivered pps in udp64-1k-flows-reply and in
//	   udp64-1k-flows-one-arm-reply (issue 16: "udp64-1k-flows-reply and
//	   one-arm", with the fast path; the fast path takes a UDP flow once a
//	   reply establishes it, so the one-arm half is the one-arm scenario
//	   with replies, not the one-way udp64-1k-flows-one-arm)
func Evaluate(r *Run) []Target {
	return []Target{
		ratioTarget(r, "T1", ScenarioUDP1kFlows, DataplaneNFTables, 2, "delivered pps"),
		ratioTarget(r, "T2", ScenarioUDP1kFlows, DataplaneIPTables, 3, "delivered pps"),
		ratioTarget(r, "T3", ScenarioUDP1kFlows, DataplaneForwarder, 0.8, "delivered pps"),
		ratioTarget(r, "T4", ScenarioTCPSYN, DataplaneNFTables, 2, "new-flow (SYN) rate"),
		retentionTarget(r),
		zeroLossTarget(r),
		ratioTarget(r, "T7", ScenarioTCPSYN, DataplaneForwarder, 0.8, "new-flow (SYN) rate"),
		bothScenarios(r, "T8", ScenarioUDP1kFlowsReply, ScenarioUDP1kFlowsOneArmReply, DataplaneNFTables, 2),
	}
}

// xdpgateConfigs are the dataplanes that run xdpgate, in different
// configurations. A target about xdpgate takes the best of those in the run
// (subject): the issue asks what xdpgate can do, and Got names the
// configuration that did it.
var xdpgateConfigs = []string{DataplaneXDPGate, DataplaneXDPGateFastPath}

// subjectName is how a target's Want names xdpgate.
const subjectName = DataplaneXDPGate + " (best configuration)"

// bothScenarios is ratioTarget in two scenarios at once: met when both
// are; a known miss in either is a miss, otherwise one without data leaves
// it unknown.
func bothScenarios(r *Run, name, sc1, sc2, base string, factor float64) Target {
	const what = "delivered pps"
	want := fmt.Sprintf("%s %s >= %gx %s (%s and %s)", subjectName, what, factor, base, sc1, sc2)
	var got []string
	missed, unknown := false, false
	for _, sc := range []string{sc1, sc2} {
		p := ratioTarget(r, name, sc, base, factor, what)
		got = append(got, sc+": "+p.Got)
		missed = missed || p.Known && !p.Met
		unknown = unknown || !p.Known
	}
	return Target{Name: name, Want: want, Got: strings.Join(got, "; "), Known: missed || !unknown, Met: !missed && !unknown}
}

// unsteeredTag marks a Got that had to use an unsteered result because the
// run has no steered one.
func unsteeredTag(res *Result) string {
	if res.Steered {
		return ""
	}
	return " (unsteered)"
}

// subject finds xdpgate's result for a target: of its configurations in
// the run (xdpgateConfigs, each by Run.Lookup), one that did not fail,
// preferring one that has what the target needs (usable; nil: any), then a
// steered one, then the highest delivered rate. It returns the result, or a
// finished Target: no result is no data, only failed ones a miss.
func subject(r *Run, name, want, scenario string, usable func(*Result) bool) (*Result, *Target) {
	var best, failed *Result
	better := func(a, b *Result) bool {
		if ua, ub := usable == nil || usable(a), usable == nil || usable(b); ua != ub {
			return ua
		}
		if a.Steered != b.Steered {
			return a.Steered
		}
		return a.DeliveredPPS > b.DeliveredPPS
	}
	for _, dp := range xdpgateConfigs {
		switch x := r.Lookup(scenario, dp); {
		case x == nil:
		case x.Error != "":
			if failed == nil {
				failed = x
			}
		case best == nil || better(x, best):
			best = x
		}
	}
	switch {
	case best != nil:
		return best, nil
	case failed != nil:
		return nil, &Target{Name: name, Want: want, Known: true, Got: fmt.Sprintf("%s failed%s: %s", failed.Dataplane, unsteeredTag(failed), failed.Error)}
	}
	return nil, &Target{Name: name, Want: want, Got: fmt.Sprintf("no %s result for %s", DataplaneXDPGate, scenario)}
}

// baseline finds a baseline's result, or says why there is none.
func baseline(r *Run, scenario, dataplane string) (*Result, string) {
	b := r.Lookup(scenario, dataplane)
	if b == nil {
		return nil, fmt.Sprintf("no %s result for %s", dataplane, scenario)
	}
	if b.Error != "" {
		return nil, fmt.Sprintf("%s failed%s: %s", dataplane, unsteeredTag(b), b.Error)
	}
	return b, ""
}

func ratioTarget(r *Run, name, scenario, base string, factor float64, what string) Target {
	want := fmt.Sprintf("%s %s >= %gx %s (%s)", subjectName, what, factor, base, scenario)
	x, done := subject(r, name, want, scenario, nil)
	if done != nil {
		return *done
	}
	b, why := baseline(r, scenario, base)
	if b == nil {
		return Target{Name: name, Want: want, Got: why}
	}
	// xdpgate delivering nothing is never a win, even against a baseline
	// that also delivered nothing (0 >= 2*0).
	met := x.DeliveredPPS > 0 && x.DeliveredPPS >= factor*b.DeliveredPPS
	got := fmt.Sprintf("%s (%s %s%s vs %s %s%s)", fmtRatio(x.DeliveredPPS, b.DeliveredPPS),
		x.Dataplane, fmtMpps(x.DeliveredPPS), unsteeredTag(x), base, fmtMpps(b.DeliveredPPS), unsteeredTag(b))
	return Target{Name: name, Want: want, Got: got, Met: met, Known: true}
}

func retentionTarget(r *Run) Target {
	const name = "T5"
	want := fmt.Sprintf("%s ClientIP retention = 1 at 100k clients (%s)", subjectName, ScenarioAffinity100k)
	x, done := subject(r, name, want, ScenarioAffinity100k, func(res *Result) bool { return res.Retention != nil })
	if done != nil {
		return *done
	}
	if x.Retention == nil {
		return Target{Name: name, Want: want, Got: fmt.Sprintf("%s result has no retention", x.Dataplane)}
	}
	got := x.Dataplane + " " + fmtRetention(x) + unsteeredTag(x)
	// iptables is the contrast the issue asks to see (its recent-module
	// affinity loses clients at this scale); it does not decide the target.
	if ipt, why := baseline(r, ScenarioAffinity100k, DataplaneIPTables); ipt == nil {
		got += "; " + why
	} else if ipt.Retention == nil {
		got += "; " + DataplaneIPTables + " result has no retention"
	} else {
		got += "; " + DataplaneIPTables + " " + fmtRetention(ipt) + unsteeredTag(ipt)
	}
	// Retention is a share, stayed/clients, so it is exactly 1 when every
	// client stayed; >= also accepts a rig that rounds up.
	if x.Clients < RetentionClients {
		// Retention over fewer clients proves less than the target asks.
		got += fmt.Sprintf(" (fewer than %d clients measured)", RetentionClients)
		return Target{Name: name, Want: want, Got: got, Known: true}
	}
	return Target{Name: name, Want: want, Got: got, Met: *x.Retention >= 1, Known: true}
}

// RetentionClients is how many clients T5 needs measured.
const RetentionClients = 100_000

func zeroLossTarget(r *Run) Target {
	const name = "T6"
	want := fmt.Sprintf("%s loss < %g%% at every swept rate where %s loses < %g%% (%s)",
		subjectName, ZeroLossPct, DataplaneForwarder, ZeroLossPct, ScenarioUDP1kFlows)
	x, done := subject(r, name, want, ScenarioUDP1kFlows, func(res *Result) bool { return len(res.Sweep) > 0 })
	if done != nil {
		return *done
	}
	f, why := baseline(r, ScenarioUDP1kFlows, DataplaneForwarder)
	if f == nil {
		return Target{Name: name, Want: want, Got: why}
	}
	if len(x.Sweep) == 0 || len(f.Sweep) == 0 {
		var missing []string
		if len(x.Sweep) == 0 {
			missing = append(missing, x.Dataplane)
		}
		if len(f.Sweep) == 0 {
			missing = append(missing, DataplaneForwarder)
		}
		return Target{Name: name, Want: want, Got: "no sweep for " + strings.Join(missing, " and ")}
	}
	var misses []string
	checked := 0
	top := 0.0
	for _, fp := range f.Sweep {
		if !(fp.LossPct < ZeroLossPct) {
			continue
		}
		checked++
		top = math.Max(top, fp.OfferedPPS)
		xp := nearest(x.Sweep, fp.OfferedPPS)
		if !(xp.LossPct < ZeroLossPct) {
			misses = append(misses, fmt.Sprintf("at %s offered %s lost %.2f%% (%s at %s: %.2f%%)",
				fmtMpps(xp.OfferedPPS), x.Dataplane, xp.LossPct, DataplaneForwarder, fmtMpps(fp.OfferedPPS), fp.LossPct))
		}
	}
	if checked == 0 {
		// Vacuously true, and so says nothing: the sweep never reached
		// the range the target is about.
		return Target{Name: name, Want: want, Got: fmt.Sprintf("%s lost >= %g%% at every swept rate: no lossless range to compare", DataplaneForwarder, ZeroLossPct)}
	}
	if len(misses) > 0 {
		return Target{Name: name, Want: want, Known: true,
			Got: fmt.Sprintf("%d of %d rates missed: %s", len(misses), checked, strings.Join(misses, "; "))}
	}
	return Target{Name: name, Want: want, Known: true, Met: true,
		Got: fmt.Sprintf("%s lossless at all %d rates where %s was (up to %s offered)", x.Dataplane, checked, DataplaneForwarder, fmtMpps(top))}
}

// nearest returns the point whose offered rate is closest to pps (the first
// of equals). The rig offers both dataplanes the same nominal rates, but the
// generator's achieved rates differ by a little, so exact matching would
// pair nothing.
func nearest(pts []Point, pps float64) Point {
	best := pts[0]
	for _, p := range pts[1:] {
		if math.Abs(p.OfferedPPS-pps) < math.Abs(best.OfferedPPS-pps) {
			best = p
		}
	}
	return best
}

func fmtMpps(pps float64) string { return fmt.Sprintf("%.3f Mpps", pps/1e6) }

// fmtRatio formats a/b as "2.41x"; a zero baseline has no ratio.
func fmtRatio(a, b float64) string {
	if b == 0 || !finite(a/b) {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func fmtRetention(res *Result) string {
	if res.Retention == nil {
		return "n/a"
	}
	s := fmt.Sprintf("%.4f", *res.Retention)
	if s == "1.0000" && *res.Retention < 1 {
		// One client lost in 100k must not print as a perfect score.
		s = strconv.FormatFloat(*res.Retention, 'f', -1, 64)
	}
	if res.Clients > 0 {
		s += fmt.Sprintf(" of %d clients", res.Clients)
	}
	return s
}
