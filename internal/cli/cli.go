// Package cli holds what xdpgate's binaries share about being a command:
// how an error becomes an exit status.
package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/xdpgate/xdpgate/internal/config"
)

// Exit statuses.
const (
	// ExitOK: the command succeeded.
	ExitOK = 0
	// ExitFailure: the command failed; the error was written to stderr.
	ExitFailure = 1
	// ExitUsage: bad flags or arguments; the command already said why.
	ExitUsage = 2
)

// ExitCode returns the exit status for a command's error: ExitOK for nil,
// ExitUsage for config.ErrUsage (the problem has been written already), and
// otherwise ExitFailure after writing "prog: err" to stderr.
func ExitCode(prog string, err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, config.ErrUsage):
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return ExitFailure
	}
}
