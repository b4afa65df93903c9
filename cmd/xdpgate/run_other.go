//go:build !linux

package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/xdpgate/xdpgate/dataplane"
)

// run parses the flags (so usage errors are reported everywhere) and then
// refuses: AF_XDP exists on Linux only.
func run(args []string, stderr io.Writer) error {
	if _, err := parseRunFlags(args, stderr); err != nil {
		return err
	}
	return fmt.Errorf("%s: %w", runtime.GOOS, dataplane.ErrNotSupported)
}
