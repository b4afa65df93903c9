package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// Bad or hostile objects: a Service on the node's own address, two
// Services on one frontend, a manifest read while it is written, another
// tool's XDP program on a managed interface.

// withPort moves a test Service's ports from 80 to port.
func withPort(yaml string, port int) string {
	return strings.ReplaceAll(yaml, "    port: 80\n", fmt.Sprintf("    port: %d\n", port))
}

// withAge gives a test Service a creationTimestamp and a UID.
func withAge(yaml, created, uid string) string {
	return strings.Replace(yaml, "  namespace: e2e\nspec:",
		fmt.Sprintf("  namespace: e2e\n  creationTimestamp: %q\n  uid: %s\nspec:", created, uid), 1)
}

// xdpgateLog returns the gateway's log so far.
func (w *world) xdpgateLog() string {
	b, err := os.ReadFile(w.logPath)
	if err != nil {
		w.t.Fatal(err)
	}
	return string(b)
}

// TestPrivExternalIPOnNodeAddress: a Service whose externalIP is the
// gateway's own address, on the port of a server of the gateway (an sshd),
// does not take that port over: the host's server still answers, the
// Service's other externalIP works, and the refusal is logged (naming the
// Service and the address) and counted.
func TestPrivExternalIPOnNodeAddress(t *testing.T) {
	const sshPort = 22
	w := newWorld(t, 1, 1, 1)
	testnet.Servers(t, w.g, ap(gwClientSide4, sshPort), testnet.Identity) // the "sshd" of the gateway
	s := svc{name: "hijack", family: "IPv4", clusterIP: vip4, externalIP: gwClientSide4, endpoints: endpoints4(1), withoutUDPPort: true}
	y := withPort(s.yaml(), sshPort)
	y = strings.Replace(y, fmt.Sprintf("externalIPs: [%s]", gwClientSide4), fmt.Sprintf("externalIPs: [%s, %s]", gwClientSide4, ext4), 1)
	w.writeManifest(y)
	w.start()
	if r := w.waitTCP(client4(0), ap(ext4, sshPort), 20*time.Second); r.endpoint != endpoint4(0) {
		t.Errorf("the Service's other externalIP %s answered from %s, want the endpoint %s", ap(ext4, sshPort), r.endpoint, endpoint4(0))
	}
	w.waitMetric(`xdpgate_snapshot_refused_frontends{reason="node_address"} 1`, 10*time.Second)
	for i := 0; i < 3; i++ {
		r, err := w.tcpQuery(client4(0), ap(gwClientSide4, sshPort))
		if err != nil {
			t.Fatalf("TCP to the gateway's own %s: %v", ap(gwClientSide4, sshPort), err)
		}
		if r.endpoint != gwClientSide4 {
			t.Fatalf("TCP to the gateway's own %s answered by %s, want the gateway's server (the Service must not take it)", ap(gwClientSide4, sshPort), r.endpoint)
		}
	}
	log := w.xdpgateLog()
	if !strings.Contains(log, "Service e2e/hijack: spec.externalIPs[0]: node address refused: "+gwClientSide4.String()) {
		t.Errorf("log lacks the refusal naming e2e/hijack, spec.externalIPs[0] and %s", gwClientSide4)
	}
}

// TestPrivFrontendConflictOlderWins: a newer Service claiming an existing
// Service's externalIP and port does not take its traffic, even though its
// name sorts first; the conflict is counted.
func TestPrivFrontendConflictOlderWins(t *testing.T) {
	w := newWorld(t, 1, 2, 1)
	old := svc{name: "z-old", family: "IPv4", clusterIP: vip4, externalIP: ext4, endpoints: []netip.Addr{endpoint4(0)}, withoutUDPPort: true}
	newer := svc{name: "a-new", family: "IPv4", clusterIP: vipNo, externalIP: ext4, endpoints: []netip.Addr{endpoint4(1)}, withoutUDPPort: true}
	oldY := withAge(old.yaml(), "2026-01-01T00:00:00Z", "8a0c5a0e-0000-4000-8000-000000000001")
	newY := withAge(newer.yaml(), "2026-06-01T00:00:00Z", "0a0c5a0e-0000-4000-8000-000000000002")
	w.writeManifest(oldY)
	w.start()
	if r := w.waitTCP(client4(0), ap(ext4, 80), 20*time.Second); r.endpoint != endpoint4(0) {
		t.Fatalf("externalIP served by %s, want z-old's endpoint %s", r.endpoint, endpoint4(0))
	}
	w.writeManifest(newY + "---\n" + oldY)
	w.waitMetric(`xdpgate_snapshot_refused_frontends{reason="conflict"} 1`, 10*time.Second)
	w.waitTCP(client4(0), ap(vipNo, 80), 10*time.Second) // a-new is programmed (its ClusterIP)
	for i := 0; i < 5; i++ {
		r, err := w.tcpQuery(client4(0), ap(ext4, 80))
		if err != nil {
			t.Fatalf("TCP to the shared externalIP: %v", err)
		}
		if r.endpoint != endpoint4(0) {
			t.Fatalf("shared externalIP served by %s, want the older z-old's endpoint %s", r.endpoint, endpoint4(0))
		}
	}
	if log := w.xdpgateLog(); !strings.Contains(log, "Service e2e/a-new: spec.externalIPs: conflict") || !strings.Contains(log, "kept by Service e2e/z-old") {
		t.Errorf("log lacks the conflict naming e2e/a-new and e2e/z-old")
	}
}

// TestPrivManifestRewrittenInPlace: the manifest is truncated and written
// again in pieces, pausing longer than the poll interval with the file
// empty, cut inside a line and cut inside a document. The Service keeps
// answering throughout and keeps its ID (its clients keep their affinity
// although the new endpoint list would move some of them); an explicit
// empty List then removes everything.
func TestPrivManifestRewrittenInPlace(t *testing.T) {
	const nClients = 24
	w := newWorld(t, nClients, 4, 1)
	s := svc{name: "sticky", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(3), affinity: 600, withoutUDPPort: true}
	w.writeManifest(manifest(s))
	w.start()
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	first := make([]netip.Addr, nClients)
	check := func(when string) {
		t.Helper()
		for i := range first {
			r, err := w.tcpQuery(client4(i), ap(vip4, 80))
			if err != nil {
				t.Fatalf("%s: client %s: %v", when, client4(i), err)
			}
			if !first[i].IsValid() {
				first[i] = r.endpoint
			} else if r.endpoint != first[i] {
				t.Errorf("%s: client %s moved from %s to %s (affinity lost)", when, client4(i), first[i], r.endpoint)
			}
		}
	}
	check("before")

	// The new content adds a fourth endpoint: Maglev alone would move
	// about a quarter of the clients to it.
	s.endpoints = endpoints4(4)
	final := manifest(s)
	cuts := []struct {
		what string
		at   int
	}{
		{"empty", 0},
		{"cut inside a line", strings.Index(final, "8080\n") + 2},
		{"cut inside the EndpointSlice's header", strings.Index(final, "metadata:\n  name: sticky-1")},
		{"cut inside the last endpoint's address", strings.LastIndex(final, endpoint4(3).String()) + 4},
	}
	f, err := os.OpenFile(w.manifest, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	written := 0
	for _, c := range cuts {
		if _, err := f.WriteString(final[written:c.at]); err != nil {
			t.Fatal(err)
		}
		written = c.at
		time.Sleep(1500 * time.Millisecond) // longer than the 1 s poll interval
		w.alive()
		check("manifest " + c.what)
	}
	if _, err := f.WriteString(final[written:]); err != nil {
		t.Fatal(err)
	}
	w.waitMetric("xdpgate_snapshot_endpoints 4", 10*time.Second)
	check("after the rewrite")
	if log := w.xdpgateLog(); !strings.Contains(log, "invalid manifest; keeping last good state") {
		t.Errorf("log lacks the rejection of the incomplete file")
	}

	// An explicit empty list removes everything.
	w.writeManifest("apiVersion: v1\nkind: List\nitems: []\n")
	w.waitMetric("xdpgate_snapshot_services 0", 10*time.Second)
	if r, err := w.tcpQueryTimeout(client4(0), ap(vip4, 80), time.Second); err == nil {
		t.Errorf("after the empty List: the removed Service still answered (%v)", r)
	}
}

// TestPrivForeignXDPProgram: with another tool's XDP program on a managed
// interface, `xdpgate run` refuses to start, naming the program, and exits
// non-zero leaving it in place; with --xdp-replace-foreign it replaces it
// and serves.
func TestPrivForeignXDPProgram(t *testing.T) {
	w := newWorld(t, 1, 1, 1)
	w.writeManifest(manifest(svc{name: "web4", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(1), withoutUDPPort: true}))
	dev := w.managed[0]
	var ifindex int
	if err := w.g.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err == nil {
			ifindex = l.Attrs().Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	prog := testnet.AttachXDP(t, w.g, ifindex, testnet.Return(2)) // XDP_PASS, held by a bpf_link
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", w.g.Name, xdpgateBinary(t), "run",
		"--interfaces", strings.Join(w.managed, ","), "--manifests", w.manifest, "--node-name", "gw",
		"--metrics-bind-address", "off", "--healthz-bind-address", "off", "--admin-socket", "off",
		"--conntrack-max", "65536", "--affinity-max", "65536")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("xdpgate run with a foreign XDP program on %s = %v, want a non-zero exit\n%s", dev, err, out.String())
	}
	for _, want := range []string{dev, fmt.Sprintf("XDP program id %d", id), "native mode", "--xdp-replace-foreign"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("xdpgate run output lacks %q:\n%s", want, out.String())
		}
	}
	var still uint32
	if err := w.g.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err == nil && l.Attrs().Xdp != nil {
			still = l.Attrs().Xdp.ProgId
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if still != uint32(id) {
		t.Errorf("after the refusal %s has program %d, want the foreign %d left in place", dev, still, id)
	}
	if t.Failed() {
		return
	}

	w.start("--xdp-replace-foreign")
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)
	if log := w.xdpgateLog(); !strings.Contains(log, "replaced foreign XDP program") {
		t.Errorf("log lacks the replacement of the foreign program")
	}
}
