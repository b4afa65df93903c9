package main

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/xdpgate/xdpgate/control"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/internal/config"
	"github.com/xdpgate/xdpgate/pipeline"
)

// writeConfig writes a --config file for the test.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "xdpgate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const cfgHeader = "apiVersion: xdpgate.io/v1alpha1\nkind: XdpgateConfiguration\n"

func TestParseRunFlags(t *testing.T) {
	file := writeConfig(t, cfgHeader+`
hostnameOverride: file-node
manifests: /etc/xdpgate/services.yaml
metricsBindAddress: ""
xdp:
  interfaces: [eth0, eth1]
  mode: generic
  conntrackMax: 5000
  snatPortRange: 1000-2000
`)
	tests := []struct {
		name  string
		args  []string
		ok    bool
		check func(o options) bool
	}{
		{"standalone", []string{"--interfaces", "a, b", "--manifests", "m.yaml", "--node-name", "n1"}, true,
			func(o options) bool {
				return slices.Equal(o.interfaces, []string{"a", "b"}) && o.xdpMode == dataplane.AttachNative &&
					o.snatMin == pipeline.DefaultSNATPortMin && o.snatMax == pipeline.DefaultSNATPortMax &&
					o.healthzAddr == "0.0.0.0:10256" && o.metricsAddr == "127.0.0.1:10249" && o.adminSocket == "/run/xdpgate/admin.sock" &&
					!o.replaceForeign && o.classifier.FastPathFlows == 0
			}},
		{"fast path", []string{"--interfaces", "a", "--fast-path", "xdp", "--fast-path-flows", "77"}, true,
			func(o options) bool { return o.classifier.FastPathFlows == 77 }},
		{"fast path flows without the fast path", []string{"--interfaces", "a", "--fast-path-flows", "77"}, true,
			func(o options) bool { return o.classifier.FastPathFlows == 0 }},
		{"bad fast path", []string{"--interfaces", "a", "--fast-path", "tc"}, false, nil},
		{"all flags", []string{"--interfaces=a", "--kubeconfig=k", "--cpus=0,2-3", "--xdp-mode=generic", "--conntrack-max=100",
			"--snat-ports=1000-2000", "--cluster-cidr=198.18.64.0/18", "--nodeport-addresses=primary", "--masquerade-all",
			"--node-ips=198.18.0.2,2001:2::2", "--metrics-bind-address=off", "--master=https://198.18.0.1:6443", "--log-level=debug", "--xdp-replace-foreign"}, true,
			func(o options) bool {
				return slices.Equal(o.cpus, []int{0, 2, 3}) && o.xdpMode == dataplane.AttachGeneric && o.conntrackMax == 100 &&
					o.snatMin == 1000 && o.snatMax == 2000 && o.masqueradeAll && len(o.clusterCIDRs) == 1 &&
					slices.Equal(o.nodeIPs, []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("2001:2::2")}) &&
					o.metricsAddr == control.Disabled && slices.Equal(o.nodePortAddresses, []string{"primary"}) &&
					o.kubeconfig == "k" && o.master == "https://198.18.0.1:6443" && o.logLevel.String() == "DEBUG" &&
					o.replaceForeign
			}},
		{"no source is in-cluster", []string{"--interfaces", "a", "--node-name", "n1"}, true,
			func(o options) bool { return o.manifests == "" && o.kubeconfig == "" && o.master == "" }},
		{"file only", []string{"--config", file}, true,
			func(o options) bool {
				return o.nodeName == "file-node" && o.manifests == "/etc/xdpgate/services.yaml" &&
					slices.Equal(o.interfaces, []string{"eth0", "eth1"}) && o.xdpMode == dataplane.AttachGeneric &&
					o.conntrackMax == 5000 && o.snatMin == 1000 && o.snatMax == 2000 && o.metricsAddr == control.Disabled
			}},
		{"flag overrides file", []string{"--config", file, "--interfaces=x", "--conntrack-max=9", "--metrics-bind-address=127.0.0.1:9"}, true,
			func(o options) bool {
				return slices.Equal(o.interfaces, []string{"x"}) && o.conntrackMax == 9 && o.metricsAddr == "127.0.0.1:9" &&
					o.xdpMode == dataplane.AttachGeneric && o.nodeName == "file-node"
			}},
		{"flag set to its default overrides file", []string{"--config", file, "--xdp-mode=native", "--snat-ports=20000-29999"}, true,
			func(o options) bool {
				return o.xdpMode == dataplane.AttachNative && o.snatMin == 20000 && o.snatMax == 29999 && o.conntrackMax == 5000
			}},
		{`"" is off`, []string{"--config", file, "--healthz-bind-address=", "--admin-socket="}, true,
			func(o options) bool {
				return o.healthzAddr == control.Disabled && o.metricsAddr == control.Disabled && o.adminSocket == config.Off
			}},
		{"no interfaces", []string{"--manifests", "m"}, false, nil},
		{"both sources", []string{"--interfaces", "a", "--manifests", "m", "--kubeconfig", "k"}, false, nil},
		{"bad mode", []string{"--interfaces", "a", "--manifests", "m", "--xdp-mode", "turbo"}, false, nil},
		{"bad snat range", []string{"--interfaces", "a", "--manifests", "m", "--snat-ports", "2000-1000"}, false, nil},
		{"bad cpus", []string{"--interfaces", "a", "--manifests", "m", "--cpus", "x"}, false, nil},
		{"bad cidr", []string{"--interfaces", "a", "--manifests", "m", "--cluster-cidr", "nope"}, false, nil},
		{"bad master", []string{"--interfaces", "a", "--master", "198.18.0.1"}, false, nil},
		{"stray argument", []string{"--interfaces", "a", "--manifests", "m", "extra"}, false, nil},
		{"missing config file", []string{"--config", filepath.Join(t.TempDir(), "absent")}, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseRunFlags(tc.args, &stderr)
			if tc.ok {
				if err != nil {
					t.Fatalf("parseRunFlags(%q) = %v (%s), want nil", tc.args, err, stderr.String())
				}
				if !tc.check(o) {
					t.Errorf("parseRunFlags(%q) = %+v", tc.args, o)
				}
				return
			}
			if !errors.Is(err, errUsage) {
				t.Errorf("parseRunFlags(%q) = %v, want errUsage", tc.args, err)
			}
			if !strings.HasPrefix(stderr.String(), "xdpgate run: ") && !strings.Contains(stderr.String(), "usage: xdpgate run") {
				t.Errorf("parseRunFlags(%q) stderr = %q, want the problem", tc.args, stderr.String())
			}
		})
	}
}

// TestParseRunFlagsConfigErrors checks that file problems reach the user
// with the file and the field named.
func TestParseRunFlagsConfigErrors(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"unknown field", cfgHeader + "xdp: {interfaces: [eth0], queues: 4}\n", []string{"xdp.queues: unknown field"}},
		{"wrong kind", "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n",
			[]string{`kind: "KubeProxyConfiguration", want "XdpgateConfiguration"`, "apiVersion"}},
		{"invalid value", cfgHeader + "hostnameOverride: n1\nxdp: {interfaces: [eth0], cpus: 3-1}\n", []string{"xdp.cpus: bad CPU range"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.body)
			var stderr bytes.Buffer
			_, err := parseRunFlags([]string{"--config", p}, &stderr)
			if !errors.Is(err, errUsage) {
				t.Fatalf("parseRunFlags(--config %s) = %v, want errUsage", p, err)
			}
			for _, w := range append(tc.want, p) {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr = %q, want it to contain %q", stderr.String(), w)
				}
			}
		})
	}
}

// TestConfigRoundTrip checks that the printed defaults read back as the
// defaults.
func TestConfigRoundTrip(t *testing.T) {
	b, err := config.Marshal(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Decode(b)
	if err != nil {
		t.Fatalf("Decode(Marshal(Default())) = %v\n%s", err, b)
	}
	if !reflect.DeepEqual(got, config.Default()) {
		t.Errorf("Decode(Marshal(Default())) = %+v, want %+v", got, config.Default())
	}
}

func TestMainArgs(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{nil, 2}, {[]string{"version"}, 0}, {[]string{"help"}, 0}, {[]string{"bogus"}, 2}, {[]string{"run"}, 2},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		if got := mainArgs(tc.args, &out, &errb); got != tc.code {
			t.Errorf("mainArgs(%q) = %d, want %d (%s)", tc.args, got, tc.code, errb.String())
		}
	}
}
