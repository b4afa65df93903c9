package pktgen

import (
	"net/netip"
	"sync"
)

// Generator sends frames over AF_XDP sockets, one per TX queue.
//
// mu serialises Run and Close and guards qs and closed; the template is
// immutable and read without it (Frame, FlowAt, FlowSource).
type Generator struct {
	cfg Config
	t   *template

	mu     sync.Mutex
	qs     []*queue
	closed bool
}

// newGenerator validates cfg and builds the template, without sockets.
// cfg.SrcMAC must be set.
func newGenerator(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	t, err := newTemplate(cfg)
	if err != nil {
		return nil, err
	}
	return &Generator{cfg: cfg, t: t}, nil
}

// Config returns the configuration with defaults applied (SrcMAC filled in
// from the interface by Open).
func (g *Generator) Config() Config { return g.cfg }

// Flows returns the number of flows, Clients*PortsPerClient.
func (g *Generator) Flows() uint64 { return g.t.n }

// Frame renders the frame of flow i (taken modulo Flows) on its first
// visit: exactly the bytes Run sends for it, FrameSize-4 bytes. In
// TCPEstablished mode a flow's later visits differ in the sequence number
// (and checksum) only. It allocates; it is for tests and expectations.
func (g *Generator) Frame(i uint64) []byte { return g.t.frame(i, 0) }

// FrameVisit renders flow i's frame on its visit-th visit (0 first); it
// differs from Frame only in TCPEstablished mode.
func (g *Generator) FrameVisit(i, visit uint64) []byte { return g.t.frame(i, visit) }

// FlowAt returns the flow carried by frame s of the stream. The stream is
// the sequence of frames over every Run: queue k of Q (in Config.Queues
// order) sends frames k, k+Q, k+2Q, ... of it; frame s carries flow
// FlowAt(s) on visit s/Flows().
func (g *Generator) FlowAt(s uint64) uint64 { return g.t.perm.at(s % g.t.n) }

// FlowSource returns the client address and source port of flow i (taken
// modulo Flows): client i/PortsPerClient, port SrcPortBase +
// i%PortsPerClient.
func (g *Generator) FlowSource(i uint64) netip.AddrPort {
	a, p := g.t.source(i % g.t.n)
	return netip.AddrPortFrom(a, p)
}
