package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/xdpgate/xdpgate/internal/config"
)

func TestConfigCommand(t *testing.T) {
	good := writeConfig(t, cfgHeader+"hostnameOverride: n1\nxdp: {interfaces: [eth0]}\n")
	noIfaces := writeConfig(t, cfgHeader+"hostnameOverride: n1\n")
	unknown := writeConfig(t, cfgHeader+"hostnameOverride: n1\nxdp: {interfaces: [eth0], turbo: on}\n")
	tests := []struct {
		name       string
		args       []string
		code       int
		out, errat string // substrings of stdout and stderr
	}{
		{"print-defaults", []string{"config", "print-defaults"}, 0, "kind: \"XdpgateConfiguration\"", ""},
		{"validate ok", []string{"config", "validate", good}, 0, "ok", ""},
		{"validate with run flags", []string{"config", "validate", noIfaces, "--interfaces=eth1"}, 0, "ok", ""},
		{"validate invalid", []string{"config", "validate", noIfaces}, 1, "", noIfaces + ": xdp.interfaces: required"},
		{"validate unknown field", []string{"config", "validate", unknown}, 1, "", "xdp.turbo: unknown field"},
		{"validate bad flag", []string{"config", "validate", good, "--bogus"}, 2, "", "bogus"},
		{"validate without file", []string{"config", "validate"}, 2, "", "needs a FILE"},
		{"no command", []string{"config"}, 2, "", "usage: xdpgate config"},
		{"unknown command", []string{"config", "lint"}, 2, "", `unknown command "lint"`},
		{"print-defaults with argument", []string{"config", "print-defaults", "x"}, 2, "", "no arguments"},
		{"help", []string{"config", "-h"}, 0, "usage: xdpgate config", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if got := mainArgs(tc.args, &out, &errb); got != tc.code {
				t.Errorf("mainArgs(%q) = %d, want %d (stderr %q)", tc.args, got, tc.code, errb.String())
			}
			if !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.errat) {
				t.Errorf("mainArgs(%q): stdout %q, stderr %q; want %q and %q", tc.args, out.String(), errb.String(), tc.out, tc.errat)
			}
		})
	}
}

func TestConfigPrintDefaultsDecodes(t *testing.T) {
	var out, errb bytes.Buffer
	if code := mainArgs([]string{"config", "print-defaults"}, &out, &errb); code != 0 {
		t.Fatalf("print-defaults exit %d: %s", code, errb.String())
	}
	got, err := config.Decode(out.Bytes())
	if err != nil {
		t.Fatalf("Decode(print-defaults) = %v", err)
	}
	if !reflect.DeepEqual(got, config.Default()) {
		t.Errorf("Decode(print-defaults) = %+v, want Default()", got)
	}
}
