package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFindXDPGateFrom(t *testing.T) {
	// The working directory holds bin/xdpgate; selfDir holds this
	// executable and, in some cases, an xdpgate next to it.
	work := t.TempDir()
	t.Chdir(work)
	writeExe := func(t *testing.T, path string, mode os.FileMode) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	onPath := writeExe(t, filepath.Join(t.TempDir(), "xdpgate"), 0o755)
	lookPath := func(name string) (string, error) { return onPath, nil }
	noPath := func(name string) (string, error) { return "", errors.New("not found") }

	withSibling := t.TempDir()
	sibling := writeExe(t, filepath.Join(withSibling, "xdpgate"), 0o755)
	alone := t.TempDir()
	notExe := writeExe(t, filepath.Join(t.TempDir(), "xdpgate"), 0o644)

	for _, tc := range []struct {
		name     string
		explicit string
		self     string
		binDir   bool // bin/xdpgate exists under the working directory
		lookPath func(string) (string, error)
		want     string
		wantErr  bool
	}{
		{"explicit", sibling, filepath.Join(alone, "xdpgate-bench"), true, lookPath, sibling, false},
		{"explicit missing", filepath.Join(alone, "nope"), filepath.Join(withSibling, "xdpgate-bench"), true, lookPath, "", true},
		{"explicit not executable", notExe, filepath.Join(withSibling, "xdpgate-bench"), true, lookPath, "", true},
		{"next to self first", "", filepath.Join(withSibling, "xdpgate-bench"), true, lookPath, sibling, false},
		{"then bin", "", filepath.Join(alone, "xdpgate-bench"), true, lookPath, filepath.Join(work, "bin", "xdpgate"), false},
		{"then PATH", "", filepath.Join(alone, "xdpgate-bench"), false, lookPath, onPath, false},
		{"none", "", filepath.Join(alone, "xdpgate-bench"), false, noPath, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.RemoveAll(filepath.Join(work, "bin"))
			if tc.binDir {
				writeExe(t, filepath.Join(work, "bin", "xdpgate"), 0o755)
			}
			got, err := findXDPGateFrom(tc.explicit, tc.self, tc.lookPath)
			if tc.wantErr {
				if err == nil {
					t.Errorf("findXDPGateFrom(%q, %q) = %q, want an error", tc.explicit, tc.self, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("findXDPGateFrom(%q, %q) = %q, %v, want %q", tc.explicit, tc.self, got, err, tc.want)
			}
		})
	}
}

func TestFindXDPGateNoneSaysWhat(t *testing.T) {
	t.Chdir(t.TempDir())
	_, err := findXDPGateFrom("", filepath.Join(t.TempDir(), "xdpgate-bench"), func(string) (string, error) {
		return "", errors.New("not found")
	})
	if !errors.Is(err, errNoXDPGate) {
		t.Errorf("findXDPGateFrom with nothing to find: error = %v, want errNoXDPGate", err)
	}
}

func TestMeasuresXDPGate(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want bool
	}{
		{"all dataplanes", nil, true},
		{"xdpgate selected", []string{"--dataplanes", "nftables,xdpgate"}, true},
		{"kernel only", []string{"--dataplanes", "nftables,iptables"}, false},
		{"xdpgate with the fast path only", []string{"--dataplanes", "xdpgate-fastpath,nftables"}, true},
		{"xdp-redirect and the raw forwarder", []string{"--dataplanes", "xdp-redirect,afxdp-forwarder"}, false},
		{"cleanup", []string{"--cleanup"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseBenchFlags(tc.args, os.Stderr)
			if err != nil {
				t.Fatal(err)
			}
			if got := o.measuresXDPGate(); got != tc.want {
				t.Errorf("measuresXDPGate(%q) = %v, want %v", tc.args, got, tc.want)
			}
		})
	}
}
