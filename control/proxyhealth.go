package control

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
)

// toBeDeletedTaint marks a node the cluster autoscaler is removing.
const toBeDeletedTaint = "ToBeDeletedByClusterAutoscaler"

// proxierHealth is one family's entry in the /healthz body.
type proxierHealth struct {
	LastUpdated time.Time `json:"lastUpdated"`
	Healthy     bool      `json:"healthy"`
}

// proxyHealthBody is kube-proxy's ProxyHealth JSON.
type proxyHealthBody struct {
	LastUpdated  time.Time                `json:"lastUpdated"`
	CurrentTime  time.Time                `json:"currentTime"`
	NodeEligible *bool                    `json:"nodeEligible,omitempty"`
	Healthy      bool                     `json:"healthy"`
	Status       map[string]proxierHealth `json:"status,omitempty"`
	// DataplaneError is xdpgate's own: why the dataplane does not serve
	// everything the snapshot asks for (kube-proxy has no such case).
	DataplaneError string `json:"dataplaneError,omitempty"`
}

// proxyHealth is kube-proxy's ProxyHealthServer state (proxy_health.go):
// healthy unless an update was queued more than timeout ago and not yet
// published. xdpgate builds both families in one snapshot, so both
// families' entries move together. mu guards every field below it.
type proxyHealth struct {
	clock    Clock
	timeout  time.Duration
	families []string
	m        *metrics
	// nodeOptional: a missing Node is eligible (standalone mode).
	nodeOptional bool

	mu           sync.Mutex
	lastUpdated  time.Time
	oldestQueued time.Time // zero when nothing is queued
	node         *v1.Node
	nodeKnown    bool
	// dataplaneErr is non-nil while the dataplane cannot program what it
	// was asked (SetDataplaneHealth).
	dataplaneErr error
}

// setDataplaneErr records whether the dataplane programs everything.
func (h *proxyHealth) setDataplaneErr(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dataplaneErr = err
}

// QueuedUpdate records that a change is waiting to be published.
func (h *proxyHealth) QueuedUpdate() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.oldestQueued.IsZero() {
		h.oldestQueued = h.clock.Now()
	}
}

// Updated records a publish: the queue is empty.
func (h *proxyHealth) Updated() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.oldestQueued = time.Time{}
	h.lastUpdated = h.clock.Now()
}

// setNode records this node's Node object for /healthz eligibility.
func (h *proxyHealth) setNode(n *v1.Node) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.node, h.nodeKnown = n, true
}

// health returns the body without node eligibility. As in kube-proxy, a
// proxier that never published reports healthy (it has no lastUpdated).
func (h *proxyHealth) health() proxyHealthBody {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	b := proxyHealthBody{Healthy: true, CurrentTime: now, LastUpdated: h.lastUpdated, Status: map[string]proxierHealth{}}
	if h.dataplaneErr != nil {
		b.DataplaneError = h.dataplaneErr.Error()
	}
	if h.lastUpdated.IsZero() {
		return b
	}
	healthy := h.oldestQueued.IsZero() || now.Sub(h.oldestQueued) < h.timeout
	b.Healthy = healthy
	for _, f := range h.families {
		b.Status[f] = proxierHealth{LastUpdated: h.lastUpdated, Healthy: healthy}
	}
	return b
}

// Healthy reports the proxy health without node eligibility (the HCNP
// servers' serviceProxyHealthy).
func (h *proxyHealth) Healthy() bool { return h.health().Healthy }

// nodeEligible is false when the Node is unknown, being deleted, or tainted
// ToBeDeletedByClusterAutoscaler.
func (h *proxyHealth) nodeEligible() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.node
	if n == nil {
		return h.nodeOptional
	}
	if !n.DeletionTimestamp.IsZero() {
		return false
	}
	for _, t := range n.Spec.Taints {
		if t.Key == toBeDeletedTaint {
			return false
		}
	}
	return true
}

// handler serves /healthz and /livez exactly as kube-proxy does.
func (h *proxyHealth) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		b := h.health()
		if b.DataplaneError != "" {
			b.Healthy = false
		}
		eligible := h.nodeEligible()
		b.NodeEligible = &eligible
		h.write(w, b, b.Healthy && eligible, h.m.healthzTotal.WithLabelValues)
	})
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) {
		b := h.health()
		h.write(w, b, b.Healthy, h.m.livezTotal.WithLabelValues)
	})
	return mux
}

func (h *proxyHealth) write(w http.ResponseWriter, b proxyHealthBody, ok bool, count func(...string) prometheus.Counter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if ok {
		count("200").Inc()
		w.WriteHeader(http.StatusOK)
		b.LastUpdated = h.clock.Now() // kube-proxy: back-compat
	} else {
		count("503").Inc()
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	out, _ := json.Marshal(b)
	fmt.Fprint(w, string(out))
}
