package kubetest

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv selects a helper-process mode when the test binary runs itself
// as a child (the os/exec tests' pattern): "exit-on-term" or "ignore-term".
const helperEnv = "XDPGATE_KUBETEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helperMain(mode)
		return
	}
	os.Exit(m.Run())
}

// helperMain is a child that announces "ready" once its SIGTERM handling is
// in place, then waits to be signalled. Its lifetime is bounded so that no
// failure of the parent can leave it running for long.
func helperMain(mode string) {
	switch mode {
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
	case "exit-on-term":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		go func() {
			<-c
			fmt.Println("got SIGTERM")
			os.Exit(0)
		}()
	default:
		fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
		os.Exit(2)
	}
	fmt.Println("ready")
	time.Sleep(5 * time.Minute)
	os.Exit(1)
}

func TestProcessStop(t *testing.T) {
	tests := []struct {
		mode       string
		wantKilled bool
		wantLog    string
	}{
		{"exit-on-term", false, "got SIGTERM"},
		{"ignore-term", true, "ready"},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			t.Setenv(helperEnv, tc.mode)
			log := filepath.Join(t.TempDir(), "helper.log")
			p, err := startProcess("helper", os.Args[0], []string{"-test.run=^$"}, log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.stop(0) })
			waitForLog(t, p, log, "ready")

			// A short grace period: SIGKILL must follow when SIGTERM is
			// ignored. A helper that honours SIGTERM exits well within a
			// minute even on a loaded machine.
			grace := time.Minute
			if tc.wantKilled {
				grace = 50 * time.Millisecond
			}
			if got := p.stop(grace); got != tc.wantKilled {
				t.Errorf("stop() killed = %v, want %v", got, tc.wantKilled)
			}
			select {
			case <-p.done:
			default:
				t.Fatal("process not reaped after stop()")
			}
			got := tailFile(log, 100)
			if !strings.Contains(got, tc.wantLog) {
				t.Errorf("log = %q, want it to contain %q", got, tc.wantLog)
			}
			if !strings.HasPrefix(got, "=== ") || !strings.Contains(got, os.Args[0]) {
				t.Errorf("log = %q, want a header line naming the command", got)
			}
			if p.stop(grace) {
				t.Error("second stop() killed = true, want false")
			}
		})
	}
}

// waitForLog polls path until it contains want, failing the test if p exits
// first or a generous bound passes.
func waitForLog(t *testing.T, p *process, path, want string) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), want) {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("helper exited (%v) before logging %q:\n%s", p.err, want, data)
		case <-deadline:
			t.Fatalf("helper did not log %q within a minute:\n%s", want, data)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
