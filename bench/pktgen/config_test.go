package pktgen

import (
	"errors"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mut    func(*Config)
		fields []string // every field the error must name; nil: valid
	}{
		{"valid", func(*Config) {}, nil},
		{"defaults", func(c *Config) {
			c.Clients, c.PortsPerClient, c.SrcPortBase, c.FrameSize, c.SrcMAC = 0, 0, 0, 0, nil
		}, nil},
		{"duration-only", func(c *Config) { c.Count, c.Duration = 0, time.Second }, nil},
		{"no-bound", func(c *Config) { c.Count, c.Duration = 0, 0 }, []string{"Duration"}},
		{"negative-duration", func(c *Config) { c.Duration = -1 }, []string{"Duration"}},
		{"ifname", func(c *Config) { c.Ifname = "" }, []string{"Ifname"}},
		{"ifname-long", func(c *Config) { c.Ifname = "abcdefghijklmnop" }, []string{"Ifname"}},
		{"queues", func(c *Config) { c.Queues = []int{0, 0, -1} }, []string{"Queues"}},
		{"cpus", func(c *Config) { c.CPUs = []int{-1} }, []string{"CPUs"}},
		{"srcmac", func(c *Config) { c.SrcMAC = net.HardwareAddr{1, 2} }, []string{"SrcMAC"}},
		{"dstmac", func(c *Config) { c.DstMAC = nil }, []string{"DstMAC"}},
		{"src-invalid", func(c *Config) { c.Src = netip.Addr{} }, []string{"Src"}},
		{"dst-invalid", func(c *Config) { c.Dst = netip.AddrPort{} }, []string{"Dst"}},
		{"dst-port0", func(c *Config) { c.Dst = netip.AddrPortFrom(c.Dst.Addr(), 0) }, []string{"Dst"}},
		{"dst-outside", func(c *Config) { c.Dst = netip.MustParseAddrPort("10.0.0.1:80") }, []string{"Dst"}},
		{"family", func(c *Config) { c.Dst = netip.MustParseAddrPort("[2001:2::1]:80") }, []string{"Src", "family"}},
		{"src-outside", func(c *Config) { c.Src = netip.MustParseAddr("10.0.0.1") }, []string{"Clients"}},
		{"clients-negative", func(c *Config) { c.Clients = -1 }, []string{"Clients"}},
		{"clients-leave-range", func(c *Config) { c.Clients = 1 << 20 }, []string{"Clients"}},
		{"flows-v6", func(c *Config) {
			c.Src = netip.MustParseAddr("2001:2::1")
			c.Dst = netip.MustParseAddrPort("[2001:2::2]:80")
			c.Clients, c.PortsPerClient = 1<<40, 2
		}, []string{"Clients", "flows"}},
		{"ports", func(c *Config) { c.PortsPerClient = 70000 }, []string{"PortsPerClient"}},
		{"ports-pass-65535", func(c *Config) { c.SrcPortBase, c.PortsPerClient = 65000, 600 }, []string{"PortsPerClient"}},
		{"mode", func(c *Config) { c.Mode = 9 }, []string{"Mode"}},
		{"framesize-small", func(c *Config) { c.FrameSize = 63 }, []string{"FrameSize"}},
		{"framesize-large", func(c *Config) { c.FrameSize = 1519 }, []string{"FrameSize"}},
		{"framesize-v6", func(c *Config) {
			c.Src = netip.MustParseAddr("2001:2::1")
			c.Dst = netip.MustParseAddrPort("[2001:2::2]:80")
			c.Mode = TCPSyn
			c.FrameSize = 64
		}, []string{"FrameSize", "78"}},
		{"rate-negative", func(c *Config) { c.RatePPS = -1 }, []string{"RatePPS"}},
		{"rate-nan", func(c *Config) { c.RatePPS = math.NaN() }, []string{"RatePPS"}},
		{"rate-inf", func(c *Config) { c.RatePPS = math.Inf(1) }, []string{"RatePPS"}},
		{"numframes", func(c *Config) { c.NumFrames = 1000 }, []string{"NumFrames"}},
		{"batch", func(c *Config) { c.BatchSize = 5000 }, []string{"BatchSize"}},
		{"everything", func(c *Config) {
			c.Ifname, c.DstMAC, c.Clients, c.FrameSize, c.Count = "", nil, -5, 9000, 0
		}, []string{"Ifname", "DstMAC", "Clients", "FrameSize", "Duration"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(false, UDP, 64)
			tc.mut(&c)
			err := c.Validate()
			if tc.fields == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want an error wrapping ErrInvalidConfig", err)
			}
			for _, f := range tc.fields {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("Validate() = %q, want it to name %s", err, f)
				}
			}
		})
	}
}

// TestOpenRejectsInvalid: Open validates before touching the system.
func TestOpenRejectsInvalid(t *testing.T) {
	c := testConfig(false, UDP, 64)
	c.Clients = -1
	if g, err := Open(c); g != nil || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Open(Clients -1) = %v, %v, want nil, ErrInvalidConfig", g, err)
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[Mode]string{UDP: "udp", TCPSyn: "tcp-syn", TCPEstablished: "tcp-established", 7: "Mode(7)"} {
		if got := m.String(); got != want {
			t.Errorf("Mode(%d).String() = %q, want %q", m, got, want)
		}
	}
}
