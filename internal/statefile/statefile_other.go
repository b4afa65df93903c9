//go:build !linux

package statefile

import (
	"fmt"
	"time"
)

// Open returns an error wrapping ErrNotSupported: state files need Linux.
func Open(path string, s Spec) (*File, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("open state file %s: %w", path, ErrNotSupported)
}

// Now returns monotonic nanoseconds since the process started (there are
// no state files to share times with on this OS).
func Now() int64 { return int64(time.Since(start)) }

var start = time.Now()

// Lock returns an error wrapping ErrNotSupported.
func Lock(dir string, wait time.Duration) (unlock func(), err error) {
	return nil, fmt.Errorf("state dir %s: %w", dir, ErrNotSupported)
}
