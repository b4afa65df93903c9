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

// NodeAddrs reports every address of the node and a generation that changes
// whenever the set may have changed (*dataplane.Egress follows them through
// netlink).
type NodeAddrs interface {
	LocalAddrs() (addrs []netip.Addr, generation uint64)
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
// The node's addresses are followed (Run polls NodeAddrs every tick): the
// pipeline masquerades to the current source address of the route towards
// the endpoint, so every node address is a SNAT address for the classifier,
// and every node address marks a packet from an endpoint as the node's own
// traffic rather than a reply of a translated flow (dataplane.Rules).
//
// Concurrency: Apply (control loop) and Run (housekeeping goroutine) may
// run at once; mu serialises every classifier update so an older rule set
// never overwrites a newer one, and guards the address fields.
type Applier struct {
	p     *Pipeline
	cls   Classifier
	addrs NodeAddrs
	log   *slog.Logger

	mu       sync.Mutex
	local    []netip.Addr // the node's addresses the rules were built with
	localGen uint64
}

// NewApplier returns an Applier for p that programs cls with the node
// addresses addrs reports.
func NewApplier(p *Pipeline, cls Classifier, addrs NodeAddrs) *Applier {
	a := &Applier{p: p, cls: cls, addrs: addrs, log: p.log}
	a.local, a.localGen = addrs.LocalAddrs()
	return a
}

// Apply makes s the snapshot the pollers use and programs the classifier
// for it. A classifier update that fails is logged; the previous rules
// stay in force.
func (a *Applier) Apply(s *snapshot.Snapshot) {
	a.p.PrimeNextHops(s) // first: resolution starts before traffic can arrive
	a.p.Publish(s)
	a.program(s)
	a.log.Debug("snapshot applied", "generation", s.Generation, "service_ports", len(s.ServicePorts))
}

func (a *Applier) program(s *snapshot.Snapshot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.programLocked(s)
}

func (a *Applier) programLocked(s *snapshot.Snapshot) {
	r := a.p.Rules(s, a.local)
	r.LocalAddrs = a.local
	if err := a.cls.Update(r); err != nil {
		a.log.Error("classifier update", "err", err)
	}
}

// followAddrs re-programs the classifier when the node's addresses changed.
func (a *Applier) followAddrs() {
	a.mu.Lock()
	defer a.mu.Unlock()
	addrs, gen := a.addrs.LocalAddrs()
	if gen == a.localGen {
		return
	}
	a.localGen = gen
	if slices.Equal(addrs, a.local) {
		return
	}
	a.log.Info("node addresses changed", "old", a.local, "new", addrs)
	a.local = addrs
	a.programLocked(a.p.Snapshot())
}

// Run follows the node's addresses and sweeps expired flows and affinity
// entries every HousekeepTick and, every RetainedEvery, forgets removed endpoints whose last flow ended and
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
			a.followAddrs()
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
