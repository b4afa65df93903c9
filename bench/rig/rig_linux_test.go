package rig

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/bench/report"
	"github.com/xdpgate/xdpgate/internal/testnet"
)

// buildXDPGate builds cmd/xdpgate into a temporary directory.
func buildXDPGate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xdpgate")
	// go test puts its own toolchain first on PATH.
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/xdpgate")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v: %s", err, out.String())
	}
	return bin
}

// TestPrivRig runs the rig end to end on small scenarios and checks what
// each dataplane did, not how fast: every dataplane delivers, translated
// frames (and, reflected, their replies) carry correct checksums and
// addresses, one-arm works, also with replies (one sink reflecting and
// counting on the generator's interface), flows spread over the
// endpoints, and ClientIP affinity holds for xdpgate and nftables but not
// for iptables once an endpoint has more clients than xt_recent's list
// holds (100).
func TestPrivRig(t *testing.T) {
	testnet.RequirePriv(t)
	bin := buildXDPGate(t)
	var logBuf bytes.Buffer
	// xdp-redirect and xdpgate-fastpath have their own, shorter test
	// (TestPrivRigCeiling).
	dataplanes := []string{DataplaneForwarder, DataplaneXDPGate, DataplaneNFTables, DataplaneIPTables, "own-nft"}
	opts := Options{
		Binary: bin, Duration: time.Second, Repeat: 2, SweepPoint: 300 * time.Millisecond, SweepFractions: []float64{0.5},
		WorkDir: t.TempDir(), Log: &logBuf, Dataplanes: dataplanes,
		// A dataplane of one's own: here the kernel with the nftables
		// ruleset the rig renders for it.
		External: map[string]string{"own-nft": `nft -f "$XDPGATE_BENCH_NFT" && sysctl -qw net.ipv4.ip_forward=1 && exec sleep 600`},
		Custom: []Scenario{
			{Name: "udp", Description: "small UDP", Clients: 200, PortsPerClient: 2, Sweep: true},
			{Name: "reply", Description: "small UDP, reflected", Clients: 200, PortsPerClient: 2, Reply: true,
				Dataplanes: []string{DataplaneForwarder, DataplaneXDPGate, DataplaneNFTables}},
			{Name: "one-arm", Description: "small UDP, one-arm", Clients: 200, PortsPerClient: 2, OneArm: true,
				Dataplanes: []string{DataplaneForwarder, DataplaneXDPGate, DataplaneNFTables}},
			{Name: "one-arm-reply", Description: "small UDP, one-arm, reflected", Clients: 200, PortsPerClient: 2, OneArm: true, Reply: true,
				Dataplanes: []string{DataplaneForwarder, DataplaneXDPGate, DataplaneNFTables, DataplaneIPTables}},
			{Name: "syn", Description: "small SYN", TCP: true, Clients: 256, PortsPerClient: 64, Local: true},
			{Name: "affinity", Description: "2,000 ClientIP clients", Clients: 2000, PortsPerClient: 2,
				Affinity: true, Local: true, Count: 8000,
				Dataplanes: []string{DataplaneXDPGate, DataplaneNFTables, DataplaneIPTables}},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	run, err := Run(ctx, opts)
	t.Logf("rig log:\n%s", logBuf.String())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]report.Result{}
	for _, r := range run.Results {
		key := r.Scenario + "/" + r.Dataplane
		seen[key] = r
		if r.Error != "" {
			t.Errorf("%s: %s", key, r.Error)
			continue
		}
		if r.Delivered == 0 || r.Offered == 0 {
			t.Errorf("%s: offered %d, delivered %d", key, r.Offered, r.Delivered)
		}
		if r.Delivered > r.Offered {
			t.Errorf("%s: delivered %d > offered %d", key, r.Delivered, r.Offered)
		}
		if r.Sampled == 0 {
			t.Errorf("%s: the sink checked no sample", key)
		}
		if r.ChecksumErrors != 0 || r.TranslationErrors != 0 {
			t.Errorf("%s: %d checksum and %d translation errors in %d samples", key, r.ChecksumErrors, r.TranslationErrors, r.Sampled)
		}
		if !untranslated(r.Dataplane) {
			hit := 0
			for _, n := range r.PerEndpoint {
				if n > 0 {
					hit++
				}
			}
			if hit < 2 {
				t.Errorf("%s: traffic reached %d endpoints (%v), want a spread", key, hit, r.PerEndpoint)
			}
		}
		if r.GatewayCPUSeconds <= 0 {
			t.Errorf("%s: no gateway CPU time measured", key)
		}
	}
	for _, sc := range []string{"udp", "reply", "one-arm", "one-arm-reply", "syn", "affinity"} {
		for _, dp := range dataplanes {
			if sc == "affinity" && (dp == DataplaneForwarder || dp == "own-nft") {
				continue
			}
			if (sc == "one-arm" || sc == "reply") && (dp == DataplaneIPTables || dp == "own-nft") {
				continue
			}
			if sc == "one-arm-reply" && dp == "own-nft" {
				continue
			}
			if _, ok := seen[sc+"/"+dp]; !ok {
				t.Errorf("no result for %s/%s", sc, dp)
			}
		}
	}
	if r := seen["udp/"+DataplaneXDPGate]; len(r.Sweep) != 1 || len(r.Repeats) != 2 {
		t.Errorf("udp/xdpgate: %d sweep points and %d repeats, want 1 and 2", len(r.Sweep), len(r.Repeats))
	}
	retention := func(dp string) float64 {
		r := seen["affinity/"+dp]
		if r.Retention == nil || r.Clients < 1000 {
			t.Errorf("affinity/%s: retention %v over %d clients", dp, r.Retention, r.Clients)
			return -1
		}
		return *r.Retention
	}
	if got := retention(DataplaneXDPGate); got != 1 {
		t.Errorf("xdpgate retention %v, want 1", got)
	}
	if got := retention(DataplaneNFTables); got != 1 {
		t.Errorf("nftables retention %v, want 1", got)
	}
	if got := retention(DataplaneIPTables); got >= 1 {
		t.Errorf("iptables retention %v: want < 1 (xt_recent keeps 100 clients per endpoint, here ~500)", got)
	}
	var md bytes.Buffer
	if err := report.WriteMarkdown(&md, run); err != nil {
		t.Fatal(err)
	}
	t.Log(md.String())
	if left := ownNamespaces(t); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}

// TestPrivRigCeiling runs the rig briefly with the kernel's XDP forwarding
// (xdp-redirect) on one-way UDP, reflected UDP, one-arm and one-arm
// reflected, and xdpgate with its fast path on reflected UDP, two-arm and
// one-arm: every one delivers, with correct
// checksums (and, for xdpgate-fastpath, translations); xdp-redirect's
// frames all arrive untranslated at the VIP; xdpgate-fastpath forwards most
// frames in XDP (fewer reach its sockets than round trips complete, each of
// which crosses the gateway twice); and xdpgate-fastpath runs only where
// there are replies.
func TestPrivRigCeiling(t *testing.T) {
	testnet.RequirePriv(t)
	bin := buildXDPGate(t)
	var logBuf bytes.Buffer
	opts := Options{
		Binary: bin, Duration: time.Second, Repeat: 1, SweepPoint: 300 * time.Millisecond, SweepFractions: []float64{0.5},
		WorkDir: t.TempDir(), Log: &logBuf,
		Dataplanes: []string{DataplaneXDPRedirect, DataplaneXDPGateFastPath},
		Custom: []Scenario{
			{Name: "udp", Description: "small UDP", Clients: 200, PortsPerClient: 2},
			{Name: "reply", Description: "small UDP, reflected", Clients: 200, PortsPerClient: 2, Reply: true},
			{Name: "one-arm", Description: "small UDP, one-arm", Clients: 200, PortsPerClient: 2, OneArm: true},
			{Name: "one-arm-reply", Description: "small UDP, one-arm, reflected", Clients: 200, PortsPerClient: 2, OneArm: true, Reply: true},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := Run(ctx, opts)
	t.Logf("rig log:\n%s", logBuf.String())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range run.Results {
		key := r.Scenario + "/" + r.Dataplane
		got = append(got, key)
		if r.Error != "" {
			t.Errorf("%s: %s", key, r.Error)
			continue
		}
		if r.Delivered == 0 || r.Delivered > r.Offered {
			t.Errorf("%s: offered %d, delivered %d", key, r.Offered, r.Delivered)
		}
		if r.Sampled == 0 {
			t.Errorf("%s: the sink checked no sample", key)
		}
		if r.ChecksumErrors != 0 || r.TranslationErrors != 0 {
			t.Errorf("%s: %d checksum and %d translation errors in %d samples", key, r.ChecksumErrors, r.TranslationErrors, r.Sampled)
		}
		var atEndpoints uint64
		for _, n := range r.PerEndpoint {
			atEndpoints += n
		}
		if r.Dataplane == DataplaneXDPRedirect && atEndpoints != 0 {
			t.Errorf("%s: %d frames at endpoints (%v), want all at the VIP: it does not translate", key, atEndpoints, r.PerEndpoint)
		}
		if r.Dataplane == DataplaneXDPGateFastPath {
			if g := r.Gateway; g == nil || g.Redirected >= r.Delivered {
				t.Errorf("%s: gateway counters %+v for %d round trips: want fewer frames through AF_XDP than round trips", key, g, r.Delivered)
			}
		}
	}
	want := []string{"udp/" + DataplaneXDPRedirect, "reply/" + DataplaneXDPRedirect, "reply/" + DataplaneXDPGateFastPath, "one-arm/" + DataplaneXDPRedirect,
		"one-arm-reply/" + DataplaneXDPRedirect, "one-arm-reply/" + DataplaneXDPGateFastPath}
	if !slices.Equal(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
	if !slices.ContainsFunc(run.Notes, func(n string) bool {
		return strings.HasPrefix(n, DataplaneXDPGateFastPath+": measured in reply scenarios only")
	}) {
		t.Errorf("notes %q: want one saying where %s ran", run.Notes, DataplaneXDPGateFastPath)
	}
	if !strings.Contains(logBuf.String(), "program counters since attach") {
		t.Errorf("the log has no xdp-redirect program counters")
	}
	if left := ownNamespaces(t); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}

func TestScenarioMeasures(t *testing.T) {
	tests := []struct {
		sc   Scenario
		dp   string
		want bool
	}{
		{Scenario{}, DataplaneXDPGate, true},
		{Scenario{}, DataplaneXDPRedirect, true},
		{Scenario{}, DataplaneXDPGateFastPath, false},
		{Scenario{OneArm: true}, DataplaneXDPGateFastPath, false},
		{Scenario{Reply: true}, DataplaneXDPGateFastPath, true},
		{Scenario{Reply: true, OneArm: true}, DataplaneXDPGateFastPath, true},
		{Scenario{Dataplanes: []string{DataplaneXDPGateFastPath}}, DataplaneXDPGateFastPath, true},
		{Scenario{Reply: true, Dataplanes: []string{DataplaneXDPGate}}, DataplaneXDPGateFastPath, false},
		{Scenario{Dataplanes: []string{DataplaneXDPGate}}, DataplaneXDPRedirect, false},
	}
	for _, tc := range tests {
		if got := tc.sc.Measures(tc.dp); got != tc.want {
			t.Errorf("Scenario{Reply: %v, OneArm: %v, Dataplanes: %v}.Measures(%s) = %v, want %v",
				tc.sc.Reply, tc.sc.OneArm, tc.sc.Dataplanes, tc.dp, got, tc.want)
		}
	}
	for _, sc := range Scenarios {
		if got, want := sc.Measures(DataplaneXDPRedirect), sc.Measures(DataplaneForwarder); got != want {
			t.Errorf("%s: measures %s %v, %s %v: the two untranslated ceilings go together", sc.Name, DataplaneXDPRedirect, got, DataplaneForwarder, want)
		}
	}
}

// ownNamespaces lists the rig namespaces this process still owns.
func ownNamespaces(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/var/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var own []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), nsPrefix) && strings.Contains(e.Name(), fmt.Sprintf("-%d-", os.Getpid())) {
			own = append(own, e.Name())
		}
	}
	return own
}

func TestOwnerAlive(t *testing.T) {
	self := fmt.Sprintf("xgb-gw-%d-1", os.Getpid())
	if !ownerAlive(self) {
		t.Errorf("%s: this process is alive", self)
	}
	for _, name := range []string{"xgb-gw-0-1", "xgb-gw-x-1", "xgb-gw", "xgb-gen-1a2b3"} {
		if ownerAlive(name) {
			t.Errorf("%s: no live owner expected", name)
		}
	}
}
