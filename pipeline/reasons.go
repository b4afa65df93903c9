package pipeline

import (
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"
)

// Drop reasons of the translation pipeline (dataplane.FirstPipelineDropReason up).
//
// The I/O layer has 32 pipeline slots (dataplane.FirstPipelineDropReason..
// dataplane.NumDropReasons-1) but package nat has more malformed-frame reasons than
// that, so a nat reason is counted twice: as one of the grouped
// DropParse*/DropRewriteFailed reasons below (in dataplane.QueueStats.Drops, by name),
// and exactly, per nat.DropReason, in QueueStats.NATDrops (metric label
// = nat.DropReason.String()). Every nat reason is therefore visible by name.
const (
	// DropParseL2: Ethernet or VLAN framing broken, or frame too long.
	DropParseL2 dataplane.DropReason = dataplane.FirstPipelineDropReason + iota
	// DropParseIPv4: malformed IPv4 header, options or fragment bounds.
	DropParseIPv4
	// DropParseIPv6: malformed IPv6 header or extension headers.
	DropParseIPv6
	// DropParseL4: malformed TCP, UDP, SCTP or ICMP header.
	DropParseL4
	// DropParseICMPQuote: an ICMP error whose quoted packet is malformed,
	// or an ICMP error quoting an ICMP error.
	DropParseICMPQuote
	// DropNotService: no flow and no frontend (the classifier's maps and
	// the snapshot disagree for a moment, or no snapshot yet).
	DropNotService
	// DropRejectNotNew: a service without endpoints, but the packet does not
	// open a connection (kube-proxy rejects ct state NEW only).
	DropRejectNotNew
	// DropRejectNotAllowed: the port unreachable reply is forbidden (RFC
	// 1122 3.2.2: multicast source, ...) or could not be built.
	DropRejectNotAllowed
	// DropNoLocalEndpoints: a Local traffic policy without local endpoints.
	DropNoLocalEndpoints
	// DropSourceRange: loadBalancerSourceRanges refuses the source.
	DropSourceRange
	// DropNoEndpoint: the chosen chain had no endpoint (snapshot invariant
	// broken or endpoint of another family).
	DropNoEndpoint
	// DropNoSNATAddr: the egress towards the endpoint has no address of the
	// family to masquerade to.
	DropNoSNATAddr
	// DropSNATExhausted: no free SNAT port within the probe budget.
	DropSNATExhausted
	// DropConntrackFull: the flow table could not make room.
	DropConntrackFull
	// DropConntrackInvalid: the flow table refused the tuples (family
	// mismatch between frontend and endpoint, no IPv6 capacity, ...).
	DropConntrackInvalid
	// DropConntrackConflict: an unmasqueraded flow's reply tuple is in use
	// by another flow (the same client port reaching the same endpoint
	// through two frontends).
	DropConntrackConflict
	// DropFragmentUnknown: a non-first fragment without a remembered first
	// fragment.
	DropFragmentUnknown
	// DropICMPErrorUntracked: an ICMP error about no translated flow.
	DropICMPErrorUntracked
	// DropRewriteFailed: a rewrite refused the packet (see NATDrops).
	DropRewriteFailed
	// DropTTLExpired: TTL expired and no time exceeded may be sent (or the
	// reply could not be built).
	DropTTLExpired
	// DropNotTracked: a packet without ports (ICMP other than echo, other
	// protocols) that no flow or fragment covers.
	DropNotTracked
	// DropFragNeededNoDF: an IPv4 packet without DF larger than the
	// egress MTU (refused, not fragmented: Pipeline.tooBig says why).
	DropFragNeededNoDF
	// DropTooBigRateLimited: a packet larger than the egress MTU whose
	// ICMP error the rate limit held back.
	DropTooBigRateLimited
	// DropTooBigNotSent: a packet larger than the egress MTU whose ICMP
	// error is forbidden (RFC 1122 3.2.2) or has no source address.
	DropTooBigNotSent
	// DropICMPRateLimited: a packet whose time exceeded or port
	// unreachable error the ICMP budget (global or for its source) held
	// back.
	DropICMPRateLimited

	numPipelineDropReasons = iota
)

var pipelineDropNames = [numPipelineDropReasons]string{
	"parse_l2", "parse_ipv4", "parse_ipv6", "parse_l4", "parse_icmp_quote",
	"not_service", "reject_not_new", "reject_not_allowed", "no_local_endpoints",
	"source_range", "no_endpoint", "no_snat_addr", "snat_exhausted",
	"conntrack_full", "conntrack_invalid", "conntrack_conflict",
	"fragment_unknown", "icmp_error_untracked", "rewrite_failed",
	"ttl_expired", "not_tracked", "frag_needed_no_df", "too_big_rate_limited", "too_big_not_sent",
	"icmp_rate_limited",
}

func init() {
	if int(dataplane.FirstPipelineDropReason)+numPipelineDropReasons > dataplane.NumDropReasons {
		panic("dataplane: too many pipeline drop reasons")
	}
	for i, n := range pipelineDropNames {
		dataplane.RegisterDropReason(dataplane.FirstPipelineDropReason+dataplane.DropReason(i), n)
	}
}

// natDropGroup maps every nat.DropReason to the pipeline reason it is
// counted under in dataplane.QueueStats.Drops.
var natDropGroup = func() (m [nat.NumDropReasons]dataplane.DropReason) {
	for r := nat.DropReason(0); r < nat.NumDropReasons; r++ {
		switch r {
		case nat.DropNone:
			m[r] = dataplane.DropUnspecified
		case nat.NotIP:
			m[r] = dataplane.DropNotIP
		case nat.DropFrameTooLong, nat.DropEthernetTruncated, nat.DropVLANTruncated, nat.DropVLANTooMany:
			m[r] = DropParseL2
		case nat.DropIPv4Truncated, nat.DropIPv4Version, nat.DropIPv4HeaderLength, nat.DropIPv4Options,
			nat.DropIPv4TotalLength, nat.DropFragmentTooLong:
			m[r] = DropParseIPv4
		case nat.DropIPv6Truncated, nat.DropIPv6Version, nat.DropIPv6PayloadLength, nat.DropIPv6ExtTruncated,
			nat.DropIPv6ExtTooMany, nat.DropIPv6HopByHopOrder:
			m[r] = DropParseIPv6
		case nat.DropTCPTruncated, nat.DropTCPDataOffset, nat.DropUDPTruncated, nat.DropUDPLength,
			nat.DropSCTPTruncated, nat.DropICMPTruncated:
			m[r] = DropParseL4
		case nat.DropICMPInnerTruncated, nat.DropICMPInnerVersion, nat.DropICMPInnerHeaderLength,
			nat.DropICMPInnerL4Truncated, nat.DropICMPErrorInError:
			m[r] = DropParseICMPQuote
		case nat.DropTTLExpired:
			m[r] = DropTTLExpired
		default: // rewrite refusals: family mismatch, no ports, unsupported, SCTP fragment, not an ICMP error
			m[r] = DropRewriteFailed
		}
	}
	// FragmentTooLong is checked while parsing IPv6 fragment headers too;
	// it is grouped with IPv4 above, NATDrops has the exact reason.
	return m
}()
