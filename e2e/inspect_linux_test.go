package e2e

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// stickyGateway runs a gateway with one ClientIP TCP service over two
// endpoints and an admin socket in a directory of its own (created by
// xdpgate), for three clients; it returns the world and the socket.
func stickyGateway(t *testing.T) (*world, string) {
	t.Helper()
	w := newWorld(t, 3, 2, 1)
	s := svc{name: "sticky", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(2), affinity: 300, withoutUDPPort: true}
	w.writeManifest(manifest(s))
	sock := filepath.Join(t.TempDir(), "run", "admin.sock")
	w.start("--admin-socket", sock)
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	return w, sock
}

// TestPrivInspectCapture runs a gateway with an admin socket, drives a few
// connections to a ClientIP service, then checks `xdpgate inspect ... -o
// json` and `xdpgate capture` against it.
func TestPrivInspectCapture(t *testing.T) {
	w, sock := stickyGateway(t)
	eps := map[netip.Addr]netip.Addr{}
	for i := 0; i < 3; i++ {
		r, err := w.tcpQuery(client4(i), ap(vip4, 80))
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		eps[client4(i)] = r.endpoint
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v, %v; want mode 0600", fi, err)
	}

	inspect := func(v any, args ...string) {
		t.Helper()
		cmd := exec.Command(xdpgateBinary(t), append(append([]string{"inspect"}, args...), "-o", "json", "--socket", sock)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("xdpgate inspect %v: %v: %s", args, err, stderr.String())
		}
		if err := json.Unmarshal(out, v); err != nil {
			t.Fatalf("inspect %v: decode %q: %v", args, out, err)
		}
	}
	var services struct {
		Services []struct {
			Namespace, Name        string
			Port                   uint16
			AffinityTimeoutSeconds uint32
			Endpoints              []struct {
				Addr  netip.AddrPort
				Ready bool
			}
		}
	}
	inspect(&services, "services")
	if len(services.Services) != 1 || services.Services[0].Name != "sticky" || services.Services[0].AffinityTimeoutSeconds != 300 ||
		len(services.Services[0].Endpoints) != 2 || !services.Services[0].Endpoints[0].Ready {
		t.Errorf("inspect services = %+v, want sticky with affinity 300 and 2 ready endpoints", services)
	}
	var ct struct {
		Flows []struct {
			Orig, Reply struct{ Src, Dst netip.AddrPort }
			Service     string
		}
		Matched int
	}
	inspect(&ct, "conntrack", "--host", client4(1).String())
	if ct.Matched != 1 || len(ct.Flows) != 1 || ct.Flows[0].Orig.Dst != ap(vip4, 80) || ct.Flows[0].Reply.Src != ap(eps[client4(1)], 8080) {
		t.Errorf("inspect conntrack --host %s = %+v, want one flow to %s reverse-NATed from %s:8080", client4(1), ct, ap(vip4, 80), eps[client4(1)])
	}
	var aff []struct {
		Client      netip.Addr
		Endpoint    string
		RemainingMs int64
	}
	inspect(&aff, "affinity", "--service", "e2e/sticky")
	if len(aff) != 3 {
		t.Errorf("inspect affinity = %+v, want 3 clients", aff)
	}
	for _, e := range aff {
		if e.Endpoint != ap(eps[e.Client], 8080).String() || e.RemainingMs <= 0 || e.RemainingMs > 300_000 {
			t.Errorf("affinity %s -> %s (%d ms left), want -> %s:8080", e.Client, e.Endpoint, e.RemainingMs, eps[e.Client])
		}
	}
	var stats struct {
		Queues   []struct{ RxFrames uint64 }
		Pipeline []struct{ NewFlows uint64 }
	}
	inspect(&stats, "stats")
	if len(stats.Queues) == 0 || len(stats.Pipeline) == 0 {
		t.Fatalf("inspect stats = %+v, want queues and pipeline", stats)
	}
	var newFlows uint64
	for _, p := range stats.Pipeline {
		newFlows += p.NewFlows
	}
	if newFlows < 4 { // waitTCP's connection(s) and the three queries
		t.Errorf("pipeline new flows = %d, want >= 4", newFlows)
	}

	// Capture 4 frames (pre and post of the SYN and of the next packet)
	// of one more connection.
	pcapPath := filepath.Join(t.TempDir(), "cap.pcap")
	cmd := exec.Command(xdpgateBinary(t), "capture", "--socket", sock, "--host", client4(2).String(), "-c", "4", "--duration", "20s", "-w", pcapPath)
	var capErr bytes.Buffer
	cmd.Stderr = &capErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var capRes error
	for i, finished := 0, false; i < 20 && !finished; i++ {
		w.tcpQuery(client4(2), ap(vip4, 80))
		select {
		case capRes = <-done:
			finished = true
		case <-time.After(500 * time.Millisecond):
		}
		if i == 19 {
			capRes = <-done // --duration bounds it
		}
	}
	if capRes != nil {
		t.Fatalf("xdpgate capture: %v: %s", capRes, capErr.String())
	}
	f, err := os.Open(pcapPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var sawPre, sawPost bool
	n := 0
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		n++
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil {
			t.Fatalf("record %d does not decode as IPv4/TCP", n)
		}
		dst := ap(netip.AddrFrom4([4]byte(ip.DstIP.To4())), int(tcp.DstPort))
		switch dst {
		case ap(vip4, 80):
			sawPre = true
		case ap(eps[client4(2)], 8080):
			sawPost = true
		}
	}
	if n != 4 || !sawPre || !sawPost {
		t.Errorf("pcap: %d records, original (to %s) %v, translated (to %s:8080) %v; want 4, both",
			n, ap(vip4, 80), sawPre, eps[client4(2)], sawPost)
	}
}
