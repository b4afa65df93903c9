package main

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/xdpgate/xdpgate/dataplane"
)

func TestParseRunFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		ok    bool
		check func(o options) bool
	}{
		{"standalone", []string{"--interfaces", "a, b", "--manifests", "m.yaml", "--node-name", "n1"}, true,
			func(o options) bool {
				return slices.Equal(o.interfaces, []string{"a", "b"}) && o.xdpMode == dataplane.AttachNative
			}},
		{"all flags", []string{"--interfaces=a", "--kubeconfig=k", "--cpus=0,2-3", "--xdp-mode=generic", "--conntrack-max=100",
			"--snat-ports=1000-2000", "--cluster-cidr=198.18.64.0/18", "--nodeport-addresses=primary", "--masquerade-all",
			"--node-ips=198.18.0.2,2001:2::2", "--metrics-bind-address=off"}, true,
			func(o options) bool {
				return slices.Equal(o.cpus, []int{0, 2, 3}) && o.xdpMode == dataplane.AttachGeneric && o.conntrackMax == 100 &&
					o.snatMin == 1000 && o.snatMax == 2000 && o.masqueradeAll && len(o.clusterCIDRs) == 1 &&
					slices.Equal(o.nodeIPs, []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("2001:2::2")}) &&
					o.metricsAddr == "off" && slices.Equal(o.nodePortAddresses, []string{"primary"})
			}},
		{"no interfaces", []string{"--manifests", "m"}, false, nil},
		{"both sources", []string{"--interfaces", "a", "--manifests", "m", "--kubeconfig", "k"}, false, nil},
		{"no source", []string{"--interfaces", "a"}, false, nil},
		{"bad mode", []string{"--interfaces", "a", "--manifests", "m", "--xdp-mode", "turbo"}, false, nil},
		{"bad snat range", []string{"--interfaces", "a", "--manifests", "m", "--snat-ports", "2000-1000"}, false, nil},
		{"bad cpus", []string{"--interfaces", "a", "--manifests", "m", "--cpus", "x"}, false, nil},
		{"bad cidr", []string{"--interfaces", "a", "--manifests", "m", "--cluster-cidr", "nope"}, false, nil},
		{"stray argument", []string{"--interfaces", "a", "--manifests", "m", "extra"}, false, nil},
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
			} else if !errors.Is(err, errUsage) {
				t.Errorf("parseRunFlags(%q) = %v, want errUsage", tc.args, err)
			}
		})
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
