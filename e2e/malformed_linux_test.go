package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPrivMalformed sends malformed frames to a frontend from a raw socket
// in the client namespace: xdpgate counts every one by its nat reason and
// keeps forwarding.
func TestPrivMalformed(t *testing.T) {
	w := newWorld(t, 2, 1, 1)
	w.writeManifest(manifest(svc{name: "web4", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(1)}))
	w.start()
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)

	ipv4 := func(proto byte, totalLen int, l4 []byte) []byte {
		ip := make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, 64, proto
		binary.BigEndian.PutUint16(ip[2:], uint16(totalLen))
		copy(ip[12:], []byte{198, 18, 1, 2})
		copy(ip[16:], vip4.AsSlice())
		binary.BigEndian.PutUint16(ip[10:], checksum(ip))
		return append(ip, l4...)
	}
	ports := []byte{0x9c, 0x40, 0, 80} // 40000 -> 80
	tcp := func(doff byte) []byte {
		h := make([]byte, 20)
		copy(h, ports)
		h[12] = doff << 4
		h[13] = 0x02
		return h
	}
	udp := func(length int) []byte {
		h := make([]byte, 8)
		copy(h, ports)
		binary.BigEndian.PutUint16(h[4:], uint16(length))
		return h
	}
	tests := []struct {
		reason string
		ip     []byte
	}{
		{"tcp-truncated", ipv4(6, 24, ports)},
		{"tcp-data-offset", ipv4(6, 40, tcp(1))},
		{"ipv4-total-length", ipv4(6, 1000, tcp(5))},
		{"udp-length", ipv4(17, 28, udp(500))},
	}
	const each = 20
	fd := -1
	var ifindex int
	err := w.c.Do(func() error {
		ifi, err := net.InterfaceByName(w.cDev)
		if err != nil {
			return err
		}
		ifindex = ifi.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		return err
	})
	if err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}
	copy(to.Addr[:], w.gMAC[:])
	for _, tc := range tests {
		frame := append(append(append([]byte{}, w.gMAC[:]...), 2, 0, 0, 0, 0, 9), 0x08, 0x00)
		frame = append(frame, tc.ip...)
		for i := 0; i < each; i++ {
			if err := unix.Sendto(fd, frame, 0, to); err != nil {
				t.Fatalf("send %s frame: %v", tc.reason, err)
			}
		}
	}
	// Still forwarding.
	if _, err := w.tcpQuery(client4(1), ap(vip4, 80)); err != nil {
		t.Errorf("service after malformed frames: %v", err)
	}
	for _, tc := range tests {
		line := fmt.Sprintf(`xdpgate_pipeline_nat_drops_total{queue="0",reason="%s"} %d`, tc.reason, each)
		w.waitMetric(line, 5*time.Second)
	}
	if m := w.metrics(); !strings.Contains(m, `reason="parse_l4"`) || !strings.Contains(m, `reason="parse_ipv4"`) {
		t.Errorf("grouped drop reasons missing from xdpgate_drops_total:\n%.3000s", m)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// TestPrivTTLExpired: a datagram to a frontend with TTL 1 is answered with
// ICMP time exceeded from the gateway (the client's kernel reports
// EHOSTUNREACH on a socket with IP_RECVERR); with TTL 2 it is forwarded.
func TestPrivTTLExpired(t *testing.T) {
	w := newWorld(t, 1, 1, 1)
	w.writeManifest(manifest(svc{name: "web4", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(1)}))
	w.start()
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	for _, tc := range []struct {
		ttl     int
		wantErr bool
	}{{1, true}, {2, false}} {
		var conn *net.UDPConn
		err := w.c.Do(func() (err error) {
			conn, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(ap(client4(0), 0)), net.UDPAddrFromAddrPort(ap(vip4, 80)))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := conn.SyscallConn()
		rc.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, tc.ttl)
			unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVERR, 1)
		})
		conn.Write([]byte("who"))
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 128)
		_, err = conn.Read(buf)
		conn.Close()
		switch {
		case tc.wantErr && (err == nil || !strings.Contains(err.Error(), "no route to host")):
			t.Errorf("TTL %d: read = %v, want EHOSTUNREACH (ICMP time exceeded)", tc.ttl, err)
		case !tc.wantErr && err != nil:
			t.Errorf("TTL %d: read = %v, want the answer", tc.ttl, err)
		}
	}
	if v := metricValue(w.metrics(), `xdpgate_pipeline_packets_total{event="time_exceeded"`); v != 1 {
		t.Errorf("time_exceeded events = %v, want 1", v)
	}
}
