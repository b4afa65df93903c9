package control

import (
	"fmt"
	"net/netip"
	"strings"
)

// BuildOptions are the node-level inputs of the snapshot builder besides the
// Kubernetes objects.
type BuildOptions struct {
	// NodeName is this node's name: endpoints whose nodeName equals it are
	// local, and the Node object with this name supplies the zone label
	// and, when NodeIPs is empty, the node addresses.
	NodeName string
	// NodeIPs are the node's addresses. When empty, the InternalIP and
	// ExternalIP addresses of the Node object are used.
	NodeIPs []netip.Addr
	// NodePortAddresses selects, from the node addresses, those that serve
	// NodePorts: CIDRs and the keywords "primary" (the Node object's first
	// InternalIP, else ExternalIP, of each family) and "all". Empty means
	// "all", as in kube-proxy's iptables mode.
	NodePortAddresses []string
	// ClusterCIDRs are the pod CIDRs (kube-proxy's ClusterCIDR local
	// traffic detector). Empty means no detector.
	ClusterCIDRs []netip.Prefix
	// MasqueradeAll masquerades all traffic to ClusterIPs.
	MasqueradeAll bool
	// IDFile, when set, is the journal that keeps service port and
	// endpoint IDs across processes (see ids.go), so that conntrack and
	// affinity entries adopted after a restart name the same endpoints.
	IDFile string
}

// nodePortSelector is a parsed nodePortAddresses list.
type nodePortSelector struct {
	all     bool
	primary bool
	cidrs   []netip.Prefix
}

// parseNodePortAddresses parses the nodePortAddresses list.
func parseNodePortAddresses(list []string) (nodePortSelector, error) {
	var s nodePortSelector
	if len(list) == 0 {
		s.all = true
		return s, nil
	}
	for i, v := range list {
		v = strings.TrimSpace(v)
		switch v {
		case "all":
			s.all = true
		case "primary":
			s.primary = true
		case "localhost":
			s.cidrs = append(s.cidrs, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
		default:
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return s, fmt.Errorf("nodePortAddresses[%d] %q: %w: not a CIDR, \"primary\" or \"all\"", i, v, ErrInvalid)
			}
			s.cidrs = append(s.cidrs, p.Masked())
		}
	}
	return s, nil
}

// select returns the node addresses that serve NodePorts.
func (s nodePortSelector) choose(nodeIPs, primary []netip.Addr) []netip.Addr {
	if s.all {
		return nodeIPs
	}
	var out []netip.Addr
	for _, a := range nodeIPs {
		keep := false
		for _, p := range s.cidrs {
			if p.Contains(a) {
				keep = true
				break
			}
		}
		if !keep && s.primary {
			for _, pa := range primary {
				if pa == a {
					keep = true
					break
				}
			}
		}
		if keep {
			out = append(out, a)
		}
	}
	return out
}
