package rig

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpgate/xdpgate/bench/pktgen"
	"github.com/xdpgate/xdpgate/bench/report"
	"github.com/xdpgate/xdpgate/bench/sink"
)

// burster sends bursts through one topology and reads the sink around them.
type burster struct {
	t         *topology
	sc        Scenario
	o         Options
	snk       *sink.Sink
	delivered func(sink.Counts) uint64
	// replies, in two-arm reply scenarios, counts what comes back to the
	// generator's interface; it then defines delivered. (One-arm, snk
	// counts the replies itself: see delivered.)
	replies *sink.Sink
	// gw is the dataplane under test, whose own counters (if it has any)
	// are read around each burst.
	gw gateway
}

type burstSpec struct {
	rate     float64
	duration time.Duration
	count    uint64
	prefill  bool
}

// measurement is what one burst did.
type measurement struct {
	sent, delivered, other uint64
	seconds, cpuSeconds    float64
	perEndpoint            []uint64
	sampled, csum, xlat    uint64
	clients, clientsMoved  uint64
	gw                     *report.GatewayCounters // the gateway's counters over the burst
}

func (m measurement) offeredPPS() float64   { return float64(m.sent) / max(m.seconds, 1e-9) }
func (m measurement) deliveredPPS() float64 { return float64(m.delivered) / max(m.seconds, 1e-9) }
func (m measurement) lossPct() float64 {
	if m.sent == 0 {
		return 0
	}
	return 100 * (1 - float64(min(m.delivered, m.sent))/float64(m.sent))
}

func (m measurement) fill(r *report.Result) {
	r.Offered, r.Delivered, r.Seconds = m.sent, m.delivered, m.seconds
	r.OfferedPPS, r.DeliveredPPS, r.LossPct = m.offeredPPS(), m.deliveredPPS(), m.lossPct()
	r.GatewayCPUSeconds = m.cpuSeconds
	if m.delivered > 0 {
		r.CPUMsPerMpkt = 1e3 * m.cpuSeconds / (float64(m.delivered) / 1e6)
	}
	r.Sampled, r.ChecksumErrors, r.TranslationErrors = m.sampled, m.csum, m.xlat
	r.Gateway = m.gw
}

// warmup sends small bounded bursts until the sink sees the dataplane
// deliver (it is attached and programmed), for at most 20 s.
func (b *burster) warmup(ctx context.Context, gw gateway) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if x, ok := gw.(*procGateway); ok {
			if done, err := x.exited(); done {
				return fmt.Errorf("xdpgate exited: %v; log: %s", err, tailFile(x.log, 20))
			}
		}
		m, err := b.burst(ctx, burstSpec{rate: 20_000, count: 200})
		if err != nil {
			return err
		}
		if m.delivered > 0 {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	if x, ok := gw.(*procGateway); ok {
		return fmt.Errorf("nothing delivered within 20s; xdpgate log: %s", tailFile(x.log, 20))
	}
	return fmt.Errorf("nothing delivered within 20s")
}

// counters reads the gateway's counters, nil when it has none (or during
// warmup, before b.gw is set).
func (b *burster) counters() (*report.GatewayCounters, error) {
	if b.gw == nil {
		return nil, nil
	}
	return b.gw.counters()
}

// burst sends one bounded burst and returns what the sink counted,
// including frames that arrive within settle after the generator stops.
func (b *burster) burst(ctx context.Context, spec burstSpec) (measurement, error) {
	var m measurement
	var gen *pktgen.Generator
	cfg := b.genConfig(spec)
	if err := b.t.do(b.t.gen, func() (err error) { gen, err = pktgen.Open(cfg); return err }); err != nil {
		return m, fmt.Errorf("generator: %w", err)
	}
	defer gen.Close()
	c0, err := b.snk.Counts()
	if err != nil {
		return m, err
	}
	var r0 sink.Counts
	if b.replies != nil {
		if r0, err = b.replies.Counts(); err != nil {
			return m, err
		}
	}
	g0, err := b.counters()
	if err != nil {
		return m, err
	}
	cpu0, err := cpuBusy(b.o.GatewayCPU)
	if err != nil {
		return m, err
	}
	st, err := gen.Run(ctx)
	if err != nil {
		return m, fmt.Errorf("generator: %w", err)
	}
	// Wait for the pipeline to drain: until the sink stops counting
	// (bounded), so frames in flight are not counted as lost.
	last := c0.Total
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		time.Sleep(settle / 3)
		c, err := b.snk.Counts()
		if err != nil {
			return m, err
		}
		if c.Total == last {
			break
		}
		last = c.Total
	}
	cpu1, err := cpuBusy(b.o.GatewayCPU)
	if err != nil {
		return m, err
	}
	g1, err := b.counters()
	if err != nil {
		return m, err
	}
	m.gw = gatewayDelta(g0, g1)
	c1, err := b.snk.Counts()
	if err != nil {
		return m, err
	}
	m.sent, m.seconds = st.Sent, st.Elapsed.Seconds()
	m.delivered = b.delivered(c1) - b.delivered(c0)
	m.other = c1.Other - c0.Other
	m.cpuSeconds = cpu1 - cpu0
	m.perEndpoint = make([]uint64, len(c1.PerEndpoint))
	for i := range c1.PerEndpoint {
		m.perEndpoint[i] = c1.PerEndpoint[i] - c0.PerEndpoint[i]
	}
	m.sampled, m.csum, m.xlat = c1.Sampled-c0.Sampled, c1.ChecksumErrors-c0.ChecksumErrors, c1.TranslationErrors-c0.TranslationErrors
	if b.replies != nil {
		r1, err := b.replies.Counts()
		if err != nil {
			return m, err
		}
		ip := func(c sink.Counts) uint64 { return c.Total - c.NonIP }
		m.delivered = ip(r1) - ip(r0)
		m.sampled += r1.Sampled - r0.Sampled
		m.csum += r1.ChecksumErrors - r0.ChecksumErrors
		m.xlat += r1.TranslationErrors - r0.TranslationErrors
	}
	// The client counters are monotonic across ResetClients: deltas.
	m.clients, m.clientsMoved = c1.Clients-c0.Clients, c1.ClientsMoved-c0.ClientsMoved
	return m, nil
}

// cpuBusy returns the busy seconds of one CPU since boot from /proc/stat:
// user, nice, system, irq and softirq (idle, iowait and steal excluded:
// steal is the hypervisor's, not the dataplane's).
func cpuBusy(cpu int) (float64, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	want := "cpu" + strconv.Itoa(cpu) + " "
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, want) {
			continue
		}
		fields := strings.Fields(line)[1:]
		if len(fields) < 7 {
			return 0, fmt.Errorf("/proc/stat: short line %q", line)
		}
		var ticks uint64
		for _, i := range []int{0, 1, 2, 5, 6} { // user nice system irq softirq
			v, err := strconv.ParseUint(fields[i], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat %q: %w", line, err)
			}
			ticks += v
		}
		// USER_HZ is 100 on every Linux ABI Go supports.
		return float64(ticks) / 100, nil
	}
	return 0, fmt.Errorf("/proc/stat: no line for cpu%d", cpu)
}

func hostInfo() report.Host {
	h := report.Host{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				h.Commit = s.Value
			}
		}
	}
	if h.Commit == "" {
		if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
			h.Commit = strings.TrimSpace(string(out))
		}
	}
	return h
}

// tailFile returns the last n lines of a file, for error messages.
func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
