package archcheck

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/xdpgate/xdpgate/"

// tableRow matches a package row: | `pkg` | what | imports |.
var tableRow = regexp.MustCompile("^\\| `([a-z0-9/-]+)` \\|.*\\| ([^|]+) \\|$")

// documented returns ARCHITECTURE.md's package table: package -> imports.
func documented(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("../../ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := tableRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var deps []string
		if imports := strings.TrimSpace(m[2]); imports != "nothing" {
			for _, d := range strings.Split(imports, ",") {
				deps = append(deps, strings.TrimSpace(d))
			}
		}
		slices.Sort(deps)
		out[m[1]] = deps
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// listed returns `go list`'s view: every package of the module and the
// module's packages it imports (tests excluded).
func listed(t *testing.T) map[string][]string {
	t.Helper()
	// go test puts its own GOROOT/bin first on PATH.
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	cmd.Dir = "../.."
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	out := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		pkg, ok := strings.CutPrefix(f[0], module)
		if !ok {
			continue
		}
		var deps []string
		for _, imp := range f[1:] {
			if d, ok := strings.CutPrefix(imp, module); ok {
				deps = append(deps, d)
			}
		}
		slices.Sort(deps)
		out[pkg] = deps
	}
	return out
}

// TestArchitectureTable: every package has exactly one row, and the row's
// imports are the package's.
func TestArchitectureTable(t *testing.T) {
	doc, real := documented(t), listed(t)
	for pkg, deps := range real {
		got, ok := doc[pkg]
		switch {
		case !ok:
			t.Errorf("package %s has no row in ARCHITECTURE.md's table (imports: %s)", pkg, join(deps))
		case !slices.Equal(got, deps):
			t.Errorf("ARCHITECTURE.md: %s imports %s, go list says %s", pkg, join(got), join(deps))
		}
	}
	for pkg := range doc {
		if _, ok := real[pkg]; !ok {
			t.Errorf("ARCHITECTURE.md lists %s, which go list does not know", pkg)
		}
	}
	if len(doc) < 10 {
		t.Fatalf("found only %d rows: the table format changed", len(doc))
	}
}

func join(deps []string) string {
	if len(deps) == 0 {
		return "nothing"
	}
	return strings.Join(deps, ", ")
}
