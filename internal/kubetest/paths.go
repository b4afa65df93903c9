package kubetest

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// modulePath is xdpgate's main module; the repository root is the directory
// of the go.mod that declares it.
const modulePath = "github.com/xdpgate/xdpgate"

// defaultEtcdPath is where Debian's etcd-server package installs etcd.
const defaultEtcdPath = "/usr/bin/etcd"

// resolveAPIServer returns the kube-apiserver binary to run: path if set,
// else $XDPGATE_KUBE_APISERVER, else <repo>/.build/kube-apiserver-<KubeVersion>.
func resolveAPIServer(path string) (string, error) {
	if path == "" {
		path = os.Getenv(EnvAPIServer)
	}
	if path == "" {
		root, err := repoRoot()
		if err != nil {
			return "", fmt.Errorf("%w: %v; run `make kube-apiserver` or set %s", ErrAPIServerNotFound, err, EnvAPIServer)
		}
		path = filepath.Join(root, ".build", "kube-apiserver-"+KubeVersion)
	}
	if err := checkExecutable(path); err != nil {
		return "", fmt.Errorf("%w: %v; run `make kube-apiserver` (hack/build-kube-apiserver.sh) or set %s", ErrAPIServerNotFound, err, EnvAPIServer)
	}
	return path, nil
}

// resolveEtcd returns the etcd binary to run: path if set, else $XDPGATE_ETCD,
// else /usr/bin/etcd, else etcd in PATH.
func resolveEtcd(path string) (string, error) {
	if path == "" {
		path = os.Getenv(EnvEtcd)
	}
	if path == "" {
		path = defaultEtcdPath
		if checkExecutable(path) != nil {
			if p, err := exec.LookPath("etcd"); err == nil {
				path = p
			}
		}
	}
	if err := checkExecutable(path); err != nil {
		return "", fmt.Errorf("%w: %v; run `make deps` (hack/install-deps.sh installs Debian's etcd-server) or set %s", ErrEtcdNotFound, err, EnvEtcd)
	}
	return path, nil
}

// checkExecutable fails unless path is a regular file with an execute bit.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return &fs.PathError{Op: "exec", Path: path, Err: fs.ErrPermission}
	}
	return nil
}

// repoRoot walks up from the working directory (a package directory under
// `go test`) to the directory whose go.mod declares modulePath. Nested
// modules on the way, such as hack/kube-apiserver, are passed over.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if goModModule(filepath.Join(dir, "go.mod")) == modulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod for " + modulePath + " above the working directory")
		}
		dir = parent
	}
}

// goModModule returns the module path declared in the go.mod at path, or ""
// when there is none.
func goModModule(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`)
		}
	}
	return ""
}
