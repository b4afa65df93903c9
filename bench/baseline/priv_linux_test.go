package baseline

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/internal/testnet"
	"github.com/xdpgate/xdpgate/snapshot"
)

// probeTimeout bounds every connection attempt and reply.
const probeTimeout = 2 * time.Second

// TestPrivRenderedRulesetsAccepted checks that nft (check mode) and
// iptables-restore (test mode) accept the rendered rulesets inside a
// throw-away namespace, that Install can be applied twice in a row
// (idempotent re-apply), and that remove leaves nothing behind.
func TestPrivRenderedRulesetsAccepted(t *testing.T) {
	testnet.RequirePriv(t)
	s := testSnapshot(t, true)
	ns := testnet.NewNS(t)
	dir := t.TempDir()

	// The same services with a local-traffic detector (pod CIDRs) and
	// masqueradeAll, which add the short-circuit and ClusterIP masquerade
	// rules.
	detected := *s
	detected.ClusterCIDRs = []netip.Prefix{netip.MustParsePrefix("198.19.0.0/16"), netip.MustParsePrefix("198.19.128.0/17"), netip.MustParsePrefix("2001:2:0:1::/64")}
	masqAll := *s
	masqAll.MasqueradeAll = true
	for name, snap := range map[string]*snapshot.Snapshot{"plain": s, "detector": &detected, "masqueradeAll": &masqAll} {
		nft, err := RenderNFT(snap, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ipt, err := RenderIPTables(snap, Options{})
		if err != nil {
			t.Fatal(err)
		}
		nftFile, iptFile := filepath.Join(dir, name+".nft"), filepath.Join(dir, name+".ipt")
		for f, data := range map[string]string{nftFile: nft, iptFile: ipt} {
			if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := ns.Run("nft", "-c", "-f", nftFile); err != nil {
			t.Fatalf("%s: nft -c rejected the script: %v\n%s", name, err, out)
		}
		if out, err := ns.Run("iptables-restore", "--test", iptFile); err != nil {
			t.Fatalf("%s: iptables-restore --test rejected the input: %v\n%s", name, err, out)
		}
		switch name {
		case "detector":
			mustHave(t, lines(nft), 1, "ip saddr { 198.19.0.0/16, 198.19.128.0/17 } goto service-")
			// One per service port with endpoints.
			mustHave(t, lines(nft), 6, "ip saddr != { 198.19.0.0/16, 198.19.128.0/17 } jump mark-for-masquerade")
			mustHave(t, lines(ipt), 6, "! -s 198.19.0.0/16 -j KUBE-MARK-MASQ")
		case "masqueradeAll":
			mustHave(t, lines(nft), 1, "add rule ip kube-proxy service-"+nftServiceBase(servicePort(t, s, "spread", false), "tcp")+" ip daddr 198.18.4.2 tcp dport 80 jump mark-for-masquerade")
		}
	}
	backend, err := IPTablesBackend()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("iptables-restore backend: %s", backend)

	for _, k := range []Kind{NFTables, IPTables} {
		t.Run(k.String(), func(t *testing.T) {
			if _, err := Install(ns.Name, k, s, Options{}); err != nil {
				t.Fatalf("Install: %v", err)
			}
			remove, err := Install(ns.Name, k, s, Options{})
			if err != nil {
				t.Fatalf("second Install: %v", err)
			}
			if k == IPTables {
				// Re-apply must not duplicate the built-in chain jumps.
				save := ns.MustRun(t, "iptables-save", "-t", "nat")
				if n := strings.Count(save, "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"); n != 1 {
					t.Errorf("PREROUTING jumps after two Installs = %d, want 1\n%s", n, save)
				}
			}
			if err := remove(); err != nil {
				t.Fatalf("remove: %v", err)
			}
			assertClean(t, ns)
		})
	}
}

// assertClean fails t if any kube-proxy table, chain or jump is left in ns.
func assertClean(t *testing.T, ns *testnet.NS) {
	t.Helper()
	if out := ns.MustRun(t, "nft", "list", "tables"); strings.Contains(out, "kube-proxy") {
		t.Errorf("nft tables left after remove:\n%s", out)
	}
	if out := ns.MustRun(t, "iptables-save"); strings.Contains(out, "KUBE-") {
		t.Errorf("iptables chains left after remove:\n%s", out)
	}
}

// topo is client ns -- gateway ns -- backend ns.
type topo struct {
	client, gw, backend *testnet.NS
}

// clientSrc is the i-th additional client address (i >= 1): 198.18.64.0+i,
// a /32 on the client's loopback, routed to the client by the gateway.
func clientSrc(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, 64 + byte(i>>8), byte(i)})
}

// newTopo builds the three namespaces with extraClients additional client
// addresses (clientSrc(1) .. clientSrc(extraClients)).
func newTopo(t *testing.T, extraClients int) *topo {
	t.Helper()
	tp := &topo{client: testnet.NewNS(t), gw: testnet.NewNS(t), backend: testnet.NewNS(t)}
	cv := testnet.NewVeth(t, tp.client, "cl", tp.gw, "gwc", testnet.VethOpts{})
	bv := testnet.NewVeth(t, tp.gw, "gwb", tp.backend, "be", testnet.VethOpts{})
	tp.client.AddAddr(t, cv.AName, clientAddr+"/24")
	tp.gw.AddAddr(t, cv.BName, gwClientSide+"/24")
	tp.gw.AddAddr(t, bv.AName, gwBackendSide+"/24")
	for _, a := range backendAddrs {
		tp.backend.AddAddr(t, bv.BName, a+"/24")
	}
	tp.client.AddRoute(t, "198.18.2.0/23", gwClientSide) // backends and VIPs
	tp.client.AddRoute(t, "198.18.4.0/24", gwClientSide) // ClusterIPs
	tp.backend.AddRoute(t, "198.18.1.0/24", gwBackendSide)
	tp.backend.AddRoute(t, "198.18.64.0/18", gwBackendSide)
	tp.gw.AddRoute(t, "198.18.64.0/18", clientAddr)
	// A route for the VIPs, as a node's default route would be: traffic
	// that is not DNATed (no endpoints, source range refused) must reach
	// the forward hook to be rejected or dropped there, not fail routing.
	tp.gw.AddRoute(t, "198.18.3.0/24", backendAddrs[0])
	if extraClients > 0 {
		var batch strings.Builder
		for i := 1; i <= extraClients; i++ {
			a := clientSrc(i)
			if !testnet.InTestRange(a) || a.As4()[2] >= 128 {
				t.Fatalf("client address %s outside 198.18.64.0/18", a)
			}
			fmt.Fprintf(&batch, "addr add %s/32 dev lo\n", a)
		}
		f := filepath.Join(t.TempDir(), "addrs")
		if err := os.WriteFile(f, []byte(batch.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		tp.client.MustRun(t, "ip", "-batch", f)
	}
	return tp
}

// startBackends starts, in the backend namespace, TCP and UDP servers on
// every backend address, ports backendPort and udpBackend. Each answers
// "<its own address> <the peer's address>".
func startBackends(t *testing.T, ns *testnet.NS) {
	t.Helper()
	for _, a := range backendAddrs {
		addr := netip.MustParseAddr(a)
		testnet.Servers(t, ns, netip.AddrPortFrom(addr, backendPort), testnet.Identity)
		testnet.Servers(t, ns, netip.AddrPortFrom(addr, udpBackend), testnet.Identity)
	}
}

// reply is what a backend answered.
type reply struct{ backend, peer string }

func parseReply(s string) (reply, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return reply{}, fmt.Errorf("bad reply %q", s)
	}
	return reply{f[0], f[1]}, nil
}

// refusedTimeout bounds a connection attempt that is expected to fail (a
// drop shows as a timeout).
const refusedTimeout = 500 * time.Millisecond

// probeTCP connects from src (any when invalid) to dst and reads the reply.
// It must run inside the client namespace.
func probeTCP(src netip.Addr, dst string) (reply, error) {
	return probeTCPWithin(src, dst, probeTimeout)
}

func probeTCPWithin(src netip.Addr, dst string, timeout time.Duration) (reply, error) {
	d := net.Dialer{Timeout: timeout}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	c, err := d.Dial("tcp4", dst)
	if err != nil {
		return reply{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(probeTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return reply{}, fmt.Errorf("read from %s: %w", dst, err)
	}
	return parseReply(line)
}

// probeUDP sends one datagram to dst and reads the reply, inside the
// client namespace.
func probeUDP(dst string) (reply, error) {
	c, err := net.Dial("udp4", dst)
	if err != nil {
		return reply{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := c.Write([]byte("ping")); err != nil {
		return reply{}, err
	}
	buf := make([]byte, 128)
	n, err := c.Read(buf)
	if err != nil {
		return reply{}, fmt.Errorf("read from %s: %w", dst, err)
	}
	return parseReply(string(buf[:n]))
}

// probeN runs n TCP probes from src to dst in the client namespace.
func (tp *topo) probeN(t *testing.T, src netip.Addr, dst string, n int) []reply {
	t.Helper()
	var out []reply
	err := tp.client.Do(func() error {
		for range n {
			r, err := probeTCP(src, dst)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("probe %s from %v: %v", dst, src, err)
	}
	return out
}

func backends(rs []reply) map[string]int {
	m := make(map[string]int)
	for _, r := range rs {
		m[r.backend]++
	}
	return m
}

func sysctlValue(t *testing.T, ns *testnet.NS, key string) string {
	t.Helper()
	return strings.TrimSpace(ns.MustRun(t, "sysctl", "-n", key))
}

// TestPrivBaselines installs each kind on the gateway and sends real TCP
// and UDP traffic from the client namespace through it.
func TestPrivBaselines(t *testing.T) {
	testnet.RequirePriv(t)
	s := testSnapshot(t, false)
	for _, k := range []Kind{NFTables, IPTables} {
		t.Run(k.String(), func(t *testing.T) {
			tp := newTopo(t, 1)
			startBackends(t, tp.backend)
			if got := sysctlValue(t, tp.gw, "net.ipv4.ip_forward"); got != "0" {
				t.Fatalf("gateway ip_forward = %s before Install, want 0", got)
			}
			remove, err := Install(tp.gw.Name, k, s, Options{})
			if err != nil {
				t.Fatalf("Install: %v", err)
			}
			removed := false
			t.Cleanup(func() {
				if !removed {
					remove()
				}
			})
			if got := sysctlValue(t, tp.gw, "net.ipv4.ip_forward"); got != "1" {
				t.Errorf("gateway ip_forward = %s after Install, want 1", got)
			}
			var none netip.Addr
			affVIP := net.JoinHostPort(vipAffinity, "80")

			t.Run("affinity ClientIP pins one client to one endpoint", func(t *testing.T) {
				rs := tp.probeN(t, none, affVIP, 30)
				if b := backends(rs); len(b) != 1 {
					t.Errorf("backends for 30 connections from one client = %v, want exactly one", b)
				}
				// The NodePort of the same service port shares the
				// affinity state (same endpoint chains and lists/sets).
				np := tp.probeN(t, none, net.JoinHostPort(gwClientSide, strconv.Itoa(affNodePort)), 5)
				if b := backends(np); len(b) != 1 || b[rs[0].backend] != 5 {
					t.Errorf("NodePort backends = %v, want all on %s (the LoadBalancer IP's pick)", b, rs[0].backend)
				}
			})
			t.Run("externalTrafficPolicy Cluster masquerades", func(t *testing.T) {
				for _, r := range tp.probeN(t, none, affVIP, 3) {
					if r.peer != gwBackendSide {
						t.Errorf("backend %s saw peer %s, want the gateway %s", r.backend, r.peer, gwBackendSide)
					}
				}
			})
			t.Run("affinity None spreads", func(t *testing.T) {
				rs := tp.probeN(t, none, net.JoinHostPort(vipSpread, "80"), 30)
				if b := backends(rs); len(b) < 2 {
					t.Errorf("backends for 30 connections = %v, want more than one", b)
				}
			})
			t.Run("externalTrafficPolicy Local keeps the client address", func(t *testing.T) {
				for _, r := range tp.probeN(t, none, net.JoinHostPort(vipLocal, "80"), 5) {
					if r.peer != clientAddr {
						t.Errorf("backend %s saw peer %s, want the client %s", r.backend, r.peer, clientAddr)
					}
				}
			})
			t.Run("ClusterIP from outside", func(t *testing.T) {
				tp.probeN(t, none, "198.18.4.2:80", 3)
			})
			t.Run("UDP", func(t *testing.T) {
				err := tp.client.Do(func() error {
					for range 5 {
						r, err := probeUDP(net.JoinHostPort(vipUDP, "53"))
						if err != nil {
							return err
						}
						if !strings.HasPrefix(r.backend, "198.18.2.1") || r.peer != gwBackendSide {
							return fmt.Errorf("reply %+v, want a backend 198.18.2.1x seeing the gateway", r)
						}
					}
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			})
			t.Run("no endpoints rejects", func(t *testing.T) {
				err := tp.client.Do(func() error {
					_, err := probeTCPWithin(none, net.JoinHostPort(vipEmpty, "80"), refusedTimeout)
					return err
				})
				if !errors.Is(err, syscall.ECONNREFUSED) {
					t.Errorf("connect to a service without endpoints: %v, want connection refused", err)
				}
			})
			t.Run("loadBalancerSourceRanges", func(t *testing.T) {
				tp.probeN(t, none, net.JoinHostPort(vipFirewall, "80"), 2)
				err := tp.client.Do(func() error {
					_, err := probeTCPWithin(clientSrc(1), net.JoinHostPort(vipFirewall, "80"), refusedTimeout)
					return err
				})
				if err == nil {
					t.Errorf("connect from %s outside the source ranges succeeded, want it refused or dropped", clientSrc(1))
				}
			})

			removed = true
			if err := remove(); err != nil {
				t.Fatalf("remove: %v", err)
			}
			assertClean(t, tp.gw)
			if got := sysctlValue(t, tp.gw, "net.ipv4.ip_forward"); got != "0" {
				t.Errorf("gateway ip_forward = %s after remove, want 0 again", got)
			}
		})
	}
}

// TestPrivIPTablesRecentListLimit demonstrates the xt_recent list limit:
// more clients than ip_list_tot per endpoint each connect once to a
// two-endpoint ClientIP service; when the first clients connect again,
// some of them land on the other endpoint under iptables (their entry was
// evicted), and none do under nftables.
func TestPrivIPTablesRecentListLimit(t *testing.T) {
	testnet.RequirePriv(t)
	raw, err := os.ReadFile("/sys/module/xt_recent/parameters/ip_list_tot")
	if err != nil {
		t.Skipf("xt_recent list size unknown: %v", err)
	}
	listTot, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || listTot > 200 {
		t.Skipf("xt_recent ip_list_tot = %q; the test needs at most 200", raw)
	}
	// Both endpoint lists must overflow: about clients/2 sources each.
	clients := 2*listTot + 60
	const reprobe = 40
	s := testSnapshot(t, false)
	dst := net.JoinHostPort(vipTwo, "80")
	for _, k := range []Kind{NFTables, IPTables} {
		t.Run(k.String(), func(t *testing.T) {
			tp := newTopo(t, clients)
			startBackends(t, tp.backend)
			remove, err := Install(tp.gw.Name, k, s, Options{})
			if err != nil {
				t.Fatalf("Install: %v", err)
			}
			defer remove()
			first := make([]string, clients+1)
			for i := 1; i <= clients; i++ {
				first[i] = tp.probeN(t, clientSrc(i), dst, 1)[0].backend
			}
			moved := 0
			for i := 1; i <= reprobe; i++ {
				if again := tp.probeN(t, clientSrc(i), dst, 1)[0].backend; again != first[i] {
					moved++
				}
			}
			t.Logf("%s: %d of the first %d clients (of %d, list size %d) moved to another endpoint", k, moved, reprobe, clients, listTot)
			switch k {
			case NFTables:
				if moved != 0 {
					t.Errorf("nftables: %d clients lost affinity, want 0", moved)
				}
			case IPTables:
				if moved == 0 {
					t.Errorf("iptables: no client lost affinity, want some (xt_recent keeps %d entries per list)", listTot)
				}
			}
		})
	}
}
