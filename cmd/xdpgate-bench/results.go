package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// The layout under --out (bench/results in the repository). latest.json,
// latest.md and latest/ are the newest report, replaced by every run and
// committed when a run is worth keeping. Everything else a run writes goes
// under runsDir, which .gitignore keeps out of the repository: each run's
// own <stamp>.json, <stamp>.md and <stamp>/ plots, and the CPU profiles of
// the newest run in profilesDir.
const (
	runsDir     = "runs"
	profilesDir = "profiles"
)

// archiveRun moves the per-run files report.Save wrote into out
// (<stamp>.json, <stamp>.md, <stamp>/) into runs. The Markdown's image links
// are relative to its own directory, so they still work there.
func archiveRun(out, runs, stamp string) error {
	if err := os.MkdirAll(runs, 0o755); err != nil {
		return fmt.Errorf("archive run %s: %w", stamp, err)
	}
	for _, name := range []string{stamp + ".json", stamp + ".md", stamp} {
		src, dst := filepath.Join(out, name), filepath.Join(runs, name)
		if _, err := os.Lstat(src); os.IsNotExist(err) {
			continue // Save stopped before writing it
		}
		if err := os.RemoveAll(dst); err != nil { // the same run saved twice
			return fmt.Errorf("archive run %s: %w", stamp, err)
		}
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("archive run %s: %w", stamp, err)
		}
	}
	return nil
}
