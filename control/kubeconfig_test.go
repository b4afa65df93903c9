package control

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"
)

// testKubeconfig is a kubeconfig with a token user; nothing connects to
// its server.
const testKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://198.18.0.1:6443
    insecure-skip-tls-verify: true
users:
- name: u
  user:
    token: not-a-real-token
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
`

func writeKubeconfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clientHost is the host the source's client would send requests to,
// read from a request URL it builds without sending it.
func clientHost(t *testing.T, k *KubeSource) string {
	t.Helper()
	cs, ok := k.Client.(*kubernetes.Clientset)
	if !ok {
		t.Fatalf("Client is %T, want *kubernetes.Clientset", k.Client)
	}
	return cs.CoreV1().RESTClient().Get().URL().Host
}

// noCluster clears the in-cluster environment for the test.
func noCluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
}

func TestKubeconfigSource(t *testing.T) {
	noCluster(t)
	path := writeKubeconfig(t)
	tests := []struct {
		name, master, wantHost string
	}{
		{"kubeconfig server", "", "198.18.0.1:6443"},
		{"master overrides kubeconfig", "https://198.18.0.2:8443", "198.18.0.2:8443"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := NewKubeSourceFromConfig(path, tc.master, "n1", discardLogger())
			if err != nil {
				t.Fatalf("NewKubeSourceFromConfig(%s, %q) = %v", path, tc.master, err)
			}
			if got := clientHost(t, k); got != tc.wantHost {
				t.Errorf("client host = %s, want %s", got, tc.wantHost)
			}
			if k.NodeName != "n1" {
				t.Errorf("NodeName = %q, want n1", k.NodeName)
			}
			cfg, _, err := restConfig(path, tc.master)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.UserAgent != UserAgent || cfg.BearerToken != "not-a-real-token" {
				t.Errorf("restConfig: UserAgent %q, token %q; want %q and the kubeconfig's token", cfg.UserAgent, cfg.BearerToken, UserAgent)
			}
		})
	}
}

func TestKubeconfigMissingFile(t *testing.T) {
	noCluster(t)
	path := filepath.Join(t.TempDir(), "absent")
	_, err := NewKubeSourceFromConfig(path, "", "n1", discardLogger())
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("NewKubeSourceFromConfig(%s) = %v, want an error naming the file", path, err)
	}
}

func TestKubeconfigInClusterUnset(t *testing.T) {
	noCluster(t)
	_, err := NewKubeSourceFromConfig("", "", "n1", discardLogger())
	if !errors.Is(err, ErrNoClusterConfig) {
		t.Fatalf("NewKubeSourceFromConfig outside a cluster = %v, want ErrNoClusterConfig", err)
	}
	if !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST unset") || !strings.Contains(err.Error(), "--master") {
		t.Errorf("error %q does not say what is missing and what to give", err)
	}
}

func TestKubeconfigMasterOnly(t *testing.T) {
	noCluster(t)
	k, err := NewKubeSourceFromConfig("", "http://198.18.0.3:8001", "n1", discardLogger())
	if err != nil {
		t.Fatalf("NewKubeSourceFromConfig(master only) = %v", err)
	}
	if got := clientHost(t, k); got != "198.18.0.3:8001" {
		t.Errorf("client host = %s, want 198.18.0.3:8001", got)
	}
}

func TestKubeconfigInClusterNoServiceAccount(t *testing.T) {
	// rest.InClusterConfig reads the token from a fixed path; on a test
	// machine it is absent, which is the case under test.
	const token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	if _, err := os.Stat(token); err == nil {
		t.Skipf("%s exists: running in a pod", token)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "198.18.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	for _, master := range []string{"", "https://198.18.0.2:6443"} {
		_, err := NewKubeSourceFromConfig("", master, "n1", discardLogger())
		if err == nil || errors.Is(err, ErrNoClusterConfig) || !strings.Contains(err.Error(), "in-cluster") || !strings.Contains(err.Error(), token) {
			t.Errorf("NewKubeSourceFromConfig(in pod without token, master %q) = %v, want an in-cluster error naming %s", master, err, token)
		}
	}
}
