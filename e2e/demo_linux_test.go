package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// demoNamespaceNames are the namespaces `xdpgate demo` creates.
var demoNamespaceNames = []string{"xgdemo-clients", "xgdemo-gw", "xgdemo-gwpods", "xgdemo-node2"}

// TestPrivDemo runs `xdpgate demo --duration 12s` (stdout not a terminal,
// so the live view is appended frame by frame) and checks the final frame:
// every backend the policies allow answered, the remote shop backend
// (externalTrafficPolicy Local) did not, the removal line reports moved and
// staying clients, affinity hits were counted; and that no namespace or
// process is left afterwards.
func TestPrivDemo(t *testing.T) {
	testnet.RequirePriv(t)
	bin := xdpgateBinary(t)
	for _, ns := range demoNamespaceNames {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Fatalf("namespace %s exists before the test (a kept demo? xdpgate demo --cleanup)", ns)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo", "--duration", "12s")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Cleanup(func() {
		// Whatever happened, leave nothing behind.
		exec.Command(bin, "demo", "--cleanup").Run()
	})
	out := stdout.String()
	if err != nil {
		t.Fatalf("xdpgate demo: %v\nstderr:\n%s\nstdout (tail):\n%s", err, stderr.String(), demoTail(out, 4000))
	}
	i := strings.LastIndex(out, "xdpgate demo (final)")
	if i < 0 {
		t.Fatalf("no final frame in the output:\n%s", demoTail(out, 4000))
	}
	final := out[i:]
	if n := strings.Count(out, "xdpgate demo (live)"); n < 5 {
		t.Errorf("%d live frames for 12 s, want one per second", n)
	}

	conns := map[string]int{}
	row := regexp.MustCompile(`(?m)^(shop-[a-d]|api-[a-c])\s+\S+\s+\S+\s+(\d+)\s`)
	for _, m := range row.FindAllStringSubmatch(final, -1) {
		conns[m[1]], _ = strconv.Atoi(m[2])
	}
	for _, b := range []string{"shop-a", "shop-b", "shop-c", "api-a", "api-b", "api-c"} {
		if conns[b] == 0 {
			t.Errorf("backend %s: %d connections, want > 0", b, conns[b])
		}
	}
	if n, ok := conns["shop-d"]; !ok || n != 0 {
		t.Errorf("shop-d (remote node, externalTrafficPolicy Local): %d connections (listed %v), want 0", n, ok)
	}

	removal := regexp.MustCompile(`backend shop-b removed at [0-9.]+s: (\d+) clients moved, (\d+) stayed`).FindStringSubmatch(final)
	if removal == nil {
		t.Errorf("no removal line in the final frame:\n%s", final)
	} else if moved, _ := strconv.Atoi(removal[1]); moved == 0 {
		t.Errorf("removal line %q: no client moved", removal[0])
	} else if stayed, _ := strconv.Atoi(removal[2]); stayed == 0 {
		t.Errorf("removal line %q: no client stayed", removal[0])
	}
	if strings.Contains(final, "others changed backend") {
		t.Errorf("clients of the remaining backends changed backend:\n%s", final)
	}

	hits := regexp.MustCompile(`affinity\s+hits (\d+)`).FindStringSubmatch(final)
	if hits == nil {
		t.Errorf("no affinity line in the final frame:\n%s", final)
	} else if n, _ := strconv.Atoi(hits[1]); n == 0 {
		t.Errorf("affinity hits = 0, want > 0:\n%s", final)
	}

	if t.Failed() {
		t.Logf("final frame:\n%s\nstderr:\n%s", final, stderr.String())
	}

	// Nothing left: namespaces, processes of the binary, the state directory.
	for _, ns := range demoNamespaceNames {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	if left := demoProcessesOf(bin); len(left) > 0 {
		t.Errorf("processes of %s left behind: %v", bin, left)
	}
	if _, err := os.Stat("/run/xdpgate-demo"); err == nil {
		t.Errorf("state directory /run/xdpgate-demo left behind")
	}
}

// demoProcessesOf lists the command lines of the running processes that run
// bin (the test's own build, so nothing else matches).
func demoProcessesOf(bin string) []string {
	var out []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		for _, a := range args {
			if a == bin {
				out = append(out, d.Name()+": "+strings.Join(args, " "))
				break
			}
		}
	}
	return out
}

func demoTail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
