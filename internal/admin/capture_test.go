package admin

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/pipeline"
)

// allHops resolves every destination on interface 2.
type allHops struct{}

func (allHops) Lookup(dst netip.Addr) (dataplane.Hop, dataplane.LookupStatus) {
	return dataplane.Hop{Ifindex: 2, SrcMAC: [6]byte{2, 0, 0, 0, 0, 1}, DstMAC: [6]byte{2, 0, 0, 0, 0, 2},
		Src: netip.MustParseAddr("198.18.0.1"), MTU: 1500}, dataplane.LookupOK
}

func synFrame(t *testing.T, src netip.Addr, sport uint16, dst netip.Addr, dport uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAdminCapture runs `xdpgate capture --service default/web -c 2`
// against an admin socket serving a real Pipeline, feeds the pipeline SYNs
// to the web service and to another address, and decodes the pcap: the
// original SYN (pre) then the translated one (post).
func TestAdminCapture(t *testing.T) {
	src := testSource(t)
	pl, err := pipeline.New(pipeline.Config{Conntrack: src.Conntrack, Affinity: src.Affinity,
		Hops: allHops{}, NumQueues: 1, Now: src.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pl.Publish(src.Snapshot())
	src.StartCapture = pl.StartCapture
	path := filepath.Join(t.TempDir(), "admin.sock")
	a, err := Start(path, Handler(src), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	out := filepath.Join(t.TempDir(), "cap.pcap")
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- exitCode(Capture, []string{"--socket", path, "--service", "default/web", "-c", "2", "--point", "both", "-w", out}, &bytes.Buffer{}, &errb)
	}()
	client := netip.MustParseAddr("198.18.0.50")
	other := synFrame(t, client, 999, netip.MustParseAddr("198.18.100.2"), 53) // not the web service
	code := -1
	for i := 0; i < 1000 && code < 0; i++ {
		frames := []dataplane.Frame{mkFrame(other), mkFrame(synFrame(t, client, uint16(10000+i), testVIP, 80))}
		pl.Process(&dataplane.Queue{Index: 0, Ifindex: 2}, frames)
		select {
		case code = <-done:
		case <-time.After(10 * time.Millisecond):
		}
	}
	if code != 0 {
		t.Fatalf("capture exit = %d, stderr %q", code, errb.String())
	}
	if !strings.Contains(errb.String(), "2 frames captured") {
		t.Errorf("capture stderr = %q, want 2 frames captured", errb.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var dsts []netip.AddrPort
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil {
			t.Fatalf("pcap record does not decode as IPv4/TCP: %v", p)
		}
		a, _ := netip.AddrFromSlice(ip.DstIP)
		dsts = append(dsts, netip.AddrPortFrom(a, uint16(tcp.DstPort)))
	}
	want := []netip.AddrPort{netip.AddrPortFrom(testVIP, 80), netip.AddrPortFrom(testEP1, 8080)}
	if len(dsts) != 2 || dsts[0] != want[0] || dsts[1] != want[1] {
		t.Errorf("captured destinations = %v, want %v (pre, then post)", dsts, want)
	}
	// The server stopped the session before the client saw the end of
	// the stream: a new one may start.
	c, err := pl.StartCapture(pipeline.CaptureConfig{})
	if err != nil {
		t.Fatalf("StartCapture after the capture ended: %v", err)
	}
	c.Stop()
}

func mkFrame(b []byte) dataplane.Frame {
	buf := make([]byte, 2048)
	copy(buf[256:], b)
	return dataplane.Frame{Buf: buf, Off: 256, Len: len(b)}
}

func TestParseCaptureFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-w", "x.pcap"}, true},
		{[]string{"-w", "-", "--point", "pre", "--host", "198.18.0.1", "--port", "80", "-c", "5", "--duration", "3s"}, true},
		{nil, false},
		{[]string{"-w", "x", "--point", "mid"}, false},
		{[]string{"-w", "x", "--port", "70000"}, false},
		{[]string{"-w", "x", "-c", "-1"}, false},
		{[]string{"-w", "x", "extra"}, false},
	} {
		_, err := parseCaptureFlags(tc.args, &bytes.Buffer{})
		if (err == nil) != tc.ok {
			t.Errorf("parseCaptureFlags(%q) error = %v, want ok %t", tc.args, err, tc.ok)
		}
	}
}
