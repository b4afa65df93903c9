//go:build !linux

package baseline

import (
	"fmt"

	"github.com/xdpgate/xdpgate/snapshot"
)

// Install applies a kernel baseline ruleset inside a network namespace; it
// needs Linux.
func Install(netnsName string, k Kind, s *snapshot.Snapshot, o Options) (remove func() error, err error) {
	return nil, fmt.Errorf("install %s: %w", k, ErrNotSupported)
}

// IPTablesBackend reports the iptables-restore backend; it needs Linux.
func IPTablesBackend() (string, error) {
	return "", fmt.Errorf("iptables backend: %w", ErrNotSupported)
}
