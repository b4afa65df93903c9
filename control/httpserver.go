package control

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// httpLimits bounds what clients of the healthCheckNodePort, /healthz and
// metrics servers can hold. Load balancers depend on these answers, so a
// few thousand idle or slow connections must not stop them: every phase of
// a request has a deadline, headers are small, and the number of open
// connections is capped; at the cap, accepting a connection closes the
// oldest one that is idle or has not sent a request yet (or, if every
// connection is mid-request, the oldest one).
type httpLimits struct {
	// ReadHeaderTimeout bounds reading a request's headers, including the
	// wait for the first byte of a new connection's first request.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response (a metrics scrape included).
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (431 beyond).
	MaxHeaderBytes int
	// MaxConns caps the open connections per listener.
	MaxConns int
}

// defaultHTTPLimits are the limits of every HTTP server in this package.
// kube-proxy's health servers set none; load balancers' health checkers
// send one small request per interval (AWS and GCP: 5-30 s), and
// Prometheus' default scrape timeout is 10 s.
var defaultHTTPLimits = httpLimits{
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       10 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       60 * time.Second,
	MaxHeaderBytes:    16 << 10,
	MaxConns:          512,
}

// serve returns a server for h with the limits l and the listener ln
// wrapped to enforce l.MaxConns. Serve the server on the returned listener.
func (l httpLimits) serve(h http.Handler, ln net.Listener) (*http.Server, net.Listener) {
	g := &connGuard{Listener: ln, max: l.MaxConns, conns: make(map[net.Conn]*guardedConn)}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ConnState:         g.connState,
	}
	return srv, g
}

// connGuard is a listener that caps its open connections (max). mu guards
// conns and seq; the server's ConnState hook keeps each connection's state.
type connGuard struct {
	net.Listener
	max int

	mu    sync.Mutex
	seq   uint64
	conns map[net.Conn]*guardedConn
}

type guardedConn struct {
	seq   uint64 // accept order
	state http.ConnState
}

// Accept accepts a connection, first closing one at the cap (the oldest
// idle or new connection, else the oldest).
func (g *connGuard) Accept() (net.Conn, error) {
	c, err := g.Listener.Accept()
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.max > 0 && len(g.conns) >= g.max {
		var victim net.Conn
		var vc *guardedConn
		for k, v := range g.conns {
			waiting := v.state == http.StateNew || v.state == http.StateIdle
			vWaiting := vc != nil && (vc.state == http.StateNew || vc.state == http.StateIdle)
			if vc == nil || waiting && !vWaiting || waiting == vWaiting && v.seq < vc.seq {
				victim, vc = k, v
			}
		}
		_ = victim.Close() // the server's ConnState(StateClosed) finds it gone
		delete(g.conns, victim)
	}
	g.seq++
	g.conns[c] = &guardedConn{seq: g.seq, state: http.StateNew}
	return c, nil
}

// connState is the server's ConnState hook.
func (g *connGuard) connState(c net.Conn, s http.ConnState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch s {
	case http.StateHijacked, http.StateClosed:
		delete(g.conns, c)
	default:
		if v := g.conns[c]; v != nil {
			v.state = s
		}
	}
}

// open returns the number of open connections (tests).
func (g *connGuard) open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}
