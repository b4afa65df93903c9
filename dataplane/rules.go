package dataplane

import "net/netip"

// L4Addr is {address, port, IP protocol}: a frontend (ClusterIP, external IP,
// load-balancer IP with the service port) or an endpoint.
type L4Addr struct {
	Addr  netip.Addr
	Port  uint16
	Proto uint8
}

// PortProto is a NodePort: a port and an IP protocol.
type PortProto struct {
	Port  uint16
	Proto uint8
}

// Rules is the plain-data content of the classifier's maps: what the XDP
// program redirects to the AF_XDP sockets. Everything not matched is passed
// to the kernel. The integrator converts the control-plane snapshot into it.
//
// Protocols are TCP (6), UDP (17) or SCTP (132). IPv4-mapped IPv6 addresses
// are unmapped, so either spelling of an IPv4 address works.
type Rules struct {
	// Frontends are matched on the destination of a packet. Their
	// addresses alone also match later IPv4/IPv6 fragments (which carry no
	// ports), so frontend addresses should not be node addresses.
	Frontends []L4Addr
	// NodePorts are matched on the destination port when the destination
	// address is one of NodePortAddrs.
	NodePorts []PortProto
	// NodePortAddrs are the node addresses NodePorts are served on.
	NodePortAddrs []netip.Addr
	// Endpoints are matched on the source of a packet (replies from the
	// endpoints of translated flows) whose destination is not one of
	// LocalAddrs; their addresses alone match later fragments.
	Endpoints []L4Addr
	// LocalAddrs are every address of this node. A packet from an endpoint
	// to one of them is the node's own traffic (the kubelet's connection to
	// the API server, probes, DNS), which the kernel keeps: replies of
	// translated flows go to a client, or to a SNAT address and port.
	LocalAddrs []netip.Addr
	// SNATAddrs are the node addresses used for masquerade; a packet to one
	// of them with a destination port in [SNATPortMin, SNATPortMax] is a
	// reply to a masqueraded flow. The range must not overlap the kernel's
	// net.ipv4.ip_local_port_range on those addresses, or replies to the
	// node's own connections are taken away from the kernel.
	SNATAddrs []netip.Addr
	// SNATPortMin and SNATPortMax bound the SNAT port range, inclusive.
	// SNATPortMax == 0 disables SNAT matching.
	SNATPortMin, SNATPortMax uint16
}

// ClassifierConfig sizes the classifier's rule maps; zero fields take the
// defaults (withDefaults), which hold 10,000 Services of two ports with ten
// endpoints each (200,000 endpoint rules) with room to spare. Rules beyond
// a size are refused whole by Classifier.Update (ErrTooManyRules).
type ClassifierConfig struct {
	// MaxFrontends bounds frontends (address, port, protocol) and, with
	// the same size, distinct frontend addresses.
	MaxFrontends int
	// MaxEndpoints bounds endpoints (address, port, protocol) and distinct
	// endpoint addresses.
	MaxEndpoints int
	// MaxNodePorts bounds NodePorts (port, protocol).
	MaxNodePorts int
	// MaxNodeAddrs bounds node addresses (NodePort, SNAT and local ones).
	MaxNodeAddrs int
	// FastPathFlows is the XDP fast path's flow capacity; 0 turns the fast
	// path off (the program then has none of its code: see
	// bpf/fastpath.h).
	FastPathFlows int
}

// Classifier map defaults.
const (
	DefaultMaxFrontends = 65536
	DefaultMaxEndpoints = 262144
	DefaultMaxNodePorts = 16384
	DefaultMaxNodeAddrs = 1024
)

func (c ClassifierConfig) withDefaults() ClassifierConfig {
	if c.MaxFrontends == 0 {
		c.MaxFrontends = DefaultMaxFrontends
	}
	if c.MaxEndpoints == 0 {
		c.MaxEndpoints = DefaultMaxEndpoints
	}
	if c.MaxNodePorts == 0 {
		c.MaxNodePorts = DefaultMaxNodePorts
	}
	if c.MaxNodeAddrs == 0 {
		c.MaxNodeAddrs = DefaultMaxNodeAddrs
	}
	return c
}
