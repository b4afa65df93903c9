package sink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
)

// Ring buffer sizes: large enough for a burst of ~3,800 samples while the
// reader is descheduled (the rig shares two cores with everything else), a
// single page when sampling is off.
const (
	ringBytes    = 1 << 20
	epNone       = 0xffffffff // EP_NONE in bpf/sink.c
	epReply      = 0x80000000 // EP_REPLY in bpf/sink.c
	sampleHdrLen = 16         // struct sample before data
	maxRecent    = 16
	catchUpLimit = time.Second
)

// epVal mirrors struct ep_val (one per CPU).
type epVal struct {
	Frames uint64
	Index  uint32
	Pad    uint32
}

// clientVal mirrors struct client_val.
type clientVal struct {
	Endpoint uint32
	Moved    uint32
}

// statsValue mirrors struct stats (one per CPU).
type statsValue struct {
	Total, Bytes, Other, NonIP, Tick, Samples, SamplesLost uint64
	Clients, ClientsMoved, ClientsDropped                  uint64
}

// Sink is the loaded XDP program, its maps and the sample reader.
//
// The counters live in per-CPU maps written only by the program; the
// sample verdict counters are atomics written only by the reader
// goroutine; mu guards recent and closed.
type Sink struct {
	cfg    Config
	log    *slog.Logger
	objs   sinkObjects
	keys   []epKey
	srcs   []epKey // ReplySources' keys
	link   link.Link
	mode   string
	chk    *checker
	rd     *ringbuf.Reader
	wg     sync.WaitGroup
	ncpu   int
	closed bool

	sampled, csumErrs, csumSkipped, transErrs atomic.Uint64

	mu     sync.Mutex
	recent []string
}

// Open loads the program, fills the endpoint map, starts the sample reader
// and attaches the program to cfg.Ifname (native XDP, falling back to
// generic). Call it inside the sink's network namespace (the interface is
// looked up there); the Sink can be used and closed from any goroutine.
func Open(cfg Config) (*Sink, error) {
	s, err := load(cfg)
	if err != nil {
		return nil, err
	}
	iface, err := net.InterfaceByName(cfg.Ifname)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("config: Ifname %q: %w", cfg.Ifname, err)
	}
	var l link.Link
	if !cfg.Generic {
		l, err = link.AttachXDP(link.XDPOptions{Program: s.objs.Sink, Interface: iface.Index, Flags: link.XDPDriverMode})
		s.mode = "native"
	}
	if cfg.Generic || err != nil {
		nerr := err
		l, err = link.AttachXDP(link.XDPOptions{Program: s.objs.Sink, Interface: iface.Index, Flags: link.XDPGenericMode})
		if err != nil {
			s.Close()
			if nerr != nil {
				return nil, fmt.Errorf("attach xdp to %s: native: %w; generic: %w", cfg.Ifname, nerr, err)
			}
			return nil, fmt.Errorf("attach generic xdp to %s: %w", cfg.Ifname, err)
		}
		s.mode = "generic"
	}
	s.link = l
	s.log.Info("sink attached", "ifname", cfg.Ifname, "mode", s.mode, "endpoints", len(cfg.Endpoints),
		"reflect", cfg.Reflect, "reply_sources", len(cfg.ReplySources), "sample_every", cfg.SampleEvery, "track_clients", cfg.TrackClients)
	return s, nil
}

// load validates cfg, loads the program and its maps, fills the endpoint
// map and starts the sample reader; it does not attach (tests run the
// program with BPF_PROG_RUN).
func load(cfg Config) (*Sink, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("possible cpus: %w", err)
	}
	spec, err := loadSink()
	if err != nil {
		return nil, fmt.Errorf("load sink spec: %w", err)
	}
	spec.Maps[sinkMapEndpoints].MaxEntries = uint32(max(len(cfg.Endpoints), 1))
	spec.Maps[sinkMapSources].MaxEntries = uint32(max(len(cfg.ReplySources), 1))
	spec.Maps[sinkMapClients].MaxEntries = uint32(max(cfg.TrackClients, 1))
	if cfg.SampleEvery > 0 {
		spec.Maps[sinkMapSamples].MaxEntries = ringBytes
	} else {
		spec.Maps[sinkMapSamples].MaxEntries = uint32(os.Getpagesize())
	}
	for name, v := range map[string]uint32{
		sinkVarSampleEvery:  cfg.SampleEvery,
		sinkVarReflect:      b2u(cfg.Reflect),
		sinkVarTrackClients: b2u(cfg.TrackClients > 0),
		sinkVarCountReplies: b2u(len(cfg.ReplySources) > 0),
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	s := &Sink{cfg: cfg, log: cfg.Logger, ncpu: ncpu, chk: newChecker(cfg.Endpoints, cfg.ExpectSrc, cfg.ReplySources)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		return nil, fmt.Errorf("load sink program: %w", err)
	}
	if s.keys, err = fillIndex(s.objs.Endpoints, "Endpoints", cfg.Endpoints, ncpu); err == nil {
		s.srcs, err = fillIndex(s.objs.Sources, "ReplySources", cfg.ReplySources, ncpu)
	}
	if err != nil {
		s.objs.Close()
		return nil, err
	}
	if cfg.SampleEvery > 0 {
		if s.rd, err = ringbuf.NewReader(s.objs.Samples); err != nil {
			s.objs.Close()
			return nil, fmt.Errorf("sample reader: %w", err)
		}
		s.wg.Add(1)
		go s.readSamples()
	}
	return s, nil
}

// fillIndex puts aps into m (the endpoint or the source map), aps[i] with
// index i on every CPU, and returns their keys.
func fillIndex(m *ebpf.Map, field string, aps []netip.AddrPort, ncpu int) ([]epKey, error) {
	var keys []epKey
	vals := make([]epVal, ncpu)
	for i, ap := range aps {
		k := makeEPKey(ap)
		for c := range vals {
			vals[c] = epVal{Index: uint32(i)}
		}
		if err := m.Put(&k, vals); err != nil {
			return nil, fmt.Errorf("fill map: %s[%d] %v: %w", field, i, ap, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Mode is "native" or "generic": how the program is attached.
func (s *Sink) Mode() string { return s.mode }

// readSamples checks samples until the reader is closed.
func (s *Sink) readSamples() {
	defer s.wg.Done()
	s.log.Info("sample reader started", "ifname", s.cfg.Ifname)
	defer s.log.Info("sample reader stopped", "ifname", s.cfg.Ifname)
	var rec ringbuf.Record
	for {
		if err := s.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, ringbuf.ErrClosed) {
				return
			}
			s.log.Error("read sample", "err", err)
			return
		}
		s.checkRecord(rec.RawSample)
	}
}

// checkRecord checks one struct sample.
func (s *Sink) checkRecord(raw []byte) {
	if len(raw) < sampleHdrLen {
		s.fail(verdict{checksumErr: true, reason: fmt.Sprintf("short sample record (%d bytes)", len(raw))})
		return
	}
	ep := binary.NativeEndian.Uint32(raw)
	caplen := int(binary.NativeEndian.Uint32(raw[8:]))
	data := raw[sampleHdrLen:]
	caplen = min(caplen, len(data), sampleBytes)
	var v verdict
	if ep != epNone && ep&epReply != 0 {
		v = s.chk.checkReply(data[:caplen])
	} else {
		v = s.chk.check(data[:caplen])
	}
	if v.l4Skipped {
		s.csumSkipped.Add(1)
	}
	if v.checksumErr || v.translationErr {
		s.fail(v)
	}
	s.sampled.Add(1)
}

func (s *Sink) fail(v verdict) {
	if v.checksumErr {
		s.csumErrs.Add(1)
	}
	if v.translationErr {
		s.transErrs.Add(1)
	}
	s.mu.Lock()
	if len(s.recent) == maxRecent {
		s.recent = append(s.recent[:0], s.recent[1:]...)
	}
	s.recent = append(s.recent, v.reason)
	s.mu.Unlock()
}

// RecentErrors returns why the last (up to 16) failed samples failed,
// oldest first.
func (s *Sink) RecentErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.recent...)
}

// Counts sums the per-CPU counters. Before reading the sample verdicts it
// waits (at most a second) for the reader to check every sample the
// program has emitted so far, so that Sampled and the error counts cover
// the same frames as the frame counters.
func (s *Sink) Counts() (Counts, error) {
	var c Counts
	var st []statsValue
	if err := s.objs.Stats.Lookup(uint32(0), &st); err != nil {
		return c, fmt.Errorf("read stats: %w", err)
	}
	var emitted uint64
	for _, v := range st {
		c.Total += v.Total
		c.Bytes += v.Bytes
		c.Other += v.Other
		c.NonIP += v.NonIP
		emitted += v.Samples
		c.SamplesLost += v.SamplesLost
		c.Clients += v.Clients
		c.ClientsMoved += v.ClientsMoved
		c.ClientsDropped += v.ClientsDropped
	}
	var err error
	if c.PerEndpoint, err = readIndex(s.objs.Endpoints, "Endpoints", s.keys); err != nil {
		return c, err
	}
	if c.Replies, err = readIndex(s.objs.Sources, "ReplySources", s.srcs); err != nil {
		return c, err
	}
	if s.rd != nil {
		deadline := time.Now().Add(catchUpLimit)
		for s.sampled.Load() < emitted && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	c.Sampled = s.sampled.Load()
	c.ChecksumErrors = s.csumErrs.Load()
	c.ChecksumSkipped = s.csumSkipped.Load()
	c.TranslationErrors = s.transErrs.Load()
	return c, nil
}

// readIndex sums the per-CPU frame counters of keys in m (the endpoint or
// the source map), in order.
func readIndex(m *ebpf.Map, field string, keys []epKey) ([]uint64, error) {
	out := make([]uint64, len(keys))
	var vals []epVal
	for i := range keys {
		if err := m.Lookup(&keys[i], &vals); err != nil {
			return nil, fmt.Errorf("read %s[%d] counter: %w", field, i, err)
		}
		for _, v := range vals {
			out[i] += v.Frames
		}
	}
	return out, nil
}

// ResetClients clears the client table (between scenario runs). The
// Clients, ClientsMoved and ClientsDropped counters stay monotonic.
func (s *Sink) ResetClients() error {
	if s.cfg.TrackClients == 0 {
		return nil
	}
	const batch = 4096
	keys := make([]clientKey, batch)
	vals := make([]clientVal, batch)
	var cursor ebpf.MapBatchCursor
	for {
		_, err := s.objs.Clients.BatchLookupAndDelete(&cursor, keys, vals, nil)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("clear client table: %w", err)
		}
	}
}

// Close detaches the program, stops the reader and releases the maps. It
// is safe to call more than once.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	var errs []error
	if s.link != nil {
		errs = append(errs, s.link.Close())
	}
	if s.rd != nil {
		errs = append(errs, s.rd.Close())
	}
	s.wg.Wait()
	errs = append(errs, s.objs.Close())
	if s.link != nil {
		s.log.Info("sink detached", "ifname", s.cfg.Ifname)
	}
	return errors.Join(errs...)
}

var _ io.Closer = (*Sink)(nil)
