//go:build linux

package testnet

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// ServerMode says how the servers of Servers answer.
type ServerMode int

// Server modes.
const (
	// Echo: they send back what they receive.
	Echo ServerMode = iota
	// Identity: they answer "LOCAL PEER\n" (the server's address and the
	// client address it sees, so a test can tell which endpoint answered
	// and whether the source was translated); the TCP server then echoes
	// until the client closes, so a test can check that an open
	// connection keeps working.
	Identity
	// Tagged: they answer every TCP line and every UDP datagram with
	// "LOCAL " and that line or datagram, so a test can tell which
	// endpoint answered each message of a long connection.
	Tagged
)

// Servers starts a TCP and a UDP server on ap inside ns, answering as mode
// says; both stop at test cleanup.
func Servers(t testing.TB, ns *NS, ap netip.AddrPort, mode ServerMode) {
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
				switch mode {
				case Identity:
					peer := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
					fmt.Fprintf(c, "%s %s\n", local, peer)
				case Tagged:
					for r := bufio.NewScanner(c); r.Scan(); {
						if _, err := fmt.Fprintf(c, "%s %s\n", local, r.Text()); err != nil {
							return
						}
					}
					return
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
			switch mode {
			case Identity:
				peer := from.(*net.UDPAddr).AddrPort().Addr().Unmap()
				pc.WriteTo([]byte(fmt.Sprintf("%s %s\n", local, peer)), from)
			case Tagged:
				pc.WriteTo([]byte(local.String()+" "+string(buf[:n])), from)
			default:
				pc.WriteTo(buf[:n], from)
			}
		}
	}()
}
