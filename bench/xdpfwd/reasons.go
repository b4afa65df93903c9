package xdpfwd

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotSupported is returned where XDP is not available (not Linux).
var ErrNotSupported = errors.New("xdpfwd: XDP needs Linux")

// Reason is what the program did with a frame, and why: the index of its
// per-CPU stats map (enum reason in bpf/xdpfwd.c, in the same order).
type Reason uint32

// The reasons. Forwarded frames were redirected; RedirectFailed ones were
// dropped; every other reason passed the frame to the kernel untouched.
const (
	Forwarded      Reason = iota // redirected to the FIB's egress device
	NotIP                        // not IPv4 or IPv6 (ARP, VLAN-tagged)
	Malformed                    // headers cut short
	TTL                          // TTL or hop limit <= 1 (the kernel sends the ICMP error)
	NoRoute                      // FIB: no route, blackhole, unreachable, prohibited, local, not forwarded
	FwdDisabled                  // FIB: forwarding disabled on the ingress device
	NoNeigh                      // FIB: no neighbour entry for the next hop
	FragNeeded                   // FIB: larger than the egress MTU
	NoPort                       // the egress device is not one the program was attached to
	RedirectFailed               // bpf_redirect_map refused after the lookup: dropped
	numReasons
)

var reasonNames = [numReasons]string{"forwarded", "not_ip", "malformed", "ttl", "no_route",
	"fwd_disabled", "no_neigh", "frag_needed", "no_port", "redirect_failed"}

// String is the reason's metric-style name ("no_neigh").
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint32(r))
}

// Stats counts frames by Reason, summed over CPUs, since Attach.
type Stats [numReasons]uint64

// Passed is how many frames went to the kernel, every reason.
func (s Stats) Passed() uint64 {
	var n uint64
	for r, v := range s {
		if Reason(r) != Forwarded && Reason(r) != RedirectFailed {
			n += v
		}
	}
	return n
}

// String lists the non-zero counters: "forwarded 1200, not_ip 2".
func (s Stats) String() string {
	var parts []string
	for r, v := range s {
		if v != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", Reason(r), v))
		}
	}
	if len(parts) == 0 {
		return "nothing counted"
	}
	return strings.Join(parts, ", ")
}
