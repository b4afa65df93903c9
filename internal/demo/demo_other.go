//go:build !linux

package demo

import (
	"errors"
	"io"
)

// Run is `xdpgate demo`; the demo needs Linux network namespaces, veth and
// XDP.
func Run(args []string, stdout, stderr io.Writer) error {
	if _, err := parseDemoFlags(args, stderr); err != nil {
		return err
	}
	return errors.New("the demo needs Linux (network namespaces, veth, XDP)")
}

// ServeBackends is the backend helper; like the demo, it needs Linux.
func ServeBackends(args []string, stderr io.Writer) error {
	return errors.New("the demo needs Linux (network namespaces, veth, XDP)")
}
