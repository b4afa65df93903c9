package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestPrivTop runs `xdpgate top` against a live gateway's admin socket:
// -o json reports the ClientIP service's flows, packets both ways and one
// affinity entry per client; the table mode draws frames with rates.
func TestPrivTop(t *testing.T) {
	w, sock := stickyGateway(t)
	for i := 0; i < 3; i++ {
		if _, err := w.tcpQuery(client4(i), ap(vip4, 80)); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(xdpgateBinary(t), append([]string{"top", "--socket", sock}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("xdpgate top %v: %v: %s", args, err, stderr.String())
		}
		return out
	}
	var top struct {
		Services []struct {
			Namespace, Name string
			Flows, Affinity int
			Packets         [2]uint64
		}
		Totals    struct{ NewFlows, RxFrames uint64 }
		Conntrack struct{ Entries, Capacity uint64 }
		Affinity  struct{ Entries, Capacity uint64 }
	}
	if err := json.Unmarshal(run("-o", "json"), &top); err != nil {
		t.Fatal(err)
	}
	if len(top.Services) != 1 {
		t.Fatalf("top services = %+v, want sticky", top.Services)
	}
	sv := top.Services[0]
	if sv.Name != "sticky" || sv.Flows < 3 || sv.Affinity != 3 || sv.Packets[0] == 0 || sv.Packets[1] == 0 {
		t.Errorf("top sticky = %+v, want >= 3 flows, 3 affinity entries, packets both ways", sv)
	}
	if top.Totals.NewFlows < 4 || top.Totals.RxFrames == 0 || top.Conntrack.Capacity == 0 || top.Affinity.Entries != 3 {
		t.Errorf("top totals = %+v, conntrack %+v, affinity %+v", top.Totals, top.Conntrack, top.Affinity)
	}
	out := string(run("--count", "2", "--interval", "200ms"))
	if n := strings.Count(out, "xdpgate top "); n != 2 || !strings.Contains(out, "e2e/sticky:tcp") || !strings.Contains(out, "affinity   hits") {
		t.Errorf("top --count 2: %d frames, want 2 showing e2e/sticky:tcp and affinity hits:\n%s", n, out)
	}
}
