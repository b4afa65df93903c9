package baseline

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// TestChainNameHashes checks the names against kube-proxy's own unit test
// expectations for ns1/svc1 port p80 with endpoint 10.180.0.1:80 (names
// only; no traffic uses these addresses).
func TestChainNameHashes(t *testing.T) {
	sp := &snapshot.ServicePort{Namespace: "ns1", Name: "svc1", PortName: "p80", Protocol: nat.ProtoTCP, Port: 80}
	ep := &snapshot.Endpoint{Addr: netip.MustParseAddr("10.180.0.1"), Port: 80}
	v := &portView{sp: sp, proto: "tcp", name: servicePortName(sp)}
	svc, svl, ext, fw := iptChainNames(v)
	for _, tc := range []struct{ name, got, want string }{
		{"iptables service", svc, "KUBE-SVC-XPGD46QRK7WJZT7O"},
		{"iptables local", svl, "KUBE-SVL-XPGD46QRK7WJZT7O"},
		{"iptables external", ext, "KUBE-EXT-XPGD46QRK7WJZT7O"},
		{"iptables firewall", fw, "KUBE-FW-XPGD46QRK7WJZT7O"},
		{"iptables endpoint", iptEndpointChain(v, ep), "KUBE-SEP-SXIVWICOYRO3J4NJ"},
		{"nftables service", nftServiceBase(sp, "tcp"), "ULMVA6XW-ns1/svc1/tcp/p80"},
		{"nftables endpoint", nftEndpointBase(sp, "tcp", ep), "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("name = %s, want %s", tc.got, tc.want)
			}
		})
	}
	long := strings.Repeat("x", 300)
	if got := nftHashAndTruncate(long); len(got) != nftNameBaseMax || !strings.HasSuffix(got, "...") {
		t.Errorf("nftHashAndTruncate(300 chars) = %d chars %q..., want %d ending in ...", len(got), got[:20], nftNameBaseMax)
	}
}

// names returns the nftables chain and set names of a service port.
func nftNames(sp *snapshot.ServicePort) (base string, eps []string) {
	base = nftServiceBase(sp, "tcp")
	for i := range sp.Endpoints {
		eps = append(eps, nftEndpointBase(sp, "tcp", &sp.Endpoints[i]))
	}
	return base, eps
}

func TestRenderNFTShape(t *testing.T) {
	s := testSnapshot(t, true)
	out, err := RenderNFT(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ls := lines(out)
	// Idempotent re-apply: both tables are deleted first.
	wantHead := []string{"add table ip kube-proxy", "delete table ip kube-proxy", "add table ip6 kube-proxy", "delete table ip6 kube-proxy"}
	if len(ls) < 4 || quoteList(ls[:4]) != quoteList(wantHead) {
		t.Fatalf("script starts with %q, want %q", ls[:min(4, len(ls))], wantHead)
	}
	mustHave(t, ls, 1, `add table ip kube-proxy { comment "rules for kube-proxy" ; }`)
	mustHave(t, ls, 1, `add table ip6 kube-proxy { comment "rules for kube-proxy" ; }`)
	mustHave(t, ls, 1, "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority dstnat ; }")
	mustHave(t, ls, 1, "add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority srcnat ; }")
	mustHave(t, ls, 1, "add rule ip kube-proxy nat-prerouting jump services")
	mustHave(t, ls, 1, "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips")
	mustHave(t, ls, 1, "add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports")
	mustHave(t, ls, 1, "add element ip kube-proxy nodeport-ips { 198.18.1.1, 198.18.2.1 }")

	// Masquerading through the mark.
	mustHave(t, ls, 1, "add rule ip kube-proxy mark-for-masquerade mark set mark or 0x00004000")
	mustHave(t, ls, 1, "add rule ip kube-proxy masquerading mark and 0x00004000 == 0 return")
	mustHave(t, ls, 1, "add rule ip kube-proxy masquerading mark set mark xor 0x00004000")
	mustHave(t, ls, 1, "add rule ip kube-proxy masquerading masquerade fully-random")

	// The affinity service: LB IP and NodePort go to its external chain,
	// which masquerades (ETP Cluster) and goes to the service chain; the
	// service chain checks three affinity sets, then picks among 3.
	aff := servicePort(t, s, "aff", false)
	base, eps := nftNames(aff)
	if base != nftHashAndTruncate("bench/aff/tcp/p") {
		t.Errorf("service base = %s, want the hash of bench/aff/tcp/p", base)
	}
	mustHave(t, ls, 1, "add element ip kube-proxy service-ips { 198.18.3.1 . tcp . 80 : goto external-"+base+" }")
	mustHave(t, ls, 1, "add element ip kube-proxy service-ips { 198.18.4.1 . tcp . 80 : goto service-"+base+" }")
	mustHave(t, ls, 1, fmt.Sprintf("add element ip kube-proxy service-nodeports { tcp . %d : goto external-%s }", affNodePort, base))
	mustHave(t, ls, 1, "add rule ip kube-proxy external-"+base+" jump mark-for-masquerade")
	mustHave(t, ls, 1, "add rule ip kube-proxy external-"+base+" goto service-"+base)
	mustHave(t, ls, 1, fmt.Sprintf("add rule ip kube-proxy service-%s numgen random mod 3 vmap { 0 : goto endpoint-%s, 1 : goto endpoint-%s, 2 : goto endpoint-%s }",
		base, eps[0], eps[1], eps[2]))
	for i, e := range eps {
		mustHave(t, ls, 1, fmt.Sprintf("add set ip kube-proxy affinity-%s { type ipv4_addr ; flags dynamic,timeout ; timeout %ds ; }", e, affinityTTL))
		mustHave(t, ls, 1, fmt.Sprintf("add rule ip kube-proxy service-%s ip saddr @affinity-%s goto endpoint-%s", base, e, e))
		mustHave(t, ls, 1, fmt.Sprintf("add rule ip kube-proxy endpoint-%s ip saddr %s jump mark-for-masquerade", e, backendAddrs[i]))
		mustHave(t, ls, 1, fmt.Sprintf("add rule ip kube-proxy endpoint-%s update @affinity-%s { ip saddr }", e, e))
		mustHave(t, ls, 1, fmt.Sprintf("add rule ip kube-proxy endpoint-%s meta l4proto tcp dnat to %s:%d", e, backendAddrs[i], backendPort))
	}
	// The lookup comes before the random choice.
	if strings.Index(out, "ip saddr @affinity-"+eps[0]) > strings.Index(out, "service-"+base+" numgen") {
		t.Errorf("affinity lookup after the numgen rule in service-%s", base)
	}

	// No affinity: no sets, no update.
	spread := servicePort(t, s, "spread", false)
	sbase, seps := nftNames(spread)
	mustHave(t, ls, 0, "affinity-"+seps[0])
	mustHave(t, ls, 1, "service-"+sbase+" numgen random mod 3 vmap")

	// ETP Local: the external chain only short-circuits local traffic,
	// never masquerades the rest, and goes to the local chain.
	local := servicePort(t, s, "local", false)
	lbase, _ := nftNames(local)
	mustHave(t, ls, 1, "add element ip kube-proxy service-ips { 198.18.3.3 . tcp . 80 : goto external-"+lbase+" }")
	mustHave(t, ls, 1, "add rule ip kube-proxy external-"+lbase+" fib saddr type local jump mark-for-masquerade")
	mustHave(t, ls, 0, "add rule ip kube-proxy external-"+lbase+" jump mark-for-masquerade")
	mustHave(t, ls, 1, "add rule ip kube-proxy external-"+lbase+" goto local-"+lbase)
	mustHave(t, ls, 1, "add rule ip kube-proxy local-"+lbase+" numgen random mod 3 vmap")

	// No endpoints: rejected through the no-endpoint-services map.
	mustHave(t, ls, 1, `add element ip kube-proxy no-endpoint-services { 198.18.4.5 . tcp . 80 comment "bench/empty:p" : goto reject-chain }`)
	mustHave(t, ls, 1, `add element ip kube-proxy no-endpoint-services { 198.18.3.5 . tcp . 80 comment "bench/empty:p" : goto reject-chain }`)
	mustHave(t, ls, 1, "add rule ip kube-proxy reject-chain reject")
	mustHave(t, ls, 0, "service-ips { 198.18.3.5 ")

	// loadBalancerSourceRanges.
	fw := servicePort(t, s, "fw", false)
	fbase, _ := nftNames(fw)
	mustHave(t, ls, 1, `add element ip kube-proxy firewall-ips { 198.18.3.6 . tcp . 80 comment "bench/fw:p" : goto firewall-`+fbase+" }")
	mustHave(t, ls, 1, "add rule ip kube-proxy firewall-"+fbase+" ip saddr != { 198.18.1.0/24, 198.18.3.6 } drop")

	// UDP.
	mustHave(t, ls, 1, "add element ip kube-proxy service-ips { 198.18.3.4 . udp . 53 : goto external-")
	mustHave(t, ls, 3, "meta l4proto udp dnat to 198.18.2.1")

	// IPv6 in its own table.
	six := servicePort(t, s, "six", true)
	xbase, xeps := nftNames(six)
	mustHave(t, ls, 1, "add element ip6 kube-proxy service-ips { 2001:2:0:3::1 . tcp . 80 : goto external-"+xbase+" }")
	mustHave(t, ls, 1, fmt.Sprintf("add set ip6 kube-proxy affinity-%s { type ipv6_addr ; flags dynamic,timeout ; timeout %ds ; }", xeps[0], affinityTTL))
	mustHave(t, ls, 1, fmt.Sprintf("add rule ip6 kube-proxy endpoint-%s update @affinity-%s { ip6 saddr }", xeps[0], xeps[0]))
	mustHave(t, ls, 1, fmt.Sprintf("add rule ip6 kube-proxy endpoint-%s meta l4proto tcp dnat to [2001:2:0:2::10]:%d", xeps[0], backendPort))
	if !strings.Contains(xeps[0], "__2001.2.0.2..10/8080") {
		t.Errorf("IPv6 endpoint base %s, want colons replaced by dots", xeps[0])
	}

	// A different mark.
	out2, err := RenderNFT(s, Options{MasqueradeMark: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	mustHave(t, lines(out2), 1, "add rule ip kube-proxy mark-for-masquerade mark set mark or 0x00100000")
}

func TestRenderNFTNoIPv6Table(t *testing.T) {
	out, err := RenderNFT(testSnapshot(t, false), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ls := lines(out)
	mustHave(t, ls, 0, "add chain ip6 ")
	mustHave(t, ls, 1, "delete table ip6 kube-proxy") // stale ip6 table is still removed
}

func TestRenderIPTablesShape(t *testing.T) {
	s := testSnapshot(t, true)
	out, err := RenderIPTables(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ls := lines(out)
	if ls[0] != "*filter" || ls[len(ls)-1] != "COMMIT" || count(ls, "*nat") != 1 || count(ls, "COMMIT") != 2 {
		t.Fatalf("not a filter+nat restore file:\n%s", out)
	}
	mustHave(t, ls, 0, "2001:2:")

	// Built-in chain jumps and masquerading.
	mustHave(t, ls, 1, `-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`)
	mustHave(t, ls, 1, `-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING`)
	mustHave(t, ls, 1, `-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`)
	mustHave(t, ls, 1, "-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000")
	mustHave(t, ls, 1, "-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN")
	mustHave(t, ls, 1, "-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000")
	mustHave(t, ls, 1, `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`)

	aff := servicePort(t, s, "aff", false)
	v, err := newView(aff)
	if err != nil {
		t.Fatal(err)
	}
	svc, _, ext, _ := iptChainNames(&v)
	if want := "KUBE-SVC-" + hash16("bench/aff:ptcp"); svc != want {
		t.Errorf("service chain = %s, want %s", svc, want)
	}
	mustHave(t, ls, 1, `-A KUBE-SERVICES -m comment --comment "bench/aff:p loadbalancer IP" -m tcp -p tcp -d 198.18.3.1 --dport 80 -j `+ext)
	mustHave(t, ls, 1, `-A KUBE-SERVICES -m comment --comment "bench/aff:p cluster IP" -m tcp -p tcp -d 198.18.4.1 --dport 80 -j `+svc)
	mustHave(t, ls, 1, fmt.Sprintf("-A KUBE-NODEPORTS -m comment --comment bench/aff:p -m tcp -p tcp --dport %d -j %s", affNodePort, ext))
	mustHave(t, ls, 1, `-A `+ext+` -m comment --comment "masquerade traffic for bench/aff:p external destinations" -j KUBE-MARK-MASQ`)
	mustHave(t, ls, 1, "-A "+ext+" -j "+svc)
	probs := []string{" --probability 0.3333333333 ", " --probability 0.5000000000 ", ""}
	for i := range aff.Endpoints {
		sep := iptEndpointChain(&v, &aff.Endpoints[i])
		ap := fmt.Sprintf("%s:%d", backendAddrs[i], backendPort)
		mustHave(t, ls, 1, fmt.Sprintf(`-A %s -m comment --comment "bench/aff:p -> %s" -m recent --name %s --rcheck --seconds %d --reap -j %s`, svc, ap, sep, affinityTTL, sep))
		if probs[i] != "" {
			mustHave(t, ls, 1, fmt.Sprintf(`-A %s -m comment --comment "bench/aff:p -> %s" -m statistic --mode random%s-j %s`, svc, ap, probs[i], sep))
		} else {
			mustHave(t, ls, 1, fmt.Sprintf(`-A %s -m comment --comment "bench/aff:p -> %s" -j %s`, svc, ap, sep))
		}
		mustHave(t, ls, 1, fmt.Sprintf("-A %s -m comment --comment bench/aff:p -s %s -j KUBE-MARK-MASQ", sep, backendAddrs[i]))
		mustHave(t, ls, 1, fmt.Sprintf("-A %s -m comment --comment bench/aff:p -m recent --name %s --set -m tcp -p tcp -j DNAT --to-destination %s", sep, sep, ap))
		mustHave(t, ls, 1, ":"+sep+" - [0:0]")
	}
	// Affinity checks come first.
	if strings.Index(out, "--rcheck") > strings.Index(out, "--probability") {
		t.Error("recent --rcheck rules after the statistic rules")
	}

	// ETP Local: KUBE-EXT only handles LOCAL sources, then KUBE-SVL.
	lv, _ := newView(servicePort(t, s, "local", false))
	lsvc, lsvl, lext, _ := iptChainNames(&lv)
	mustHave(t, ls, 1, "-A "+lext+` -m comment --comment "masquerade LOCAL traffic for bench/local:p external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`)
	mustHave(t, ls, 1, "-A "+lext+` -m comment --comment "route LOCAL traffic for bench/local:p external destinations" -m addrtype --src-type LOCAL -j `+lsvc)
	mustHave(t, ls, 1, "-A "+lext+" -j "+lsvl)
	mustHave(t, ls, 0, "-A "+lext+` -m comment --comment "masquerade traffic for`)
	mustHave(t, ls, 1, `-A KUBE-NODEPORTS -m comment --comment "bench/local:p health check node port" -m tcp -p tcp --dport 30999 -j ACCEPT`)

	// No endpoints: filter-table REJECT.
	mustHave(t, ls, 1, `-A KUBE-SERVICES -m comment --comment "bench/empty:p has no endpoints" -m tcp -p tcp -d 198.18.4.5 --dport 80 -j REJECT`)
	mustHave(t, ls, 1, `-A KUBE-EXTERNAL-SERVICES -m comment --comment "bench/empty:p has no endpoints" -m tcp -p tcp -d 198.18.3.5 --dport 80 -j REJECT`)

	// Source ranges.
	fv, _ := newView(servicePort(t, s, "fw", false))
	_, _, fext, ffw := iptChainNames(&fv)
	mustHave(t, ls, 1, `-A KUBE-SERVICES -m comment --comment "bench/fw:p loadbalancer IP" -m tcp -p tcp -d 198.18.3.6 --dport 80 -j `+ffw)
	mustHave(t, ls, 1, "-A "+ffw+` -m comment --comment "bench/fw:p loadbalancer IP" -s 198.18.1.0/24 -j `+fext)
	mustHave(t, ls, 1, `-A KUBE-PROXY-FIREWALL -m comment --comment "bench/fw:p traffic not accepted by `+ffw+`" -m tcp -p tcp -d 198.18.3.6 --dport 80 -j DROP`)

	// NodePort jump last, per NodePort address.
	last := ""
	for _, l := range ls {
		if strings.HasPrefix(l, "-A KUBE-SERVICES ") && !strings.Contains(l, "has no ") {
			last = l
		}
	}
	if !strings.Contains(last, "-d 198.18.2.1 -j KUBE-NODEPORTS") {
		t.Errorf("last nat KUBE-SERVICES rule = %q, want the NodePort jump", last)
	}

	// UDP.
	mustHave(t, ls, 3, "-m udp -p udp -j DNAT --to-destination 198.18.2.1")
}

func TestRenderErrors(t *testing.T) {
	good := testSnapshot(t, false)
	mutate := func(f func(sp *snapshot.ServicePort)) *snapshot.Snapshot {
		c := *good
		c.ServicePorts = append([]snapshot.ServicePort(nil), good.ServicePorts...)
		sp := &c.ServicePorts[0]
		sp.Endpoints = append([]snapshot.Endpoint(nil), sp.Endpoints...)
		f(sp)
		return &c
	}
	for _, tc := range []struct {
		name string
		s    *snapshot.Snapshot
		o    Options
		want string
	}{
		{"nil snapshot", nil, Options{}, "nil snapshot"},
		{"two mark bits", good, Options{MasqueradeMark: 3}, "MasqueradeMark"},
		{"protocol", mutate(func(sp *snapshot.ServicePort) { sp.Protocol = 1 }), Options{}, "protocol"},
		{"port 0", mutate(func(sp *snapshot.ServicePort) { sp.Port = 0 }), Options{}, "port 0"},
		{"no clusterIP", mutate(func(sp *snapshot.ServicePort) { sp.ClusterIPs = nil }), Options{}, "clusterIPs"},
		{"name", mutate(func(sp *snapshot.ServicePort) { sp.Name = "a b" }), Options{}, "DNS labels"},
		{"family", mutate(func(sp *snapshot.ServicePort) {
			sp.ExternalIPs = []netip.Addr{netip.MustParseAddr("2001:2::1")}
		}), Options{}, "externalIPs[0]"},
		{"endpoint family", mutate(func(sp *snapshot.ServicePort) { sp.Endpoints[0].Addr = netip.MustParseAddr("2001:2::1") }), Options{}, "endpoints[0]"},
		{"cluster index", mutate(func(sp *snapshot.ServicePort) { sp.Cluster = []int32{7} }), Options{}, "cluster[0] = 7"},
		{"local index", mutate(func(sp *snapshot.ServicePort) { sp.Local = []int32{-1} }), Options{}, "local[0] = -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for kind, render := range map[string]func(*snapshot.Snapshot, Options) (string, error){"nft": RenderNFT, "iptables": RenderIPTables} {
				_, err := render(tc.s, tc.o)
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: err = %v, want ErrInvalid mentioning %q", kind, err, tc.want)
				}
				if err != nil && tc.s != nil && tc.o == (Options{}) && !strings.Contains(err.Error(), "service port bench/a") {
					t.Errorf("%s: err = %v, want it to name the service port", kind, err)
				}
			}
		})
	}
}

// TestLocalWithoutLocalEndpoints checks kube-proxy's drop (not reject) for
// external traffic to an ETP Local service with endpoints elsewhere only.
func TestLocalWithoutLocalEndpoints(t *testing.T) {
	svcs, slices := testObjects(false)
	for _, sl := range slices {
		if sl.Name == "local-1" {
			for i := range sl.Endpoints {
				other := "other-node"
				sl.Endpoints[i].NodeName = &other
			}
		}
	}
	s := buildSnapshot(t, svcs, slices)
	v, err := newView(servicePort(t, s, "local", false))
	if err != nil {
		t.Fatal(err)
	}
	nft, err := RenderNFT(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ls := lines(nft)
	mustHave(t, ls, 1, `add element ip kube-proxy no-endpoint-services { 198.18.3.3 . tcp . 80 comment "bench/local:p" : drop }`)
	mustHave(t, ls, 1, `add element ip kube-proxy no-endpoint-nodeports { tcp . 30081 comment "bench/local:p" : drop }`)
	base := nftServiceBase(v.sp, "tcp")
	mustHave(t, ls, 0, "local-"+base)
	mustHave(t, ls, 1, "add rule ip kube-proxy external-"+base+" fib saddr type local goto service-"+base)

	ipt, err := RenderIPTables(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	il := lines(ipt)
	mustHave(t, il, 1, `-A KUBE-EXTERNAL-SERVICES -m comment --comment "bench/local:p has no local endpoints" -m tcp -p tcp -d 198.18.3.3 --dport 80 -j DROP`)
	mustHave(t, il, 1, `-A KUBE-EXTERNAL-SERVICES -m comment --comment "bench/local:p has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30081 -j DROP`)
	_, svl, _, _ := iptChainNames(&v)
	mustHave(t, il, 0, svl)
}

func TestIPTLeftoverRemoval(t *testing.T) {
	save := `# Generated by iptables-save
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAAA - [0:0]
:OTHER - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -j OTHER
-A KUBE-SERVICES -d 198.18.3.1/32 -j KUBE-SVC-AAAA
COMMIT
`
	got := iptLeftoverRemoval("nat", save)
	want := `*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAAA - [0:0]
-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-X KUBE-SERVICES
-X KUBE-SVC-AAAA
COMMIT
`
	if got != want {
		t.Errorf("iptLeftoverRemoval = \n%s, want\n%s", got, want)
	}
	if got := iptLeftoverRemoval("filter", save); got != "" {
		t.Errorf("iptLeftoverRemoval(filter) = %q, want empty", got)
	}
}
