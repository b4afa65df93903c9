package control

import (
	"context"
	"time"
)

// boundedRunner runs fn after Notify, at most once per minInterval, and
// coalesces every Notify that arrives while fn runs or while it waits into
// one further run (kube-proxy's BoundedFrequencyRunner without the periodic
// resync: the snapshot is a pure function of the objects, so nothing drifts
// between changes).
//
// signal (capacity 1) is the only shared state: Notify may be called from
// any goroutine; loop runs on one.
type boundedRunner struct {
	fn          func()
	minInterval time.Duration
	clock       Clock
	signal      chan struct{}
}

func newBoundedRunner(fn func(), minInterval time.Duration, clock Clock) *boundedRunner {
	return &boundedRunner{fn: fn, minInterval: minInterval, clock: clock, signal: make(chan struct{}, 1)}
}

// Notify requests a run. It never blocks.
func (r *boundedRunner) Notify() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// loop runs until ctx ends.
func (r *boundedRunner) loop(ctx context.Context) {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.signal:
		}
		if !last.IsZero() {
			if wait := last.Add(r.minInterval).Sub(r.clock.Now()); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-r.clock.After(wait):
				}
			}
		}
		// Changes that arrived during the wait are covered by this run.
		select {
		case <-r.signal:
		default:
		}
		last = r.clock.Now()
		r.fn()
	}
}
