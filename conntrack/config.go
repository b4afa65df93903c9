package conntrack

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors returned (wrapped) by New.
var (
	// ErrInvalidConfig reports a Config that New cannot build a table from.
	ErrInvalidConfig = errors.New("invalid conntrack config")
)

// Default capacities and timeouts. These are the only place defaults live;
// Config.withDefaults applies them.
const (
	// DefaultMaxFlows is the default IPv4 flow capacity.
	DefaultMaxFlows = 1 << 20
	// DefaultMaxFragments is the default capacity of the fragment table.
	DefaultMaxFragments = 8192
	// MaxCapacity is the largest MaxFlows or MaxFlows6 accepted: a record
	// index must fit in the 30 bits an index entry has for it.
	MaxCapacity = 1<<30 - 1
)

// Timeouts holds the idle timeout of every State: a flow expires when no
// packet has touched it for longer than the timeout of its current state.
// A zero field means "use the default" (DefaultTimeouts).
type Timeouts struct {
	// TCP, by state. The defaults are Linux nf_conntrack's, with
	// ESTABLISHED at kube-proxy's 86,400 s (conntrack.tcpEstablishedTimeout)
	// and CLOSE_WAIT at kube-proxy's 3,600 s (conntrack.tcpCloseWaitTimeout).
	SynSent     time.Duration
	SynRecv     time.Duration
	Established time.Duration
	FinWait     time.Duration
	CloseWait   time.Duration
	LastAck     time.Duration
	TimeWait    time.Duration
	Close       time.Duration
	// Unacknowledged caps the timeout of a TCP flow that never saw a
	// reply-direction packet, whatever its state (nf_conntrack's
	// tcp_timeout_unacknowledged, 300 s): one spoofed ACK picked up
	// mid-stream lives this long, not ESTABLISHED's day.
	Unacknowledged time.Duration
	// Embryonic is the timeout of unassured TCP flows in TCP_NONE,
	// SYN_SENT and SYN_RECV while the table is under pressure (Pressure):
	// during a SYN flood the half-open flows it creates give their
	// records and SNAT ports back within seconds, as the kernel's
	// early_drop frees non-assured entries first when the table fills.
	Embryonic time.Duration
	// UDPUnreplied applies until the first reply-direction packet,
	// UDPReplied afterwards (nf_conntrack udp_timeout / udp_timeout_stream).
	UDPUnreplied time.Duration
	UDPReplied   time.Duration
	// ICMP applies to ICMP and ICMPv6 echo flows.
	ICMP time.Duration
	// Other applies to every other protocol, SCTP included: SCTP is not
	// state-tracked (its chunks are not parsed), so an association lives
	// while it sends anything within Other. SCTP heartbeats default to 30 s,
	// so the 600 s default (nf_conntrack_generic_timeout) keeps idle
	// associations alive.
	Other time.Duration
	// Fragment is how long the decision for a fragmented datagram is
	// remembered after its first fragment.
	Fragment time.Duration
}

// DefaultTimeouts returns the default timeouts.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		SynSent:     120 * time.Second,
		SynRecv:     60 * time.Second,
		Established: 86400 * time.Second,
		FinWait:     120 * time.Second,
		CloseWait:   3600 * time.Second,
		LastAck:     30 * time.Second,
		TimeWait:    120 * time.Second,
		Close:       10 * time.Second,
		// Unacknowledged is nf_conntrack_tcp_timeout_unacknowledged.
		Unacknowledged: 300 * time.Second,
		Embryonic:      5 * time.Second,
		UDPUnreplied:   30 * time.Second,
		UDPReplied:     120 * time.Second,
		ICMP:           30 * time.Second,
		Other:          600 * time.Second,
		Fragment:       30 * time.Second,
	}
}

// Config sizes and tunes a Table. The zero value is valid and means "all
// defaults".
type Config struct {
	// MaxFlows is the IPv4 flow capacity (default DefaultMaxFlows).
	MaxFlows int
	// MaxFlows6 is the IPv6 flow capacity (default MaxFlows/8, at least
	// 64). IPv6 records are larger (136 bytes against 80), so they have
	// their own pool; -1 disables IPv6 (inserts report Invalid).
	MaxFlows6 int
	// MaxFragments is the capacity of the fragment table (default
	// DefaultMaxFragments, rounded up to a multiple of 8).
	MaxFragments int
	// Timeouts overrides individual timeouts; zero fields keep defaults.
	Timeouts Timeouts
	// TouchResolution: Touch rewrites a flow's last-seen time only when it
	// advances by at least this much (default 1 ms), so that the two
	// directions of a busy flow handled on two CPUs do not write the same
	// cache line on every packet. Expiry is therefore this coarse.
	TouchResolution time.Duration
	// Seed keys the tuple hash. Zero picks a random seed, which is what
	// production wants (hash flooding); tests set it for reproducibility.
	Seed uint64
}

func (c Config) withDefaults() Config {
	if c.MaxFlows == 0 {
		c.MaxFlows = DefaultMaxFlows
	}
	if c.MaxFlows6 == 0 {
		c.MaxFlows6 = max(c.MaxFlows/8, 64)
	}
	if c.MaxFlows6 < 0 {
		c.MaxFlows6 = 0
	}
	if c.MaxFragments == 0 {
		c.MaxFragments = DefaultMaxFragments
	}
	c.MaxFragments = (c.MaxFragments + fragBucket - 1) &^ (fragBucket - 1)
	if c.TouchResolution == 0 {
		c.TouchResolution = time.Millisecond
	}
	d := DefaultTimeouts()
	to := &c.Timeouts
	for _, p := range []struct{ v, d *time.Duration }{
		{&to.SynSent, &d.SynSent}, {&to.SynRecv, &d.SynRecv},
		{&to.Established, &d.Established}, {&to.FinWait, &d.FinWait},
		{&to.Unacknowledged, &d.Unacknowledged}, {&to.Embryonic, &d.Embryonic},
		{&to.CloseWait, &d.CloseWait}, {&to.LastAck, &d.LastAck},
		{&to.TimeWait, &d.TimeWait}, {&to.Close, &d.Close},
		{&to.UDPUnreplied, &d.UDPUnreplied}, {&to.UDPReplied, &d.UDPReplied},
		{&to.ICMP, &d.ICMP}, {&to.Other, &d.Other}, {&to.Fragment, &d.Fragment},
	} {
		if *p.v == 0 {
			*p.v = *p.d
		}
	}
	return c
}

func (c Config) validate() error {
	if c.MaxFlows < 1 || c.MaxFlows > MaxCapacity {
		return fmt.Errorf("%w: max flows %d not in [1, %d]", ErrInvalidConfig, c.MaxFlows, MaxCapacity)
	}
	if c.MaxFlows6 > MaxCapacity {
		return fmt.Errorf("%w: max IPv6 flows %d above %d", ErrInvalidConfig, c.MaxFlows6, MaxCapacity)
	}
	if c.MaxFragments < fragBucket || c.MaxFragments > MaxCapacity {
		return fmt.Errorf("%w: max fragments %d not in [%d, %d]", ErrInvalidConfig, c.MaxFragments, fragBucket, MaxCapacity)
	}
	if c.TouchResolution < 0 {
		return fmt.Errorf("%w: negative touch resolution %v", ErrInvalidConfig, c.TouchResolution)
	}
	to := c.Timeouts
	for _, d := range []time.Duration{to.SynSent, to.SynRecv, to.Established, to.FinWait,
		to.CloseWait, to.LastAck, to.TimeWait, to.Close, to.UDPUnreplied, to.UDPReplied,
		to.ICMP, to.Other, to.Fragment, to.Unacknowledged, to.Embryonic} {
		if d < 0 {
			return fmt.Errorf("%w: negative timeout %v", ErrInvalidConfig, d)
		}
	}
	return nil
}
