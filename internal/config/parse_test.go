package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFile writes a configuration file for the test.
func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "xdpgate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeHostname makes Parse see host as the hostname.
func fakeHostname(t *testing.T, host string, err error) {
	t.Helper()
	old := hostname
	hostname = func() (string, error) { return host, err }
	t.Cleanup(func() { hostname = old })
}

func TestParseFlags(t *testing.T) {
	fakeHostname(t, " Node-A.example ", nil)
	file := writeFile(t, header+`
hostnameOverride: file-node
clientConnection: {kubeconfig: /etc/kubeconfig}
healthzBindAddress: 198.18.0.1:10256
xdp:
  interfaces: [eth0]
  mode: generic
  conntrackMax: 5000
  snatPortRange: 1000-2000
`)
	fromFile := with(func(c *Configuration) {
		c.HostnameOverride = "file-node"
		c.ClientConnection.Kubeconfig = "/etc/kubeconfig"
		c.HealthzBindAddress = "198.18.0.1:10256"
		c.XDP.Interfaces, c.XDP.Mode, c.XDP.ConntrackMax, c.XDP.SNATPortRange = []string{"eth0"}, "generic", 5000, "1000-2000"
	})
	tests := []struct {
		name string
		args []string
		want Configuration
	}{
		{"file only", []string{"--config", file}, fromFile},
		{"flags only", []string{"--interfaces=a, b", "--manifests=m.yaml", "--xdp-mode", "auto", "--masquerade-all",
			"--node-ips=198.18.0.2,2001:2::2", "--conntrack-max=0x100", "--cpus=0-1", "--nodeport-addresses=primary"},
			with(func(c *Configuration) {
				c.HostnameOverride = "node-a.example" // the hostname, trimmed and lower-cased
				c.XDP.Interfaces, c.Manifests, c.XDP.Mode, c.MasqueradeAll = []string{"a", "b"}, "m.yaml", "auto", true
				c.NodeIPs, c.XDP.ConntrackMax, c.XDP.CPUs = []string{"198.18.0.2", "2001:2::2"}, 256, "0-1"
				c.NodePortAddresses = []string{"primary"}
			})},
		{"flag overrides file", []string{"--config", file, "--conntrack-max=7", "--interfaces=x,y", "--node-name=flag-node"},
			with(func(c *Configuration) {
				*c = fromFile
				c.XDP.ConntrackMax, c.XDP.Interfaces, c.HostnameOverride = 7, []string{"x", "y"}, "flag-node"
			})},
		{"flag before --config still overrides the file", []string{"--xdp-mode=auto", "--config", file},
			with(func(c *Configuration) { *c = fromFile; c.XDP.Mode = "auto" })},
		{"flag set to its default overrides the file", []string{"--config", file, "--xdp-mode=native", "--conntrack-max=1048576",
			"--snat-ports=20000-29999", "--healthz-bind-address=0.0.0.0:10256"}, func() Configuration {
			c := fromFile
			c.XDP.Mode, c.XDP.ConntrackMax, c.XDP.SNATPortRange, c.HealthzBindAddress = "native", 1<<20, "20000-29999", "0.0.0.0:10256"
			return c
		}()},
		{"flag clears a file's kubeconfig for standalone", []string{"--config", file, "--kubeconfig=", "--manifests=m.yaml"},
			with(func(c *Configuration) { *c = fromFile; c.ClientConnection.Kubeconfig, c.Manifests = "", "m.yaml" })},
		{`"" is off`, []string{"--config", file, "--healthz-bind-address=", "--metrics-bind-address", "", "--admin-socket="},
			with(func(c *Configuration) {
				*c = fromFile
				c.HealthzBindAddress, c.MetricsBindAddress, c.XDP.AdminSocket = Off, Off, Off
			})},
		{"in-cluster with master", []string{"--interfaces=a", "--master=https://198.18.0.1:6443"},
			with(func(c *Configuration) {
				c.HostnameOverride, c.XDP.Interfaces, c.Master = "node-a.example", []string{"a"}, "https://198.18.0.1:6443"
			})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			got, err := Parse(tc.args, &stderr)
			if err != nil {
				t.Fatalf("Parse(%q) = %v (%s)", tc.args, err, stderr.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q) = %+v, want %+v", tc.args, got, tc.want)
			}
			if stderr.Len() != 0 {
				t.Errorf("Parse(%q) wrote %q to stderr", tc.args, stderr.String())
			}
		})
	}
}

func TestParseFlagErrors(t *testing.T) {
	fakeHostname(t, "", errors.New("no hostname"))
	good := writeFile(t, header+"hostnameOverride: n1\nxdp: {interfaces: [eth0]}\n")
	badSNAT := writeFile(t, header+"hostnameOverride: n1\nxdp: {interfaces: [eth0], snatPortRange: 9-1}\n")
	unknown := writeFile(t, header+"xdp: {interfaces: [eth0], turbo: true}\n")
	wrongKind := writeFile(t, "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n")
	tests := []struct {
		name  string
		args  []string
		usage bool     // ErrUsage, usage written to stderr
		want  []string // substrings of the error
	}{
		{"unknown flag", []string{"--turbo"}, true, []string{"turbo"}},
		{"help", []string{"-h"}, true, nil},
		{"bad int flag", []string{"--conntrack-max=many"}, true, []string{"conntrack-max"}},
		{"bad bool flag", []string{"--masquerade-all=sometimes"}, true, []string{"masquerade-all"}},
		{"stray argument", []string{"--config", good, "extra"}, true, []string{"extra"}},
		{"no interfaces, no file: named by flag", []string{"--manifests=m", "--node-name=n"}, false, []string{"--interfaces: required"}},
		{"no hostname", []string{"--interfaces=a"}, false, []string{"--node-name: required (no hostname)"}},
		{"both sources", []string{"--interfaces=a", "--node-name=n", "--manifests=m", "--kubeconfig=k"}, false, []string{"--manifests: "}},
		{"bad flag value with a file: named by flag", []string{"--config", good, "--snat-ports=2000-1000"}, false,
			[]string{"--snat-ports: \"2000-1000\""}},
		{"bad file value: named by file and path", []string{"--config", badSNAT}, false,
			[]string{badSNAT + ": xdp.snatPortRange: \"9-1\""}},
		{"flag fixes the file", []string{"--config", badSNAT, "--snat-ports=1-9", "--xdp-mode=x"}, false,
			[]string{"--xdp-mode: "}},
		{"unknown field in file", []string{"--config", unknown}, false, []string{unknown, "xdp.turbo: unknown field"}},
		{"wrong kind in file", []string{"--config", wrongKind}, false, []string{wrongKind, `kind: "KubeProxyConfiguration"`}},
		{"missing file", []string{"--config", filepath.Join(t.TempDir(), "absent.yaml")}, false, []string{"absent.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := Parse(tc.args, &stderr)
			if err == nil {
				t.Fatalf("Parse(%q) = nil error", tc.args)
			}
			if got := errors.Is(err, ErrUsage); got != tc.usage {
				t.Errorf("Parse(%q) = %v: ErrUsage %t, want %t", tc.args, err, got, tc.usage)
			}
			if tc.usage != strings.Contains(stderr.String(), "usage: xdpgate run") {
				t.Errorf("Parse(%q) stderr = %q, want usage %t", tc.args, stderr.String(), tc.usage)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%q) = %q, want it to contain %q", tc.args, err, w)
				}
			}
		})
	}
}

func TestParseFlagsUsageListsEveryFlag(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := Parse([]string{"-h"}, &stderr); !errors.Is(err, ErrUsage) {
		t.Fatalf("Parse(-h) = %v, want ErrUsage", err)
	}
	out := stderr.String()
	for _, d := range flags {
		if !strings.Contains(out, "  --"+d.name+" ") && !strings.Contains(out, "  --"+d.name+"\n") || !strings.Contains(out, d.usage) {
			t.Errorf("usage lacks --%s or its help", d.name)
		}
	}
	if !strings.Contains(out, "(default 20000-29999)") || !strings.Contains(out, "--config string") {
		t.Errorf("usage lacks defaults or --config:\n%s", out)
	}
}
