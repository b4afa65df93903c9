package rig

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/xdpgate/xdpgate/bench/report"
)

func TestScenarioValidate(t *testing.T) {
	for _, sc := range Scenarios {
		if err := sc.validate(); err != nil {
			t.Errorf("%s: %v", sc.Name, err)
		}
	}
	ok := Scenario{Name: "x", Clients: 1, PortsPerClient: 1}
	for _, tc := range []struct {
		name string
		edit func(*Scenario)
		want string // "" valid; else in the error
	}{
		{"plain", func(*Scenario) {}, ""},
		// One-arm with replies: one sink on the generator's interface
		// reflects and counts the replies (sink.Config.ReplySources).
		{"one-arm reply", func(s *Scenario) { s.OneArm, s.Reply = true, true }, ""},
		{"no name", func(s *Scenario) { s.Name = "" }, "without a name"},
		{"no clients", func(s *Scenario) { s.Clients = 0 }, "Clients 0"},
		{"too many clients", func(s *Scenario) { s.Clients = maxClients + 1 }, "Clients"},
		{"no ports", func(s *Scenario) { s.PortsPerClient = 0 }, "PortsPerClient 0"},
	} {
		sc := ok
		tc.edit(&sc)
		err := sc.validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: validate() = %v, want nil", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: validate() = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestOneArmReplyScenario: the one-arm reply scenario is udp64-1k-flows-reply
// in the one-arm topology, measures every dataplane (the fast path
// included: it has replies), puts its endpoints on the generator's side and
// says so, and is the scenario T8's one-arm half evaluates.
func TestOneArmReplyScenario(t *testing.T) {
	sc, ok := ScenarioByName(report.ScenarioUDP1kFlowsOneArmReply)
	if !ok {
		t.Fatalf("no scenario %s", report.ScenarioUDP1kFlowsOneArmReply)
	}
	reply, ok := ScenarioByName(report.ScenarioUDP1kFlowsReply)
	if !ok {
		t.Fatalf("no scenario %s", report.ScenarioUDP1kFlowsReply)
	}
	if !sc.OneArm || !sc.Reply {
		t.Errorf("%s: OneArm %v, Reply %v, want both", sc.Name, sc.OneArm, sc.Reply)
	}
	same := reply
	same.Name, same.Description, same.OneArm = sc.Name, sc.Description, true
	if !reflect.DeepEqual(sc, same) {
		t.Errorf("%s = %+v, want %s one-arm: %+v", sc.Name, sc, reply.Name, same)
	}
	for _, dp := range Dataplanes {
		if !sc.Measures(dp) {
			t.Errorf("%s does not measure %s", sc.Name, dp)
		}
	}
	for _, word := range []string{"one-arm", "reflects", "replies from the VIP", "generic", "native"} {
		if !strings.Contains(sc.Description, word) {
			t.Errorf("description %q does not say %q", sc.Description, word)
		}
	}
	genSide := netip.MustParsePrefix(genAddr + "/24")
	for i := range numEndpoints {
		if ep := sc.endpoint(i); !genSide.Contains(ep) {
			t.Errorf("endpoint %d %v: want it on the generator's side, %v", i, ep, genSide)
		}
	}
	if err := sc.validate(); err != nil {
		t.Errorf("validate() = %v", err)
	}
	// Right after the one-way one-arm scenario, in report order.
	var names []string
	for _, s := range Scenarios {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); !strings.Contains(got, report.ScenarioUDP1kFlowsOneArm+" "+report.ScenarioUDP1kFlowsOneArmReply+" ") {
		t.Errorf("scenarios in order %q: want %s right after %s", got, report.ScenarioUDP1kFlowsOneArmReply, report.ScenarioUDP1kFlowsOneArm)
	}
}
