package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// containerEngine runs podman and buildah on a storage of the test's own
// (removed afterwards), so the test neither sees nor leaves images.
type containerEngine struct {
	t                  *testing.T
	root, runroot, cfg string
}

func newContainerEngine(t *testing.T) *containerEngine {
	t.Helper()
	for _, tool := range []string{"podman", "buildah", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (make deps installs it): %v", tool, err)
		}
	}
	dir := t.TempDir()
	e := &containerEngine{t: t, root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run"), cfg: filepath.Join(dir, "containers.conf")}
	// Two settings for sandboxed machines like CI's, which a normal host
	// does not need: no default ulimits (setrlimit is refused there), and
	// runc with cgroupfs (crun refuses a hybrid cgroup v1/v2 hierarchy).
	conf := "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\n"
	if err := os.WriteFile(e.cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.podman("rm", "--all", "--force")
		e.podman("rmi", "--all", "--force")
		// vfs layers are plain directories: nothing stays mounted.
		os.RemoveAll(dir)
	})
	return e
}

func (e *containerEngine) env() []string {
	return append(os.Environ(), "CONTAINERS_CONF="+e.cfg, "BUILDAH_ROOT="+e.root, "BUILDAH_RUNROOT="+e.runroot, "BUILDAH_DRIVER=vfs")
}

// podman runs podman on the test's storage and returns its combined output.
func (e *containerEngine) podman(args ...string) (string, error) {
	cmd := exec.Command("podman", append([]string{"--root", e.root, "--runroot", e.runroot, "--storage-driver", "vfs"}, args...)...)
	cmd.Env = e.env()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestPrivContainerImage builds the image as `make image` does (buildah,
// from scratch, the static binary), runs it with podman exactly as the
// DaemonSet runs it (the gateway's network namespace, the five capabilities
// and nothing else, a read-only root filesystem, the configuration file
// mounted read-only, /run/xdpgate writable), checks that it forwards real
// traffic and exits cleanly on SIGTERM, and reports its size.
func TestPrivContainerImage(t *testing.T) {
	w := newWorld(t, 1, 2, 1)
	eng := newContainerEngine(t)
	build := exec.Command("bash", "../hack/build-image.sh", "localhost/xdpgate:e2e")
	build.Env = eng.env()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("hack/build-image.sh: %v\n%s", err, out)
	}
	size, err := eng.podman("image", "inspect", "--format", "{{.Size}}", "localhost/xdpgate:e2e")
	if err != nil {
		t.Fatalf("image inspect: %v: %s", err, size)
	}
	bytes, _ := strconv.ParseInt(size, 10, 64)
	t.Logf("image localhost/xdpgate:e2e: %.1f MB", float64(bytes)/1e6)

	w.writeManifest(manifest(svc{name: "web4", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(2)}))
	etc := t.TempDir()
	config := fmt.Sprintf(`apiVersion: xdpgate.io/v1alpha1
kind: XdpgateConfiguration
hostnameOverride: gw
manifests: /manifests/services.yaml
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
xdp:
  interfaces: [%s]
  conntrackMax: 65536
  affinityMax: 65536
`, strings.Join(w.managed, ", "))
	if err := os.WriteFile(filepath.Join(etc, "config.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	// The manifest source polls the file: mount the directory of the
	// test's own, which writeManifest replaces atomically (a bind-mounted
	// file would keep the old inode).
	out, err := eng.podman("run", "--detach", "--name", "xdpgate-e2e",
		"--network", "ns:/run/netns/"+w.g.Name,
		"--cap-drop", "ALL", "--cap-add", "NET_ADMIN,NET_RAW,IPC_LOCK,BPF,PERFMON",
		"--security-opt", "seccomp=unconfined", "--security-opt", "no-new-privileges",
		"--read-only", "--tmpfs", "/run/xdpgate", "--ulimit", "host",
		"--volume", etc+":/etc/xdpgate:ro",
		"--volume", filepath.Dir(w.manifest)+":/manifests:ro",
		"localhost/xdpgate:e2e")
	if err != nil {
		t.Fatalf("podman run: %v: %s", err, out)
	}
	logs := func() string { l, _ := eng.podman("logs", "xdpgate-e2e"); return l }
	if err := within(t.Context(), 30*time.Second, func() error {
		_, err := w.tcpQuery(client4(0), ap(vip4, 80))
		return err
	}); err != nil {
		t.Fatalf("no TCP through the containerised gateway: %v\n%s", err, logs())
	}
	if r, err := w.udpQuery(client4(0), ap(vip4, 80)); err != nil || r.from != ap(vip4, 80) {
		t.Errorf("UDP through the containerised gateway: %v, %v", r, err)
	}
	if out, err := eng.podman("stop", "--time", "10", "xdpgate-e2e"); err != nil {
		t.Fatalf("podman stop: %v: %s", err, out)
	}
	code, err := eng.podman("inspect", "--format", "{{.State.ExitCode}}", "xdpgate-e2e")
	if err != nil || code != "0" {
		t.Errorf("exit code after SIGTERM = %q, %v; want 0\n%s", code, err, logs())
	}
	if l := logs(); !strings.Contains(l, "XDP programs detached") {
		t.Errorf("the container's log lacks the clean shutdown:\n%s", l)
	}
	// Nothing left attached: the gateway's interfaces carry no XDP program.
	for _, dev := range w.managed {
		if out := w.g.MustRun(t, "ip", "link", "show", dev); strings.Contains(out, "xdp") {
			t.Errorf("%s still has an XDP program after the container stopped: %s", dev, out)
		}
	}
}
