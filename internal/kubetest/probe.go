package kubetest

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// probeTimeout bounds one readiness request, so a hung process cannot stall
// a poll loop beyond its deadline.
const probeTimeout = 2 * time.Second

// newProbeClient returns the HTTP client for readiness probes. It skips TLS
// verification because the API server's serving certificate is self-signed,
// and never uses a proxy: the targets are on loopback.
func newProbeClient() *http.Client {
	return &http.Client{
		Timeout: probeTimeout,
		Transport: &http.Transport{
			Proxy:           nil,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // loopback, self-signed certificate
		},
	}
}

// etcdHealthy reports whether etcd at clientURL answers /health with
// {"health":"true"}.
func (e *Env) etcdHealthy(clientURL string) bool {
	resp, err := e.probe.Get(clientURL + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var h struct {
		Health string `json:"health"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&h) != nil {
		return false
	}
	return h.Health == "true"
}

// apiServerReady reports whether the API server answers /readyz with 200 and
// the default/kubernetes Service exists. The API server creates that Service
// (with the first address of ServiceCIDR) from a bootstrap controller once
// the default namespace and cluster-IP allocation work, so it shows that a
// test can create Services in "default" right away.
func (e *Env) apiServerReady() bool {
	return e.get("/readyz") && e.get("/api/v1/namespaces/default/services/kubernetes")
}

// get reports whether GET path on the API server, as the admin user,
// answers 200.
func (e *Env) get(path string) bool {
	req, err := http.NewRequest(http.MethodGet, e.APIServerURL+path, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+e.Token)
	resp, err := e.probe.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode == http.StatusOK
}
