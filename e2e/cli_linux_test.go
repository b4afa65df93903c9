package e2e

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// TestPrivMissingCapabilities: without CAP_NET_ADMIN, `xdpgate run` names
// the missing capability and exits 1 before touching anything.
func TestPrivMissingCapabilities(t *testing.T) {
	testnet.RequirePriv(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skipf("setpriv (util-linux) not installed: %v", err)
	}
	cmd := exec.Command(setpriv, "--bounding-set=-net_admin", "--inh-caps=-net_admin", "--",
		xdpgateBinary(t), "run", "--interfaces", "lo", "--manifests", "/dev/null", "--node-name", "gw")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("xdpgate run without CAP_NET_ADMIN = %v, want exit status 1 (stderr %q)", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "CAP_NET_ADMIN") {
		t.Errorf("stderr = %q, want it to name CAP_NET_ADMIN", stderr.String())
	}
}

// TestPrivVersion: `xdpgate version` prints a version.
func TestPrivVersion(t *testing.T) {
	testnet.RequirePriv(t) // only to share the binary build with the privileged tests
	out, err := exec.Command(xdpgateBinary(t), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "xdpgate ") {
		t.Errorf("xdpgate version = %q, %v", out, err)
	}
}
