package dataplane

import (
	"errors"
	"testing"
)

func TestFrameSizeFor(t *testing.T) {
	cases := []struct {
		configured, mtu int
		want            int
		err             error
	}{
		{0, 1500, 2048, nil},
		{0, 1770, 2048, nil},
		{0, 1771, 4096, nil},
		{0, 3818, 4096, nil},
		{0, 3819, 0, ErrMTUTooLarge},
		{0, 9000, 0, ErrMTUTooLarge},
		{2048, 1500, 2048, nil},
		{2048, 3000, 0, ErrMTUTooLarge},
		{4096, 1500, 4096, nil},
	}
	for _, tc := range cases {
		got, err := frameSizeFor(tc.configured, tc.mtu)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("frameSizeFor(%d, %d) = %d, %v, want %d, %v", tc.configured, tc.mtu, got, err, tc.want, tc.err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	base := func(f func(*Config)) Config {
		c := Config{Interfaces: []string{"x"}}
		f(&c)
		return c.withDefaults()
	}
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", base(func(*Config) {}), true},
		{"no interfaces", base(func(c *Config) { c.Interfaces = nil }), false},
		{"rx ring 100", base(func(c *Config) { c.RxRingSize = 100 }), false},
		{"frame size 3000", base(func(c *Config) { c.FrameSize = 3000 }), false},
		{"odd frames", base(func(c *Config) { c.NumFrames = 4095 }), false},
		{"too few frames", base(func(c *Config) { c.NumFrames = 64 }), false},
		{"fill ring too small", base(func(c *Config) { c.FillRingSize = 1024 }), false},
		{"batch > rx ring", base(func(c *Config) { c.BatchSize = 4096 }), false},
		{"hold 1/8 of the RX frames", base(func(c *Config) { c.NeighHoldFrames = 256 }), true},
		{"hold more than 1/8", base(func(c *Config) { c.NeighHoldFrames = 257 }), false},
		{"hold disabled", base(func(c *Config) { c.NeighHoldFrames = -1 }), true},
		{"negative hold time", base(func(c *Config) { c.NeighHoldTime = -1 }), false},
	}
	for _, tc := range cases {
		err := tc.cfg.validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadConfig)) {
			t.Errorf("validate(%s) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestDropReasonString(t *testing.T) {
	cases := []struct {
		r    DropReason
		want string
	}{
		{DropUnspecified, "unspecified"},
		{DropNeighUnresolved, "neigh_unresolved"},
		{DropNeighHoldFull, "neigh_hold_full"},
		{DropNeighFailed, "neigh_failed"},
		{NumDropReasons - 1, "reason_63"}, // the pipeline names reasons from 32 up
	}
	for _, tc := range cases {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("DropReason(%d).String() = %q, want %q", tc.r, got, tc.want)
		}
	}
}
