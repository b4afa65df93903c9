package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Dataplane names as the rig writes them into Result.Dataplane.
const (
	DataplaneXDPGate = "xdpgate"
	// DataplaneXDPGateFastPath is xdpgate with --fast-path xdp: a target
	// about xdpgate takes the better of the two (xdpgateConfigs).
	DataplaneXDPGateFastPath = "xdpgate-fastpath"
	DataplaneNFTables        = "nftables"
	DataplaneIPTables        = "iptables"
	DataplaneForwarder       = "afxdp-forwarder"
	// DataplaneXDPRedirect is the kernel's own XDP forwarding: the
	// ceiling of the rig itself.
	DataplaneXDPRedirect = "xdp-redirect"
)

// Scenario names as the rig writes them into Result.Scenario.
const (
	ScenarioUDP1Flow              = "udp64-1-flow"
	ScenarioUDP1kFlows            = "udp64-1k-flows"
	ScenarioUDP1kFlowsReply       = "udp64-1k-flows-reply"
	ScenarioUDP1kFlowsOneArm      = "udp64-1k-flows-one-arm"
	ScenarioUDP1kFlowsOneArmReply = "udp64-1k-flows-one-arm-reply"
	ScenarioUDP100kFlows          = "udp64-100k-flows"
	ScenarioTCPSYN                = "tcp-syn"
	ScenarioAffinity100k          = "affinity-100k"
	ScenarioConntrack1M           = "conntrack-1m"
)

var (
	// ErrNoRun is returned for a nil *Run.
	ErrNoRun = errors.New("report: no run")
	// ErrNoResults is returned by Plot for a run without results.
	ErrNoResults = errors.New("report: run has no results")
)

// Run is one invocation of the rig; it is what the JSON file holds.
type Run struct {
	Started  time.Time         `json:"started"`
	Command  string            `json:"command"` // the command line that reproduces the run
	Host     Host              `json:"host"`
	Settings map[string]string `json:"settings"` // e.g. duration, frame size, steering
	Results  []Result          `json:"results"`
	Notes    []string          `json:"notes"`
}

// Host describes the machine a run was measured on.
type Host struct {
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	Commit    string `json:"commit"`
	CPUs      int    `json:"cpus"`
}

// Result is one (scenario, dataplane, steering) measurement.
type Result struct {
	Scenario          string   `json:"scenario"`
	Dataplane         string   `json:"dataplane"` // "xdpgate", "xdpgate-fastpath", "nftables", "iptables", "afxdp-forwarder", "xdp-redirect"
	Steered           bool     `json:"steered"`   // kernel softirq steered to the gateway CPU
	Offered           uint64   `json:"offered"`   // frames sent by the generator
	Delivered         uint64   `json:"delivered"` // frames counted by the sink at endpoints
	Seconds           float64  `json:"seconds"`
	OfferedPPS        float64  `json:"offered_pps"`
	DeliveredPPS      float64  `json:"delivered_pps"`
	LossPct           float64  `json:"loss_pct"`
	GatewayCPUSeconds float64  `json:"gateway_cpu_seconds"` // CPU time spent by the dataplane (process + softirq on the gateway CPU)
	CPUMsPerMpkt      float64  `json:"cpu_ms_per_mpkt"`     // gateway CPU milliseconds per million delivered frames
	PerEndpoint       []uint64 `json:"per_endpoint,omitempty"`
	Clients           uint64   `json:"clients,omitempty"`
	Retention         *float64 `json:"retention,omitempty"` // ClientIP scenarios: share of clients that stayed on one endpoint
	Sampled           uint64   `json:"sampled"`
	ChecksumErrors    uint64   `json:"checksum_errors"`
	TranslationErrors uint64   `json:"translation_errors"`
	Sweep             []Point  `json:"sweep,omitempty"` // delivered vs offered at several offered rates
	// Repeats are the delivered rates of every repetition of the burst;
	// the other fields describe the median one.
	Repeats []float64 `json:"repeats,omitempty"`
	Profile string    `json:"profile,omitempty"` // path of a pprof CPU profile taken during this result
	Error   string    `json:"error,omitempty"`   // the scenario failed for this dataplane: why
	// Gateway is what the AF_XDP dataplane's own counters (xdpgate's
	// admin socket, the raw forwarder's Dataplane) counted during the
	// reported burst: where frames were lost on the gateway. Absent for
	// the kernel baselines.
	Gateway *GatewayCounters `json:"gateway,omitempty"`
}

// GatewayCounters are the differences of an AF_XDP gateway's counters over
// one burst, summed over its sockets, in the order a frame meets them: the
// XDP classifier redirects it to a socket (or passes it to the kernel); the
// kernel puts it on the socket's RX ring unless the ring is full or the
// fill ring has no free frame; the poller takes it, the dataplane drops it
// or puts it on a TX ring.
type GatewayCounters struct {
	Redirected uint64 `json:"redirected"` // classifier: to an AF_XDP socket
	Passed     uint64 `json:"passed"`     // classifier: to the kernel (no_socket included)
	NoSocket   uint64 `json:"no_socket"`  // classifier: chosen for redirect, but no socket on the queue
	// The kernel's XDP_STATISTICS. RxDropped and RxRingFull are disjoint
	// and together what the kernel lost after the classifier;
	// FillRingEmpty is (in copy mode) part of RxDropped.
	RxRingFull      uint64 `json:"rx_ring_full"`      // dropped: RX ring full (the poller did not keep up)
	FillRingEmpty   uint64 `json:"fill_ring_empty"`   // dropped: no free UMEM frame in the fill ring
	RxDropped       uint64 `json:"rx_dropped"`        // dropped by the kernel, fill ring empty included
	InvalidDescs    uint64 `json:"invalid_descs"`     // invalid RX and TX descriptors
	TxRingEmpty     uint64 `json:"tx_ring_empty"`     // the kernel found a TX ring empty when asked to send
	KernelRingStats bool   `json:"kernel_ring_stats"` // false: the kernel reports no ring counters (before 5.9)
	RxFrames        uint64 `json:"rx_frames"`         // taken from the RX rings by the pollers
	Dropped         uint64 `json:"dropped"`           // dropped by the dataplane, every reason
	TxFrames        uint64 `json:"tx_frames"`         // put on a TX ring
	TxRingFull      uint64 `json:"tx_ring_full"`      // not sent: TX ring full
	// DropReasons splits Dropped by the dataplane's reason names.
	DropReasons map[string]uint64 `json:"drop_reasons,omitempty"`
}

// Point is one rate of a sweep: what was offered, what arrived.
type Point struct {
	OfferedPPS   float64 `json:"offered_pps"`
	DeliveredPPS float64 `json:"delivered_pps"`
	LossPct      float64 `json:"loss_pct"`
}

// Lookup returns the result for (scenario, dataplane) that comparisons use,
// or nil: a steered result before an unsteered one, then one without an
// error before one with, then the first in run order. Preferring a
// successful unsteered result over a failed steered one would compare
// different setups behind the reader's back, so steering decides first.
func (r *Run) Lookup(scenario, dataplane string) *Result {
	if r == nil {
		return nil
	}
	var best *Result
	rank := func(res *Result) int {
		n := 0
		if !res.Steered {
			n += 2
		}
		if res.Error != "" {
			n++
		}
		return n
	}
	for i := range r.Results {
		res := &r.Results[i]
		if res.Scenario != scenario || res.Dataplane != dataplane {
			continue
		}
		if best == nil || rank(res) < rank(best) {
			best = res
		}
	}
	return best
}

// Scenarios returns the scenario names in the order they first appear in
// the results: the rig measures in report order.
func (r *Run) Scenarios() []string {
	if r == nil {
		return nil
	}
	var names []string
	seen := make(map[string]bool)
	for _, res := range r.Results {
		if !seen[res.Scenario] {
			seen[res.Scenario] = true
			names = append(names, res.Scenario)
		}
	}
	return names
}

// WriteJSON writes r as indented JSON. JSON has no NaN or infinity, so a
// non-finite number is reported by field rather than by encoding/json's
// bare "unsupported value".
func WriteJSON(w io.Writer, r *Run) error {
	if r == nil {
		return ErrNoRun
	}
	if err := checkFinite(r); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode run: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// ReadJSON reads a run written by WriteJSON. Anything but exactly one JSON
// object (garbage, null, trailing data) is an error.
func ReadJSON(rd io.Reader) (*Run, error) {
	b, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("read run: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, errors.New("decode run: not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var r Run
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode run: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode run: trailing data after the run object")
	}
	return &r, nil
}

type namedValue struct {
	name string
	v    float64
}

func checkFinite(r *Run) error {
	for i, res := range r.Results {
		fields := []namedValue{
			{"seconds", res.Seconds},
			{"offered_pps", res.OfferedPPS},
			{"delivered_pps", res.DeliveredPPS},
			{"loss_pct", res.LossPct},
			{"gateway_cpu_seconds", res.GatewayCPUSeconds},
			{"cpu_ms_per_mpkt", res.CPUMsPerMpkt},
		}
		if res.Retention != nil {
			fields = append(fields, namedValue{"retention", *res.Retention})
		}
		for j, p := range res.Sweep {
			fields = append(fields,
				namedValue{fmt.Sprintf("sweep[%d].offered_pps", j), p.OfferedPPS},
				namedValue{fmt.Sprintf("sweep[%d].delivered_pps", j), p.DeliveredPPS},
				namedValue{fmt.Sprintf("sweep[%d].loss_pct", j), p.LossPct})
		}
		for j, v := range res.Repeats {
			fields = append(fields, namedValue{fmt.Sprintf("repeats[%d]", j), v})
		}
		for _, f := range fields {
			if !finite(f.v) {
				return fmt.Errorf("result %d (%s/%s): %s is %v: JSON cannot hold it", i, res.Scenario, res.Dataplane, f.name, f.v)
			}
		}
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
