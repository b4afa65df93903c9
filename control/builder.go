package control

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/xdpgate/xdpgate/maglev"
	"github.com/xdpgate/xdpgate/snapshot"
)

// nsName is a namespace/name pair.
type nsName struct{ ns, name string }

func (k nsName) String() string { return k.ns + "/" + k.name }

func compareNsName(a, b nsName) int {
	if c := cmp.Compare(a.ns, b.ns); c != 0 {
		return c
	}
	return cmp.Compare(a.name, b.name)
}

// HealthCheck is one healthCheckNodePort the node must serve: a LoadBalancer
// Service with externalTrafficPolicy Local.
type HealthCheck struct {
	Namespace, Name string
	// Port is spec.healthCheckNodePort.
	Port uint16
	// LocalEndpoints is the number of distinct local Ready endpoint
	// addresses over all ports and families of the Service (terminating
	// endpoints are not counted, as in kube-proxy).
	LocalEndpoints int
}

// BuildResult is the outcome of one Builder.Build.
type BuildResult struct {
	// Snapshot is the new desired state; never nil.
	Snapshot *snapshot.Snapshot
	// NewErrors are the problems found in the objects this build looked at
	// again (unchanged objects do not repeat theirs), plus the frontend
	// conflicts and node-address refusals that appeared since the previous
	// build (a persisting one is reported once). Each names the object and
	// field.
	NewErrors []error
	// Errors is the number of problems in the current objects.
	Errors int
	// RefusedNodeAddress is the number of externalIPs and LoadBalancer IPs
	// currently refused because they are node addresses (ErrNodeAddress).
	RefusedNodeAddress int
	// Conflicts is the number of frontends and NodePorts currently
	// refused to a service port because an older Service claims them.
	Conflicts int
	// Services is the number of Services programmed (at least one port).
	Services int
	// HealthChecks lists the healthCheckNodePorts, sorted by namespace/name.
	HealthChecks []HealthCheck
	// NoLocalInternal and NoLocalExternal count service ports with a Local
	// internal or external policy that have endpoints, but none on this
	// node (kubeproxy_sync_proxy_rules_no_local_endpoints_total).
	NoLocalInternal, NoLocalExternal int
	// Rebuilt is the number of Services recomputed by this build.
	Rebuilt int
	// Incremental is true when the snapshot was derived from the previous
	// one with snapshot.Update (same service ports and frontends) instead
	// of being indexed from scratch with snapshot.New.
	Incremental bool
}

// sliceError is an EndpointSlice that cannot be attributed to a Service.
type sliceError struct {
	err      error
	reported bool
}

// svcResult is the cached outcome for one Service.
type svcResult struct {
	ports           []snapshot.ServicePort
	keys            []portKey
	epKeys          []epKey
	errs            []error
	refused         []error // node addresses refused (ErrNodeAddress)
	age             serviceAge
	hc              *HealthCheck
	noLocalInternal int
	noLocalExternal int
}

// Builder turns Services, EndpointSlices and the Node into snapshots. It is
// a pure function of those objects, the BuildOptions and its own ID state
// (the allocator that keeps service port and endpoint IDs stable across
// builds); it caches the result per Service so that a build after a small
// change recomputes only the Services that changed.
//
// A Builder is owned by one goroutine (the controller's runner); it is not
// safe for concurrent use. The objects handed to it must not be modified
// afterwards (informer objects never are).
type Builder struct {
	opts     BuildOptions
	selector nodePortSelector

	services    map[nsName]*v1.Service
	slices      map[nsName]map[string]*discoveryv1.EndpointSlice // by service, then slice name
	sliceOwner  map[nsName]nsName                                // slice -> service
	sliceErrors map[nsName]*sliceError                           // slices without a service-name label
	node        *v1.Node

	dirty    map[nsName]struct{}
	allDirty bool
	results  map[nsName]*svcResult
	order    []nsName // sorted keys of results with ports; nil when stale

	ids    *idAllocator
	maglev maglevCache
	gen    uint64

	// prev is the last built snapshot; spIndex maps its service port IDs to
	// their index; conflicts are its frontend conflicts and lost what they
	// take from each service port (they only change in a full build:
	// an incremental one keeps every Service's frontends and age).
	prev      *snapshot.Snapshot
	spIndex   map[uint32]int32
	conflicts []error
	nConflict int
	lost      map[uint32]lostFrontends

	// derived from the node and options, refreshed when allDirty
	nodeIPs       []netip.Addr
	nodePortAddrs []netip.Addr
	zone          string
	// hostAddrs are every address known to be the node's (NodeIPs and the
	// Node object's), sorted: no externalIP or LB IP may use them.
	hostAddrs []netip.Addr
}

// NewBuilder returns an empty Builder. It fails when NodePortAddresses
// cannot be parsed.
func NewBuilder(opts BuildOptions) (*Builder, error) {
	sel, err := parseNodePortAddresses(opts.NodePortAddresses)
	if err != nil {
		return nil, err
	}
	opts.NodeIPs = slices.Clone(opts.NodeIPs)
	for i, a := range opts.NodeIPs {
		opts.NodeIPs[i] = a.Unmap()
	}
	opts.ClusterCIDRs = slices.Clone(opts.ClusterCIDRs)
	ids, err := openIDAllocator(opts.IDFile)
	if err != nil {
		return nil, err
	}
	return &Builder{
		opts:        opts,
		selector:    sel,
		services:    make(map[nsName]*v1.Service),
		slices:      make(map[nsName]map[string]*discoveryv1.EndpointSlice),
		sliceOwner:  make(map[nsName]nsName),
		sliceErrors: make(map[nsName]*sliceError),
		dirty:       make(map[nsName]struct{}),
		allDirty:    true,
		results:     make(map[nsName]*svcResult),
		ids:         ids,
		spIndex:     make(map[uint32]int32),
	}, nil
}

// SetService records the current state of a Service; nil deletes it.
func (b *Builder) SetService(namespace, name string, svc *v1.Service) {
	k := nsName{namespace, name}
	if svc == nil {
		delete(b.services, k)
	} else {
		b.services[k] = svc
	}
	b.dirty[k] = struct{}{}
}

// SetEndpointSlice records the current state of an EndpointSlice; nil
// deletes it.
func (b *Builder) SetEndpointSlice(namespace, name string, s *discoveryv1.EndpointSlice) {
	k := nsName{namespace, name}
	if old, ok := b.sliceOwner[k]; ok {
		delete(b.slices[old], name)
		if len(b.slices[old]) == 0 {
			delete(b.slices, old)
		}
		delete(b.sliceOwner, k)
		b.dirty[old] = struct{}{}
	}
	delete(b.sliceErrors, k)
	if s == nil || ignoredByLabels(s.Labels) {
		return
	}
	svc, err := serviceKeyOfSlice(s)
	if err != nil {
		b.sliceErrors[k] = &sliceError{err: err}
		return
	}
	m := b.slices[svc]
	if m == nil {
		m = make(map[string]*discoveryv1.EndpointSlice)
		b.slices[svc] = m
	}
	m[name] = s
	b.sliceOwner[k] = svc
	b.dirty[svc] = struct{}{}
}

// SetNode records this node's Node object (nil when unknown). A change of
// the node's addresses or zone label recomputes every Service.
func (b *Builder) SetNode(n *v1.Node) {
	if nodeEquivalent(b.node, n) {
		b.node = n
		return
	}
	b.node = n
	b.allDirty = true
}

func nodeEquivalent(a, b *v1.Node) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Labels[v1.LabelTopologyZone] == b.Labels[v1.LabelTopologyZone] &&
		slices.Equal(a.Status.Addresses, b.Status.Addresses)
}

// Generation returns the generation of the last built snapshot.
func (b *Builder) Generation() uint64 { return b.gen }

// refreshNode recomputes the node-derived inputs.
func (b *Builder) refreshNode() {
	var primary [2]netip.Addr
	var fromNode []netip.Addr
	b.zone = ""
	if n := b.node; n != nil {
		b.zone = n.Labels[v1.LabelTopologyZone]
		for _, typ := range []v1.NodeAddressType{v1.NodeInternalIP, v1.NodeExternalIP} {
			for _, na := range n.Status.Addresses {
				if na.Type != typ {
					continue
				}
				a, err := netip.ParseAddr(na.Address)
				if err != nil {
					continue
				}
				a = a.Unmap()
				fromNode = append(fromNode, a)
				if !primary[fam(a)].IsValid() {
					primary[fam(a)] = a
				}
			}
		}
	}
	nodeIPs := b.opts.NodeIPs
	if len(nodeIPs) == 0 {
		nodeIPs = fromNode
	}
	var prim []netip.Addr
	for _, a := range primary {
		if a.IsValid() {
			prim = append(prim, a)
		}
	}
	if len(prim) == 0 { // no Node object: the first node IP of each family
		var seen [2]bool
		for _, a := range nodeIPs {
			if !seen[fam(a)] {
				seen[fam(a)] = true
				prim = append(prim, a)
			}
		}
	}
	b.nodeIPs = uniqueSorted(nodeIPs)
	b.hostAddrs = uniqueSorted(append(slices.Clone(nodeIPs), fromNode...))
	b.nodePortAddrs = uniqueSorted(b.selector.choose(b.nodeIPs, prim))
}

func uniqueSorted(in []netip.Addr) []netip.Addr {
	out := slices.Clone(in)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// Build computes the snapshot for the current objects. Only Services whose
// objects changed since the previous Build are recomputed (all of them after
// a node change); the others reuse their cached service ports, IDs and
// Maglev tables. When the recomputed Services keep their service ports and
// frontends (the common EndpointSlice change), the snapshot is derived from
// the previous one with snapshot.Update, sharing its indexes; otherwise it
// is indexed from scratch with snapshot.New.
func (b *Builder) Build() BuildResult {
	var res BuildResult
	incremental := b.prev != nil && !b.allDirty
	if b.allDirty {
		b.refreshNode()
		for k := range b.results {
			b.dirty[k] = struct{}{}
		}
		for k := range b.services {
			b.dirty[k] = struct{}{}
		}
		b.allDirty = false
	}
	replace := make(map[int32]snapshot.ServicePort)
	type change struct{ old, r *svcResult }
	changed := make([]change, 0, len(b.dirty))
	for k := range b.dirty {
		old := b.results[k]
		r := b.buildService(k)
		b.release(old, r)
		if r == nil {
			delete(b.results, k)
		} else {
			b.results[k] = r
			res.NewErrors = append(res.NewErrors, r.errs...)
			var prevRefused []error
			if old != nil {
				prevRefused = old.refused
			}
			res.NewErrors = append(res.NewErrors, newErrorsOnly(prevRefused, r.refused)...)
		}
		if (old != nil && len(old.ports) > 0) != (r != nil && len(r.ports) > 0) {
			b.order = nil
		}
		changed = append(changed, change{old, r})
		res.Rebuilt++
	}
	clear(b.dirty)
	b.maglev.resolve()
	for _, c := range changed {
		if incremental {
			incremental = b.replacements(c.old, c.r, replace)
		}
	}
	if b.order == nil {
		incremental = false
		for k, r := range b.results {
			if len(r.ports) > 0 {
				b.order = append(b.order, k)
			}
		}
		slices.SortFunc(b.order, compareNsName)
	}

	for _, r := range b.results {
		res.Errors += len(r.errs) + len(r.refused)
		res.RefusedNodeAddress += len(r.refused)
		res.NoLocalInternal += r.noLocalInternal
		res.NoLocalExternal += r.noLocalExternal
		if r.hc != nil {
			res.HealthChecks = append(res.HealthChecks, *r.hc)
		}
	}
	for _, se := range b.sliceErrors {
		res.Errors++
		if !se.reported {
			se.reported = true
			res.NewErrors = append(res.NewErrors, se.err)
		}
	}
	slices.SortFunc(res.HealthChecks, func(a, b HealthCheck) int {
		return compareNsName(nsName{a.Namespace, a.Name}, nsName{b.Namespace, b.Name})
	})
	res.Services = len(b.order)

	b.gen++
	if incremental {
		snap, errs, err := b.prev.Update(b.gen, replace)
		if err == nil {
			b.finish(&res, snap, wrapConflicts(errs), false)
			res.Conflicts = b.nConflict
			return res
		}
	}
	lost, conflicts := resolveFrontends(b.order, b.results)
	b.lost = lost
	n := 0
	for _, k := range b.order {
		n += len(b.results[k].ports)
	}
	ports := make([]snapshot.ServicePort, 0, n)
	for _, k := range b.order {
		for _, sp := range b.results[k].ports {
			if l, ok := lost[sp.ID]; ok {
				sp = l.apply(sp)
			}
			ports = append(ports, sp)
		}
	}
	snap, errs := snapshot.New(snapshot.Snapshot{
		Generation:    b.gen,
		NodeName:      b.opts.NodeName,
		NodeIPs:       b.nodeIPs,
		NodePortAddrs: b.nodePortAddrs,
		ClusterCIDRs:  b.opts.ClusterCIDRs,
		MasqueradeAll: b.opts.MasqueradeAll,
		ServicePorts:  ports,
	})
	b.finish(&res, snap, append(conflicts, wrapConflicts(errs)...), true)
	b.nConflict = len(conflicts)
	res.Conflicts = b.nConflict
	return res
}

// wrapConflicts wraps snapshot.New's and Update's errors in ErrConflict.
func wrapConflicts(errs []error) []error {
	out := make([]error, len(errs))
	for i, err := range errs {
		out[i] = fmt.Errorf("%w: %v", ErrConflict, err)
	}
	return out
}

// replacements adds the service ports of a recomputed Service to replace
// (by their index in the previous snapshot), without the frontends they
// lost to older Services, and reports whether the change can be applied
// with snapshot.Update: the Service keeps its age and the same service
// ports (IDs, in the same order). snapshot.Update checks the frontends; with
// the same frontends and ages, the claims resolve as in the last full build.
func (b *Builder) replacements(old, r *svcResult, replace map[int32]snapshot.ServicePort) bool {
	var oldPorts, newPorts []snapshot.ServicePort
	if old != nil {
		oldPorts = old.ports
	}
	if r != nil {
		newPorts = r.ports
	}
	if len(oldPorts) != len(newPorts) || (len(newPorts) > 0 && compareAge(old.age, r.age) != 0) {
		return false
	}
	for i := range newPorts {
		idx, ok := b.spIndex[newPorts[i].ID]
		if !ok || oldPorts[i].ID != newPorts[i].ID {
			return false
		}
		sp := newPorts[i]
		if l, ok := b.lost[sp.ID]; ok {
			sp = l.apply(sp)
		}
		replace[idx] = sp
	}
	return true
}

// finish records the new snapshot and its conflict errors in res: after a
// full build the conflicts replace the previous ones and only those that
// are new are reported; an incremental build's are reported as they come.
func (b *Builder) finish(res *BuildResult, snap *snapshot.Snapshot, conflicts []error, full bool) {
	if full {
		res.NewErrors = append(res.NewErrors, newErrorsOnly(b.conflicts, conflicts)...)
		b.conflicts = conflicts
		clear(b.spIndex)
		for i := range snap.ServicePorts {
			b.spIndex[snap.ServicePorts[i].ID] = int32(i)
		}
	} else {
		res.NewErrors = append(res.NewErrors, conflicts...)
	}
	res.Errors += len(b.conflicts)
	if err := b.ids.commit(); err != nil {
		res.NewErrors = append(res.NewErrors, err)
	}
	res.Incremental = !full
	res.Snapshot = snap
	b.prev = snap
}

// release frees the IDs and tables that old had and r no longer has.
func (b *Builder) release(old, r *svcResult) {
	if old == nil {
		return
	}
	if r != nil && slices.Equal(old.keys, r.keys) && slices.Equal(old.epKeys, r.epKeys) {
		return // nothing left
	}
	var keep map[portKey]struct{}
	var keepEP map[epKey]struct{}
	if r != nil {
		keep = make(map[portKey]struct{}, len(r.keys))
		for _, k := range r.keys {
			keep[k] = struct{}{}
		}
		keepEP = make(map[epKey]struct{}, len(r.epKeys))
		for _, k := range r.epKeys {
			keepEP[k] = struct{}{}
		}
	}
	for _, k := range old.epKeys {
		if _, ok := keepEP[k]; !ok {
			b.ids.releaseEndpoint(k)
		}
	}
	for _, k := range old.keys {
		if _, ok := keep[k]; !ok {
			if id, ok := b.ids.sp[k]; ok {
				b.maglev.drop(id)
			}
			b.ids.releaseServicePort(k)
		}
	}
}

// buildService computes the service ports of one Service; nil when the
// Service does not exist.
func (b *Builder) buildService(k nsName) *svcResult {
	svc := b.services[k]
	if svc == nil {
		return nil
	}
	r := &svcResult{}
	if skipReason(svc) != "" {
		return r
	}
	spec, errs, ok := parseService(svc)
	r.errs = errs
	if !ok {
		return r
	}
	r.age = ageOf(svc)
	r.refused = refuseNodeAddresses(svc, &spec, b.hostAddrs)
	var sl []*discoveryv1.EndpointSlice
	for _, s := range b.slices[k] {
		sl = append(sl, s)
	}
	slices.SortFunc(sl, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	merged, serrs := mergeSlices(sl, b.opts.NodeName)
	r.errs = append(r.errs, serrs...)

	// Service ports are sorted by port name and protocol, IPv4 before IPv6.
	slices.SortStableFunc(spec.ports, func(a, b portSpec) int {
		if c := cmp.Compare(a.name, b.name); c != 0 {
			return c
		}
		return cmp.Compare(a.proto, b.proto)
	})
	localReady := make(map[netip.Addr]struct{})
	for _, ps := range spec.ports {
		for f := 0; f < 2; f++ {
			if spec.clusterIPs[f].IsValid() {
				b.buildPort(r, &spec, ps, f, merged, localReady)
			}
		}
	}
	if spec.healthCheckNodePort != 0 {
		r.hc = &HealthCheck{Namespace: spec.ns, Name: spec.name, Port: spec.healthCheckNodePort, LocalEndpoints: len(localReady)}
	}
	return r
}

// buildPort appends the service port of (ps, family f) to r.
func (b *Builder) buildPort(r *svcResult, spec *svcSpec, ps portSpec, f int, merged map[slicePortKey][]epInfo, localReady map[netip.Addr]struct{}) {
	ext := filterAddrs(spec.externalIPs, f)
	lb := filterAddrs(spec.lbIPs, f)
	ranges := familyRanges(spec.sourceRanges, f)
	allowVIP := false
	for _, p := range ranges {
		for _, a := range b.nodeIPs {
			if p.Contains(a) {
				allowVIP = true
			}
		}
	}
	pk := portKey{spec.ns, spec.name, ps.name, ps.proto, f == 1}
	id := b.ids.servicePort(pk)
	r.keys = append(r.keys, pk)
	pol := chainPolicy{
		internalLocal:        spec.internalPolicyLocal,
		externalLocal:        spec.externalPolicyLocal,
		externallyAccessible: ps.nodePort != 0 || len(lb) > 0 || len(ext) > 0,
	}
	eps := merged[slicePortKey{ps.name, ps.proto, f == 1}]
	cluster, local, hasAny := categorize(eps, pol, b.opts.NodeName, b.zone)
	out := make([]snapshot.Endpoint, len(eps))
	for i := range eps {
		e := &eps[i]
		ek := epKey{id, e.ap}
		r.epKeys = append(r.epKeys, ek)
		out[i] = snapshot.Endpoint{
			ID: b.ids.endpoint(ek), Addr: e.ap.Addr(), Port: e.ap.Port(),
			NodeName: e.nodeName, Zone: e.zone, Local: e.local,
			Ready: e.ready, Serving: e.serving, Terminating: e.terminating,
		}
		if e.local && e.ready {
			localReady[e.ap.Addr()] = struct{}{}
		}
	}
	if hasAny && len(local) == 0 {
		if spec.internalPolicyLocal {
			r.noLocalInternal++
		}
		if spec.externalPolicyLocal && pol.externallyAccessible {
			r.noLocalExternal++
		}
	}
	b.maglev.request(r, len(r.ports), false, maglevKey{id, false}, backendIDs(eps, cluster))
	b.maglev.request(r, len(r.ports), true, maglevKey{id, true}, backendIDs(eps, local))
	r.ports = append(r.ports, snapshot.ServicePort{
		ID: id, Namespace: spec.ns, Name: spec.name, PortName: ps.name, Protocol: ps.proto,
		Port: ps.port, NodePort: ps.nodePort,
		ClusterIPs:               []netip.Addr{spec.clusterIPs[f]},
		ExternalIPs:              ext,
		LoadBalancerIPs:          lb,
		SourceRanges:             ranges,
		SourceRangesAllowVIP:     allowVIP,
		ExternalPolicyLocal:      spec.externalPolicyLocal,
		InternalPolicyLocal:      spec.internalPolicyLocal,
		HealthCheckNodePort:      spec.healthCheckNodePort,
		AffinitySeconds:          spec.affinitySeconds,
		AffinityMaxLoadPercent:   spec.affinityMaxLoad,
		AffinityRebalanceOnScale: spec.affinityRebalance,
		Endpoints:                out,
		Cluster:                  cluster,
		Local:                    local,
		HasEndpoints:             hasAny,
	})
}

func backendIDs(eps []epInfo, chain []int32) []uint64 {
	if len(chain) < 2 {
		return nil
	}
	ids := make([]uint64, len(chain))
	for i, idx := range chain {
		ids[i] = maglev.BackendID(eps[idx].ap)
	}
	return ids
}
