//go:build !linux

package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
)

// Dataplane is unavailable on this OS; Open returns ErrNotSupported.
type Dataplane struct{}

// Classifier is unavailable on this OS.
type Classifier struct{}

// Egress is unavailable on this OS.
type Egress struct{}

// EgressConfig configures an Egress (unused on this OS).
type EgressConfig struct{}

func errNotSupported() error { return fmt.Errorf("%s: %w", runtime.GOOS, ErrNotSupported) }

// Open returns an error wrapping ErrNotSupported.
func Open(Config) (*Dataplane, error) { return nil, errNotSupported() }

// Run returns an error wrapping ErrNotSupported.
func (*Dataplane) Run(context.Context, Processor) error { return errNotSupported() }

// Close does nothing.
func (*Dataplane) Close() error { return nil }

// Stats returns nothing.
func (*Dataplane) Stats() []QueueStats { return nil }

// Classifier returns nil.
func (*Dataplane) Classifier() *Classifier { return nil }

// NewClassifier returns an error wrapping ErrNotSupported.
func NewClassifier(ClassifierConfig) (*Classifier, error) { return nil, errNotSupported() }

// Update returns an error wrapping ErrNotSupported.
func (*Classifier) Update(Rules) error { return errNotSupported() }

// Close does nothing.
func (*Classifier) Close() error { return nil }

// Counters returns an error wrapping ErrNotSupported.
func (*Classifier) Counters() (ClassifierCounters, error) {
	return ClassifierCounters{}, errNotSupported()
}

// Limits returns the default sizes.
func (*Classifier) Limits() ClassifierConfig { return ClassifierConfig{}.withDefaults() }

// NewEgress returns an error wrapping ErrNotSupported.
func NewEgress(EgressConfig) (*Egress, error) { return nil, errNotSupported() }

// Lookup always reports no route.
func (*Egress) Lookup(dst netip.Addr) (Hop, LookupStatus) { return Hop{}, LookupNoRoute }

// Prime does nothing.
func (*Egress) Prime([]netip.Addr) {}

// Neighbour knows no neighbour.
func (*Egress) Neighbour(int, netip.Addr) ([6]byte, bool) { return [6]byte{}, false }

// IfaceAddrs returns nothing.
func (*Egress) IfaceAddrs(int, netip.Addr) []netip.Addr { return nil }

// LocalAddrs returns nothing.
func (*Egress) LocalAddrs() ([]netip.Addr, uint64) { return nil, 0 }

// Close does nothing.
func (*Egress) Close() error { return nil }

// Devices returns nil: there are no devices.
func (*Dataplane) Devices() []DeviceStatus { return nil }

// LookupFlow returns LookupNoRoute.
func (*Egress) LookupFlow(netip.Addr, uint64) (Hop, LookupStatus) { return Hop{}, LookupNoRoute }

// Devices returns nothing.
func (*Egress) Devices() ([]Device, uint64) { return nil, 0 }
