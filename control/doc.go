// Package control is xdpgate's control plane: it turns Kubernetes Services,
// EndpointSlices and this node's Node object into immutable snapshots
// (package snapshot) for the dataplane, with kube-proxy's semantics, and
// runs kube-proxy's health and metrics servers.
//
// # Pipeline
//
//	Source (KubeSource: informers | ManifestSource: YAML file, polled)
//	   │ Sink: handlers only record the latest object per key
//	   ▼
//	tracker ──Notify──▶ boundedRunner (at most one build per MinSyncInterval;
//	   │                 bursts coalesce; nothing before the source synced)
//	   ▼
//	Builder.Build: recompute only the Services whose objects changed
//	   │          (all after a Node change), reuse the rest
//	   ▼
//	snapshot.New ─▶ atomic.Pointer.Store + subscriber callbacks
//	             ─▶ healthCheckNodePort servers, /healthz, metrics
//
// Desired state is a pure function of the objects, the BuildOptions and the
// Builder's ID allocator. Files keep one concern each: service.go parses a
// Service, endpoints.go merges EndpointSlices, categorize.go is kube-proxy's
// CategorizeEndpoints, maglev.go the cache of Maglev tables, ids.go the
// stable IDs, frontends.go who may serve which frontend, builder.go
// assembles, and the servers and sources live in their own files.
//
// # Semantics
//
// The rules are those of kube-proxy's iptables and nftables proxiers
// (kubernetes/kubernetes pkg/proxy/iptables/proxier.go,
// pkg/proxy/nftables/proxier.go and pkg/proxy/topology.go); where
// the modes differ, iptables/nftables is followed, never IPVS:
//
//   - Skipped: Services labelled service.kubernetes.io/service-proxy-name
//     (any value) or service.kubernetes.io/headless, headless Services
//     (clusterIP "" or None) and ExternalName Services; EndpointSlices with
//     those labels, FQDN slices, and slices without a
//     kubernetes.io/service-name label (reported as an error).
//   - EndpointSlices are merged per Service (namespace plus the
//     service-name label); slice ports match service ports by (name,
//     protocol); ports with a nil name or a nil/zero port are ignored; only
//     addresses[0] is used; nil conditions mean ready, serving, not
//     terminating; a duplicate ip:port keeps the first unless a later one
//     is not terminating; endpoints are sorted by the "ip:port" string.
//   - Chains: kube-proxy's CategorizeEndpoints, including the
//     serving-terminating fallback (independently for the cluster and the
//     local chain), topology hints (PreferSameNode, then PreferSameZone,
//     all-or-nothing over ready endpoints, cluster chain only; the
//     PreferSameTrafficDistribution gate is treated as on), and the cluster
//     chain kept for externally accessible ports under
//     externalTrafficPolicy Local (pod short-circuit).
//   - xdpgate's own annotations, on ClientIP Services only:
//     xdpgate.io/affinity-max-load (bounded-load pinning, a factor from 1
//     to 100) and xdpgate.io/affinity-rebalance-on-scale ("true"). A bad
//     value is reported naming the Service and the annotation and ignored;
//     the Service keeps Kubernetes' behaviour.
//   - LoadBalancer ingress IPs with ipMode Proxy are not frontends.
//     loadBalancerSourceRanges are filtered per family, a /0 range means
//     "allow all", and SourceRangesAllowVIP is set when a range contains a
//     node IP. healthCheckNodePort is only for LoadBalancer Services with
//     externalTrafficPolicy Local.
//   - The per-flow rules (reject without endpoints, drop for Local policies
//     without local endpoints, drop outside source ranges, which flows are
//     masqueraded) are snapshot.Classify's; this package fills its inputs.
//
// # Dual-stack
//
// kube-proxy runs one proxier per IP family. One xdpgate snapshot carries
// both families as separate service ports: a Service with clusterIPs in
// both families yields one snapshot.ServicePort per (port, family), each
// with only that family's ClusterIP, externalIPs, ingress IPs, source
// ranges and endpoints (from the EndpointSlices of that addressType), so a
// dual-stack Service with IPv4 endpoints only rejects on its IPv6
// frontends. Both share the nodePort number; the snapshot indexes NodePorts
// per family. A single-stack Service has service ports of its family only,
// and its NodePort is served on node addresses of that family only. The
// healthCheckNodePort of a dual-stack Service is one server whose
// localEndpoints counts the distinct local Ready addresses of both
// families.
//
// # Stable IDs
//
// ServicePort.ID is stable for (namespace, name, port name, protocol,
// family) while the service port exists; Endpoint.ID is stable for (service
// port ID, ip, port) while the endpoint is in the Service's merged
// EndpointSlices, whatever its conditions (so established flows to a not
// ready endpoint stay valid, as kube-proxy keeps their conntrack entries).
// Both come from monotonic uint32 counters kept by the Builder between
// builds and are never reused after they leave (until the counter wraps
// after 2^32 allocations, and then never while still in use). A deleted
// and recreated Service gets new IDs, so its affinity state starts empty.
// With BuildOptions.IDFile the allocator journals every assignment and
// release before the snapshot is published, and the next process replays
// it: IDs are also stable across restarts, upgrades and crashes, which is
// what lets adopted conntrack and affinity entries keep naming the right
// endpoints (ids.go).
//
// Deviation: kube-proxy's iptables mode destroys an endpoint's affinity
// list when the endpoint leaves every chain (its SEP chain is deleted); here
// an endpoint that becomes unusable keeps its ID while it stays in the
// EndpointSlice, so an affinity entry younger than the timeout is honoured
// again if it becomes usable again. Entries to unusable endpoints are
// ignored meanwhile (snapshot.Usable), as kube-proxy's are.
//
// # Maglev
//
// Every chain of two or more endpoints gets a Maglev table (slot -> index
// into the chain) built by maglev.SlotsFor over maglev.BackendID("ip:port")
// in chain order, so gateways with the same endpoints agree; package maglev
// chooses the size (the smallest of a fixed list of primes that is >=
// 100*N). Tables are cached per (service port, chain) and reused while the
// chain's backends are unchanged.
//
// # Health and metrics
//
// The healthCheckNodePort servers answer any path with kube-proxy's exact
// status (200 when local Ready endpoints exist and the proxy is healthy,
// else 503), headers (Content-Type, X-Content-Type-Options,
// X-Load-Balancing-Endpoint-Weight) and tab-indented JSON body; terminating
// endpoints are not counted. /healthz and /livez follow proxy_health.go:
// unhealthy when a change has been queued for longer than HealthTimeout
// without a publish; /healthz also needs an eligible Node (known, not being
// deleted, not tainted ToBeDeletedByClusterAutoscaler; with
// Config.NodeOptional a missing Node counts as eligible). Unlike
// kube-proxy's, every one of these servers bounds its clients
// (httpserver.go): read-header, read, write and idle timeouts, 16 KiB of
// headers, and at most 512 open connections per listener, closing the
// oldest idle one at the cap, so idle or slow connections cannot stop the
// answers load balancers depend on. Metrics are
// kube-proxy's sync metrics and xdpgate_snapshot_* in a private registry
// (Controller.Registry).
//
// # Known limits
//
//   - Bad values are rejected by this package, never trusted: a Service
//     with an unparsable clusterIP or loadBalancerSourceRange (fail closed)
//     or an affinity timeout outside 1..86400 is skipped whole; a bad port,
//     externalIP or ingress IP skips only that entry; a bad endpoint skips
//     only that endpoint. Each is logged once, naming object and field.
//   - An externalIP or LoadBalancer ingress IP equal to a node address
//     (BuildOptions.NodeIPs or the Node object's InternalIP and ExternalIP
//     addresses) is refused (ErrNodeAddress): it would take over that port
//     of the node itself (sshd on 22, the kubelet on 10250), which the
//     gateway sees before the host's sockets. The Service's other
//     frontends keep working; NodePorts are the way to serve on node
//     addresses (CVE-2020-8554, kubernetes/kubernetes#97076). Addresses
//     the node has but neither source lists are not protected.
//   - Two service ports claiming one frontend (address, port, protocol) or
//     NodePort: the older Service keeps it (creationTimestamp, then UID;
//     a Service without a timestamp, as a manifest may have, is younger
//     than every Service with one; same or unknown age: namespace/name),
//     so a new Service cannot take over an existing one's traffic by its
//     name (frontends.go). A port that loses its ClusterIP loses every
//     frontend. Refusals and conflicts are logged once when they appear,
//     naming both Services, and counted in
//     xdpgate_snapshot_refused_frontends{reason="node_address"|"conflict"}.
//   - ManifestSource applies a file only when it looks finished (settled
//     for a quarter of the poll interval, not empty, ending in a newline, every document
//     a complete object); otherwise the last good state stays, so a file
//     rewritten in place never deletes Services half-way. An explicit
//     empty List (items: []) removes everything. A cut exactly at a
//     document boundary that stays for longer than the interval cannot be
//     told from a smaller file: replace the file atomically (rename).
//   - Every build assembles the full ServicePorts slice and indexes it with
//     snapshot.New; only the per-Service computation is incremental.
package control
