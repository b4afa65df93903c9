package baseline

import (
	"bufio"
	"fmt"
	"net/netip"
	"strings"

	"github.com/xdpgate/xdpgate/snapshot"
)

// kube-proxy's fixed iptables chains (pkg/proxy/iptables, ≈v1.30).
const (
	iptServices         = "KUBE-SERVICES"
	iptExternalServices = "KUBE-EXTERNAL-SERVICES"
	iptNodePorts        = "KUBE-NODEPORTS"
	iptPostrouting      = "KUBE-POSTROUTING"
	iptMarkMasq         = "KUBE-MARK-MASQ"
	iptForward          = "KUBE-FORWARD"
	iptProxyFirewall    = "KUBE-PROXY-FIREWALL"
)

// iptJump is a rule in a built-in chain that leads to a kube-proxy chain.
// kube-proxy installs these with `iptables -C`/`-I` (EnsureRule) rather
// than in the restore input, because built-in chains are shared with
// everyone else; Install does the same.
type iptJump struct {
	table, chain string
	args         []string
}

var iptJumps = []iptJump{
	{"filter", "INPUT", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes load balancer firewall", "-j", iptProxyFirewall}},
	{"filter", "INPUT", []string{"-m", "comment", "--comment", "kubernetes health check service ports", "-j", iptNodePorts}},
	{"filter", "INPUT", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes externally-visible service portals", "-j", iptExternalServices}},
	{"filter", "FORWARD", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes load balancer firewall", "-j", iptProxyFirewall}},
	{"filter", "FORWARD", []string{"-m", "comment", "--comment", "kubernetes forwarding rules", "-j", iptForward}},
	{"filter", "FORWARD", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes service portals", "-j", iptServices}},
	{"filter", "FORWARD", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes externally-visible service portals", "-j", iptExternalServices}},
	{"filter", "OUTPUT", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes load balancer firewall", "-j", iptProxyFirewall}},
	{"filter", "OUTPUT", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes service portals", "-j", iptServices}},
	{"nat", "PREROUTING", []string{"-m", "comment", "--comment", "kubernetes service portals", "-j", iptServices}},
	{"nat", "OUTPUT", []string{"-m", "comment", "--comment", "kubernetes service portals", "-j", iptServices}},
	{"nat", "POSTROUTING", []string{"-m", "comment", "--comment", "kubernetes postrouting rules", "-j", iptPostrouting}},
}

// restoreLine renders a jump as an iptables-restore rule line.
func (j iptJump) restoreLine(op string) string {
	return op + " " + j.chain + " " + joinArgs(j.args)
}

// joinArgs quotes the arguments that contain spaces, as iptables-save does.
func joinArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t\"") {
			a = `"` + strings.ReplaceAll(a, `"`, `\"`) + `"`
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// iptTable is the chains and rules kube-proxy writes into one table.
type iptTable struct {
	name   string
	chains []string
	seen   map[string]bool
	rules  []string
}

func newIPTTable(name string, fixed ...string) *iptTable {
	t := &iptTable{name: name, seen: make(map[string]bool)}
	for _, c := range fixed {
		t.chain(c)
	}
	return t
}

func (t *iptTable) chain(c string) {
	if !t.seen[c] {
		t.seen[c] = true
		t.chains = append(t.chains, c)
	}
}

func (t *iptTable) add(chain string, args ...string) {
	t.rules = append(t.rules, "-A "+chain+" "+joinArgs(args))
}

// iptRuleset is one rendered iptables ruleset.
type iptRuleset struct {
	filter, nat *iptTable
}

// restore renders iptables-restore input. With jumps, the rules in the
// built-in chains are included (for a namespace of one's own, or
// iptables-restore --test); without, they are left to Install.
func (r *iptRuleset) restore(jumps bool) string {
	return r.render(jumps, "-A", func(b *strings.Builder, t *iptTable) {
		for _, l := range t.rules {
			b.WriteString(l + "\n")
		}
	})
}

// render writes, per table, the chain declarations, the built-in chains'
// jumps (op -A or -D, when jumps) and then body's lines.
func (r *iptRuleset) render(jumps bool, op string, body func(*strings.Builder, *iptTable)) string {
	var b strings.Builder
	for _, t := range []*iptTable{r.filter, r.nat} {
		fmt.Fprintf(&b, "*%s\n", t.name)
		for _, c := range t.chains {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
		if jumps {
			for _, j := range iptJumps {
				if j.table == t.name {
					b.WriteString(j.restoreLine(op) + "\n")
				}
			}
		}
		body(&b, t)
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// removal renders iptables-restore --noflush input that removes the jumps
// (when jumps) and every chain of r: declaring a chain flushes it, after
// which nothing references it and -X deletes it.
func (r *iptRuleset) removal(jumps bool) string {
	return r.render(jumps, "-D", func(b *strings.Builder, t *iptTable) {
		for _, c := range t.chains {
			fmt.Fprintf(b, "-X %s\n", c)
		}
	})
}

// RenderIPTables renders iptables-restore input with kube-proxy's
// iptables-mode ruleset (≈v1.30) for the IPv4 service ports of s: the
// filter table (no-endpoint REJECT/DROP, the source-range firewall, the
// forwarding accept rules and health-check node ports) and the nat table
// (KUBE-SERVICES, KUBE-NODEPORTS, KUBE-SVC-/KUBE-SVL-/KUBE-EXT-/KUBE-FW-/
// KUBE-SEP- chains, masquerading through the mark). The rules in the
// built-in chains (PREROUTING, INPUT, ...) are included as -A lines.
//
// IPv6 service ports are left out: this baseline is IPv4 only (kube-proxy
// would run a second, ip6tables, proxier for them). The local-traffic
// detector uses the first IPv4 ClusterCIDR, as kube-proxy's iptables mode
// supports one CIDR per family. Localhost NodePorts (route_localnet) are
// not rendered.
func RenderIPTables(s *snapshot.Snapshot, o Options) (string, error) {
	r, err := renderIPTables(s, o)
	if err != nil {
		return "", err
	}
	return r.restore(true), nil
}

func renderIPTables(s *snapshot.Snapshot, o Options) (*iptRuleset, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	vs, err := views(s)
	if err != nil {
		return nil, err
	}
	mark := o.markString()
	r := &iptRuleset{
		filter: newIPTTable("filter", iptNodePorts, iptServices, iptExternalServices, iptForward, iptProxyFirewall),
		nat:    newIPTTable("nat", iptNodePorts, iptServices, iptMarkMasq, iptPostrouting),
	}
	f, n := r.filter, r.nat
	n.add(iptPostrouting, "-m", "mark", "!", "--mark", mark+"/"+mark, "-j", "RETURN")
	n.add(iptPostrouting, "-j", "MARK", "--xor-mark", mark)
	n.add(iptPostrouting, "-m", "comment", "--comment", "kubernetes service traffic requiring SNAT", "-j", "MASQUERADE", "--random-fully")
	n.add(iptMarkMasq, "-j", "MARK", "--or-mark", mark)
	f.add(iptForward, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	f.add(iptForward, "-m", "comment", "--comment", "kubernetes forwarding rules", "-m", "mark", "--mark", mark+"/"+mark, "-j", "ACCEPT")
	f.add(iptForward, "-m", "comment", "--comment", "kubernetes forwarding conntrack rule", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")

	var podCIDR string
	if c := clusterCIDRs(s, false); len(c) > 0 {
		podCIDR = c[0].String()
	}
	hcSeen := make(map[uint16]bool)
	for i := range vs {
		v := &vs[i]
		if v.v6 {
			continue
		}
		if hc := v.sp.HealthCheckNodePort; hc != 0 && v.externalLocal && !hcSeen[hc] {
			hcSeen[hc] = true
			f.add(iptNodePorts, "-m", "comment", "--comment", v.name+" health check node port", "-m", "tcp", "-p", "tcp", "--dport", fmt.Sprint(hc), "-j", "ACCEPT")
		}
		iptServicePort(r, v, podCIDR, s.MasqueradeAll)
	}
	// The NodePort jump must be the last rule of KUBE-SERVICES. One rule
	// per NodePort address: kube-proxy's form for a restricted
	// nodePortAddresses, which the snapshot's NodePortAddrs already are.
	for _, a := range nodePortAddrs(s, false) {
		n.add(iptServices, "-m", "comment", "--comment", "kubernetes service nodeports; NOTE: this must be the last rule in this chain",
			"-d", a.String(), "-j", iptNodePorts)
	}
	return r, nil
}

// iptChainNames returns the policy, external, firewall chain names of a
// service port: prefix + hash16(servicePortName + protocol).
func iptChainNames(v *portView) (svc, svl, ext, fw string) {
	h := hash16(v.name + v.proto)
	return "KUBE-SVC-" + h, "KUBE-SVL-" + h, "KUBE-EXT-" + h, "KUBE-FW-" + h
}

// iptEndpointChain is KUBE-SEP- + hash16(servicePortName + protocol +
// "ip:port"); it is also the name of the endpoint's recent list.
func iptEndpointChain(v *portView, ep *snapshot.Endpoint) string {
	return "KUBE-SEP-" + hash16(v.name+v.proto+epString(ep))
}

// iptServicePort writes one service port (the loop body of kube-proxy's
// syncProxyRules).
func iptServicePort(r *iptRuleset, v *portView, podCIDR string, masqueradeAll bool) {
	f, n := r.filter, r.nat
	sp, proto := v.sp, v.proto
	port := fmt.Sprint(sp.Port)
	svcChain, svlChain, extChain, fwChain := iptChainNames(v)
	dst := func(a netip.Addr) []string {
		return []string{"-m", proto, "-p", proto, "-d", a.Unmap().String(), "--dport", port}
	}
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	comment := func(c string) []string { return []string{"-m", "comment", "--comment", c} }

	for _, ep := range v.reachable {
		n.chain(iptEndpointChain(v, ep))
	}
	if v.usesCluster() {
		n.chain(svcChain)
	}
	if v.usesLocal() {
		n.chain(svlChain)
	}
	internalChain, externalPolicyChain := v.policyChains(svcChain, svlChain)
	if v.usesExternal {
		n.chain(extChain)
	}
	internalVerdict, externalVerdict := "DROP", "DROP"
	if !v.hasEndpoints {
		internalVerdict, externalVerdict = "REJECT", "REJECT"
	}
	noEPComment := v.name + " has no local endpoints"
	if !v.hasEndpoints {
		noEPComment = v.name + " has no endpoints"
	}

	// ClusterIP.
	if v.hasInternal {
		n.add(iptServices, cat(comment(v.name+" cluster IP"), dst(v.clusterIP), []string{"-j", internalChain})...)
	} else {
		f.add(iptServices, cat(comment(noEPComment), dst(v.clusterIP), []string{"-j", internalVerdict})...)
	}
	// ExternalIPs.
	for _, a := range sp.ExternalIPs {
		if v.hasEndpoints {
			n.add(iptServices, cat(comment(v.name+" external IP"), dst(a), []string{"-j", extChain})...)
		}
		if !v.hasExternal {
			f.add(iptExternalServices, cat(comment(noEPComment), dst(a), []string{"-j", externalVerdict})...)
		}
	}
	// LoadBalancer IPs, through the source-range firewall chain.
	usesFW := v.hasEndpoints && len(sp.LoadBalancerIPs) > 0 && len(sp.SourceRanges) > 0
	lbChain := extChain
	if usesFW {
		lbChain = fwChain
		n.chain(fwChain)
		for _, p := range sp.SourceRanges {
			n.add(fwChain, cat(comment(v.name+" loadbalancer IP"), []string{"-s", p.Masked().String(), "-j", extChain})...)
		}
		if sp.SourceRangesAllowVIP {
			for _, a := range sp.LoadBalancerIPs {
				n.add(fwChain, cat(comment(v.name+" loadbalancer IP"), []string{"-s", a.Unmap().String(), "-j", extChain})...)
			}
		}
		n.add(fwChain, comment("other traffic to "+v.name+" will be dropped by KUBE-PROXY-FIREWALL")...)
	}
	for _, a := range sp.LoadBalancerIPs {
		if v.hasEndpoints {
			n.add(iptServices, cat(comment(v.name+" loadbalancer IP"), dst(a), []string{"-j", lbChain})...)
		}
		if usesFW {
			f.add(iptProxyFirewall, cat(comment(v.name+" traffic not accepted by "+fwChain), dst(a), []string{"-j", "DROP"})...)
		}
	}
	if !v.hasExternal {
		for _, a := range sp.LoadBalancerIPs {
			f.add(iptExternalServices, cat(comment(noEPComment), dst(a), []string{"-j", externalVerdict})...)
		}
	}
	// NodePort; not subject to loadBalancerSourceRanges.
	if sp.NodePort != 0 {
		np := []string{"-m", proto, "-p", proto, "--dport", fmt.Sprint(sp.NodePort)}
		if v.hasEndpoints {
			n.add(iptNodePorts, cat(comment(v.name), np, []string{"-j", extChain})...)
		}
		if !v.hasExternal {
			f.add(iptExternalServices, cat(comment(noEPComment), []string{"-m", "addrtype", "--dst-type", "LOCAL"}, np, []string{"-j", externalVerdict})...)
		}
	}

	// Internal traffic masquerading.
	if v.hasInternal {
		if masqueradeAll {
			n.add(internalChain, cat(comment(v.name+" cluster IP"), dst(v.clusterIP), []string{"-j", iptMarkMasq})...)
		} else if podCIDR != "" {
			n.add(internalChain, cat(comment(v.name+" cluster IP"), dst(v.clusterIP), []string{"!", "-s", podCIDR, "-j", iptMarkMasq})...)
		}
	}

	// External traffic.
	if v.usesExternal {
		if !v.externalLocal {
			n.add(extChain, cat(comment("masquerade traffic for "+v.name+" external destinations"), []string{"-j", iptMarkMasq})...)
		} else if v.usesCluster() {
			if podCIDR != "" {
				n.add(extChain, cat(comment("pod traffic for "+v.name+" external destinations"), []string{"-s", podCIDR, "-j", svcChain})...)
			}
			n.add(extChain, cat(comment("masquerade LOCAL traffic for "+v.name+" external destinations"),
				[]string{"-m", "addrtype", "--src-type", "LOCAL", "-j", iptMarkMasq})...)
			n.add(extChain, cat(comment("route LOCAL traffic for "+v.name+" external destinations"),
				[]string{"-m", "addrtype", "--src-type", "LOCAL", "-j", svcChain})...)
		}
		if v.hasExternal {
			n.add(extChain, "-j", externalPolicyChain)
		}
	}

	if v.usesCluster() {
		iptServiceToEndpoints(n, v, svcChain, v.cluster)
	}
	if v.usesLocal() {
		iptServiceToEndpoints(n, v, svlChain, v.local)
	}
	for _, ep := range v.reachable {
		c := iptEndpointChain(v, ep)
		n.add(c, cat(comment(v.name), []string{"-s", ep.Addr.Unmap().String(), "-j", iptMarkMasq})...)
		args := comment(v.name)
		if sp.AffinitySeconds > 0 {
			args = append(args, "-m", "recent", "--name", c, "--set")
		}
		n.add(c, cat(args, []string{"-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", epString(ep)})...)
	}
}

// iptServiceToEndpoints writes a policy chain: the recent checks, then the
// statistic cascade (writeServiceToEndpointRules). With n endpoints, rule i
// matches with probability 1/(n-i), so each endpoint is chosen with 1/n.
func iptServiceToEndpoints(n *iptTable, v *portView, chain string, eps []*snapshot.Endpoint) {
	if v.sp.AffinitySeconds > 0 {
		for _, ep := range eps {
			c := iptEndpointChain(v, ep)
			n.add(chain, "-m", "comment", "--comment", v.name+" -> "+epString(ep),
				"-m", "recent", "--name", c, "--rcheck", "--seconds", fmt.Sprint(v.sp.AffinitySeconds), "--reap", "-j", c)
		}
	}
	for i, ep := range eps {
		args := []string{"-m", "comment", "--comment", v.name + " -> " + epString(ep)}
		if i < len(eps)-1 {
			args = append(args, "-m", "statistic", "--mode", "random", "--probability", fmt.Sprintf("%0.10f", 1.0/float64(len(eps)-i)))
		}
		n.add(chain, append(args, "-j", iptEndpointChain(v, ep))...)
	}
}

// iptLeftoverRemoval turns iptables-save output for one table into
// iptables-restore --noflush input deleting its kube-proxy chains, or ""
// when there are none.
func iptLeftoverRemoval(table, save string) string {
	var chains, deletes []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(save))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			in = line == "*"+table
		case !in:
		case strings.HasPrefix(line, ":KUBE-"):
			chains = append(chains, strings.Fields(line[1:])[0])
		case strings.HasPrefix(line, "-A ") && !strings.HasPrefix(line, "-A KUBE-") && strings.Contains(line, " -j KUBE-"):
			deletes = append(deletes, "-D "+line[3:])
		}
	}
	if len(chains) == 0 && len(deletes) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%s\n", table)
	for _, c := range chains {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	for _, d := range deletes {
		b.WriteString(d + "\n")
	}
	for _, c := range chains {
		fmt.Fprintf(&b, "-X %s\n", c)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}
