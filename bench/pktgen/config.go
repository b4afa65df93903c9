package pktgen

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"net"
	"net/netip"
	"time"

	"github.com/xdpgate/xdpgate/nat"
)

var (
	// ErrInvalidConfig wraps every error Validate reports.
	ErrInvalidConfig = errors.New("pktgen: invalid config")
	// ErrClosed is returned by Run after Close.
	ErrClosed = errors.New("pktgen: generator closed")
	// ErrStalled is returned by Run when no frame completed for
	// stallTimeout although frames were waiting (link down, queue gone).
	ErrStalled = errors.New("pktgen: transmission stalled")
)

// Mode selects the transport and what a frame means to the gateway.
type Mode uint8

// Modes.
const (
	// UDP sends UDP datagrams.
	UDP Mode = iota
	// TCPSyn sends TCP SYNs: every frame opens a "new flow" from the
	// gateway's point of view.
	TCPSyn
	// TCPEstablished sends TCP ACK+PSH segments with payload; a stateful
	// gateway picks the flows up loosely (like nf_conntrack_tcp_loose).
	// The sequence number advances by the payload length each time a flow
	// is visited again.
	TCPEstablished
	numModes
)

// String returns the mode's name.
func (m Mode) String() string {
	switch m {
	case UDP:
		return "udp"
	case TCPSyn:
		return "tcp-syn"
	case TCPEstablished:
		return "tcp-established"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Frame sizes follow RFC 2544: on-wire Ethernet frames including the 4-byte
// FCS, which the NIC (or nobody, on veth) appends; the buffer handed to the
// kernel is FrameSize-fcsLen bytes.
const (
	// MinFrameSize is the smallest FrameSize (IPv6 needs more, see
	// MinFrameSizeFor).
	MinFrameSize = 64
	// MaxFrameSize is the largest FrameSize: a 1500-byte IP packet.
	MaxFrameSize = 1518

	fcsLen = 4
)

// MaxFlows bounds Clients*PortsPerClient (IPv6 clients could otherwise
// overflow the flow index).
const MaxFlows = 1 << 40

// Defaults and limits of the sizing fields.
const (
	defaultSrcPortBase = 10000
	defaultFrameSize   = MinFrameSize
	defaultNumFrames   = 4096
	defaultBatchSize   = 64
	maxBatchSize       = 1024
	umemFrameSize      = 2048
)

// Config configures a Generator. Zero fields take the defaults set in
// withDefaults, the one place defaults live.
type Config struct {
	// Ifname is the interface, in the network namespace Open runs in.
	Ifname string
	// Queues are the TX queues, one socket and one goroutine each
	// (default {0}).
	Queues []int
	// CPUs optionally pins queue i's goroutine to CPUs[i%len(CPUs)].
	CPUs []int
	// SrcMAC defaults to the interface's address. DstMAC is the gateway's
	// ingress MAC (required).
	SrcMAC, DstMAC net.HardwareAddr
	// Src is the first client address; clients are Src, Src+1, ...,
	// Src+Clients-1, same family as Dst. Every client and Dst must be in the
	// benchmarking ranges 198.18.0.0/15 (RFC 2544) or 2001:2::/48
	// (RFC 5180): a flat-out generator must not be pointed at real hosts.
	Src netip.Addr
	// Clients is the number of client addresses (default 1).
	Clients int
	// SrcPortBase is the first source port of every client (default
	// 10000).
	SrcPortBase uint16
	// PortsPerClient is the number of source ports per client (default 1):
	// flows = Clients*PortsPerClient.
	PortsPerClient int
	// Dst is the service VIP:port.
	Dst netip.AddrPort
	// Mode selects UDP, TCP SYN or TCP established-flow frames.
	Mode Mode
	// FrameSize is the Ethernet frame size including the 4-byte FCS, as in
	// RFC 2544 (default 64, at most 1518; at least the headers plus 4: 66
	// for UDP over IPv6, 78 for TCP over IPv6). Frames handed to the
	// kernel are FrameSize-4 bytes, padded with payload.
	FrameSize int
	// RatePPS is the offered rate over all queues in frames per second
	// (0: flat out).
	RatePPS float64
	// Duration stops Run after this long (0: no time bound).
	Duration time.Duration
	// Count stops Run after this many frames over all queues (0: no count
	// bound). At least one of Duration and Count must be set.
	Count uint64
	// Seed selects the flow permutation (and the TCP initial sequence
	// number).
	Seed uint64

	// NumFrames is the number of UMEM frames per queue, a power of two
	// (default 4096).
	NumFrames int
	// BatchSize is the number of descriptors submitted per kick (default
	// 64, at most 1024 and NumFrames).
	BatchSize int
	// Logger receives queue start/stop messages at debug level (default
	// slog.Default()). Never per frame.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if len(c.Queues) == 0 {
		c.Queues = []int{0}
	}
	if c.Clients == 0 {
		c.Clients = 1
	}
	if c.SrcPortBase == 0 {
		c.SrcPortBase = defaultSrcPortBase
	}
	if c.PortsPerClient == 0 {
		c.PortsPerClient = 1
	}
	if c.FrameSize == 0 {
		c.FrameSize = defaultFrameSize
	}
	if c.NumFrames == 0 {
		c.NumFrames = defaultNumFrames
	}
	if c.BatchSize == 0 {
		c.BatchSize = defaultBatchSize
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

var benchRanges = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("2001:2::/48")}

func inBenchRange(a netip.Addr) bool {
	for _, p := range benchRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// headerLen returns the bytes of headers before the payload.
func headerLen(v6 bool, m Mode) int {
	n := nat.EthHdrLen + nat.IPv4MinLen + nat.UDPHdrLen
	if v6 {
		n += nat.IPv6HdrLen - nat.IPv4MinLen
	}
	if m != UDP {
		n += nat.TCPMinLen - nat.UDPHdrLen
	}
	return n
}

// MinFrameSizeFor returns the smallest FrameSize that holds the headers of
// the family (IPv6 when v6) and mode: 64, or more over IPv6.
func MinFrameSizeFor(v6 bool, m Mode) int {
	return max(MinFrameSize, headerLen(v6, m)+fcsLen)
}

// addAddr returns a+n and whether it stayed inside a's family.
func addAddr(a netip.Addr, n uint64) (netip.Addr, bool) {
	b := new(big.Int).SetBytes(a.AsSlice())
	b.Add(b, new(big.Int).SetUint64(n))
	if b.BitLen() > a.BitLen() {
		return netip.Addr{}, false
	}
	out := make([]byte, a.BitLen()/8)
	b.FillBytes(out)
	r, _ := netip.AddrFromSlice(out)
	return r, true
}

// Validate reports every invalid field (after defaults), each error naming
// the field and wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	if c.Ifname == "" || len(c.Ifname) > 15 {
		bad("Ifname", "%q: want 1 to 15 characters", c.Ifname)
	}
	seen := map[int]bool{}
	for _, q := range c.Queues {
		if q < 0 || q > math.MaxUint16 {
			bad("Queues", "queue %d out of range", q)
		} else if seen[q] {
			bad("Queues", "queue %d listed twice", q)
		}
		seen[q] = true
	}
	for _, cpu := range c.CPUs {
		if cpu < 0 || cpu >= 1024 {
			bad("CPUs", "cpu %d out of range [0, 1024)", cpu)
		}
	}
	if c.SrcMAC != nil && len(c.SrcMAC) != 6 {
		bad("SrcMAC", "%v: want 6 bytes or nil (the interface's)", c.SrcMAC)
	}
	if len(c.DstMAC) != 6 {
		bad("DstMAC", "%v: want 6 bytes", c.DstMAC)
	}
	if c.Mode >= numModes {
		bad("Mode", "%v unknown", c.Mode)
	}
	srcOK := c.Src.IsValid() && c.Src.Zone() == "" && !c.Src.Is4In6()
	if !srcOK {
		bad("Src", "%v: want an IPv4 or IPv6 address without zone", c.Src)
	}
	dst := c.Dst.Addr()
	dstOK := dst.IsValid() && dst.Zone() == "" && !dst.Is4In6()
	if !dstOK {
		bad("Dst", "%v: want an IPv4 or IPv6 address and port", c.Dst)
	} else {
		if c.Dst.Port() == 0 {
			bad("Dst", "%v: port 0", c.Dst)
		}
		if !inBenchRange(dst) {
			bad("Dst", "%v outside the benchmarking ranges %v", dst, benchRanges)
		}
	}
	if srcOK && dstOK && c.Src.Is4() != dst.Is4() {
		bad("Src", "%v and Dst %v: address family mismatch", c.Src, dst)
	}
	if c.Clients < 1 {
		bad("Clients", "%d: want at least 1", c.Clients)
	} else if srcOK {
		last, ok := addAddr(c.Src, uint64(c.Clients-1))
		switch {
		case !ok:
			bad("Clients", "%d clients from %v overflow the address family", c.Clients, c.Src)
		case !inBenchRange(c.Src) || !inBenchRange(last):
			bad("Clients", "clients %v..%v leave the benchmarking ranges %v", c.Src, last, benchRanges)
		}
	}
	if c.PortsPerClient < 1 || c.PortsPerClient > 65535 {
		bad("PortsPerClient", "%d: want 1 to 65535", c.PortsPerClient)
	} else if int(c.SrcPortBase)+c.PortsPerClient-1 > 65535 {
		bad("PortsPerClient", "%d ports from SrcPortBase %d pass 65535", c.PortsPerClient, c.SrcPortBase)
	} else if c.Clients >= 1 && uint64(c.Clients) > MaxFlows/uint64(c.PortsPerClient) {
		bad("Clients", "%d clients x %d PortsPerClient: more than %d flows", c.Clients, c.PortsPerClient, uint64(MaxFlows))
	}
	if srcOK && c.Mode < numModes {
		if lo := MinFrameSizeFor(c.Src.Is6(), c.Mode); c.FrameSize < lo || c.FrameSize > MaxFrameSize {
			bad("FrameSize", "%d: want %d to %d for %s over %s (including the 4-byte FCS)",
				c.FrameSize, lo, MaxFrameSize, c.Mode, family(c.Src))
		}
	} else if c.FrameSize < MinFrameSize || c.FrameSize > MaxFrameSize {
		bad("FrameSize", "%d: want %d to %d", c.FrameSize, MinFrameSize, MaxFrameSize)
	}
	if math.IsNaN(c.RatePPS) || math.IsInf(c.RatePPS, 0) || c.RatePPS < 0 {
		bad("RatePPS", "%v: want a finite rate >= 0 (0: flat out)", c.RatePPS)
	}
	if c.Duration < 0 {
		bad("Duration", "%v: negative", c.Duration)
	}
	if c.Duration == 0 && c.Count == 0 {
		bad("Duration", "neither Duration nor Count is set: a run must be bounded")
	}
	if c.NumFrames < 64 || c.NumFrames > 1<<18 || c.NumFrames&(c.NumFrames-1) != 0 {
		bad("NumFrames", "%d: want a power of two from 64 to %d", c.NumFrames, 1<<18)
	}
	if c.BatchSize < 1 || c.BatchSize > maxBatchSize || c.BatchSize > c.NumFrames {
		bad("BatchSize", "%d: want 1 to min(%d, NumFrames)", c.BatchSize, maxBatchSize)
	}
	return errors.Join(errs...)
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// Stats are the results of one Run.
type Stats struct {
	// Sent counts frames accepted by the TX ring and completed by the
	// kernel (on veth, completed means handed to the peer, which may still
	// drop them).
	Sent uint64
	// Elapsed is the wall time of the run, from the first submission to the
	// last completion, on the monotonic clock.
	Elapsed time.Duration
	// OfferedPPS is Sent/Elapsed.
	OfferedPPS float64
	// PerQueue is Sent by queue, in Config.Queues order.
	PerQueue []uint64
}
