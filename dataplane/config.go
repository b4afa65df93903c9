package dataplane

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// Config configures a Dataplane. Zero fields take the defaults set in
// withDefaults, the one place defaults live.
type Config struct {
	// Interfaces are the managed interfaces; every receive queue of each
	// gets an AF_XDP socket and a poller.
	Interfaces []string
	// Attach selects the XDP attach mode (default AttachNative).
	Attach AttachMode
	// Bind selects copy or zero-copy (default BindAuto).
	Bind BindMode
	// NumFrames is the number of UMEM frames per socket (default 4096):
	// half for reception, half for copies transmitted from other
	// interfaces. Even, at least 4*BatchSize.
	NumFrames int
	// FrameSize is the UMEM chunk size, 2048 or 4096. 0 picks 2048 when the
	// largest MTU fits, else 4096. A frame holds FrameSize-256 bytes (the
	// kernel's XDP_PACKET_HEADROOM); an MTU+22 (Ethernet and two VLAN tags)
	// larger than that is refused with ErrMTUTooLarge.
	FrameSize int
	// Ring sizes, powers of two (default 2048 each). The fill ring must
	// hold NumFrames/2 entries.
	FillRingSize, CompletionRingSize, RxRingSize, TxRingSize int
	// BatchSize is the maximum number of frames per Process call
	// (default 64).
	BatchSize int
	// CPUs pins pollers: poller i runs on CPUs[i%len(CPUs)]. Empty: no
	// pinning (the thread is still locked).
	CPUs []int
	// BusyPoll is how long a poller spins on an empty RX ring before it
	// sleeps in poll(2); 0 never spins. (xdpgate run's default,
	// xdp.busyPoll, is in internal/config.)
	BusyPoll time.Duration
	// IdleWakeup bounds a poll(2) sleep so completions are reclaimed on an
	// idle socket (default 1s).
	IdleWakeup time.Duration
	// Neighbours tells pollers the MAC of a held frame's next hop
	// (VerdictHold); an *Egress in production. Nil: VerdictHold drops with
	// DropNeighUnresolved.
	Neighbours NeighbourTable
	// NeighHoldFrames bounds the frames one queue holds for unresolved
	// next hops (default NumFrames/16, i.e. 1/8 of the RX frames, the most
	// allowed: held frames stay in RX chunks, which the fill ring then
	// lacks). Negative disables holding.
	NeighHoldFrames int
	// NeighHoldPerNeighbour bounds the frames one queue holds for one
	// neighbour (default 32, at most NeighHoldFrames). Linux bounds its
	// queue per neighbour in bytes (unres_qlen_bytes, about a hundred
	// full-size frames); this one is per queue and shares the RX UMEM.
	NeighHoldPerNeighbour int
	// NeighHoldTime is how long a frame is held before it is dropped with
	// DropNeighFailed (default DefaultNeighHoldTime).
	NeighHoldTime time.Duration
	// ReplaceForeign lets Open remove an XDP program of another tool from a
	// managed interface. Without it Open removes only xdpgate's own
	// program (left by an earlier run) and fails with an error wrapping
	// ErrAttach that names the program when another one is attached.
	ReplaceForeign bool
	// Devices, when set, makes the Dataplane follow the devices the node
	// reaches endpoints through (an *Egress): Run attaches the classifier
	// and an AF_XDP socket to each on demand and detaches them when they
	// go (doc.go, "Reach"). Nil: only Interfaces are used.
	Devices DeviceSource
	// MaxDeviceQueues bounds the sockets opened for Devices (default 256
	// when Devices is set): NumQueues counts them, so Processors size
	// per-queue state for them up front.
	MaxDeviceQueues int
	// DeviceNumFrames is the number of UMEM frames of a socket opened for
	// Devices (default 1024, 2 MiB with 2 KiB frames: a pod's veth carries
	// one pod's traffic, and hundreds of pods must not cost gigabytes).
	DeviceNumFrames int
	// Classifier sizes the classifier maps.
	Classifier ClassifierConfig
	// Logger receives start/stop and setup messages (default
	// slog.Default()). Never per packet.
	Logger *slog.Logger
}

// DefaultNeighHoldTime is how long Linux tries to resolve a neighbour before
// it gives up and drops what it queued: mcast_solicit (3) probes
// retrans_time_ms (1000 ms) apart (net.ipv4.neigh.default.* and
// net.ipv6.neigh.default.* sysctls).
const DefaultNeighHoldTime = 3 * time.Second

// defaultNeighHoldPerNeighbour bounds the frames held for one neighbour.
const defaultNeighHoldPerNeighbour = 32

func (c Config) withDefaults() Config {
	if c.NumFrames == 0 {
		c.NumFrames = 4096
	}
	if c.FillRingSize == 0 {
		c.FillRingSize = 2048
	}
	if c.CompletionRingSize == 0 {
		c.CompletionRingSize = 2048
	}
	if c.RxRingSize == 0 {
		c.RxRingSize = 2048
	}
	if c.TxRingSize == 0 {
		c.TxRingSize = 2048
	}
	if c.BatchSize == 0 {
		c.BatchSize = 64
	}
	if c.IdleWakeup == 0 {
		c.IdleWakeup = time.Second
	}
	if c.NeighHoldFrames == 0 {
		c.NeighHoldFrames = c.NumFrames / 16
	}
	if c.NeighHoldPerNeighbour == 0 {
		c.NeighHoldPerNeighbour = min(defaultNeighHoldPerNeighbour, max(c.NeighHoldFrames, 1))
	}
	if c.NeighHoldTime == 0 {
		c.NeighHoldTime = DefaultNeighHoldTime
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Devices != nil && c.MaxDeviceQueues == 0 {
		c.MaxDeviceQueues = 256
	}
	if c.DeviceNumFrames == 0 {
		c.DeviceNumFrames = 1024
	}
	return c
}

// xdpPacketHeadroom is XDP_PACKET_HEADROOM: the kernel puts a received frame
// this far into its UMEM chunk (plus the UMEM headroom, 0 here), so a chunk
// of size F holds frames of at most F-256 bytes (xsk_pool_get_rx_frame_size).
const xdpPacketHeadroom = 256

func isPow2(v int) bool { return v > 0 && v&(v-1) == 0 }

func (c Config) validate() error {
	if len(c.Interfaces) == 0 {
		return fmt.Errorf("no interfaces: %w", ErrBadConfig)
	}
	for _, r := range []struct {
		name string
		v    int
	}{{"fill", c.FillRingSize}, {"completion", c.CompletionRingSize}, {"rx", c.RxRingSize}, {"tx", c.TxRingSize}} {
		if !isPow2(r.v) {
			return fmt.Errorf("%s ring size %d is not a power of two: %w", r.name, r.v, ErrBadConfig)
		}
	}
	if c.FrameSize != 0 && c.FrameSize != 2048 && c.FrameSize != 4096 {
		return fmt.Errorf("frame size %d: want 2048 or 4096: %w", c.FrameSize, ErrBadConfig)
	}
	if c.BatchSize < 1 || c.BatchSize > c.RxRingSize {
		return fmt.Errorf("batch size %d: want 1..rx ring size: %w", c.BatchSize, ErrBadConfig)
	}
	if c.NumFrames%2 != 0 || c.NumFrames < 4*c.BatchSize {
		return fmt.Errorf("num frames %d: want even and >= 4*batch size: %w", c.NumFrames, ErrBadConfig)
	}
	if c.NeighHoldFrames > c.NumFrames/16 {
		return fmt.Errorf("neighbour hold %d frames: want at most 1/8 of the %d RX frames: %w", c.NeighHoldFrames, c.NumFrames/2, ErrBadConfig)
	}
	if c.NeighHoldPerNeighbour < 1 || c.NeighHoldTime < 0 {
		return fmt.Errorf("neighbour hold %d frames per neighbour for %v: %w", c.NeighHoldPerNeighbour, c.NeighHoldTime, ErrBadConfig)
	}
	if c.FillRingSize < c.NumFrames/2 {
		return fmt.Errorf("fill ring %d smaller than the %d RX frames: %w", c.FillRingSize, c.NumFrames/2, ErrBadConfig)
	}
	return nil
}

// frameSizeFor picks the frame size for the largest MTU, or fails.
func frameSizeFor(configured, mtu int) (int, error) {
	need := mtu + 14 + 8 + xdpPacketHeadroom
	if configured != 0 {
		if need > configured {
			return 0, fmt.Errorf("MTU %d needs %d-byte frames, frame size is %d: %w", mtu, need, configured, ErrMTUTooLarge)
		}
		return configured, nil
	}
	for _, fs := range []int{2048, 4096} {
		if need <= fs {
			return fs, nil
		}
	}
	return 0, fmt.Errorf("MTU %d needs %d-byte frames, largest is 4096 (no multi-buffer): %w", mtu, need, ErrMTUTooLarge)
}

// AttachMode selects the XDP attach mode. Its text forms (String,
// ParseAttachMode) are the configuration file's xdp.mode values.
type AttachMode uint8

// Attach modes.
const (
	// AttachNative attaches in driver mode only.
	AttachNative AttachMode = iota
	// AttachNativeOrGeneric tries driver mode, then generic (SKB) mode.
	AttachNativeOrGeneric
	// AttachGeneric attaches in generic (SKB) mode only.
	AttachGeneric
)

// BindMode selects AF_XDP copy or zero-copy.
type BindMode uint8

// Bind modes.
const (
	// BindAuto lets the kernel use zero-copy when the driver supports it.
	BindAuto BindMode = iota
	// BindCopy forces copy mode.
	BindCopy
	// BindZeroCopy requires zero-copy; binding fails without it.
	BindZeroCopy
)

var attachModeNames = [...]string{AttachNative: "native", AttachNativeOrGeneric: "auto", AttachGeneric: "generic"}

// String returns the mode's configuration name: native, auto or generic.
func (m AttachMode) String() string {
	if int(m) < len(attachModeNames) {
		return attachModeNames[m]
	}
	return "AttachMode(" + strconv.Itoa(int(m)) + ")"
}

// ParseAttachMode parses a configuration name (native, generic or auto).
func ParseAttachMode(s string) (AttachMode, error) {
	for m, name := range attachModeNames {
		if s == name {
			return AttachMode(m), nil
		}
	}
	return 0, fmt.Errorf("%q: want native, generic or auto: %w", s, ErrBadConfig)
}
