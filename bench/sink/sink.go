package sink

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
)

// Sentinel errors.
var (
	// ErrBadConfig is wrapped by every Config validation error; the
	// message names the field.
	ErrBadConfig = errors.New("bad sink config")
	// ErrNotSupported is returned by Open on systems without XDP.
	ErrNotSupported = errors.New("xdp sink needs linux")
)

// MaxTrackClients bounds Config.TrackClients: the client table is
// preallocated, 131072 entries take about 10 MB of kernel memory.
const MaxTrackClients = 1 << 24

// Config configures a Sink.
type Config struct {
	// Ifname is the interface in the current network namespace.
	Ifname string
	// Endpoints get per-endpoint counters, index i = Endpoints[i]. A frame
	// matches on destination IP and L4 (TCP or UDP) destination port, IPv4
	// and IPv6. An IPv4-mapped IPv6 address is taken as IPv4.
	Endpoints []netip.AddrPort
	// Reflect sends every TCP/UDP frame (counted or Other) back out of
	// Ifname (XDP_TX) with Ethernet addresses, IP addresses and L4 ports
	// swapped: the reply path. Other IP frames are still dropped.
	Reflect bool
	// ReplySources are the addresses and ports replies come from. A
	// TCP/UDP frame to no endpoint whose source {address, port} is
	// ReplySources[i] counts in Replies[i] and is dropped, never
	// reflected; with ReplySources, frames that are neither an endpoint's
	// nor a reply (Other) are not reflected either. One sink then plays
	// both ends of a one-arm reply scenario on the clients' interface: it
	// reflects what the gateway sends to the endpoints and counts the
	// replies the gateway sends back from the service.
	ReplySources []netip.AddrPort
	// SampleEvery is 0 for no sampling; else 1 in N IP frames is copied
	// (first 256 bytes) to user space and checked.
	SampleEvery uint32
	// ExpectSrc is the translation check on samples: the source must fall
	// in one of these (empty: no check). A sampled reply is checked for
	// its checksums only: its source is a reply source by definition.
	ExpectSrc []netip.Prefix
	// TrackClients > 0 tracks up to this many client (source) addresses
	// and which endpoint each hit (affinity retention); 0 is off.
	TrackClients int
	// Generic attaches in generic (skb) mode only. Open otherwise tries
	// native mode first. With Reflect on a veth, native XDP_TX frames
	// reach the peer only while the peer runs an XDP program; generic
	// XDP_TX goes through the peer's ordinary receive path.
	Generic bool
	// Logger receives start/stop and setup messages (nil: discarded).
	Logger *slog.Logger
}

// Counts are the sink's counters, summed over CPUs, monotonic since Open:
// callers take deltas.
type Counts struct {
	// PerEndpoint is frames per Config.Endpoints index.
	PerEndpoint []uint64
	// Replies is frames per Config.ReplySources index.
	Replies []uint64
	// Other is IP frames to no listed endpoint and from no reply source
	// (still dropped, or reflected without ReplySources): other ports,
	// non-TCP/UDP protocols, IPv4 later fragments, IPv6 with extension
	// headers, truncated headers.
	Other uint64
	// NonIP is frames passed to the stack (ARP, etc.).
	NonIP uint64
	// Total is all frames seen by the program.
	Total uint64
	// Bytes is the length of all frames seen, Ethernet header included.
	Bytes uint64
	// Sampled is samples checked in user space.
	Sampled uint64
	// SamplesLost is samples the program could not emit because the ring
	// buffer was full (the reader fell behind).
	SamplesLost uint64
	// ChecksumErrors is samples whose IPv4 header or TCP/UDP checksum is
	// wrong.
	ChecksumErrors uint64
	// ChecksumSkipped is samples whose L4 checksum was not checked: the
	// packet was longer than the 256 captured bytes, a fragment, not
	// TCP/UDP, or UDP over IPv4 without a checksum (0).
	ChecksumSkipped uint64
	// TranslationErrors is samples whose destination is not a listed
	// endpoint (checked only when Endpoints is not empty) or whose source
	// is not in ExpectSrc.
	TranslationErrors uint64
	// Clients is clients inserted into the client table since Open; a
	// client seen again after ResetClients counts again.
	Clients uint64
	// ClientsMoved is clients seen at more than one endpoint (retention =
	// 1 - ClientsMoved/Clients).
	ClientsMoved uint64
	// ClientsDropped is frames whose client could not be inserted because
	// the table was full: non-zero means TrackClients was too small.
	ClientsDropped uint64
}

// Family values in the map keys, as in bpf/sink.c.
const (
	family4 = 4
	family6 = 6
)

// epKey mirrors struct ep_key.
type epKey struct {
	Addr   [16]byte
	Port   [2]byte // network order
	Family uint8
	Pad    uint8
}

// clientKey mirrors struct client_key.
type clientKey struct {
	Addr   [16]byte
	Family uint32
}

// addrKey returns the 16-byte form and family of a: IPv4 (also
// IPv4-mapped) in the first four bytes, zeroes after.
func addrKey(a netip.Addr) ([16]byte, uint8) {
	var b [16]byte
	if a = a.Unmap(); a.Is4() {
		v4 := a.As4()
		copy(b[:], v4[:])
		return b, family4
	}
	return a.As16(), family6
}

func makeEPKey(ap netip.AddrPort) epKey {
	addr, fam := addrKey(ap.Addr())
	return epKey{Addr: addr, Port: [2]byte{byte(ap.Port() >> 8), byte(ap.Port())}, Family: fam}
}

// validate checks cfg; errors wrap ErrBadConfig and name the field.
func (cfg *Config) validate() error {
	if cfg.Ifname == "" {
		return fmt.Errorf("config: Ifname is empty: %w", ErrBadConfig)
	}
	if err := validAddrPorts("Endpoints", cfg.Endpoints); err != nil {
		return err
	}
	if err := validAddrPorts("ReplySources", cfg.ReplySources); err != nil {
		return err
	}
	for i, p := range cfg.ExpectSrc {
		if !p.IsValid() {
			return fmt.Errorf("config: ExpectSrc[%d] %v is not a valid prefix: %w", i, p, ErrBadConfig)
		}
	}
	if cfg.TrackClients < 0 || cfg.TrackClients > MaxTrackClients {
		return fmt.Errorf("config: TrackClients %d is outside [0, %d]: %w", cfg.TrackClients, MaxTrackClients, ErrBadConfig)
	}
	return nil
}

// validAddrPorts checks the address-and-port list named field: valid, no
// zone, no repeats (IPv4-mapped IPv6 taken as IPv4).
func validAddrPorts(field string, aps []netip.AddrPort) error {
	seen := make(map[epKey]int, len(aps))
	for i, ap := range aps {
		if !ap.IsValid() || !ap.Addr().IsValid() {
			return fmt.Errorf("config: %s[%d] %v is not a valid address and port: %w", field, i, ap, ErrBadConfig)
		}
		if ap.Addr().Zone() != "" {
			return fmt.Errorf("config: %s[%d] %v has a zone: %w", field, i, ap, ErrBadConfig)
		}
		k := makeEPKey(ap)
		if j, dup := seen[k]; dup {
			return fmt.Errorf("config: %s[%d] %v repeats %s[%d]: %w", field, i, ap, field, j, ErrBadConfig)
		}
		seen[k] = i
	}
	return nil
}
