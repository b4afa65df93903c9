//go:build linux

package testnet

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// Servers starts a TCP and a UDP server on ap inside ns; both stop at test
// cleanup. With identity false they echo. With identity true they answer
// "LOCAL PEER\n" (the server's address and the client address it sees, so
// a test can tell which endpoint answered and whether the source was
// translated); the TCP server then echoes until the client closes, so a
// test can check that an open connection keeps working.
func Servers(t testing.TB, ns *NS, ap netip.AddrPort, identity bool) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := ns.Do(func() (err error) {
		if ln, err = net.Listen("tcp", ap.String()); err != nil {
			return err
		}
		if pc, err = net.ListenPacket("udp", ap.String()); err != nil {
			ln.Close()
		}
		return err
	})
	if err != nil {
		t.Fatalf("servers on %s: %v", ap, err)
	}
	local := ap.Addr()
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); pc.Close(); wg.Wait() })
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(60 * time.Second))
				if identity {
					peer := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
					fmt.Fprintf(c, "%s %s\n", local, peer)
				}
				io.Copy(c, c)
			}()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if identity {
				peer := from.(*net.UDPAddr).AddrPort().Addr().Unmap()
				pc.WriteTo([]byte(fmt.Sprintf("%s %s\n", local, peer)), from)
				continue
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}
