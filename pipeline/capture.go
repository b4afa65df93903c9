package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"
)

// ErrCaptureBusy is returned by StartCapture while another capture runs.
var ErrCaptureBusy = errors.New("another capture is running")

// CapturePoint says where in Process a frame is captured.
type CapturePoint uint8

// Capture points: CapturePre is the frame as received, before any
// translation; CapturePost is every frame handed to TX, after translation
// (and the ICMP errors the pipeline generates).
const (
	CapturePre CapturePoint = 1 << iota
	CapturePost
)

// CaptureConfig selects what a capture copies. Zero filter fields match
// every frame; the fields are and-ed, and each one matches either side.
type CaptureConfig struct {
	// Points is CapturePre, CapturePost or both (default both).
	Points CapturePoint
	// Host matches frames whose IP source or destination is Host.
	Host netip.Addr
	// Port matches frames whose TCP/UDP/SCTP source or destination port is
	// Port.
	Port uint16
	// AddrPorts, when not empty, matches frames whose source or destination
	// address:port is one of them (a Service's frontends and endpoints).
	AddrPorts []netip.AddrPort
	// Ring is the number of frames the ring holds (default 4096).
	Ring int
	// SnapLen bounds the bytes copied per frame (default 2048).
	SnapLen int
}

// CaptureRecord is one captured frame. Data is valid until the next call
// to Capture.Next.
type CaptureRecord struct {
	Point CapturePoint
	// Time is when the frame's batch was processed.
	Time time.Time
	// Len is the frame's length on the wire; Data may be shorter (SnapLen).
	Len  int
	Data []byte
}

// Capture is one running capture session.
//
// Pollers copy matching frames into a ring of preallocated slots: a slot
// index is taken from free with a non-blocking receive, filled, and sent
// to full (which never blocks: there are as many indexes as capacity).
// When no slot is free the frame is skipped and counted: a poller never
// waits for the reader. The reader (Next) takes slots from full and gives
// them back on its following call.
type Capture struct {
	cfg     CaptureConfig
	slots   []captureSlot
	free    chan int32
	full    chan int32
	held    int32 // slot the reader holds, -1 if none; reader-owned
	p       *Pipeline
	skipped atomic.Uint64 // frames skipped because the ring was full
	copied  atomic.Uint64 // frames put in the ring
}

type captureSlot struct {
	point CapturePoint
	time  time.Time
	len   int
	n     int
	buf   []byte
}

// StartCapture starts the only capture session; ErrCaptureBusy while one
// runs. Stop it with Capture.Stop.
func (p *Pipeline) StartCapture(cfg CaptureConfig) (*Capture, error) {
	if cfg.Points == 0 {
		cfg.Points = CapturePre | CapturePost
	}
	if cfg.Ring <= 0 {
		cfg.Ring = 4096
	}
	if cfg.SnapLen <= 0 {
		cfg.SnapLen = 2048
	}
	if cfg.Points&^(CapturePre|CapturePost) != 0 || cfg.Ring > 1<<20 || cfg.SnapLen > 1<<16 {
		return nil, fmt.Errorf("capture config %+v: %w", cfg, ErrBadConfig)
	}
	c := &Capture{cfg: cfg, slots: make([]captureSlot, cfg.Ring), free: make(chan int32, cfg.Ring),
		full: make(chan int32, cfg.Ring), held: -1, p: p}
	buf := make([]byte, cfg.Ring*cfg.SnapLen)
	for i := range c.slots {
		c.slots[i].buf = buf[i*cfg.SnapLen : (i+1)*cfg.SnapLen : (i+1)*cfg.SnapLen]
		c.free <- int32(i)
	}
	if !p.capture.CompareAndSwap(nil, c) {
		return nil, ErrCaptureBusy
	}
	if p.fast != nil {
		p.fastRemoveAll() // every packet comes through the pipeline while it runs
	}
	return c, nil
}

// Stop ends the session (pollers stop copying from their next batch) and
// returns the number of frames copied and skipped because the ring was full.
func (c *Capture) Stop() (copied, skipped uint64) {
	c.p.capture.CompareAndSwap(c, nil)
	return c.copied.Load(), c.skipped.Load()
}

// Next returns the next captured frame, waiting until one arrives or ctx
// ends (ok false). The previous record's Data is invalid from this call.
func (c *Capture) Next(ctx context.Context) (r CaptureRecord, ok bool) {
	if c.held >= 0 {
		c.free <- c.held
		c.held = -1
	}
	select {
	case i := <-c.full:
		c.held = i
		s := &c.slots[i]
		return CaptureRecord{Point: s.point, Time: s.time, Len: s.len, Data: s.buf[:s.n]}, true
	case <-ctx.Done():
		return CaptureRecord{}, false
	}
}

// frames copies the matching frames of a batch at point. Called by pollers
// only while the session is published.
func (c *Capture) frames(point CapturePoint, frames []dataplane.Frame, txOnly bool) {
	if c.cfg.Points&point == 0 {
		return
	}
	var now time.Time
	for i := range frames {
		f := &frames[i]
		if txOnly && f.Verdict != dataplane.VerdictTX {
			continue
		}
		data := f.Data()
		if !c.cfg.match(data) {
			continue
		}
		var idx int32
		select {
		case idx = <-c.free:
		default:
			c.skipped.Add(1)
			continue
		}
		if now.IsZero() {
			now = time.Now()
		}
		s := &c.slots[idx]
		s.point, s.time, s.len = point, now, len(data)
		s.n = copy(s.buf, data)
		c.copied.Add(1)
		c.full <- idx // never blocks: at most Ring indexes exist
	}
}

// match reports whether a frame passes the filter. It reads Ethernet
// (one optional VLAN tag), IPv4 or IPv6 (no extension headers) and the
// ports of TCP, UDP and SCTP in first fragments.
func (cfg *CaptureConfig) match(b []byte) bool {
	if !cfg.Host.IsValid() && cfg.Port == 0 && len(cfg.AddrPorts) == 0 {
		return true
	}
	if len(b) < nat.EthHdrLen {
		return false
	}
	et, off := binary.BigEndian.Uint16(b[nat.EthTypeOff:]), nat.EthHdrLen
	if et == nat.EtherTypeVLAN && len(b) >= nat.EthHdrLen+nat.VLANTagLen {
		et, off = binary.BigEndian.Uint16(b[nat.EthTypeOff+nat.VLANTagLen:]), nat.EthHdrLen+nat.VLANTagLen
	}
	var src, dst netip.Addr
	var proto nat.Proto
	var l4 int
	hasPorts := false
	switch et {
	case nat.EtherTypeIPv4:
		ip := b[off:]
		if len(ip) < nat.IPv4MinLen || ip[0]>>4 != 4 {
			return false
		}
		src = netip.AddrFrom4([4]byte(ip[nat.IPv4SrcOff : nat.IPv4SrcOff+4]))
		dst = netip.AddrFrom4([4]byte(ip[nat.IPv4DstOff : nat.IPv4DstOff+4]))
		proto = nat.Proto(ip[nat.IPv4ProtoOff])
		l4 = off + int(ip[0]&0xf)*4
		hasPorts = binary.BigEndian.Uint16(ip[nat.IPv4FlagsFragOff:])&0x1fff == 0
	case nat.EtherTypeIPv6:
		ip := b[off:]
		if len(ip) < nat.IPv6HdrLen || ip[0]>>4 != 6 {
			return false
		}
		src = netip.AddrFrom16([16]byte(ip[nat.IPv6SrcOff : nat.IPv6SrcOff+16]))
		dst = netip.AddrFrom16([16]byte(ip[nat.IPv6DstOff : nat.IPv6DstOff+16]))
		proto = nat.Proto(ip[nat.IPv6NextHeaderOff])
		l4 = off + nat.IPv6HdrLen
		hasPorts = true
	default:
		return false
	}
	var sport, dport uint16
	if hasPorts && (proto == nat.ProtoTCP || proto == nat.ProtoUDP || proto == nat.ProtoSCTP) && len(b) >= l4+4 {
		sport, dport = binary.BigEndian.Uint16(b[l4:]), binary.BigEndian.Uint16(b[l4+2:])
	} else {
		hasPorts = false
	}
	if cfg.Host.IsValid() && src != cfg.Host && dst != cfg.Host {
		return false
	}
	if cfg.Port != 0 && (!hasPorts || (sport != cfg.Port && dport != cfg.Port)) {
		return false
	}
	if len(cfg.AddrPorts) > 0 {
		if !hasPorts {
			return false
		}
		s, d := netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
		for _, ap := range cfg.AddrPorts {
			if ap == s || ap == d {
				return true
			}
		}
		return false
	}
	return true
}
