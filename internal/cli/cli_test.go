package cli

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/xdpgate/xdpgate/internal/config"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err        error
		code       int
		wantStderr string
	}{
		{nil, ExitOK, ""},
		{fmt.Errorf("parse: %w", config.ErrUsage), ExitUsage, ""},
		{errors.New("boom"), ExitFailure, "prog: boom\n"},
	} {
		var stderr bytes.Buffer
		if got := ExitCode("prog", tc.err, &stderr); got != tc.code || stderr.String() != tc.wantStderr {
			t.Errorf("ExitCode(%v) = %d, stderr %q; want %d, %q", tc.err, got, stderr.String(), tc.code, tc.wantStderr)
		}
	}
}
