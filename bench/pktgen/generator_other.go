//go:build !linux

package pktgen

import (
	"context"
	"fmt"
	"runtime"

	"github.com/xdpgate/xdpgate/dataplane"
)

// queue is empty: there are no sockets on this OS.
type queue struct{}

func errNotSupported() error {
	return fmt.Errorf("pktgen: %s: %w", runtime.GOOS, dataplane.ErrNotSupported)
}

// Open validates cfg, then returns an error wrapping
// dataplane.ErrNotSupported: AF_XDP is Linux-only.
func Open(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return nil, errNotSupported()
}

// Run returns an error wrapping dataplane.ErrNotSupported.
func (g *Generator) Run(context.Context) (Stats, error) { return Stats{}, errNotSupported() }

// KernelStats returns an error wrapping dataplane.ErrNotSupported.
func (g *Generator) KernelStats() ([]dataplane.KernelXSKStats, error) { return nil, errNotSupported() }

// Close does nothing.
func (g *Generator) Close() error { return nil }
