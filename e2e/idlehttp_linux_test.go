package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// httpMaxConns is the connection cap of every HTTP server of the gateway
// (control/httpserver.go).
const httpMaxConns = 512

// TestPrivIdleHTTPClients: idle and silent clients on the gateway's HTTP
// ports (a Service's healthCheckNodePort, --healthz-bind-address and
// --metrics-bind-address) do not stop them answering.
//
// Silent: 16 connections per port that never send a byte are closed by
// the server (the 5 s header timeout; waited for up to 15 s).
//
// Idle: 2,000 keep-alive connections per port, opened one after the other,
// each after one answered request. The server keeps at most 512: each
// connection beyond closes the oldest idle one, so at least 1,488 read EOF,
// the newest ones are still open, and a fresh request is answered. Without
// a cap all 2,000 stay open.
func TestPrivIdleHTTPClients(t *testing.T) {
	w := newWorld(t, 1, 1, 1)
	w.writeManifest(manifest(svc{name: "local", family: "IPv4", clusterIP: vip4, lb: lb4, nodePort: 30080,
		etpLocal: true, healthCheckNP: 32000, endpoints: endpoints4(1), withoutUDPPort: true}))
	w.start()
	w.waitTCP(client4(0), ap(lb4, 80), 20*time.Second)

	type port struct {
		name, addr string
		idlePath   string // what the idle clients ask once
		check      func(resp string) error
	}
	status200 := func(resp string) error {
		if f := strings.Fields(resp); len(f) < 2 || f[1] != "200" {
			return fmt.Errorf("answer %.200q, want status 200", resp)
		}
		return nil
	}
	ports := []port{
		{"healthCheckNodePort", "127.0.0.1:32000", "/healthz", func(resp string) error {
			if err := status200(resp); err != nil {
				return err
			}
			if !strings.Contains(resp, `"localEndpoints": 1`) {
				return fmt.Errorf("answer %.300q, want localEndpoints 1", resp)
			}
			return nil
		}},
		{"healthz", "127.0.0.1:10256", "/healthz", status200},
		{"metrics", "127.0.0.1:10249", "/not-found", func(resp string) error {
			if err := status200(resp); err != nil {
				return err
			}
			if !strings.Contains(resp, "xdpgate_") {
				return fmt.Errorf("answer %.200q, want xdpgate metrics", resp)
			}
			return nil
		}},
	}
	freshPath := map[string]string{"healthCheckNodePort": "/healthz", "healthz": "/healthz", "metrics": "/metrics"}
	fresh := func(p port) error {
		var last error
		err := within(t.Context(), 10*time.Second, func() error {
			resp, err := w.httpGetErr("http://"+p.addr+freshPath[p.name], w.g)
			if err == nil {
				err = p.check(resp)
			}
			last = err
			return err
		})
		if err != nil {
			return last
		}
		return nil
	}
	for _, p := range ports {
		if err := fresh(p); err != nil {
			t.Fatalf("%s before the attack: %v", p.name, err)
		}
	}

	t.Run("silent", func(t *testing.T) {
		const n = 16
		var conns []net.Conn
		for _, p := range ports {
			for i := 0; i < n; i++ {
				c, err := w.dialGateway(p.addr)
				if err != nil {
					t.Fatalf("%s: connect: %v", p.name, err)
				}
				defer c.Close()
				conns = append(conns, c)
			}
		}
		closed := closedByServer(conns, time.Now().Add(15*time.Second))
		for i, p := range ports {
			k := 0
			for _, c := range closed[i*n : (i+1)*n] {
				if c {
					k++
				}
			}
			t.Logf("%s: %d of %d silent connections closed by the server", p.name, k, n)
			if k != n {
				t.Errorf("%s: %d of %d silent connections closed within 15 s, want all (header timeout)", p.name, k, n)
			}
		}
	})

	for _, p := range ports {
		t.Run("idle "+p.name, func(t *testing.T) {
			const n = 2000
			conns := make([]net.Conn, 0, n)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for i := 0; i < n; i++ {
				c, err := w.dialGateway(p.addr)
				if err == nil {
					err = keepAliveRequest(c, p.idlePath)
				}
				if err != nil {
					// Old connections are closed by now; new ones must work.
					t.Fatalf("%s: idle client %d: %v", p.name, i, err)
				}
				conns = append(conns, c)
			}
			closed := closedByServer(conns, time.Now().Add(2*time.Second))
			k, newestOpen := 0, 0
			for i, c := range closed {
				if c {
					k++
				} else if i >= n-httpMaxConns/2 {
					newestOpen++
				}
			}
			t.Logf("%s: %d of %d idle connections closed by the server; %d of the newest %d open", p.name, k, n, newestOpen, httpMaxConns/2)
			if k < n-httpMaxConns {
				t.Errorf("%s: %d of %d idle connections closed, want at least %d (at most %d kept)", p.name, k, n, n-httpMaxConns, httpMaxConns)
			}
			if newestOpen != httpMaxConns/2 {
				t.Errorf("%s: %d of the newest %d idle connections open, want all (the oldest are closed first)", p.name, newestOpen, httpMaxConns/2)
			}
			if err := fresh(p); err != nil {
				t.Errorf("%s: fresh request beside %d idle connections: %v", p.name, n-k, err)
			}
		})
	}
}

// dialGateway connects to addr inside the gateway namespace.
func (w *world) dialGateway(addr string) (c net.Conn, err error) {
	err = w.g.Do(func() error {
		c, err = net.DialTimeout("tcp", addr, 3*time.Second)
		return err
	})
	return c, err
}

// keepAliveRequest sends one HTTP/1.1 request on c and reads the whole
// answer, leaving the connection open and idle.
func keepAliveRequest(c net.Conn, path string) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.Close {
		return errors.New("server closed the keep-alive connection after the answer")
	}
	if br.Buffered() != 0 {
		return fmt.Errorf("%d unexpected bytes after the answer", br.Buffered())
	}
	return nil
}

// closedByServer reads every connection until deadline and reports which
// ones the server closed (EOF or reset) rather than left open.
func closedByServer(conns []net.Conn, deadline time.Time) []bool {
	closed := make([]bool, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(deadline)
			_, err := c.Read(make([]byte, 1))
			closed[i] = err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
		}()
	}
	wg.Wait()
	return closed
}
