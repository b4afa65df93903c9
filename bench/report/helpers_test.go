package report

import (
	"time"
)

// makeResult builds a measured result with consistent derived fields and
// applies the mutators in order.
func makeResult(scenario, dataplane string, deliveredPPS float64, mutators ...func(*Result)) Result {
	const seconds = 10
	offeredPPS := 4e6
	res := Result{
		Scenario:          scenario,
		Dataplane:         dataplane,
		Steered:           true,
		Seconds:           seconds,
		Offered:           uint64(offeredPPS * seconds),
		Delivered:         uint64(deliveredPPS * seconds),
		OfferedPPS:        offeredPPS,
		DeliveredPPS:      deliveredPPS,
		LossPct:           100 * (1 - deliveredPPS/offeredPPS),
		GatewayCPUSeconds: 9.5,
		Sampled:           4096,
	}
	if deliveredPPS > 0 {
		res.CPUMsPerMpkt = res.GatewayCPUSeconds * 1e3 / (float64(res.Delivered) / 1e6)
	}
	for _, m := range mutators {
		m(&res)
	}
	return res
}

func unsteered(res *Result) { res.Steered = false }

func withError(msg string) func(*Result) {
	return func(res *Result) { res.Error = msg }
}

func withRetention(v float64, clients uint64) func(*Result) {
	return func(res *Result) { res.Retention, res.Clients = &v, clients }
}

// withSweep sets a sweep whose loss starts at lossFrom pps offered: below
// it every frame arrives, above it the dataplane saturates at lossFrom.
func withSweep(lossFrom float64, offered ...float64) func(*Result) {
	return func(res *Result) {
		res.Sweep = nil
		for _, o := range offered {
			d := min(o, lossFrom)
			res.Sweep = append(res.Sweep, Point{OfferedPPS: o, DeliveredPPS: d, LossPct: 100 * (1 - d/o)})
		}
	}
}

var sweepRates = []float64{0.5e6, 1e6, 1.5e6, 2e6, 2.5e6, 3e6}

// goodRun is a run in which every target is met.
func goodRun() *Run {
	return &Run{
		Started: time.Date(2026, 11, 21, 19, 30, 5, 0, time.UTC),
		Command: "sudo go run ./bench/cmd/xdpgate-bench -duration 10s",
		Host:    Host{Kernel: "6.12.0", GoVersion: "go1.26.8", Commit: "abc1234", CPUs: 2},
		Settings: map[string]string{
			"burst":      "10s",
			"frame_size": "64",
		},
		Results: []Result{
			makeResult(ScenarioUDP1Flow, DataplaneXDPGate, 1.9e6),
			makeResult(ScenarioUDP1Flow, DataplaneNFTables, 0.8e6),
			makeResult(ScenarioUDP1kFlows, DataplaneXDPGate, 2.5e6, withSweep(2.4e6, sweepRates...)),
			makeResult(ScenarioUDP1kFlows, DataplaneXDPGate, 2.0e6, unsteered),
			makeResult(ScenarioUDP1kFlows, DataplaneForwarder, 2.9e6, withSweep(2.45e6, sweepRates...)),
			makeResult(ScenarioUDP1kFlows, DataplaneNFTables, 1.0e6, withSweep(1.0e6, sweepRates...)),
			makeResult(ScenarioUDP1kFlows, DataplaneNFTables, 0.7e6, unsteered),
			makeResult(ScenarioUDP1kFlows, DataplaneIPTables, 0.8e6),
			makeResult(ScenarioUDP1kFlows, DataplaneXDPRedirect, 3.6e6, withSweep(3.6e6, sweepRates...)),
			makeResult(ScenarioUDP1kFlowsReply, DataplaneXDPGate, 0.3e6),
			makeResult(ScenarioUDP1kFlowsReply, DataplaneXDPGateFastPath, 1.2e6),
			makeResult(ScenarioUDP1kFlowsReply, DataplaneForwarder, 0.35e6),
			makeResult(ScenarioUDP1kFlowsReply, DataplaneXDPRedirect, 1.5e6),
			makeResult(ScenarioUDP1kFlowsReply, DataplaneNFTables, 0.5e6),
			makeResult(ScenarioUDP1kFlowsOneArm, DataplaneXDPGate, 2.2e6),
			makeResult(ScenarioUDP1kFlowsOneArm, DataplaneForwarder, 2.8e6),
			makeResult(ScenarioUDP1kFlowsOneArm, DataplaneXDPRedirect, 3.5e6),
			makeResult(ScenarioUDP1kFlowsOneArm, DataplaneNFTables, 1.0e6),
			makeResult(ScenarioUDP1kFlowsOneArmReply, DataplaneXDPGate, 0.25e6),
			makeResult(ScenarioUDP1kFlowsOneArmReply, DataplaneXDPGateFastPath, 1.1e6),
			makeResult(ScenarioUDP1kFlowsOneArmReply, DataplaneForwarder, 0.3e6),
			makeResult(ScenarioUDP1kFlowsOneArmReply, DataplaneXDPRedirect, 1.4e6),
			makeResult(ScenarioUDP1kFlowsOneArmReply, DataplaneNFTables, 0.5e6),
			makeResult(ScenarioTCPSYN, DataplaneXDPGate, 1.2e6),
			makeResult(ScenarioTCPSYN, DataplaneNFTables, 0.4e6),
			makeResult(ScenarioTCPSYN, DataplaneForwarder, 1.5e6),
			makeResult(ScenarioAffinity100k, DataplaneXDPGate, 1.5e6, withRetention(1, 100000)),
			makeResult(ScenarioAffinity100k, DataplaneIPTables, 0.3e6, withRetention(0.7312, 100000)),
		},
		Notes: []string{"conntrack-1m: only [xdpgate] (the kernel baselines cannot hold 1M entries here)"},
	}
}

// edit returns goodRun with f applied to every result of (scenario,
// dataplane, steered).
func edit(r *Run, scenario, dataplane string, steered bool, f func(*Result)) *Run {
	for i := range r.Results {
		res := &r.Results[i]
		if res.Scenario == scenario && res.Dataplane == dataplane && res.Steered == steered {
			f(res)
		}
	}
	return r
}

// drop returns r without the results of (scenario, dataplane).
func drop(r *Run, scenario, dataplane string) *Run {
	kept := r.Results[:0]
	for _, res := range r.Results {
		if res.Scenario != scenario || res.Dataplane != dataplane {
			kept = append(kept, res)
		}
	}
	r.Results = kept
	return r
}

// appendResult returns r with res added.
func appendResult(r *Run, res Result) *Run {
	r.Results = append(r.Results, res)
	return r
}
