// Package baseline renders and installs the kernel rulesets that kube-proxy
// would program for a snapshot, so that the benchmark rig can measure
// xdpgate against the kernel doing the same job on the same services.
//
// # Model
//
// The input is the same *snapshot.Snapshot that xdpgate's dataplane
// consumes. Both renderers first compute one view per service port with
// kube-proxy's decisions from syncProxyRules: which policy chains exist
// (cluster, local), which endpoints are reachable, whether ClusterIP and
// external traffic have endpoints, and whether the no-endpoint verdict is
// reject (no usable endpoint anywhere) or drop (a Local policy without local
// endpoints). The usable endpoints are the snapshot's own Cluster and Local
// lists, so the kernel and xdpgate choose among the same backends.
//
//   - RenderNFT writes kube-proxy's nftables mode (≈v1.29/v1.30 layout):
//     table ip/ip6 kube-proxy with the filter-* and nat-* base chains, the
//     service-ips and service-nodeports verdict maps, service-/local-/
//     external-/firewall-/endpoint- chains named "<prefix><hash>-ns/name/
//     proto/port[__ip/port]", `numgen random mod N vmap` endpoint choice,
//     per-endpoint affinity-* sets with `update @set { ip saddr }`, the
//     no-endpoint-services/no-endpoint-nodeports maps with reject-chain,
//     and mark-for-masquerade/masquerading.
//   - RenderIPTables writes kube-proxy's iptables mode (≈v1.30) as
//     iptables-restore input: KUBE-SERVICES, KUBE-NODEPORTS, KUBE-SVC-,
//     KUBE-SVL-, KUBE-EXT-, KUBE-FW-, KUBE-SEP- chains (named with
//     kube-proxy's sha256+base32 hash), `-m statistic --mode random
//     --probability 1/(n-i)`, `-m recent` affinity, KUBE-MARK-MASQ and
//     KUBE-POSTROUTING, and the filter-table REJECT/DROP rules. IPv4 only.
//   - Install applies either inside a named network namespace and returns
//     the function that removes it again.
//
// # Affinity capacity: xt_recent versus nftables sets
//
// iptables mode keeps ClientIP affinity in xt_recent lists, one per
// endpoint (named after the KUBE-SEP- chain). The module parameter
// xt_recent.ip_list_tot, default 100, caps each list: inserting the 101st
// source evicts the least recently seen one (recent_entry_init), and the
// parameter is read-only at runtime (it can only be set when the module is
// loaded, or on the kernel command line when built in). So under iptables a
// service keeps affinity for at most about 100 clients per endpoint; beyond
// that, clients silently lose their pin and are balanced again. `--reap`
// only expires entries older than the timeout and does not help.
// TestPrivIPTablesRecentListLimit shows the effect with a two-endpoint
// service: 2*ip_list_tot+60 clients (260) connect once each; when the first
// 40 reconnect, under iptables about half of them land on the other
// endpoint (their entries were evicted, so they were balanced again: 18 to
// 20 of 40 in our runs), while under nftables, whose dynamic sets hold up
// to nft's default of 65535 elements, none do.
//
// Other known limits: no localhost NodePorts (route_localnet), no
// cluster-ips-check/ServiceCIDR rules (the snapshot has no service CIDRs),
// one pod CIDR for the iptables local-traffic detector, and no conntrack
// cleanup for UDP when endpoints change (Install programs one snapshot).
package baseline
