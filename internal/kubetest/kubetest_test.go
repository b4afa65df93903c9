package kubetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// makeService returns a ClusterIP Service with one TCP port, changed by
// each mutator in order.
func makeService(ns, name string, mutators ...func(*v1.Service)) *v1.Service {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ServiceSpec{
			Ports: []v1.ServicePort{{
				Name:       "http",
				Protocol:   v1.ProtocolTCP,
				Port:       80,
				TargetPort: intstr.FromInt32(8080),
			}},
		},
	}
	for _, m := range mutators {
		m(svc)
	}
	return svc
}

// checkClientIPService fails the test unless svc carries the API server's
// defaults for a ClientIP Service created without sessionAffinityConfig and
// a cluster IP from ServiceCIDR.
func checkClientIPService(t *testing.T, svc *v1.Service) {
	t.Helper()
	if svc.Spec.SessionAffinity != v1.ServiceAffinityClientIP {
		t.Errorf("sessionAffinity = %q, want %q", svc.Spec.SessionAffinity, v1.ServiceAffinityClientIP)
	}
	cfg := svc.Spec.SessionAffinityConfig
	if cfg == nil || cfg.ClientIP == nil || cfg.ClientIP.TimeoutSeconds == nil {
		t.Errorf("sessionAffinityConfig = %+v, want clientIP.timeoutSeconds defaulted", cfg)
	} else if got := *cfg.ClientIP.TimeoutSeconds; got != v1.DefaultClientIPServiceAffinitySeconds {
		t.Errorf("clientIP.timeoutSeconds = %d, want %d", got, v1.DefaultClientIPServiceAffinitySeconds)
	}
	if svc.Spec.Type != v1.ServiceTypeClusterIP {
		t.Errorf("type = %q, want %q", svc.Spec.Type, v1.ServiceTypeClusterIP)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil || !netip.MustParsePrefix(ServiceCIDR).Contains(ip) {
		t.Errorf("clusterIP = %q, want an address in %s", svc.Spec.ClusterIP, ServiceCIDR)
	}
}

func TestClientIPServiceSurvivesAPIServerRestart(t *testing.T) {
	env := Start(t)
	ctx := t.Context()
	services := env.Client.CoreV1().Services(metav1.NamespaceDefault)

	// The API server allocates the first address of the range to the
	// default/kubernetes Service: proof that it uses ServiceCIDR.
	kube, err := services.Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get default/kubernetes: %v", err)
	}
	if want := "198.18.128.1"; kube.Spec.ClusterIP != want {
		t.Errorf("default/kubernetes clusterIP = %q, want %q", kube.Spec.ClusterIP, want)
	}

	// Nothing publishes endpoints: tests own every EndpointSlice.
	slices, err := env.Client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list endpointslices: %v", err)
	}
	if len(slices.Items) != 0 {
		t.Errorf("endpointslices in default = %d, want 0", len(slices.Items))
	}

	created, err := services.Create(ctx, makeService(metav1.NamespaceDefault, "affinity", func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service: %v", err)
	}
	before, err := services.Get(ctx, "affinity", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get service: %v", err)
	}
	checkClientIPService(t, before)
	if before.UID != created.UID {
		t.Errorf("uid = %q, want %q (from create)", before.UID, created.UID)
	}

	env.StopAPIServer()
	down, cancel := context.WithTimeout(ctx, time.Minute)
	_, err = services.Get(down, "affinity", metav1.GetOptions{})
	cancel()
	if err == nil {
		t.Fatal("get service with the API server stopped: got no error")
	}

	if err := env.StartAPIServer(ctx); err != nil {
		t.Fatalf("restart API server: %v", err)
	}
	after, err := services.Get(ctx, "affinity", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get service after restart: %v", err)
	}
	checkClientIPService(t, after)
	if after.UID != before.UID || after.Spec.ClusterIP != before.Spec.ClusterIP || after.ResourceVersion != before.ResourceVersion {
		t.Errorf("after restart: uid %q clusterIP %q rv %q, want %q %q %q (unchanged)",
			after.UID, after.Spec.ClusterIP, after.ResourceVersion, before.UID, before.Spec.ClusterIP, before.ResourceVersion)
	}
	if err := env.StartAPIServer(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("StartAPIServer while running = %v, want %v", err, ErrRunning)
	}
}

func TestCloseStopsProcessesAndRemovesState(t *testing.T) {
	env := Start(t)
	env.mu.Lock()
	procs := []*process{env.etcd, env.apiserver}
	env.mu.Unlock()
	if _, err := os.Stat(filepath.Join(env.WorkDir, "etcd-data")); err != nil {
		t.Fatalf("etcd data dir before Close: %v", err)
	}

	if err := env.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	for _, p := range procs {
		select {
		case <-p.done:
		default:
			t.Errorf("%s still running after Close", p.name)
		}
	}
	if _, err := os.Stat(env.WorkDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat work dir after Close = %v, want %v", err, os.ErrNotExist)
	}
	// Logs live in the test's temporary directory and outlive the Env.
	if got := tailFile(filepath.Join(env.LogDir, "kube-apiserver.log"), 1000); !strings.Contains(got, "--service-cluster-ip-range="+ServiceCIDR) {
		t.Errorf("kube-apiserver.log does not record the command line:\n%s", got)
	}
	if err := env.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	if err := env.StartAPIServer(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("StartAPIServer after Close = %v, want %v", err, ErrClosed)
	}
}

func TestNewMissingBinary(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name      string
		opts      Opts
		want      error
		wantHint  string
		wantInMsg string
	}{
		{"apiserver missing", Opts{APIServerPath: missing, EtcdPath: fake}, ErrAPIServerNotFound, "make kube-apiserver", missing},
		{"apiserver not executable", Opts{APIServerPath: notExec, EtcdPath: fake}, ErrAPIServerNotFound, "make kube-apiserver", notExec},
		{"apiserver is a directory", Opts{APIServerPath: dir, EtcdPath: fake}, ErrAPIServerNotFound, "make kube-apiserver", dir},
		{"etcd missing", Opts{APIServerPath: fake, EtcdPath: missing}, ErrEtcdNotFound, "make deps", missing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, err := New(t.Context(), tc.opts)
			if env != nil {
				env.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("New(%+v) error = %v, want %v", tc.opts, err, tc.want)
			}
			for _, s := range []string{tc.wantHint, tc.wantInMsg} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("New(%+v) error = %q, want it to mention %q", tc.opts, err, s)
				}
			}
		})
	}
}

func TestNewProcessExitsEarly(t *testing.T) {
	// A process that exits at once: New must retry it on new ports
	// startAttempts times, then report ErrExited with the log tail, stop
	// everything it started and leave no work directory behind.
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho fake refuses to start >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    Opts
		realBin bool   // needs the real etcd
		log     string // log of the process that exits
	}{
		{"etcd exits", Opts{APIServerPath: fake, EtcdPath: fake}, false, "etcd.log"},
		{"kube-apiserver exits", Opts{APIServerPath: fake}, true, "kube-apiserver.log"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.realBin {
				if _, err := resolveEtcd(""); err != nil {
					if Required() {
						t.Fatal(err)
					}
					t.Skip(err)
				}
			}
			logs := filepath.Join(dir, fmt.Sprint("logs", i))
			tmp := filepath.Join(dir, fmt.Sprint("tmp", i))
			if err := os.Mkdir(tmp, 0o700); err != nil {
				t.Fatal(err)
			}
			tc.opts.LogDir, tc.opts.TempDir = logs, tmp
			env, err := New(t.Context(), tc.opts)
			if env != nil {
				env.Close()
				t.Fatal("New succeeded, want an error")
			}
			if !errors.Is(err, ErrExited) {
				t.Fatalf("New error = %v, want %v", err, ErrExited)
			}
			if !strings.Contains(err.Error(), "fake refuses to start") {
				t.Errorf("New error = %q, want the log tail in it", err)
			}
			if got := strings.Count(tailFile(filepath.Join(logs, tc.log), 1000), "=== "); got != startAttempts {
				t.Errorf("start attempts in %s = %d, want %d", tc.log, got, startAttempts)
			}
			if entries, err := os.ReadDir(tmp); err != nil || len(entries) != 0 {
				t.Errorf("TempDir after failed New: entries %v, error %v; want it empty (work dir removed)", entries, err)
			}
		})
	}
}

func TestRequired(t *testing.T) {
	tests := []struct {
		ci, require string
		want        bool
	}{
		{"", "", false},
		{"true", "", true},
		{"false", "", false},
		{"1", "", false},
		{"", "1", true},
		{"", "0", false},
		{"true", "1", true},
	}
	for _, tc := range tests {
		t.Run("CI="+tc.ci+",require="+tc.require, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			t.Setenv(EnvRequire, tc.require)
			if got := Required(); got != tc.want {
				t.Errorf("Required() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("repoRoot() error = %v", err)
	}
	if got := goModModule(filepath.Join(root, "go.mod")); got != modulePath {
		t.Errorf("module of %s/go.mod = %q, want %q", root, got, modulePath)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "internal", "kubetest"); wd != want {
		t.Errorf("working directory = %q, want %q (repoRoot() = %q)", wd, want, root)
	}
}

func TestTailFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		n       int
		want    string
	}{
		{"fewer lines than n", "a\nb\n", 5, "a\nb\n"},
		{"more lines than n", "a\nb\nc\nd\n", 2, "c\nd\n"},
		{"no trailing newline", "a\nb\nc", 1, "c\n"},
		{"empty", "", 3, "(empty)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if got := tailFile(path, tc.n); got != tc.want {
				t.Errorf("tailFile(%q, %d) = %q, want %q", tc.content, tc.n, got, tc.want)
			}
		})
	}
	if got := tailFile(filepath.Join(dir, "missing"), 3); !strings.Contains(got, "no such file") {
		t.Errorf("tailFile(missing) = %q, want the error", got)
	}
}
