package pipeline

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/snapshot"
)

// Housekeeping intervals, the one place they live.
const (
	// HousekeepTick is how often Applier.Run sweeps the flow and affinity
	// tables; the budgets cover the flow table every CTSweepPeriod and the
	// affinity table every AffinitySweepPeriod.
	HousekeepTick = 100 * time.Millisecond
	// CTSweepPeriod and AffinitySweepPeriod are how long one full sweep of
	// each table takes.
	CTSweepPeriod       = 5 * time.Second
	AffinitySweepPeriod = 10 * time.Second
	// RetainedEvery is how often removed endpoints with kept TCP flows are
	// checked for remaining flows (PruneRetained reads the whole flow
	// table).
	RetainedEvery = 10 * time.Second
	// minSweepBudget is the least a tick sweeps, so small tables are
	// covered well within their period.
	minSweepBudget = 1024
)

// Classifier is what decides which frames reach the pipeline: the XDP
// classifier's rules (*dataplane.Classifier). Update replaces the whole
// rule set.
type Classifier interface {
	Update(dataplane.Rules) error
}

// Applier is the protocol between the control loop and the dataplane: it
// applies each new snapshot to the Pipeline and to the Classifier in the
// order that keeps every redirected packet answerable, and it runs the
// tables' upkeep.
//
// Apply publishes first, then programs the classifier: a frontend the
// classifier starts redirecting is already known to the pollers. The rules
// are the snapshot's plus the retained endpoints (removed TCP endpoints
// whose flows are kept, see Pipeline.OnSnapshot), so open connections to a
// departed endpoint keep their replies until Run's PruneRetained finds
// their last flow gone and re-programs the classifier without them.
//
// Concurrency: Apply (control loop) and Run (housekeeping goroutine) may
// run at once; mu serialises every classifier update so an older rule set
// never overwrites a newer one.
type Applier struct {
	p         *Pipeline
	cls       Classifier
	snatAddrs []netip.Addr
	log       *slog.Logger
	mu        sync.Mutex // serialises Classifier.Update
}

// NewApplier returns an Applier for p that programs cls, with snatAddrs the
// node addresses replies to masqueraded flows arrive on (the classifier
// redirects them in the pipeline's SNAT port range).
func NewApplier(p *Pipeline, cls Classifier, snatAddrs []netip.Addr) *Applier {
	return &Applier{p: p, cls: cls, snatAddrs: slices.Clone(snatAddrs), log: p.log}
}

// Apply makes s the snapshot the pollers use and programs the classifier
// for it. A classifier update that fails is logged; the previous rules
// stay in force.
func (a *Applier) Apply(s *snapshot.Snapshot) {
	a.p.Publish(s)
	a.program(s)
	a.log.Debug("snapshot applied", "generation", s.Generation, "service_ports", len(s.ServicePorts))
}

func (a *Applier) program(s *snapshot.Snapshot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.cls.Update(a.p.Rules(s, a.snatAddrs)); err != nil {
		a.log.Error("classifier update", "err", err)
	}
}

// Run sweeps expired flows and affinity entries every HousekeepTick and,
// every RetainedEvery, forgets removed endpoints whose last flow ended and
// re-programs the classifier without them. It returns when ctx ends.
func (a *Applier) Run(ctx context.Context) {
	v4, v6 := a.p.ct.Capacity()
	ticksPer := func(d time.Duration) int { return int(d / HousekeepTick) }
	ctBudget := max((v4+v6)/ticksPer(CTSweepPeriod), minSweepBudget)
	affBudget := max(int(a.p.aff.Stats().Slots)/ticksPer(AffinitySweepPeriod), minSweepBudget)
	a.log.Info("housekeeping started", "tick", HousekeepTick, "conntrack_budget", ctBudget, "affinity_budget", affBudget)
	defer a.log.Info("housekeeping stopped")
	t := time.NewTicker(HousekeepTick)
	defer t.Stop()
	lastPrune := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.p.Housekeep(a.p.Now(), ctBudget, affBudget)
			if now.Sub(lastPrune) >= RetainedEvery {
				lastPrune = now
				if a.p.PruneRetained() {
					a.program(a.p.Snapshot())
				}
			}
		}
	}
}
