// Package snapshot holds the plain-data desired state that the control plane
// produces and the dataplane consumes, and the per-packet service decision
// that both sides share.
//
// It is the one leaf package between control and dataplane: control imports
// it to publish, dataplane imports it to read, and neither imports the other.
// It imports nothing from xdpgate.
//
// # Model
//
// A Snapshot is immutable once New has returned it. The control loop builds a
// new one for every change and publishes it with a single atomic pointer
// store; pollers load the pointer once per receive batch and never take a
// lock. Nothing in a Snapshot may be modified after New: slices are shared
// between snapshots by the builder when unchanged.
//
// The unit of forwarding is the ServicePort (kube-proxy's ServicePortName: a
// namespace, a service name, a port name and a protocol). Each has stable
// identifiers chosen by the control plane:
//
//   - ServicePort.ID stays the same for the same (namespace, name, port name,
//     protocol) across snapshots, so the affinity table (keyed by it) survives
//     rebuilds.
//   - Endpoint.ID stays the same for the same (service port, address, port)
//     while the endpoint exists, and is never reused after it leaves. A
//     conntrack or affinity entry naming a departed endpoint therefore never
//     validates again, which gives kube-proxy's "affinity state for an
//     endpoint is dropped when it leaves" without a flush.
//
// # Building
//
// New indexes a complete Snapshot. Update derives a snapshot from a
// previous one when only endpoint-side fields of some service ports change
// (the common EndpointSlice update): it shares the frontend and NodePort
// indexes and copies the endpoint index per shard on write, so its cost is
// one copy of the ServicePorts array plus the replaced ports' endpoints.
//
// A dual-stack Service is one ServicePort per IP family; both carry the
// same NodePort, which is indexed per family (NodePortFor, used by
// Classify), so each family's node addresses reach that family's port.
//
// # Decision
//
// Classify answers, for the first packet of a flow, which service port it is
// for, whether it is forwarded, rejected or dropped, which endpoint chain
// (cluster or local) is used and whether it is masqueraded. The rules follow
// kube-proxy's iptables and nftables proxiers (kubernetes/kubernetes
// pkg/proxy/iptables/proxier.go and pkg/proxy/nftables/proxier.go; see
// ARCHITECTURE.md); the choice of
// one endpoint inside the chain (affinity, then Maglev) is the dataplane's.
//
// Traffic that xdpgate sees arrives on a managed interface, so it is never
// host-originated: the "host to LB IP is masqueraded" rule of kube-proxy has
// no counterpart here. Pod-originated traffic is recognised by ClusterCIDRs
// (kube-proxy's ClusterCIDR local-traffic detector); with no ClusterCIDRs
// configured there is no detector, as in kube-proxy.
package snapshot
