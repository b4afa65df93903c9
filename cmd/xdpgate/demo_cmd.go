package main

import (
	"errors"
	"io"

	"github.com/xdpgate/xdpgate/internal/demo"
)

func init() {
	subcommands["demo"] = subcommand{
		summary: demo.Summary,
		run:     runDemo,
	}
}

// runDemo is `xdpgate demo`. The demo re-executes this binary for the
// gateway (`xdpgate run`) and for its backends (`xdpgate demo
// _serve-backends ...`, dispatched here to demo.ServeBackends).
func runDemo(args []string, stdout, stderr io.Writer) error {
	var err error
	if len(args) > 0 && args[0] == demo.BackendHelper {
		err = demo.ServeBackends(args[1:], stderr)
	} else {
		err = demo.Run(args, stdout, stderr)
	}
	if errors.Is(err, demo.ErrUsage) {
		return errUsage
	}
	return err
}
