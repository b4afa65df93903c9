package report

import (
	"strings"
	"testing"
)

type verdict struct{ known, met bool }

var (
	met    = verdict{known: true, met: true}
	missed = verdict{known: true, met: false}
	noData = verdict{known: false, met: false}
)

func TestEvaluate(t *testing.T) {
	allMet := map[string]verdict{"T1": met, "T2": met, "T3": met, "T4": met, "T5": met, "T6": met, "T7": met, "T8": met}
	with := func(changes map[string]verdict) map[string]verdict {
		out := make(map[string]verdict)
		for k, v := range allMet {
			out[k] = v
		}
		for k, v := range changes {
			out[k] = v
		}
		return out
	}
	setPPS := func(pps float64) func(*Result) { return func(res *Result) { res.DeliveredPPS = pps } }
	tests := []struct {
		name string
		run  *Run
		want map[string]verdict
		// gotHas are substrings expected in a target's Got.
		gotHas map[string]string
	}{
		{name: "all met", run: goodRun(), want: allMet,
			gotHas: map[string]string{"T1": "2.50x (xdpgate 2.500 Mpps", "T5": "iptables 0.7312 of 100000 clients", "T6": "xdpgate lossless at all 4 rates",
				"T8": "udp64-1k-flows-reply: 2.40x (xdpgate-fastpath 1.200 Mpps vs nftables 0.500 Mpps); udp64-1k-flows-one-arm-reply: 2.20x (xdpgate-fastpath 1.100 Mpps"}},
		{name: "T8 missed in one-arm", run: edit(goodRun(), ScenarioUDP1kFlowsOneArmReply, DataplaneNFTables, true, setPPS(0.6e6)),
			want: with(map[string]verdict{"T8": missed}), gotHas: map[string]string{"T8": "udp64-1k-flows-one-arm-reply: 1.83x"}},
		{name: "T8 ignores the one-way one-arm scenario",
			run:  edit(goodRun(), ScenarioUDP1kFlowsOneArm, DataplaneNFTables, true, setPPS(5e6)),
			want: allMet},
		{name: "T8 one-arm without the fast path is judged on xdpgate", run: drop(goodRun(), ScenarioUDP1kFlowsOneArmReply, DataplaneXDPGateFastPath),
			want: with(map[string]verdict{"T8": missed}), gotHas: map[string]string{"T8": "udp64-1k-flows-one-arm-reply: 0.50x (xdpgate 0.250 Mpps"}},
		{name: "T8 without the fast path is judged on xdpgate", run: drop(goodRun(), ScenarioUDP1kFlowsReply, DataplaneXDPGateFastPath),
			want: with(map[string]verdict{"T8": missed}), gotHas: map[string]string{"T8": "udp64-1k-flows-reply: 0.60x (xdpgate 0.300 Mpps"}},
		{name: "T8 with the fast path failed is judged on xdpgate",
			run:  edit(goodRun(), ScenarioUDP1kFlowsReply, DataplaneXDPGateFastPath, true, withError("attach: no NAPI")),
			want: with(map[string]verdict{"T8": missed}), gotHas: map[string]string{"T8": "0.60x (xdpgate 0.300 Mpps"}},
		{name: "T8 with both configurations failed is a miss",
			run: edit(edit(goodRun(), ScenarioUDP1kFlowsReply, DataplaneXDPGateFastPath, true, withError("fast path down")),
				ScenarioUDP1kFlowsReply, DataplaneXDPGate, true, withError("xdpgate down")),
			want: with(map[string]verdict{"T8": missed}), gotHas: map[string]string{"T8": "udp64-1k-flows-reply: xdpgate failed: xdpgate down"}},
		{name: "T8 without a one-arm baseline", run: drop(goodRun(), ScenarioUDP1kFlowsOneArmReply, DataplaneNFTables),
			want: with(map[string]verdict{"T8": noData}), gotHas: map[string]string{"T8": "no nftables result for udp64-1k-flows-one-arm-reply"}},
		{name: "T8 missed in one scenario decides without the other's data",
			run:  edit(drop(goodRun(), ScenarioUDP1kFlowsOneArmReply, DataplaneNFTables), ScenarioUDP1kFlowsReply, DataplaneNFTables, true, setPPS(0.7e6)),
			want: with(map[string]verdict{"T8": missed})},
		{name: "T1 takes the better configuration",
			run:  appendResult(edit(goodRun(), ScenarioUDP1kFlows, DataplaneNFTables, true, setPPS(1.4e6)), makeResult(ScenarioUDP1kFlows, DataplaneXDPGateFastPath, 3e6)),
			want: allMet, gotHas: map[string]string{"T1": "2.14x (xdpgate-fastpath 3.000 Mpps", "T3": "xdpgate-fastpath", "T6": "xdpgate lossless"}},
		{name: "T1 takes a steered configuration over a faster unsteered one",
			run:  appendResult(goodRun(), makeResult(ScenarioUDP1kFlows, DataplaneXDPGateFastPath, 9e6, unsteered)),
			want: allMet, gotHas: map[string]string{"T1": "2.50x (xdpgate 2.500 Mpps"}},
		{name: "T1 missed just under 2x", run: edit(goodRun(), ScenarioUDP1kFlows, DataplaneNFTables, true, setPPS(1.26e6)),
			want: with(map[string]verdict{"T1": missed}), gotHas: map[string]string{"T1": "1.98x"}},
		{name: "T1 exactly 2x is met", run: edit(goodRun(), ScenarioUDP1kFlows, DataplaneNFTables, true, setPPS(1.25e6)), want: allMet},
		{name: "T2 missed", run: edit(goodRun(), ScenarioUDP1kFlows, DataplaneIPTables, true, setPPS(0.9e6)),
			want: with(map[string]verdict{"T2": missed})},
		{name: "T3 missed", run: edit(goodRun(), ScenarioUDP1kFlows, DataplaneForwarder, true, setPPS(3.2e6)),
			want: with(map[string]verdict{"T3": missed})},
		{name: "T4 missed", run: edit(goodRun(), ScenarioTCPSYN, DataplaneNFTables, true, setPPS(0.7e6)),
			want: with(map[string]verdict{"T4": missed})},
		{name: "T7 missed just under 0.8x", run: edit(goodRun(), ScenarioTCPSYN, DataplaneForwarder, true, setPPS(1.51e6)),
			want: with(map[string]verdict{"T7": missed}), gotHas: map[string]string{"T7": "0.79x"}},
		{name: "T7 without a forwarder result", run: drop(goodRun(), ScenarioTCPSYN, DataplaneForwarder),
			want: with(map[string]verdict{"T7": noData})},
		{name: "T5 missed by one client", run: edit(goodRun(), ScenarioAffinity100k, DataplaneXDPGate, true, withRetention(0.99999, 100000)),
			want: with(map[string]verdict{"T5": missed}), gotHas: map[string]string{"T5": "0.99999"}},
		{name: "T5 over too few clients", run: edit(goodRun(), ScenarioAffinity100k, DataplaneXDPGate, true, withRetention(1, 73346)),
			want: with(map[string]verdict{"T5": missed}), gotHas: map[string]string{"T5": "fewer than 100000 clients"}},
		{name: "T5 without iptables still judged", run: drop(goodRun(), ScenarioAffinity100k, DataplaneIPTables),
			want: allMet, gotHas: map[string]string{"T5": "no iptables result"}},
		{name: "T5 without retention", run: edit(goodRun(), ScenarioAffinity100k, DataplaneXDPGate, true, func(res *Result) { res.Retention = nil }),
			want: with(map[string]verdict{"T5": noData})},
		{name: "T6 missed where the forwarder was lossless",
			run:    edit(goodRun(), ScenarioUDP1kFlows, DataplaneXDPGate, true, withSweep(1.2e6, sweepRates...)),
			want:   with(map[string]verdict{"T6": missed}),
			gotHas: map[string]string{"T6": "2 of 4 rates missed"}},
		{name: "T6 matches nearest offered rate",
			run:  edit(goodRun(), ScenarioUDP1kFlows, DataplaneXDPGate, true, withSweep(2.4e6, 0.49e6, 1.02e6, 1.51e6, 1.98e6, 2.6e6)),
			want: allMet},
		{name: "T6 without sweeps", run: edit(goodRun(), ScenarioUDP1kFlows, DataplaneForwarder, true, func(res *Result) { res.Sweep = nil }),
			want: with(map[string]verdict{"T6": noData}), gotHas: map[string]string{"T6": "no sweep for afxdp-forwarder"}},
		{name: "T6 forwarder lossy everywhere", run: edit(goodRun(), ScenarioUDP1kFlows, DataplaneForwarder, true, withSweep(0.1e6, sweepRates...)),
			want: with(map[string]verdict{"T6": noData})},
		{name: "baseline missing", run: drop(goodRun(), ScenarioUDP1kFlows, DataplaneIPTables),
			want: with(map[string]verdict{"T2": noData}), gotHas: map[string]string{"T2": "no iptables result for udp64-1k-flows"}},
		{name: "baseline failed", run: edit(goodRun(), ScenarioTCPSYN, DataplaneNFTables, true, withError("nft: table full")),
			want: with(map[string]verdict{"T4": noData}), gotHas: map[string]string{"T4": "nft: table full"}},
		{name: "xdpgate failed is a miss", run: edit(goodRun(), ScenarioUDP1kFlows, DataplaneXDPGate, true, withError("bind xsk queue 0: busy")),
			want:   with(map[string]verdict{"T1": missed, "T2": missed, "T3": missed, "T6": missed}),
			gotHas: map[string]string{"T1": "bind xsk queue 0: busy"}},
		{name: "xdpgate missing", run: drop(goodRun(), ScenarioTCPSYN, DataplaneXDPGate),
			want: with(map[string]verdict{"T4": noData, "T7": noData})},
		{name: "steered result decides over a faster unsteered one",
			run:  edit(goodRun(), ScenarioUDP1kFlows, DataplaneNFTables, false, setPPS(2e6)),
			want: allMet},
		{name: "steered result decides over a slower unsteered one",
			run:  edit(goodRun(), ScenarioUDP1kFlows, DataplaneNFTables, true, setPPS(1.5e6)),
			want: with(map[string]verdict{"T1": missed})},
		{name: "unsteered xdpgate without an nftables result is no data",
			run:    edit(drop(goodRun(), ScenarioTCPSYN, DataplaneNFTables), ScenarioTCPSYN, DataplaneXDPGate, true, unsteered),
			want:   with(map[string]verdict{"T4": noData}),
			gotHas: map[string]string{"T4": "no nftables result"}},
		{name: "zero delivered on both sides is a miss",
			run:  edit(edit(goodRun(), ScenarioTCPSYN, DataplaneNFTables, true, setPPS(0)), ScenarioTCPSYN, DataplaneXDPGate, true, setPPS(0)),
			want: with(map[string]verdict{"T4": missed, "T7": missed}), gotHas: map[string]string{"T4": "n/a"}},
		{name: "empty run", run: &Run{},
			want: map[string]verdict{"T1": noData, "T2": noData, "T3": noData, "T4": noData, "T5": noData, "T6": noData, "T7": noData, "T8": noData}},
		{name: "nil run", run: nil,
			want: map[string]verdict{"T1": noData, "T2": noData, "T3": noData, "T4": noData, "T5": noData, "T6": noData, "T7": noData, "T8": noData}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			targets := Evaluate(tc.run)
			if len(targets) != len(tc.want) {
				t.Fatalf("len(Evaluate) = %d, want %d", len(targets), len(tc.want))
			}
			for _, tg := range targets {
				want, ok := tc.want[tg.Name]
				if !ok {
					t.Errorf("Evaluate returned unexpected target %q", tg.Name)
					continue
				}
				if got := (verdict{tg.Known, tg.Met}); got != want {
					t.Errorf("%s: (known, met) = %v, want %v; got %q", tg.Name, got, want, tg.Got)
				}
				if tg.Want == "" || tg.Got == "" {
					t.Errorf("%s: Want %q, Got %q: both must say something", tg.Name, tg.Want, tg.Got)
				}
				if s := tc.gotHas[tg.Name]; s != "" && !strings.Contains(tg.Got, s) {
					t.Errorf("%s: Got = %q, want it to contain %q", tg.Name, tg.Got, s)
				}
			}
		})
	}
}

func TestEvaluateUnsteeredOnlyIsMarked(t *testing.T) {
	r := goodRun()
	r = drop(r, ScenarioTCPSYN, DataplaneXDPGate)
	r.Results = append(r.Results, makeResult(ScenarioTCPSYN, DataplaneXDPGate, 1.2e6, unsteered))
	tg := Evaluate(r)[3]
	if tg.Name != "T4" || !tg.Known || !tg.Met {
		t.Fatalf("T4 = %+v, want known and met from the unsteered xdpgate result", tg)
	}
	if !strings.Contains(tg.Got, "(unsteered)") {
		t.Errorf("T4 Got = %q, want it to mark the unsteered result", tg.Got)
	}
}

func TestLookup(t *testing.T) {
	r := &Run{Results: []Result{
		makeResult("s", "dp", 1, unsteered),                 // 0
		makeResult("s", "dp", 2, unsteered, withError("x")), // 1
		makeResult("s", "dp", 3, withError("y")),            // 2
		makeResult("s", "dp", 4),                            // 3
		makeResult("s", "dp", 5),                            // 4
		makeResult("s", "other", 6),                         // 5
	}}
	tests := []struct {
		name string
		keep []int
		want float64 // DeliveredPPS of the pick, 0 for nil
	}{
		{"steered ok first of equals", []int{0, 1, 2, 3, 4, 5}, 4},
		{"steered failed before unsteered ok", []int{0, 1, 2, 5}, 3},
		{"unsteered ok before unsteered failed", []int{1, 0, 5}, 1},
		{"only a failed one", []int{1}, 2},
		{"none", []int{5}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := &Run{}
			for _, i := range tc.keep {
				sub.Results = append(sub.Results, r.Results[i])
			}
			res := sub.Lookup("s", "dp")
			got := 0.0
			if res != nil {
				got = res.DeliveredPPS
			}
			if got != tc.want {
				t.Errorf("Lookup(s, dp).DeliveredPPS = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNearest(t *testing.T) {
	pts := []Point{{OfferedPPS: 1}, {OfferedPPS: 3}, {OfferedPPS: 5}}
	tests := []struct{ pps, want float64 }{{0, 1}, {1.9, 1}, {2, 1}, {2.1, 3}, {4.4, 5}, {100, 5}}
	for _, tc := range tests {
		if got := nearest(pts, tc.pps).OfferedPPS; got != tc.want {
			t.Errorf("nearest(%v).OfferedPPS = %v, want %v", tc.pps, got, tc.want)
		}
	}
}
