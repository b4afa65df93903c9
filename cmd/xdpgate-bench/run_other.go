//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
)

func runBench(context.Context, benchOptions, string, string, io.Writer, io.Writer) error {
	return errors.New("the benchmark rig needs Linux (network namespaces, XDP, AF_XDP)")
}
