package kubetest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// KubeVersion is the Kubernetes version of the kube-apiserver binary the
// harness runs by default; hack/kube-apiserver/go.mod pins the same version.
const KubeVersion = "v1.36.3"

// ServiceCIDR is the API server's --service-cluster-ip-range: Services get
// cluster IPs from it, and the default/kubernetes Service gets its first
// address (198.18.128.1). It lies inside the benchmarking range
// 198.18.0.0/15 (RFC 2544), the only addresses xdpgate's tests may use.
const ServiceCIDR = "198.18.128.0/20"

// Environment variables the harness reads.
const (
	// EnvAPIServer names the variable holding the kube-apiserver binary's
	// path; the Makefile sets it.
	EnvAPIServer = "XDPGATE_KUBE_APISERVER"
	// EnvEtcd names the variable holding etcd's path (default /usr/bin/etcd,
	// then etcd in PATH).
	EnvEtcd = "XDPGATE_ETCD"
	// EnvRequire names the variable that, set to "1", makes a missing binary
	// fail the test instead of skipping it. CI="true" does the same.
	EnvRequire = "XDPGATE_REQUIRE_APISERVER"
)

// Sentinel errors. New wraps them with the path and a hint.
var (
	// ErrAPIServerNotFound means the kube-apiserver binary does not exist;
	// `make kube-apiserver` builds it.
	ErrAPIServerNotFound = errors.New("kube-apiserver binary not found")
	// ErrEtcdNotFound means no etcd binary was found; `make deps` installs
	// Debian's etcd-server.
	ErrEtcdNotFound = errors.New("etcd not found")
	// ErrExited means a process exited while the harness waited for it to
	// become ready.
	ErrExited = errors.New("process exited")
	// ErrNotReady means a process did not become ready within
	// Opts.ReadyTimeout.
	ErrNotReady = errors.New("process not ready")
	// ErrRunning means StartAPIServer was called while the API server runs.
	ErrRunning = errors.New("kube-apiserver already running")
	// ErrClosed means the Env was closed.
	ErrClosed = errors.New("kubetest env closed")
)

// Opts configures an Env. The zero value is ready to use; withDefaults fills
// in every default in one place.
type Opts struct {
	// APIServerPath is the kube-apiserver binary. Default: $XDPGATE_KUBE_APISERVER,
	// else <repo>/.build/kube-apiserver-<KubeVersion>.
	APIServerPath string
	// EtcdPath is the etcd binary. Default: $XDPGATE_ETCD, else
	// /usr/bin/etcd, else etcd in PATH.
	EtcdPath string
	// LogDir receives etcd.log and kube-apiserver.log. Default: a directory
	// inside the Env's work directory, deleted by Close (Start uses
	// t.TempDir() instead, so the logs outlive the Env until the test ends).
	LogDir string
	// TempDir is where the work directory is created. Default: os.TempDir().
	TempDir string
	// ReadyTimeout bounds each wait for a process to become ready. It is a
	// liveness bound for a shared, loaded machine, not a performance
	// expectation. Default: 2 minutes.
	ReadyTimeout time.Duration
	// StopTimeout bounds the wait after SIGTERM before SIGKILL. Default: 15s.
	StopTimeout time.Duration
	// AuthorizationMode is the API server's --authorization-mode.
	// Default: AlwaysAllow. It is an option rather than an extra argument
	// because the flag is a string slice: a second --authorization-mode
	// appends to the chain (AlwaysAllow,RBAC still allows everything).
	AuthorizationMode string
	// ExtraAPIServerArgs are appended to the API server's flags
	// (for example "--feature-gates=...").
	ExtraAPIServerArgs []string
	// Logf, if set, receives progress messages (Start sets t.Logf).
	Logf func(format string, args ...any)
}

const (
	defaultReadyTimeout = 2 * time.Minute
	defaultStopTimeout  = 15 * time.Second
	pollInterval        = 100 * time.Millisecond
	startAttempts       = 3
)

// withDefaults returns o with every unset field defaulted and the binaries
// resolved; it fails with ErrAPIServerNotFound or ErrEtcdNotFound.
func (o Opts) withDefaults() (Opts, error) {
	if o.AuthorizationMode == "" {
		o.AuthorizationMode = "AlwaysAllow"
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = defaultReadyTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = defaultStopTimeout
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	apiserver, err := resolveAPIServer(o.APIServerPath)
	if err != nil {
		return o, err
	}
	o.APIServerPath = apiserver
	etcd, err := resolveEtcd(o.EtcdPath)
	if err != nil {
		return o, err
	}
	o.EtcdPath = etcd
	return o, nil
}

// Env is one running etcd and kube-apiserver pair.
//
// The exported fields are set by New and never change afterwards. mu guards
// etcd, apiserver and closed, so StopAPIServer, StartAPIServer and Close may
// be called from any goroutine.
type Env struct {
	// Config reaches the API server as a member of system:masters (bearer
	// token, TLS verification off: the serving certificate is self-signed).
	// Client-side rate limiting is off. Copy it with rest.CopyConfig before
	// changing it.
	Config *rest.Config
	// Client is a clientset built from Config.
	Client kubernetes.Interface
	// APIServerURL is the API server's https://127.0.0.1:PORT address; it
	// stays the same across StopAPIServer and StartAPIServer.
	APIServerURL string
	// EtcdURL is etcd's http://127.0.0.1:PORT client address.
	EtcdURL string
	// Token is the bearer token of the system:masters user "admin".
	Token string
	// WorkDir holds etcd's data, the API server's certificates, the token
	// file and the service-account keys; Close deletes it.
	WorkDir string
	// LogDir holds etcd.log and kube-apiserver.log (appended to across
	// restarts).
	LogDir string

	opts    Opts
	apiPort int
	apiArgs []string
	probe   *http.Client

	mu        sync.Mutex
	etcd      *process // guarded by mu
	apiserver *process // guarded by mu; nil while stopped
	closed    bool     // guarded by mu
}

// New starts etcd and then kube-apiserver, waits until the API server is
// ready and its default/kubernetes Service exists, and returns the Env. The
// caller must Close it. On failure it stops whatever it started, deletes the
// work directory, and returns an error that includes the tail of the logs.
// ctx bounds the start (together with Opts.ReadyTimeout); it does not bound
// the Env's lifetime.
func New(ctx context.Context, opts Opts) (*Env, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(o.TempDir, "xdpgate-kubetest-")
	if err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	e := &Env{WorkDir: work, LogDir: o.LogDir, opts: o, probe: newProbeClient()}
	if e.LogDir == "" {
		e.LogDir = filepath.Join(work, "logs")
	}
	if err := e.start(ctx); err != nil {
		tail := e.LogTail(40)
		if cerr := e.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, fmt.Errorf("%w\n%s", err, tail)
	}
	return e, nil
}

func (e *Env) start(ctx context.Context) error {
	for _, d := range []string{e.LogDir, filepath.Join(e.WorkDir, "certs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create dir: %w", err)
		}
	}
	creds, err := writeCredentials(e.WorkDir)
	if err != nil {
		return err
	}
	e.Token = creds.token

	if err := e.startEtcd(ctx); err != nil {
		return err
	}

	// As for etcd, a port picked free can be taken before the API server
	// binds it: retry a start that exits early on a new port.
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		e.setAPIServerPort(ports[0], creds)
		err = e.StartAPIServer(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrExited) || attempt == startAttempts || ctx.Err() != nil {
			return err
		}
	}

	e.Config = &rest.Config{
		Host:            e.APIServerURL,
		BearerToken:     e.Token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             -1, // no client-side rate limiting (see rest.Config.QPS)
		UserAgent:       "xdpgate-kubetest",
	}
	client, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return fmt.Errorf("build clientset: %w", err)
	}
	e.Client = client
	return nil
}

// setAPIServerPort sets the API server's port, URL and flags.
func (e *Env) setAPIServerPort(port int, creds credentials) {
	e.apiPort = port
	e.APIServerURL = fmt.Sprintf("https://127.0.0.1:%d", port)
	e.apiArgs = []string{
		"--etcd-servers=" + e.EtcdURL,
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=" + e.opts.AuthorizationMode,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The reconciler would publish the advertise address as the
		// endpoint of default/kubernetes, and Endpoints reject loopback
		// addresses: it would only log an error every few seconds. Off,
		// default/kubernetes has no endpoints, which keeps the objects a
		// test sees fixed.
		"--endpoint-reconciler-type=none",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + filepath.Join(e.WorkDir, "certs"),
		"--token-auth-file=" + creds.tokenFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + creds.saPublic,
		"--service-account-signing-key-file=" + creds.saPrivate,
	}
	e.apiArgs = append(e.apiArgs, e.opts.ExtraAPIServerArgs...)
}

// startEtcd starts etcd on fresh ports and waits until it is healthy. A port
// picked free can be taken by another process before etcd binds it, so a
// start that fails is retried on new ports a few times.
func (e *Env) startEtcd(ctx context.Context) error {
	var last error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
		data := filepath.Join(e.WorkDir, "etcd-data")
		if err := os.RemoveAll(data); err != nil {
			return fmt.Errorf("reset etcd data dir: %w", err)
		}
		args := []string{
			"--name=kubetest",
			"--data-dir=" + data,
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=kubetest=" + peer,
			"--initial-cluster-state=new",
			"--logger=zap",
			"--log-outputs=stderr",
		}
		e.opts.Logf("kubetest: starting etcd on %s (attempt %d)", client, attempt)
		p, err := startProcess("etcd", e.opts.EtcdPath, args, filepath.Join(e.LogDir, "etcd.log"))
		if err != nil {
			return err
		}
		e.mu.Lock()
		e.etcd = p
		e.mu.Unlock()
		last = e.waitReady(ctx, p, func() bool { return e.etcdHealthy(client) })
		if last == nil {
			e.EtcdURL = client
			return nil
		}
		p.stop(e.opts.StopTimeout)
		e.mu.Lock()
		e.etcd = nil
		e.mu.Unlock()
		if !errors.Is(last, ErrExited) || ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("start etcd: %w", last)
}

// StartAPIServer starts the API server (again) on the same port, against
// the same etcd, with the same certificate, token and flags, and waits until
// it is ready. Clients built from Config reconnect by themselves. It fails
// with ErrRunning when the API server runs.
func (e *Env) StartAPIServer(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if e.apiserver != nil {
		return ErrRunning
	}
	e.opts.Logf("kubetest: starting kube-apiserver on %s", e.APIServerURL)
	p, err := startProcess("kube-apiserver", e.opts.APIServerPath, e.apiArgs, filepath.Join(e.LogDir, "kube-apiserver.log"))
	if err != nil {
		return err
	}
	if err := e.waitReady(ctx, p, e.apiServerReady); err != nil {
		p.stop(e.opts.StopTimeout)
		return fmt.Errorf("start kube-apiserver: %w", err)
	}
	e.apiserver = p
	return nil
}

// StopAPIServer stops the API server (SIGTERM, then SIGKILL after
// Opts.StopTimeout) and leaves etcd running. Requests fail until
// StartAPIServer. Stopping a stopped API server does nothing.
func (e *Env) StopAPIServer() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.apiserver == nil {
		return
	}
	e.opts.Logf("kubetest: stopping kube-apiserver")
	if e.apiserver.stop(e.opts.StopTimeout) {
		e.opts.Logf("kubetest: kube-apiserver ignored SIGTERM for %v; killed", e.opts.StopTimeout)
	}
	e.apiserver = nil
}

// RestartAPIServer is StopAPIServer followed by StartAPIServer.
func (e *Env) RestartAPIServer(ctx context.Context) error {
	e.StopAPIServer()
	return e.StartAPIServer(ctx)
}

// Close stops the API server and etcd and deletes WorkDir (and LogDir when it
// is inside WorkDir). It is safe to call more than once; later calls do
// nothing.
func (e *Env) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	for _, p := range []**process{&e.apiserver, &e.etcd} {
		if *p == nil {
			continue
		}
		if (*p).stop(e.opts.StopTimeout) {
			e.opts.Logf("kubetest: %s ignored SIGTERM for %v; killed", (*p).name, e.opts.StopTimeout)
		}
		*p = nil
	}
	e.probe.CloseIdleConnections()
	if err := os.RemoveAll(e.WorkDir); err != nil {
		return fmt.Errorf("remove work dir: %w", err)
	}
	return nil
}

// LogTail returns the last n lines of etcd's and the API server's logs, each
// under a header naming the file, for a failure report.
func (e *Env) LogTail(n int) string {
	var b strings.Builder
	for _, name := range []string{"etcd.log", "kube-apiserver.log"} {
		path := filepath.Join(e.LogDir, name)
		fmt.Fprintf(&b, "--- last %d lines of %s\n%s", n, path, tailFile(path, n))
	}
	return b.String()
}

// waitReady polls ready every pollInterval until it reports true, p exits
// (ErrExited), or ctx or Opts.ReadyTimeout ends (ErrNotReady).
func (e *Env) waitReady(ctx context.Context, p *process, ready func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.ReadyTimeout)
	defer cancel()
	defer e.probe.CloseIdleConnections()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if ready() {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s: %w: %v", p.name, ErrExited, p.err)
		case <-ctx.Done():
			return fmt.Errorf("%s: %w after %v: %w", p.name, ErrNotReady, e.opts.ReadyTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// Required reports whether the environment demands that API-server tests
// run: $CI is "true" or $XDPGATE_REQUIRE_APISERVER is "1".
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv(EnvRequire) == "1"
}

// Start starts an Env for the test with default Opts; see StartOpts.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartOpts(t, Opts{})
}

// StartOpts starts an Env for the test and registers a cleanup that stops
// both processes and deletes their state, after printing the tail of both
// logs if the test failed. Logs go to a t.TempDir() unless o.LogDir is set.
// When a binary is missing the test is skipped, or fails when Required
// reports true. Any other start failure fails the test.
func StartOpts(t testing.TB, o Opts) *Env {
	t.Helper()
	if o.LogDir == "" {
		o.LogDir = t.TempDir()
	}
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	e, err := New(t.Context(), o)
	if err != nil {
		if errors.Is(err, ErrAPIServerNotFound) || errors.Is(err, ErrEtcdNotFound) {
			if Required() {
				t.Fatalf("kubetest: %v (required because CI=true or %s=1)", err, EnvRequire)
			}
			t.Skipf("kubetest: %v", err)
		}
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubetest: test failed; logs:\n%s", e.LogTail(40))
		}
		if err := e.Close(); err != nil {
			t.Errorf("kubetest: close: %v", err)
		}
	})
	return e
}
