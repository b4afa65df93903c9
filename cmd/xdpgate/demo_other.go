//go:build !linux

package main

import (
	"errors"
	"io"
)

// demo needs Linux network namespaces, veth and XDP.
func demo(args []string, stdout, stderr io.Writer) error {
	if _, err := parseDemoFlags(args, stderr); err != nil {
		return err
	}
	return errors.New("the demo needs Linux (network namespaces, veth, XDP)")
}
