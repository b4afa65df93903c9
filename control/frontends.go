package control

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// This file decides which Service may use which frontend: no externalIP or
// LoadBalancer IP on a node address, and one owner per frontend.

// refuseNodeAddresses removes from spec the externalIPs and LoadBalancer
// ingress IPs that are node addresses and returns one error per refused
// address, naming the Service, the field and the address.
//
// A Service port on a node address would take over that port of the node
// itself: an externalIP equal to the node's address with port 22 shadows
// sshd, with port 10250 the kubelet. kube-proxy programs such an externalIP
// (the API server only rejects externalIPs when the DenyServiceExternalIPs
// admission plugin is on; CVE-2020-8554, kubernetes/kubernetes#97076), but
// it does so in iptables, after the host's own sockets are configured; an
// XDP gateway sees the packet first, so here it would silently replace the
// host's service. Serving on node addresses is what NodePorts are for.
func refuseNodeAddresses(svc *v1.Service, spec *svcSpec, node []netip.Addr) []error {
	if len(node) == 0 {
		return nil
	}
	var errs []error
	isNode := func(a netip.Addr) bool {
		_, found := slices.BinarySearchFunc(node, a, netip.Addr.Compare)
		return found
	}
	refuse := func(field string, a netip.Addr) {
		errs = append(errs, &ObjectError{Kind: "Service", Namespace: svc.Namespace, Name: svc.Name, Field: field,
			Err: fmt.Errorf("%w: %s is an address of this node: not served (use a NodePort to serve on node addresses)", ErrNodeAddress, a)})
	}
	if slices.ContainsFunc(spec.externalIPs, isNode) {
		spec.externalIPs = slices.DeleteFunc(slices.Clone(spec.externalIPs), isNode)
		for i, s := range svc.Spec.ExternalIPs {
			if a, err := parseAddr(s); err == nil && isNode(a) {
				refuse(fmt.Sprintf("spec.externalIPs[%d]", i), a)
			}
		}
	}
	if slices.ContainsFunc(spec.lbIPs, isNode) {
		spec.lbIPs = slices.DeleteFunc(slices.Clone(spec.lbIPs), isNode)
		for i, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IP == "" || (ing.IPMode != nil && *ing.IPMode != v1.LoadBalancerIPModeVIP) {
				continue
			}
			if a, err := parseAddr(ing.IP); err == nil && isNode(a) {
				refuse(fmt.Sprintf("status.loadBalancer.ingress[%d].ip", i), a)
			}
		}
	}
	return errs
}

// serviceAge orders Services for frontend claims, the older first:
// creationTimestamp, then UID, then namespace/name.
//
// The API server sets both fields on every Service, so in a cluster the
// first Service to claim an address keeps it whatever the names (the
// timestamp has a resolution of one second: Services created within the
// same second are ordered by their random but fixed UIDs). A manifest may
// leave them out: a Service without a creationTimestamp counts as younger
// than every Service with one (and one without a UID as younger than one
// with a UID and the same timestamp), so an object that does not state its
// age never displaces one that does; among Services of the same or unknown
// age, namespace/name order decides.
type serviceAge struct {
	created time.Time // zero when unknown
	uid     string    // "" when unknown
	key     nsName
}

func ageOf(svc *v1.Service) serviceAge {
	return serviceAge{created: svc.CreationTimestamp.Time, uid: string(svc.UID), key: nsName{svc.Namespace, svc.Name}}
}

// compareAge returns a negative number when a is older than b.
func compareAge(a, b serviceAge) int {
	if az, bz := a.created.IsZero(), b.created.IsZero(); az != bz {
		if az {
			return 1
		}
		return -1
	}
	if c := a.created.Compare(b.created); c != 0 {
		return c
	}
	if au, bu := a.uid == "", b.uid == ""; au != bu {
		if au {
			return 1
		}
		return -1
	}
	if c := cmp.Compare(a.uid, b.uid); c != 0 {
		return c
	}
	return compareNsName(a.key, b.key)
}

// why says why a kept a frontend that b also claimed.
func why(a, b serviceAge) string {
	switch {
	case a.key == b.key:
		return "an earlier port of the same Service"
	case !a.created.Equal(b.created):
		return "older"
	case a.uid != b.uid:
		return "same creationTimestamp, first by UID"
	}
	return "same or unknown age, first by namespace/name"
}

// lostFrontends are the frontends a service port lost to an older Service.
// A port that lost its ClusterIP loses everything (it is a duplicate of
// another Service; serving half of it would be a surprise).
type lostFrontends struct {
	all      bool
	addrs    []netip.Addr // ExternalIPs and LoadBalancerIPs
	nodePort bool
}

// apply returns sp without the lost frontends (sp's slices are not
// modified: they are shared with the Builder's cache).
func (l lostFrontends) apply(sp snapshot.ServicePort) snapshot.ServicePort {
	if l.all {
		sp.ClusterIPs, sp.ExternalIPs, sp.LoadBalancerIPs, sp.NodePort = nil, nil, nil, 0
		return sp
	}
	lost := func(a netip.Addr) bool { return slices.Contains(l.addrs, a) }
	if slices.ContainsFunc(sp.ExternalIPs, lost) {
		sp.ExternalIPs = slices.DeleteFunc(slices.Clone(sp.ExternalIPs), lost)
	}
	if slices.ContainsFunc(sp.LoadBalancerIPs, lost) {
		sp.LoadBalancerIPs = slices.DeleteFunc(slices.Clone(sp.LoadBalancerIPs), lost)
	}
	if l.nodePort {
		sp.NodePort = 0
	}
	return sp
}

type claimKey struct {
	addr  netip.Addr
	port  uint16
	proto nat.Proto
}

type nodePortKey struct {
	port  uint16
	proto nat.Proto
	v6    bool
}

// resolveFrontends gives every frontend (address, port, protocol) and
// every NodePort (port, protocol, family) claimed by more than one service
// port to the oldest Service (serviceAge), and returns what each other
// claimant loses, by service port ID, with one error per lost frontend
// naming both Services. keys are the Services with service ports.
//
// snapshot.New would give a contested frontend to the first service port
// in namespace/name order: a Service named to sort first could take over
// the traffic of an existing one. Resolving here, by age, leaves New no
// conflicts to decide.
func resolveFrontends(keys []nsName, results map[nsName]*svcResult) (map[uint32]lostFrontends, []error) {
	byAge := slices.Clone(keys)
	slices.SortFunc(byAge, func(a, b nsName) int { return compareAge(results[a].age, results[b].age) })
	type owner struct {
		age  serviceAge
		port string
	}
	addrs := make(map[claimKey]owner)
	nodePorts := make(map[nodePortKey]owner)
	lost := make(map[uint32]lostFrontends)
	var errs []error
	for _, k := range byAge {
		r := results[k]
		for i := range r.ports {
			sp := &r.ports[i]
			var l lostFrontends
			conflict := func(field, what string, prev owner) {
				errs = append(errs, &ObjectError{Kind: "Service", Namespace: sp.Namespace, Name: sp.Name, Field: field,
					Err: fmt.Errorf("%w: %s is kept by Service %s port %q (%s)", ErrConflict, what, prev.age.key, prev.port, why(prev.age, r.age))})
			}
			me := owner{r.age, sp.PortName}
			for _, a := range sp.ClusterIPs {
				ck := claimKey{a, sp.Port, sp.Protocol}
				if prev, taken := addrs[ck]; taken {
					conflict("spec.clusterIPs", fmt.Sprintf("ClusterIP %s/%s", netip.AddrPortFrom(a, sp.Port), sp.Protocol), prev)
					l.all = true
				}
			}
			if l.all {
				lost[sp.ID] = l
				continue
			}
			for _, a := range sp.ClusterIPs {
				addrs[claimKey{a, sp.Port, sp.Protocol}] = me
			}
			for _, list := range []struct {
				field, kind string
				addrs       []netip.Addr
			}{
				{"spec.externalIPs", "externalIP", sp.ExternalIPs},
				{"status.loadBalancer.ingress", "LoadBalancer IP", sp.LoadBalancerIPs},
			} {
				for _, a := range list.addrs {
					ck := claimKey{a, sp.Port, sp.Protocol}
					if prev, taken := addrs[ck]; taken {
						conflict(list.field, fmt.Sprintf("%s %s/%s", list.kind, netip.AddrPortFrom(a, sp.Port), sp.Protocol), prev)
						l.addrs = append(l.addrs, a)
						continue
					}
					addrs[ck] = me
				}
			}
			if sp.NodePort != 0 {
				// Each builder service port has one ClusterIP, hence one family.
				nk := nodePortKey{sp.NodePort, sp.Protocol, len(sp.ClusterIPs) > 0 && sp.ClusterIPs[0].Is6()}
				if prev, taken := nodePorts[nk]; taken {
					conflict(fmt.Sprintf("spec.ports[name=%q].nodePort", sp.PortName), fmt.Sprintf("nodePort %d/%s", sp.NodePort, sp.Protocol), prev)
					l.nodePort = true
				} else {
					nodePorts[nk] = me
				}
			}
			if l.addrs != nil || l.nodePort {
				lost[sp.ID] = l
			}
		}
	}
	return lost, errs
}

// newErrorsOnly returns the errors of cur whose text is not in prev: a
// problem that persists is logged once, when it appears.
func newErrorsOnly(prev, cur []error) []error {
	seen := make(map[string]struct{}, len(prev))
	for _, e := range prev {
		seen[e.Error()] = struct{}{}
	}
	var out []error
	for _, e := range cur {
		if _, ok := seen[e.Error()]; !ok {
			out = append(out, e)
		}
	}
	return out
}
