package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestArchiveRun: a run's own files move to runs/, latest.* stay, and
// archiving the same run again replaces the earlier copy.
func TestArchiveRun(t *testing.T) {
	out := t.TempDir()
	runs := filepath.Join(out, runsDir)
	const stamp = "20261121-205604"
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(out, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for round, content := range []string{"first", "second"} {
		for _, rel := range []string{stamp + ".json", stamp + ".md", stamp + "/throughput.svg", "latest.json", "latest.md", "latest/throughput.svg"} {
			write(rel, content)
		}
		if err := archiveRun(out, runs, stamp); err != nil {
			t.Fatalf("round %d: archiveRun: %v", round, err)
		}
		for _, rel := range []string{stamp + ".json", stamp + ".md", stamp} {
			if _, err := os.Lstat(filepath.Join(out, rel)); !os.IsNotExist(err) {
				t.Errorf("round %d: %s still in out (err %v), want moved", round, rel, err)
			}
		}
		for _, rel := range []string{runsDir + "/" + stamp + ".json", runsDir + "/" + stamp + ".md", runsDir + "/" + stamp + "/throughput.svg", "latest.json", "latest.md", "latest/throughput.svg"} {
			b, err := os.ReadFile(filepath.Join(out, rel))
			if err != nil || string(b) != content {
				t.Errorf("round %d: %s = %q, %v, want %q", round, rel, b, err, content)
			}
		}
	}
	// A run whose Save stopped early: nothing to move is not an error.
	if err := archiveRun(out, runs, "20261122-000000"); err != nil {
		t.Errorf("archiveRun with nothing written: %v, want nil", err)
	}
}
