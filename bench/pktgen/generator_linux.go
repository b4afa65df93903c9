package pktgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"
)

const (
	// stallTimeout ends a run whose frames stop completing (link down,
	// device gone): no traffic loop waits unboundedly.
	stallTimeout = time.Second
	// drainTimeout bounds the wait for the last completions of a run.
	drainTimeout = time.Second
	// sleepThreshold: a queue waiting for tokens longer than this sleeps
	// (the Go timer wakes it up to ~1ms late when the P is idle); shorter
	// waits spin, which is what keeps the rate exact at high rates.
	sleepThreshold = 2 * time.Millisecond
	maxSleep       = 10 * time.Millisecond
)

// queue is one TX queue: its socket and its position in the stream. Only
// the goroutine running the queue (one per Run) touches it.
type queue struct {
	id   int
	cpu  int // -1: not pinned
	sock *dataplane.TxSocket
	cur  cursor
}

// Open validates cfg, looks the interface up in the calling thread's
// network namespace, and binds one AF_XDP socket per queue, each with
// NumFrames UMEM frames preloaded with the template. The sockets keep
// working from any goroutine (and namespace) afterwards. The caller must
// have locked its OS thread if it switched namespaces (testnet.NS.Do does).
func Open(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ifi, err := net.InterfaceByName(cfg.Ifname)
	if err != nil {
		return nil, fmt.Errorf("pktgen: Ifname %q: %w", cfg.Ifname, err)
	}
	if cfg.SrcMAC == nil {
		if len(ifi.HardwareAddr) != 6 {
			return nil, fmt.Errorf("pktgen: SrcMAC: interface %s has no Ethernet address (%v): set SrcMAC",
				cfg.Ifname, ifi.HardwareAddr)
		}
		cfg.SrcMAC = append(net.HardwareAddr(nil), ifi.HardwareAddr...)
	}
	if l3 := cfg.FrameSize - fcsLen - nat.EthHdrLen; l3 > ifi.MTU {
		return nil, fmt.Errorf("pktgen: FrameSize %d: %d-byte packets exceed %s's MTU %d",
			cfg.FrameSize, l3, cfg.Ifname, ifi.MTU)
	}
	g, err := newGenerator(cfg)
	if err != nil {
		return nil, err
	}
	for k, qid := range cfg.Queues {
		s, err := dataplane.OpenTxSocket(ifi.Index, qid, cfg.NumFrames, umemFrameSize)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("pktgen: queue %d: %w", qid, err), g.closeQueues())
		}
		umem := s.UMEM()
		for _, a := range s.Frames() {
			copy(umem[a:a+umemFrameSize], g.t.buf)
		}
		cpu := -1
		if len(cfg.CPUs) > 0 {
			cpu = cfg.CPUs[k%len(cfg.CPUs)]
		}
		g.qs = append(g.qs, &queue{id: qid, cpu: cpu, sock: s,
			cur: newCursor(uint64(k), uint64(len(cfg.Queues)), g.t.n)})
	}
	return g, nil
}

// Run sends until Count frames have completed, Duration has passed or ctx
// is done, whichever comes first, and returns what was sent. With ctx done
// it returns the stats and ctx's error. Count and RatePPS are split evenly
// over the queues. Run continues the stream where the previous Run stopped
// (see FlowAt), so consecutive bursts keep visiting new flows. Runs do not
// overlap: a second Run waits for the first.
func (g *Generator) Run(ctx context.Context) (Stats, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return Stats{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	var stop atomic.Bool
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()

	nq := len(g.qs)
	counts := make([]uint64, nq)
	active := nq
	if c := g.cfg.Count; c > 0 {
		active = 0
		for k := range counts {
			counts[k] = c / uint64(nq)
			if uint64(k) < c%uint64(nq) {
				counts[k]++
			}
			if counts[k] > 0 {
				active++
			}
		}
	}
	rate := g.cfg.RatePPS / float64(max(active, 1))

	st := Stats{PerQueue: make([]uint64, nq)}
	errs := make([]error, nq)
	var wg sync.WaitGroup
	start := time.Now()
	for k, q := range g.qs {
		if g.cfg.Count > 0 && counts[k] == 0 {
			continue
		}
		wg.Go(func() {
			st.PerQueue[k], errs[k] = g.runQueue(q, &stop, start, counts[k], rate)
		})
	}
	wg.Wait()
	st.Elapsed = time.Since(start)
	for _, n := range st.PerQueue {
		st.Sent += n
	}
	if st.Elapsed > 0 {
		st.OfferedPPS = float64(st.Sent) / st.Elapsed.Seconds()
	}
	err := errors.Join(errs...)
	if err == nil {
		err = ctx.Err()
	}
	return st, err
}

// runQueue is one queue's goroutine for one Run: reserve, fill, submit,
// once per batch; then drain the completions. count 0 means no count
// bound. It returns the frames completed.
func (g *Generator) runQueue(q *queue, stop *atomic.Bool, start time.Time, count uint64, rate float64) (sent uint64, err error) {
	runtime.LockOSThread()
	if q.cpu >= 0 {
		// The thread is left locked: it exits with the goroutine, taking
		// its CPU affinity with it, instead of returning to the
		// scheduler's pool pinned.
		var set unix.CPUSet
		set.Set(q.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return 0, fmt.Errorf("pktgen: pin queue %d to cpu %d: %w", q.id, q.cpu, err)
		}
	} else {
		defer runtime.UnlockOSThread()
	}
	log := g.cfg.Logger.With("ifname", g.cfg.Ifname, "queue", q.id, "cpu", q.cpu)
	log.Debug("pktgen queue started", "count", count, "rate_pps", rate)
	defer func() { log.Debug("pktgen queue stopped", "sent", sent, "err", err) }()

	s := q.sock
	base := s.Stats().Completed
	batch := g.cfg.BatchSize
	length := len(g.t.buf)
	umem := s.UMEM()
	lim := newLimiter(rate, batch)
	dur := g.cfg.Duration
	var submitted uint64
	lastDone, lastChange := base, time.Duration(0)

	for !stop.Load() {
		now := time.Since(start)
		if dur > 0 && now >= dur {
			break
		}
		want := batch
		if count > 0 {
			if submitted >= count {
				break
			}
			want = int(min(uint64(batch), count-submitted))
		}
		n, wait := lim.take(now, want)
		if n == 0 {
			s.Flush()
			if dur > 0 {
				wait = min(wait, dur-now)
			}
			if wait >= sleepThreshold {
				time.Sleep(min(wait-sleepThreshold/2, maxSleep))
			} else {
				runtime.Gosched()
			}
			continue
		}
		addrs := s.Reserve(n)
		if len(addrs) == 0 {
			// Every frame is in flight: wait for completions, but not
			// forever.
			lim.refund(n)
			s.Flush()
			if done := s.Stats().Completed; done != lastDone {
				lastDone, lastChange = done, now
			} else if now-lastChange > stallTimeout {
				err = fmt.Errorf("pktgen: queue %d: no completion for %v: %w", q.id, stallTimeout, ErrStalled)
				break
			}
			runtime.Gosched()
			continue
		}
		lastChange = now
		g.t.fill(umem, addrs, &q.cur)
		k, serr := s.Submit(len(addrs), length)
		if serr != nil {
			err = fmt.Errorf("pktgen: queue %d: %w", q.id, serr)
			break
		}
		lim.refund(n - k)
		submitted += uint64(k)
	}

	deadline := time.Now().Add(drainTimeout)
	for left := s.Flush(); left > 0; left = s.Flush() {
		if time.Now().After(deadline) {
			err = errors.Join(err, fmt.Errorf("pktgen: queue %d: %d frames still in flight after %v: %w",
				q.id, left, drainTimeout, ErrStalled))
			break
		}
		runtime.Gosched()
	}
	return s.Stats().Completed - base, err
}

// KernelStats returns the kernel's XDP_STATISTICS of each queue's socket,
// in Config.Queues order.
func (g *Generator) KernelStats() ([]dataplane.KernelXSKStats, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, ErrClosed
	}
	out := make([]dataplane.KernelXSKStats, len(g.qs))
	for k, q := range g.qs {
		st, err := q.sock.KernelStats()
		if err != nil {
			return nil, fmt.Errorf("pktgen: queue %d: %w", q.id, err)
		}
		out[k] = st
	}
	return out, nil
}

// Close closes the sockets. It waits for a running Run to return (cancel
// its context first). Frame and the other template methods keep working.
func (g *Generator) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	return g.closeQueues()
}

func (g *Generator) closeQueues() error {
	var errs []error
	for _, q := range g.qs {
		if err := q.sock.Close(); err != nil {
			errs = append(errs, fmt.Errorf("pktgen: close queue %d: %w", q.id, err))
		}
	}
	g.qs = nil
	return errors.Join(errs...)
}
