package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// xdpgateName is the product binary's name, as `make build` writes it.
const xdpgateName = "xdpgate"

// errNoXDPGate: no xdpgate binary was found to measure.
var errNoXDPGate = errors.New("no xdpgate binary")

// findXDPGate returns the xdpgate binary the rig runs as the gateway. An
// explicit --xdpgate path must be an executable file. Without one the
// candidates are, in order:
//
//  1. xdpgate next to this executable: `make build` puts both binaries in
//     bin/, so the rig measures the product built from the same tree;
//  2. bin/xdpgate under the working directory: `go run ./cmd/xdpgate-bench`
//     from the repository root after `make build`;
//  3. xdpgate on PATH: an installed product.
func findXDPGate(explicit string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		self = ""
	}
	return findXDPGateFrom(explicit, self, exec.LookPath)
}

// findXDPGateFrom is findXDPGate with this executable's path and the PATH
// lookup given.
func findXDPGateFrom(explicit, self string, lookPath func(string) (string, error)) (string, error) {
	if explicit != "" {
		if err := checkExecutable(explicit); err != nil {
			return "", fmt.Errorf("--xdpgate: %w", err)
		}
		return filepath.Abs(explicit)
	}
	var tried []string
	var candidates []string
	if self != "" {
		candidates = append(candidates, filepath.Join(filepath.Dir(self), xdpgateName))
	}
	candidates = append(candidates, filepath.Join("bin", xdpgateName))
	for _, c := range candidates {
		if checkExecutable(c) == nil {
			return filepath.Abs(c)
		}
		tried = append(tried, c)
	}
	if p, err := lookPath(xdpgateName); err == nil {
		return filepath.Abs(p)
	}
	tried = append(tried, xdpgateName+" on PATH")
	return "", fmt.Errorf("%w (tried %s): build it with `make build` or give --xdpgate PATH",
		errNoXDPGate, strings.Join(tried, ", "))
}

// checkExecutable returns an error unless path is a regular file with an
// execute bit set.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: not an executable file", path)
	}
	return nil
}
