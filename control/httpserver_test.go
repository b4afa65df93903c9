package control

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hcServer starts one healthCheckNodePort server on 127.0.0.1 and returns
// its address.
func hcServer(t *testing.T) (*serviceHealth, string) {
	t.Helper()
	h := newServiceHealth([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, func() bool { return true }, discardLogger())
	t.Cleanup(h.closeAll)
	port := freePort(t)
	h.sync([]HealthCheck{{Namespace: "ns", Name: "lb", Port: port, LocalEndpoints: 1}})
	return h, "127.0.0.1:" + strconv.Itoa(int(port))
}

// TestServiceHealthServerLimits: every phase of a request has a deadline
// and headers are bounded (kube-proxy's servers, and these before, set
// none).
func TestServiceHealthServerLimits(t *testing.T) {
	h, addr := hcServer(t)
	h.mu.Lock()
	for _, inst := range h.services {
		for _, s := range inst.servers {
			if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 ||
				s.MaxHeaderBytes <= 0 || s.MaxHeaderBytes > 64<<10 {
				t.Errorf("server limits: read header %v, read %v, write %v, idle %v, max header bytes %d; want all set, headers <= 64 KiB",
					s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout, s.MaxHeaderBytes)
			}
		}
	}
	h.mu.Unlock()
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 256<<10))
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("GET with 256 KiB of headers = %d, want 431", resp.StatusCode)
		}
	}
}

// TestServiceHealthServerIdleConnections holds more idle connections than
// the cap: a fresh request is answered, and the oldest idle connection was
// closed to make room (before, every connection was kept for ever).
func TestServiceHealthServerIdleConnections(t *testing.T) {
	_, addr := hcServer(t)
	const idle = 600 // above the cap (defaultHTTPLimits.MaxConns)
	conns := make([]net.Conn, 0, idle)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range idle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	// A fresh request on its own connection.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("fresh request with %d idle connections open: %v", idle, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("fresh request: status %d, want 200", resp.StatusCode)
	}
	// The first idle connection was closed to make room.
	_ = conns[0].SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := conns[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read on the oldest of %d idle connections = %v, want EOF (closed at the cap)", idle, err)
	}
}

// TestConnGuardPrefersIdle: at the cap, a connection mid-request is kept
// and an idle one closed.
func TestConnGuardPrefersIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &connGuard{Listener: ln, max: 2, conns: map[net.Conn]*guardedConn{}}
	defer g.Close()
	var server []net.Conn
	for i := range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := g.Accept()
		if err != nil {
			t.Fatal(err)
		}
		server = append(server, s)
		if i == 0 {
			g.connState(s, http.StateActive) // oldest, but mid-request
		}
	}
	if g.open() != 2 {
		t.Errorf("open = %d, want 2", g.open())
	}
	g.mu.Lock()
	_, active := g.conns[server[0]]
	_, idle := g.conns[server[1]]
	g.mu.Unlock()
	if !active || idle {
		t.Errorf("kept active %v, idle %v; want the active one kept and the idle one closed", active, idle)
	}
}
