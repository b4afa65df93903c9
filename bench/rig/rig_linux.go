package rig

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xdpgate/xdpgate/bench/pktgen"
	"github.com/xdpgate/xdpgate/bench/report"
	"github.com/xdpgate/xdpgate/bench/sink"
)

// Options configure a rig run. The zero value runs everything with the
// defaults below.
type Options struct {
	// Binary is the xdpgate binary run as the gateway. It is required
	// when the xdpgate dataplane is measured: the rig lives in its own
	// binary (cmd/xdpgate-bench), so its own executable is not xdpgate.
	Binary string
	// Scenarios and Dataplanes select what runs (default: all).
	Scenarios  []string
	Dataplanes []string
	// Custom, when set, replaces Scenarios with these definitions (tests
	// use small client counts).
	Custom []Scenario
	// External adds dataplanes of your own: name -> shell command run in
	// the gateway namespace for each scenario and stopped with SIGTERM
	// (see the package documentation for its environment). They are
	// measured after the built-in ones.
	External map[string]string
	// Duration is the length of one measured burst (default 3s).
	Duration time.Duration
	// Repeat is how many bursts measure each (scenario, dataplane); the
	// result is the median by delivered rate, and the report shows the
	// range (default 3; fixed-count scenarios run once).
	Repeat int
	// SweepPoint is the length of one sweep point (default 2s).
	SweepPoint time.Duration
	// SweepFractions are the offered rates of a sweep, as fractions of the
	// ceiling measured by the raw forwarder in the same scenario (default
	// 0.2 to 1.2).
	SweepFractions []float64
	// Unsteered also measures, once (udp64-1k-flows), xdpgate and nftables
	// without steering, to show what steering changes.
	Unsteered bool
	// GeneratorCPU and GatewayCPU (default 0 and 1).
	GeneratorCPU, GatewayCPU int
	// WorkDir receives manifests and gateway logs (default a temporary
	// directory, removed afterwards).
	WorkDir string
	// ProfileDir, when set, receives a CPU profile of each xdpgate run.
	ProfileDir string
	// XDPGateArgs are appended to the `xdpgate run` flags the rig passes
	// (a later flag wins), e.g. to measure other --busy-poll settings.
	XDPGateArgs []string
	// NativeReplySinks attaches the reply scenarios' sinks in native
	// XDP mode also when the xdpgate dataplane is measured, as they always
	// are for xdpgate-fastpath and xdp-redirect (the kernel baselines and
	// the raw forwarder keep generic mode, which their replies need).
	// Native sinks give the gateway-facing veths NAPI, which xdpgate's XDP
	// fast path (--fast-path xdp) needs to forward to them; their cost on
	// the gateway CPU differs from generic sinks', so with it xdpgate
	// compares like for like with xdpgate-fastpath, not with the kernel
	// baselines.
	NativeReplySinks bool
	// Command is recorded in the report as the reproducing command line.
	Command string
	// Log receives progress lines (default io.Discard).
	Log io.Writer
}

func (o Options) withDefaults() (Options, error) {
	if len(o.Custom) == 0 {
		if len(o.Scenarios) == 0 {
			for _, s := range Scenarios {
				o.Scenarios = append(o.Scenarios, s.Name)
			}
		}
		for _, name := range o.Scenarios {
			sc, ok := ScenarioByName(name)
			if !ok {
				return o, fmt.Errorf("unknown scenario %q", name)
			}
			o.Custom = append(o.Custom, sc)
		}
	}
	for _, sc := range o.Custom {
		if err := sc.validate(); err != nil {
			return o, err
		}
	}
	known := slices.Clone(Dataplanes)
	for name, cmd := range o.External {
		if name == "" || strings.TrimSpace(cmd) == "" || slices.Contains(Dataplanes, name) || strings.ContainsAny(name, " /") {
			return o, fmt.Errorf("external dataplane %q: want a new name without spaces or slashes and a command", name)
		}
		known = append(known, name)
	}
	slices.Sort(known[len(Dataplanes):])
	if len(o.Dataplanes) == 0 {
		o.Dataplanes = slices.Clone(known)
	}
	for _, d := range o.Dataplanes {
		if !slices.Contains(known, d) {
			return o, fmt.Errorf("unknown dataplane %q (want some of %v)", d, known)
		}
	}
	// Measure in the canonical order whatever order was asked.
	var ordered []string
	for _, d := range known {
		if slices.Contains(o.Dataplanes, d) {
			ordered = append(ordered, d)
		}
	}
	o.Dataplanes = ordered
	if i := slices.IndexFunc(o.Dataplanes, isXDPGate); o.Binary == "" && i >= 0 {
		return o, fmt.Errorf("dataplane %s: Options.Binary, the xdpgate binary to run, is empty", o.Dataplanes[i])
	}
	if o.Duration <= 0 {
		o.Duration = 3 * time.Second
	}
	if o.Repeat <= 0 {
		o.Repeat = 3
	}
	if o.SweepPoint <= 0 {
		o.SweepPoint = 2 * time.Second
	}
	if len(o.SweepFractions) == 0 {
		o.SweepFractions = []float64{0.2, 0.4, 0.6, 0.8, 1.0, 1.2}
	}
	if o.GeneratorCPU == o.GatewayCPU {
		if o.GeneratorCPU != 0 || o.GatewayCPU != 0 {
			return o, fmt.Errorf("generator and gateway CPU are both %d", o.GatewayCPU)
		}
		o.GatewayCPU = 1
	}
	if n := runtime.NumCPU(); o.GatewayCPU >= n || o.GeneratorCPU >= n {
		return o, fmt.Errorf("CPUs %d and %d: this machine has %d", o.GeneratorCPU, o.GatewayCPU, n)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o, nil
}

// Run measures every selected scenario against every selected dataplane,
// each in a fresh topology, and returns the report. A dataplane that fails
// in one scenario gets a result carrying the error; the run goes on.
func Run(ctx context.Context, opts Options) (*report.Run, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "xdpgate-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.WorkDir = dir
	}
	if o.ProfileDir != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	out := &report.Run{
		Started: time.Now().UTC(),
		Command: o.Command,
		Host:    hostInfo(),
		Settings: map[string]string{
			"burst":          o.Duration.String(),
			"repeat":         strconv.Itoa(o.Repeat) + " bursts, median reported",
			"sweep_point":    o.SweepPoint.String(),
			"generator_cpu":  strconv.Itoa(o.GeneratorCPU),
			"gateway_cpu":    strconv.Itoa(o.GatewayCPU),
			"endpoints":      strconv.Itoa(numEndpoints),
			"frame_size":     "64 (60 bytes + FCS)",
			"steering":       "threaded NAPI on gw0 pinned to the gateway CPU (every dataplane)",
			"cpu_accounting": "busy time of the gateway CPU (user+system+irq+softirq, /proc/stat) during the burst",
			"reply_sinks":    "generic XDP; native for " + DataplaneXDPGateFastPath + " and " + DataplaneXDPRedirect,
		},
	}
	if o.NativeReplySinks {
		out.Settings["reply_sinks"] += " and " + DataplaneXDPGate
	}
	fastPathSkipped := false
	for _, sc := range o.Custom {
		r := &scenarioRun{o: o, sc: sc}
		for _, dp := range o.Dataplanes {
			if !sc.Measures(dp) {
				fastPathSkipped = fastPathSkipped || (sc.Dataplanes == nil && dp == DataplaneXDPGateFastPath)
				continue
			}
			if err := ctx.Err(); err != nil {
				return out, err
			}
			res := r.measure(ctx, dp, true)
			out.Results = append(out.Results, res)
			fmt.Fprintf(o.Log, "%-18s %-16s %s\n", sc.Name, dp, summary(res))
			if o.Unsteered && sc.Name == "udp64-1k-flows" && (dp == DataplaneNFTables || dp == DataplaneXDPGate) {
				res := r.measure(ctx, dp, false)
				out.Results = append(out.Results, res)
				fmt.Fprintf(o.Log, "%-18s %-16s %s (unsteered)\n", sc.Name, dp, summary(res))
			}
		}
		if sc.Skipped != "" {
			out.Notes = append(out.Notes, fmt.Sprintf("%s: only %v (%s)", sc.Name, sc.Dataplanes, sc.Skipped))
		}
	}
	if fastPathSkipped {
		out.Notes = append(out.Notes, fmt.Sprintf("%s: measured in reply scenarios only (%s)", DataplaneXDPGateFastPath, fastPathOnlyReply))
	}
	return out, nil
}

func summary(r report.Result) string {
	if r.Error != "" {
		return "ERROR " + r.Error
	}
	s := fmt.Sprintf("delivered %.3f Mpps of %.3f offered, loss %.1f%%, %.0f CPU-ms/Mpkt",
		r.DeliveredPPS/1e6, r.OfferedPPS/1e6, r.LossPct, r.CPUMsPerMpkt)
	if g := r.Gateway; g != nil {
		s += fmt.Sprintf("; redirected %d, rx ring full %d, fill ring empty %d, polled %d, dropped %d, tx %d",
			g.Redirected, g.RxRingFull, g.FillRingEmpty, g.RxFrames, g.Dropped, g.TxFrames)
	}
	if r.Retention != nil {
		s += fmt.Sprintf(", retention %.4f over %d clients", *r.Retention, r.Clients)
	}
	return s
}

// scenarioRun carries what one scenario learns across dataplanes: the
// forwarder's delivered rate scales the sweeps.
type scenarioRun struct {
	o       Options
	sc      Scenario
	ceiling float64
}

// measure runs one (scenario, dataplane) in a fresh topology.
func (r *scenarioRun) measure(ctx context.Context, dp string, steered bool) (res report.Result) {
	res = report.Result{Scenario: r.sc.Name, Dataplane: dp, Steered: steered}
	fail := func(err error) report.Result {
		res.Error = err.Error()
		return res
	}
	t, err := newTopology(r.o.GatewayCPU, r.sc)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := t.close(); err != nil && res.Error == "" {
			res.Error = "cleanup: " + err.Error()
		}
	}()
	var snk *sink.Sink
	endpoints := make([]netip.AddrPort, 0, numEndpoints+1)
	for i := range numEndpoints {
		endpoints = append(endpoints, netip.AddrPortFrom(r.sc.endpoint(i), targetPort))
	}
	// The last index counts untranslated frames: the raw forwarder's and
	// the kernel's XDP forwarding's delivery, an error for every
	// translating dataplane.
	vipIndex := len(endpoints)
	vip := netip.AddrPortFrom(netip.MustParseAddr(vipAddr), servicePort)
	endpoints = append(endpoints, vip)
	scfg := sink.Config{Ifname: t.sinkIf, Endpoints: endpoints, SampleEvery: 1024,
		// Reflected frames leave a native-mode veth XDP_TX only when the
		// peer runs XDP too, which the kernel baselines' gw1 does not;
		// generic mode sends them through the peer's normal receive path.
		// (One-arm the peer is gw0, the same for every dataplane; the
		// same rule keeps the reply scenarios alike.)
		Reflect: r.sc.Reply, Generic: r.sc.Reply && !r.nativeSinks(dp)}
	// One-arm with replies, the replies come back to the sink's own
	// interface (the generator's): the one sink reflects the frames to the
	// endpoints and counts the replies from the VIP, which define
	// delivered.
	oneSink := r.sc.Reply && r.sc.OneArm
	if oneSink {
		scfg.ReplySources = []netip.AddrPort{vip}
	}
	if !untranslated(dp) {
		scfg.ExpectSrc = r.sc.expectSrc()
	}
	if r.sc.Affinity {
		scfg.TrackClients = 1 << 17
	}
	if err := t.do(t.sink, func() (err error) { snk, err = sink.Open(scfg); return err }); err != nil {
		return fail(fmt.Errorf("sink: %w", err))
	}
	defer snk.Close()

	tag := ""
	if !steered {
		tag = "-unsteered"
	}
	gw, err := startGateway(dp, t, r.sc, r.o, r.o.WorkDir, tag)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := gw.stop(); err != nil && res.Error == "" {
			res.Error = err.Error()
		}
		res.Profile = gw.profile()
	}()
	delivered := func(c sink.Counts) uint64 {
		if oneSink {
			return c.Replies[0]
		}
		if untranslated(dp) {
			return c.PerEndpoint[vipIndex]
		}
		var n uint64
		for _, v := range c.PerEndpoint[:vipIndex] {
			n += v
		}
		return n
	}
	b := &burster{t: t, sc: r.sc, o: r.o, snk: snk, delivered: delivered}
	if r.sc.Reply && !oneSink {
		// Replies come back from the VIP (reverse NAT undone); the
		// sink on the generator's interface counts and checks them.
		rcfg := sink.Config{Ifname: "gen0", SampleEvery: 1024, Generic: !r.nativeSinks(dp),
			ExpectSrc: []netip.Prefix{netip.MustParsePrefix(vipAddr + "/32")}}
		if err := t.do(t.gen, func() (err error) { b.replies, err = sink.Open(rcfg); return err }); err != nil {
			return fail(fmt.Errorf("reply sink: %w", err))
		}
		defer b.replies.Close()
	}
	if err := b.warmup(ctx, gw); err != nil {
		return fail(err)
	}
	// Its counters, read around each burst. xdpgate serves them once it
	// is set up, which the warmup does not always prove: in the reply
	// scenarios the kernel's ICMP errors about frames sent before the
	// gateway took over reach the generator's sink too.
	if err := waitCounters(ctx, gw, 20*time.Second); err != nil {
		return fail(err)
	}
	b.gw = gw
	if steered {
		if err := t.steer(); err != nil {
			return fail(err)
		}
	}
	if r.sc.Prefill > 0 {
		if _, err := b.burst(ctx, burstSpec{prefill: true, count: r.sc.Prefill}); err != nil {
			return fail(fmt.Errorf("prefill: %w", err))
		}
	}
	if err := snk.ResetClients(); err != nil {
		return fail(err)
	}
	// The machine is shared: one burst can land in someone else's busy
	// second. Several bursts, the median reported, the range kept.
	n := r.o.Repeat
	if r.sc.Count > 0 {
		n = 1 // a fixed-count burst (retention counts every client once)
	}
	var ms []measurement
	spec := burstSpec{rate: r.sc.rate(), duration: r.o.Duration, count: r.sc.Count}
	if spec.count > 0 && spec.rate > 0 {
		// A fixed-count burst must send all of its frames (every client
		// twice, for retention): the time bound is only a safety net.
		spec.duration = max(spec.duration, 2*time.Duration(float64(spec.count)/spec.rate*float64(time.Second)))
	}
	for range n {
		m, err := b.burst(ctx, spec)
		if err != nil {
			return fail(err)
		}
		ms = append(ms, m)
		if n > 1 {
			res.Repeats = append(res.Repeats, m.deliveredPPS())
		}
	}
	slices.SortFunc(ms, func(a, b measurement) int { return cmp.Compare(a.deliveredPPS(), b.deliveredPPS()) })
	m := ms[len(ms)/2]
	m.fill(&res)
	if m.csum > 0 || m.xlat > 0 || m.other > 0 {
		fmt.Fprintf(r.o.Log, "%s/%s: sink: %d frames to no endpoint; sample errors: %q\n", r.sc.Name, dp, m.other, snk.RecentErrors())
	}
	if x, ok := gw.(*xdpRedirectGateway); ok {
		// Where its frames went (the report's gateway table is for AF_XDP
		// dataplanes): forwarded, or passed to the kernel and why.
		if st, err := x.stats(); err == nil {
			fmt.Fprintf(r.o.Log, "%s/%s: program counters since attach (warmup included): %s\n", r.sc.Name, dp, st)
		}
	}
	res.PerEndpoint = m.perEndpoint[:vipIndex]
	if !untranslated(dp) {
		// Frames that reached the sink untranslated or to no endpoint.
		res.TranslationErrors += m.perEndpoint[vipIndex] + m.other
	}
	if r.sc.Affinity {
		res.Clients = m.clients
		if m.clients > 0 {
			ret := 1 - float64(m.clientsMoved)/float64(m.clients)
			res.Retention = &ret
		}
	}
	if dp == DataplaneForwarder {
		r.ceiling = res.DeliveredPPS
	}
	if r.sc.Sweep && steered {
		ceiling := r.ceiling
		if ceiling == 0 {
			ceiling = res.OfferedPPS
		}
		for _, f := range r.o.SweepFractions {
			p, err := b.burst(ctx, burstSpec{rate: f * ceiling, duration: r.o.SweepPoint})
			if err != nil {
				return fail(fmt.Errorf("sweep at %.0f pps: %w", f*ceiling, err))
			}
			res.Sweep = append(res.Sweep, report.Point{OfferedPPS: p.offeredPPS(), DeliveredPPS: p.deliveredPPS(), LossPct: p.lossPct()})
		}
	}
	return res
}

// rate is the scenario's offered rate (0: flat out).
func (s Scenario) rate() float64 {
	if s.Affinity {
		// Slow enough that every dataplane takes (nearly) every frame:
		// retention is about where frames go, not how many arrive.
		return 100_000
	}
	return 0
}

// Generator configuration shared by every burst of a scenario.
func (b *burster) genConfig(spec burstSpec) pktgen.Config {
	mode := pktgen.UDP
	if b.sc.TCP {
		mode = pktgen.TCPSyn
	}
	c := pktgen.Config{
		Ifname: "gen0", CPUs: []int{b.o.GeneratorCPU},
		SrcMAC: b.t.genMAC, DstMAC: b.t.gw0MAC,
		Src: netip.MustParseAddr(clientBase), Clients: b.sc.Clients, PortsPerClient: b.sc.PortsPerClient,
		Dst: netip.AddrPortFrom(netip.MustParseAddr(vipAddr), servicePort), Mode: mode, FrameSize: 64,
		RatePPS: spec.rate, Duration: spec.duration, Count: spec.count, Seed: 1,
	}
	if spec.prefill {
		// Prefill flows come from other clients than the measured ones.
		c.Src = netip.MustParseAddr("198.19.0.0")
		c.Clients, c.PortsPerClient = 1024, 1024
		c.RatePPS, c.Duration = 0, 0
	}
	return c
}

// nativeSinks reports whether the sinks of a reply scenario run in native
// mode for dataplane dp: always for xdpgate-fastpath, whose XDP program can
// forward to a veth only when the peer has NAPI (an XDP program gives it
// one: the README's "XDP fast path"), and for xdp-redirect, the ceiling,
// whose every frame is such a redirect; for xdpgate with
// Options.NativeReplySinks. The kernel baselines and the raw forwarder keep
// generic sinks, whose XDP_TX their gw1 (no XDP program) can receive. The
// one-arm reply scenario follows the same rule: its one sink is on gen0,
// the peer of gw0, which every dataplane's frames leave by, so the fast
// path and xdp-redirect need it native as much; the kernel baselines'
// and the raw forwarder's frames reach a generic one, which keeps the
// sink's cost on the gateway CPU as in the two-arm reply scenario, row for
// row.
func (r *scenarioRun) nativeSinks(dp string) bool {
	switch dp {
	case DataplaneXDPGateFastPath, DataplaneXDPRedirect:
		return true
	case DataplaneXDPGate:
		return r.o.NativeReplySinks
	}
	return false
}
