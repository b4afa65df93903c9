package report

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// mdLinks returns the targets of the Markdown links and images in md.
func mdLinks(md string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`\]\(([^)]+)\)`).FindAllStringSubmatch(md, -1) {
		out = append(out, m[1])
	}
	return out
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names // ReadDir sorts
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	da, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(da, db) {
		t.Errorf("%s and %s differ", a, b)
	}
}

func TestSaveLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "results")
	r := goodRun()
	r.Started = time.Date(2026, 11, 21, 21, 30, 5, 0, time.FixedZone("CET", 3600)) // 20:30:05 UTC
	stamp, err := Save(r, dir)
	if err != nil {
		t.Fatalf("Save = %v, want nil", err)
	}
	if stamp != "20261121-203005" {
		t.Fatalf("Save stamp = %q, want 20261121-203005 (Started in UTC)", stamp)
	}
	wantTop := []string{stamp, stamp + ".json", stamp + ".md", "latest", "latest.json", "latest.md"}
	if got := listDir(t, dir); !slices.Equal(got, wantTop) {
		t.Fatalf("%s holds %v, want %v (no temporary files left)", dir, got, wantTop)
	}
	wantPlots := []string{"sweep-udp64-1k-flows.png", "sweep-udp64-1k-flows.svg", "throughput.png", "throughput.svg"}
	for _, sub := range []string{stamp, "latest"} {
		if got := listDir(t, filepath.Join(dir, sub)); !slices.Equal(got, wantPlots) {
			t.Errorf("%s/ holds %v, want %v", sub, got, wantPlots)
		}
	}
	// latest is copies, not symlinks, with the same bytes.
	for _, name := range []string{"latest", "latest.json", "latest.md"} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			t.Errorf("%s is a symlink, want a copy", name)
		}
	}
	sameFile(t, filepath.Join(dir, stamp+".json"), filepath.Join(dir, "latest.json"))
	for _, p := range wantPlots {
		sameFile(t, filepath.Join(dir, stamp, p), filepath.Join(dir, "latest", p))
		fi, err := os.Lstat(filepath.Join(dir, "latest", p))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("latest/%s: %v, %v; want a regular file", p, fi, err)
		}
	}

	f, err := os.Open(filepath.Join(dir, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := ReadJSON(f)
	if err != nil {
		t.Fatalf("ReadJSON(latest.json) = %v", err)
	}
	if !back.Started.Equal(r.Started) || len(back.Results) != len(r.Results) {
		t.Errorf("latest.json holds %v with %d results, want %v with %d", back.Started, len(back.Results), r.Started, len(r.Results))
	}

	// Every link in both Markdown files resolves from dir, and each
	// file links into its own plot directory.
	for _, tc := range []struct{ md, sub string }{{stamp + ".md", stamp}, {"latest.md", "latest"}} {
		data, err := os.ReadFile(filepath.Join(dir, tc.md))
		if err != nil {
			t.Fatal(err)
		}
		links := mdLinks(string(data))
		if len(links) != len(wantPlots) {
			t.Errorf("%s links %v, want one link per plot file (%d)", tc.md, links, len(wantPlots))
		}
		for _, l := range links {
			if !strings.HasPrefix(l, tc.sub+"/") {
				t.Errorf("%s links %s, want it under %s/", tc.md, l, tc.sub)
			}
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(l))); err != nil {
				t.Errorf("%s links %s, which does not resolve from %s: %v", tc.md, l, dir, err)
			}
		}
		if !strings.Contains(string(data), "| T1 |") {
			t.Errorf("%s lacks the targets table", tc.md)
		}
	}
}

func TestSaveReplacesLatest(t *testing.T) {
	dir := t.TempDir()
	first := goodRun()
	s1, err := Save(first, dir)
	if err != nil {
		t.Fatal(err)
	}
	// A later run without sweeps: latest/ must lose the sweep plot.
	second := goodRun()
	second.Started = first.Started.Add(time.Hour)
	for i := range second.Results {
		second.Results[i].Sweep = nil
	}
	s2, err := Save(second, dir)
	if err != nil {
		t.Fatal(err)
	}
	if s1 == s2 {
		t.Fatalf("two runs an hour apart share stamp %s", s1)
	}
	if got, want := listDir(t, filepath.Join(dir, "latest")), []string{"throughput.png", "throughput.svg"}; !slices.Equal(got, want) {
		t.Errorf("latest/ = %v after the second run, want %v", got, want)
	}
	if got := listDir(t, filepath.Join(dir, s1)); len(got) != 4 {
		t.Errorf("%s/ = %v, want the first run's 4 plots kept", s1, got)
	}
	sameFile(t, filepath.Join(dir, s2+".json"), filepath.Join(dir, "latest.json"))
	md, _ := os.ReadFile(filepath.Join(dir, "latest.md"))
	if strings.Contains(string(md), "sweep-") || !strings.Contains(string(md), "latest/throughput.png") {
		t.Errorf("latest.md links %v, want only the second run's plots", mdLinks(string(md)))
	}
	// Saving the same run again replaces its files in place.
	if _, err := Save(second, dir); err != nil {
		t.Fatalf("Save again = %v", err)
	}
	if got := len(listDir(t, dir)); got != 9 {
		t.Errorf("%s holds %d entries after re-saving, want 9: %v", dir, got, listDir(t, dir))
	}
}

func TestSaveEmptyRun(t *testing.T) {
	dir := t.TempDir()
	stamp, err := Save(&Run{Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, dir)
	if err != nil {
		t.Fatalf("Save(empty) = %v, want nil", err)
	}
	if stamp != "20260102-030405" {
		t.Errorf("stamp = %q, want 20260102-030405", stamp)
	}
	for _, sub := range []string{stamp, "latest"} {
		if got := listDir(t, filepath.Join(dir, sub)); len(got) != 0 {
			t.Errorf("%s/ = %v, want empty: an empty run has no plots", sub, got)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "latest.md"))
	if links := mdLinks(string(md)); len(links) != 0 {
		t.Errorf("latest.md of an empty run links %v", links)
	}
}

func TestSaveBadInput(t *testing.T) {
	dir := t.TempDir()
	if _, err := Save(nil, dir); !errors.Is(err, ErrNoRun) {
		t.Errorf("Save(nil) = %v, want ErrNoRun", err)
	}
	// A run JSON cannot hold is refused before anything is written.
	r := goodRun()
	r.Results[0].LossPct = math.Inf(-1)
	if _, err := Save(r, dir); err == nil {
		t.Errorf("Save(-Inf loss) = nil, want an error")
	}
	if got := listDir(t, dir); len(got) != 0 {
		t.Errorf("Save of an unwritable run left %v", got)
	}
	// A directory path that is a file.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Save(goodRun(), file); err == nil {
		t.Errorf("Save into a file = nil, want an error")
	}
}
