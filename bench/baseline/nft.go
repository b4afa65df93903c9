package baseline

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"strings"

	"github.com/xdpgate/xdpgate/snapshot"
)

// nftTable is the name of kube-proxy's table in both families.
const nftTable = "kube-proxy"

// Names of kube-proxy's fixed nftables objects (pkg/proxy/nftables, the
// ≈v1.29/v1.30 layout with one endpoints-check chain).
const (
	nftServicesChain       = "services"
	nftServiceIPsMap       = "service-ips"
	nftServiceNodePortsMap = "service-nodeports"
	nftNodePortIPsSet      = "nodeport-ips"
	nftEndpointsCheck      = "endpoints-check"
	nftNoEndpointServices  = "no-endpoint-services"
	nftNoEndpointNodePorts = "no-endpoint-nodeports"
	nftRejectChain         = "reject-chain"
	nftFirewallIPsMap      = "firewall-ips"
	nftFirewallCheck       = "firewall-check"
	nftMarkMasqChain       = "mark-for-masquerade"
	nftMasqueradingChain   = "masquerading"
)

// nftBaseChains are kube-proxy's base chains. The filter chains run just
// before DNAT (dstnat-10) so they see the service address. nft 1.0.x only
// accepts the symbolic "dstnat" priority on the prerouting hook, so the
// numbers are written elsewhere (dstnat is -100).
var nftBaseChains = []struct{ name, typ, hook, prio string }{
	{"filter-prerouting", "filter", "prerouting", "-110"},
	{"filter-input", "filter", "input", "-110"},
	{"filter-forward", "filter", "forward", "-110"},
	{"filter-output", "filter", "output", "-110"},
	{"nat-prerouting", "nat", "prerouting", "dstnat"},
	{"nat-output", "nat", "output", "-100"},
	{"nat-postrouting", "nat", "postrouting", "srcnat"},
}

// nftJumps are the rules in the base chains that lead to kube-proxy's
// top-level chains. endpoints-check is not jumped to from prerouting
// because reject is only valid in input, forward and output.
var nftJumps = []struct{ from, match, to string }{
	{"filter-input", "ct state new", nftEndpointsCheck},
	{"filter-forward", "ct state new", nftEndpointsCheck},
	{"filter-output", "ct state new", nftEndpointsCheck},
	{"filter-prerouting", "ct state new", nftFirewallCheck},
	{"filter-output", "ct state new", nftFirewallCheck},
	{"nat-output", "", nftServicesChain},
	{"nat-prerouting", "", nftServicesChain},
	{"nat-postrouting", "", nftMasqueradingChain},
}

// nftNameBaseMax is nftables' name limit (knftables.NameLengthMax, 256)
// minus room for the longest prefix (kube-proxy's chainNamePrefixLengthMax).
const nftNameBaseMax = 256 - 16

// nftHashAndTruncate is kube-proxy's hashAndTruncate: the name prefixed by
// 8 characters of its own hash (so near-identical names look different and
// a truncated name stays unique), cut to fit nftables' name limit.
func nftHashAndTruncate(name string) string {
	h := sha256.Sum256([]byte(name))
	name = base32.StdEncoding.EncodeToString(h[:])[:8] + "-" + name
	if len(name) > nftNameBaseMax {
		name = name[:nftNameBaseMax-3] + "..."
	}
	return name
}

// nftServiceBase is "HASH-ns/name/proto/port" (servicePortChainNameBase).
func nftServiceBase(sp *snapshot.ServicePort, proto string) string {
	return nftHashAndTruncate(fmt.Sprintf("%s/%s/%s/%s", sp.Namespace, sp.Name, proto, sp.PortName))
}

// nftEndpointBase is "HASH-ns/name/proto/port__ip/port"
// (servicePortEndpointChainNameBase); IPv6 colons become dots because
// colons are not allowed in nftables names.
func nftEndpointBase(sp *snapshot.ServicePort, proto string, ep *snapshot.Endpoint) string {
	ip := strings.ReplaceAll(ep.Addr.Unmap().String(), ":", ".")
	return nftHashAndTruncate(fmt.Sprintf("%s/%s/%s/%s__%s/%d", sp.Namespace, sp.Name, proto, sp.PortName, ip, ep.Port))
}

// nftFamily holds the per-family spellings.
type nftFamily struct {
	family string // "ip" or "ip6"
	ipX    string // "ip" or "ip6" in expressions
	addrT  string // "ipv4_addr" or "ipv6_addr"
}

var (
	nftV4 = nftFamily{"ip", "ip", "ipv4_addr"}
	nftV6 = nftFamily{"ip6", "ip6", "ipv6_addr"}
)

// nftWriter accumulates one family's script in kube-proxy's transaction
// order: objects first (so every goto and @set names something that
// exists), then rules and elements.
type nftWriter struct {
	f        nftFamily
	mark     string
	objects  strings.Builder
	rules    strings.Builder
	declared map[string]bool
}

func (w *nftWriter) obj(format string, args ...any) {
	fmt.Fprintf(&w.objects, format+"\n", args...)
}

func (w *nftWriter) chain(name string) {
	if w.declared[name] {
		return
	}
	w.declared[name] = true
	w.obj("add chain %s %s %s", w.f.family, nftTable, name)
}

func (w *nftWriter) rule(chain string, words ...string) {
	fmt.Fprintf(&w.rules, "add rule %s %s %s %s\n", w.f.family, nftTable, chain, strings.Join(words, " "))
}

func (w *nftWriter) element(set, elem string) {
	fmt.Fprintf(&w.rules, "add element %s %s %s { %s }\n", w.f.family, nftTable, set, elem)
}

// RenderNFT renders an `nft -f` script with kube-proxy's nftables-mode
// ruleset for every service port of s: table ip kube-proxy, and table ip6
// kube-proxy when s has IPv6 service ports. The script first deletes both
// tables ("add" then "delete", which works whether or not they exist), so
// applying it again replaces the previous ruleset atomically.
//
// The layout is kube-proxy's ≈v1.29/v1.30 one (a single endpoints-check
// chain; no cluster-ips-check, since the snapshot has no ServiceCIDRs).
// The NodePort addresses are the snapshot's NodePortAddrs, written as the
// nodeport-ips set as kube-proxy does for a restricted nodePortAddresses.
func RenderNFT(s *snapshot.Snapshot, o Options) (string, error) {
	o, err := o.withDefaults()
	if err != nil {
		return "", err
	}
	vs, err := views(s)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, f := range []nftFamily{nftV4, nftV6} {
		fmt.Fprintf(&b, "add table %s %s\ndelete table %s %s\n", f.family, nftTable, f.family, nftTable)
	}
	for _, f := range []nftFamily{nftV4, nftV6} {
		var fam []*portView
		for i := range vs {
			if vs[i].v6 == (f.family == "ip6") {
				fam = append(fam, &vs[i])
			}
		}
		if len(fam) == 0 {
			continue
		}
		w := &nftWriter{f: f, mark: o.markString(), declared: make(map[string]bool)}
		w.setup(nodePortAddrs(s, f.family == "ip6"))
		cidrs := clusterCIDRs(s, f.family == "ip6")
		for _, v := range fam {
			w.servicePort(v, cidrs, s.MasqueradeAll)
		}
		b.WriteString(w.objects.String())
		b.WriteString(w.rules.String())
	}
	return b.String(), nil
}

// setup writes the table, base chains, fixed chains, maps and sets
// (kube-proxy's setupNFTables).
func (w *nftWriter) setup(npAddrs []netip.Addr) {
	f := w.f
	w.obj(`add table %s %s { comment "rules for kube-proxy" ; }`, f.family, nftTable)
	for _, bc := range nftBaseChains {
		w.declared[bc.name] = true
		w.obj("add chain %s %s %s { type %s hook %s priority %s ; }", f.family, nftTable, bc.name, bc.typ, bc.hook, bc.prio)
	}
	for _, j := range nftJumps {
		w.chain(j.to)
		if j.match != "" {
			w.rule(j.from, j.match, "jump", j.to)
		} else {
			w.rule(j.from, "jump", j.to)
		}
	}
	w.chain(nftMarkMasqChain)
	w.rule(nftMarkMasqChain, "mark set mark or", w.mark)
	w.rule(nftMasqueradingChain, "mark and", w.mark, "== 0 return")
	w.rule(nftMasqueradingChain, "mark set mark xor", w.mark)
	w.rule(nftMasqueradingChain, "masquerade fully-random")

	w.obj(`add set %s %s %s { type %s ; comment "IPs that accept NodePort traffic" ; }`, f.family, nftTable, nftNodePortIPsSet, f.addrT)
	if len(npAddrs) > 0 {
		w.element(nftNodePortIPsSet, joinAddrs(npAddrs))
	}

	w.obj(`add map %s %s %s { type %s . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }`,
		f.family, nftTable, nftNoEndpointServices, f.addrT)
	w.obj(`add map %s %s %s { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }`,
		f.family, nftTable, nftNoEndpointNodePorts)
	w.declared[nftRejectChain] = true
	w.obj(`add chain %s %s %s { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }`, f.family, nftTable, nftRejectChain)
	w.rule(nftRejectChain, "reject")
	w.rule(nftEndpointsCheck, f.ipX, "daddr . meta l4proto . th dport vmap @"+nftNoEndpointServices)
	w.rule(nftEndpointsCheck, f.ipX, "daddr @"+nftNodePortIPsSet, "meta l4proto . th dport vmap @"+nftNoEndpointNodePorts)

	w.obj(`add map %s %s %s { type %s . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }`,
		f.family, nftTable, nftFirewallIPsMap, f.addrT)
	w.rule(nftFirewallCheck, f.ipX, "daddr . meta l4proto . th dport vmap @"+nftFirewallIPsMap)

	w.obj(`add map %s %s %s { type %s . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`,
		f.family, nftTable, nftServiceIPsMap, f.addrT)
	w.obj(`add map %s %s %s { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`,
		f.family, nftTable, nftServiceNodePortsMap)
	w.rule(nftServicesChain, f.ipX, "daddr . meta l4proto . th dport vmap @"+nftServiceIPsMap)
	w.rule(nftServicesChain, f.ipX, "daddr @"+nftNodePortIPsSet, "meta l4proto . th dport vmap @"+nftServiceNodePortsMap)
}

// servicePort writes one service port (the loop body of kube-proxy's
// syncProxyRules).
func (w *nftWriter) servicePort(v *portView, cidrs []netip.Prefix, masqueradeAll bool) {
	sp, ipX := v.sp, w.f.ipX
	base := nftServiceBase(sp, v.proto)
	clusterChain := "service-" + base
	localChain := "local-" + base
	externalChain := "external-" + base
	firewallChain := "firewall-" + base
	epChain := func(ep *snapshot.Endpoint) string { return "endpoint-" + nftEndpointBase(sp, v.proto, ep) }
	affSet := func(ep *snapshot.Endpoint) string { return "affinity-" + nftEndpointBase(sp, v.proto, ep) }
	key := func(a netip.Addr) string { return fmt.Sprintf("%s . %s . %d", a.Unmap(), v.proto, sp.Port) }
	comment := fmt.Sprintf(" comment %q", v.name)

	for _, ep := range v.reachable {
		w.chain(epChain(ep))
	}
	if v.usesCluster() {
		w.chain(clusterChain)
	}
	if v.usesLocal() {
		w.chain(localChain)
	}
	internalChain, externalPolicyChain := v.policyChains(clusterChain, localChain)
	if v.usesExternal {
		w.chain(externalChain)
	}

	internalVerdict, externalVerdict := "drop", "drop"
	if !v.hasEndpoints {
		// No usable endpoint anywhere: reject (ICMP port unreachable).
		internalVerdict, externalVerdict = "goto "+nftRejectChain, "goto "+nftRejectChain
	}

	// ClusterIP.
	if v.hasInternal {
		w.element(nftServiceIPsMap, key(v.clusterIP)+" : goto "+internalChain)
	} else {
		w.element(nftNoEndpointServices, key(v.clusterIP)+comment+" : "+internalVerdict)
	}
	// ExternalIPs.
	for _, a := range sp.ExternalIPs {
		if v.hasEndpoints {
			w.element(nftServiceIPsMap, key(a)+" : goto "+externalChain)
		}
		if !v.hasExternal {
			w.element(nftNoEndpointServices, key(a)+comment+" : "+externalVerdict)
		}
	}
	// LoadBalancer IPs, behind the source-range firewall.
	usesFW := v.hasEndpoints && len(sp.LoadBalancerIPs) > 0 && len(sp.SourceRanges) > 0
	if usesFW {
		w.chain(firewallChain)
		sources := joinAddrs(sp.SourceRanges)
		if sp.SourceRangesAllowVIP {
			sources += ", " + joinAddrs(sp.LoadBalancerIPs)
		}
		w.rule(firewallChain, ipX, "saddr != {", sources, "} drop")
	}
	for _, a := range sp.LoadBalancerIPs {
		if v.hasEndpoints {
			w.element(nftServiceIPsMap, key(a)+" : goto "+externalChain)
		}
		if usesFW {
			w.element(nftFirewallIPsMap, key(a)+comment+" : goto "+firewallChain)
		}
		if !v.hasExternal {
			w.element(nftNoEndpointServices, key(a)+comment+" : "+externalVerdict)
		}
	}
	// NodePort; not subject to loadBalancerSourceRanges, as in kube-proxy.
	if sp.NodePort != 0 {
		npKey := fmt.Sprintf("%s . %d", v.proto, sp.NodePort)
		if v.hasEndpoints {
			w.element(nftServiceNodePortsMap, npKey+" : goto "+externalChain)
		}
		if !v.hasExternal {
			w.element(nftNoEndpointNodePorts, npKey+comment+" : "+externalVerdict)
		}
	}

	// Internal traffic masquerading.
	if v.hasInternal {
		match := []string{ipX, "daddr", v.clusterIP.String(), v.proto, "dport", fmt.Sprint(sp.Port)}
		if masqueradeAll {
			w.rule(internalChain, append(match, "jump", nftMarkMasqChain)...)
		} else if len(cidrs) > 0 {
			// Off-cluster traffic to a ClusterIP may bounce off-node.
			w.rule(internalChain, append(match, ipX, "saddr != {", joinAddrs(cidrs), "}", "jump", nftMarkMasqChain)...)
		}
	}

	// External traffic.
	if v.usesExternal {
		if !v.externalLocal {
			// Endpoints may be on other nodes: masquerade.
			w.rule(externalChain, "jump", nftMarkMasqChain)
		} else if v.usesCluster() {
			if len(cidrs) > 0 {
				w.rule(externalChain, ipX, "saddr {", joinAddrs(cidrs), "}", "goto", clusterChain,
					`comment "short-circuit pod traffic"`)
			}
			// The host's own traffic has the VIP's node address as source.
			w.rule(externalChain, "fib saddr type local jump", nftMarkMasqChain, `comment "masquerade local traffic"`)
			w.rule(externalChain, "fib saddr type local goto", clusterChain, `comment "short-circuit local traffic"`)
		}
		if v.hasExternal {
			w.rule(externalChain, "goto", externalPolicyChain)
		}
	}

	// Affinity sets: one per reachable endpoint, shared by both chains.
	if sp.AffinitySeconds > 0 {
		for _, ep := range v.reachable {
			w.obj("add set %s %s %s { type %s ; flags dynamic,timeout ; timeout %ds ; }",
				w.f.family, nftTable, affSet(ep), w.f.addrT, sp.AffinitySeconds)
		}
	}
	if v.usesCluster() {
		w.serviceToEndpoints(v, clusterChain, v.cluster, epChain, affSet)
	}
	if v.usesLocal() {
		w.serviceToEndpoints(v, localChain, v.local, epChain, affSet)
	}
	for _, ep := range v.reachable {
		c := epChain(ep)
		w.rule(c, ipX, "saddr", ep.Addr.Unmap().String(), "jump", nftMarkMasqChain)
		if sp.AffinitySeconds > 0 {
			w.rule(c, "update @"+affSet(ep), "{", ipX, "saddr }")
		}
		w.rule(c, "meta l4proto", v.proto, "dnat to", epString(ep))
	}
}

// serviceToEndpoints writes a policy chain: the affinity lookups, then the
// random choice (writeServiceToEndpointRules).
func (w *nftWriter) serviceToEndpoints(v *portView, chain string, eps []*snapshot.Endpoint,
	epChain, affSet func(*snapshot.Endpoint) string) {
	if v.sp.AffinitySeconds > 0 {
		for _, ep := range eps {
			w.rule(chain, w.f.ipX, "saddr @"+affSet(ep), "goto", epChain(ep))
		}
	}
	elems := make([]string, len(eps))
	for i, ep := range eps {
		elems[i] = fmt.Sprintf("%d : goto %s", i, epChain(ep))
	}
	w.rule(chain, fmt.Sprintf("numgen random mod %d vmap {", len(eps)), strings.Join(elems, ", "), "}")
}
