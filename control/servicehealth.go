package control

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
)

// serviceHealth runs one healthCheckNodePort HTTP server per LoadBalancer
// Service with externalTrafficPolicy Local (kube-proxy's
// healthcheck/service_health.go). Servers are opened and closed by sync as
// Services change. Unlike kube-proxy's, they bound slow and idle clients
// (httpLimits).
//
// mu guards services; the HTTP handlers read under it.
type serviceHealth struct {
	addrs   []netip.Addr // listen addresses; empty: all (dual-stack "tcp" on ":port")
	healthy func() bool  // proxy health without node eligibility
	log     *slog.Logger
	limits  httpLimits // set before the first sync

	mu       sync.Mutex
	services map[nsName]*hcInstance
}

type hcInstance struct {
	port      uint16
	endpoints int // guarded by serviceHealth.mu
	servers   []*http.Server
}

func newServiceHealth(addrs []netip.Addr, healthy func() bool, log *slog.Logger) *serviceHealth {
	return &serviceHealth{addrs: addrs, healthy: healthy, log: log, limits: defaultHTTPLimits, services: make(map[nsName]*hcInstance)}
}

// sync opens servers for new health checks, closes those no longer wanted
// (or whose port changed) and updates the local endpoint counts. A port that
// cannot be opened is logged and retried at the next sync.
func (h *serviceHealth) sync(checks []HealthCheck) {
	want := make(map[nsName]HealthCheck, len(checks))
	for _, c := range checks {
		want[nsName{c.Namespace, c.Name}] = c
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, inst := range h.services {
		if c, ok := want[k]; !ok || c.Port != inst.port {
			h.log.Info("closing healthcheck", "service", k.String(), "port", inst.port)
			inst.close()
			delete(h.services, k)
		}
	}
	for k, c := range want {
		inst := h.services[k]
		if inst == nil {
			var err error
			inst, err = h.listen(k, c.Port)
			if err != nil {
				h.log.Error("failed to start healthcheck", "service", k.String(), "port", c.Port, "err", err)
				continue
			}
			h.log.Info("opening healthcheck", "service", k.String(), "port", c.Port)
			h.services[k] = inst
		}
		inst.endpoints = c.LocalEndpoints
	}
}

func (h *serviceHealth) listen(k nsName, port uint16) (*hcInstance, error) {
	inst := &hcInstance{port: port}
	addrs := []string{net.JoinHostPort("", strconv.Itoa(int(port)))}
	if len(h.addrs) > 0 {
		addrs = addrs[:0]
		for _, a := range h.addrs {
			addrs = append(addrs, netip.AddrPortFrom(a, port).String())
		}
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			inst.close()
			return nil, fmt.Errorf("listen %s: %w", a, err)
		}
		srv, ln := h.limits.serve(hcHandler{k: k, h: h}, ln)
		inst.servers = append(inst.servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				h.log.Error("healthcheck server stopped", "service", k.String(), "addr", a, "err", err)
			}
		}()
	}
	return inst, nil
}

func (inst *hcInstance) close() {
	for _, s := range inst.servers {
		_ = s.Close()
	}
}

// closeAll closes every server (controller shutdown).
func (h *serviceHealth) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, inst := range h.services {
		inst.close()
		delete(h.services, k)
	}
}

// ports returns the open health check ports by service (for tests and logs).
func (h *serviceHealth) ports() map[string]uint16 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]uint16, len(h.services))
	for k, inst := range h.services {
		out[k.String()] = inst.port
	}
	return out
}

// hcHandler answers every path and method, as kube-proxy's does.
type hcHandler struct {
	k nsName
	h *serviceHealth
}

func (hh hcHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	hh.h.mu.Lock()
	inst, ok := hh.h.services[hh.k]
	count := 0
	if ok {
		count = inst.endpoints
	}
	hh.h.mu.Unlock()
	if !ok {
		return // kube-proxy: "Received request for closed healthcheck"
	}
	healthy := hh.h.healthy()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Load-Balancing-Endpoint-Weight", strconv.Itoa(count))
	if count != 0 && healthy {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprint(w, hcBody(hh.k, count, healthy))
}

// hcBody is kube-proxy's body: the dedented raw string, trailing newline
// trimmed, indented with tabs.
func hcBody(k nsName, count int, healthy bool) string {
	return fmt.Sprintf("{\n\t\"service\": {\n\t\t\"namespace\": %q,\n\t\t\"name\": %q\n\t},\n\t\"localEndpoints\": %d,\n\t\"serviceProxyHealthy\": %v\n}",
		k.ns, k.name, count, healthy)
}
