package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"
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
	// LoadSampleEvery is how often the per-endpoint new-connection rates
	// are sampled (SampleLoad) and departed endpoints' clients reported
	// (ReportDepartures).
	LoadSampleEvery = 5 * time.Second
	// minSweepBudget is the least a tick sweeps, so small tables are
	// covered well within their period.
	minSweepBudget = 1024
	// maxNamedSkipped bounds the service ports named in a health error.
	maxNamedSkipped = 5
)

// ErrServicesSkipped is wrapped by ProgramStatus.Err when service ports did
// not fit the classifier's maps.
var ErrServicesSkipped = errors.New("service ports do not fit the classifier")

// Classifier is what decides which frames reach the pipeline: the XDP
// classifier's rules (*dataplane.Classifier). Update replaces the whole
// rule set, or refuses it whole when it does not fit Limits.
type Classifier interface {
	Update(dataplane.Rules) error
	Limits() dataplane.ClassifierConfig
}

// NodeAddrs reports every address of the node and a generation that changes
// whenever the set may have changed (*dataplane.Egress follows them through
// netlink).
type NodeAddrs interface {
	LocalAddrs() (addrs []netip.Addr, generation uint64)
}

// ApplierConfig configures an Applier. Classifier and Addrs are required.
type ApplierConfig struct {
	Classifier Classifier
	Addrs      NodeAddrs
	// Health, if set, is called after every programming with nil or the
	// reason the dataplane does not serve everything it was asked to
	// (service ports that do not fit, a refused update); the wiring feeds
	// it to /healthz.
	Health func(error)
}

// ProgramStatus is the outcome of the latest classifier programming.
type ProgramStatus struct {
	// Generation is the snapshot's.
	Generation uint64
	// Frontends, Endpoints and NodePorts count the rules programmed.
	Frontends, Endpoints, NodePorts int
	// Limits are the classifier's map sizes.
	Limits dataplane.ClassifierConfig
	// Skipped names the service ports left out because their rules did
	// not fit the classifier's maps (sorted).
	Skipped []string
	// Err is nil when every service port is programmed; it wraps
	// ErrServicesSkipped, or the classifier's refusal (the previous rules
	// then stay in force).
	Err error
}

// Applier is the protocol between the control loop and the dataplane: it
// applies each new snapshot to the Pipeline and to the Classifier in the
// order that keeps every packet answerable, and it runs the tables' upkeep.
//
// Apply, for a new snapshot:
//  1. staging: the classifier gets the new snapshot's reply side (endpoints,
//     node addresses) on top of what it has, and loses the frontends that
//     leave; new frontends are not redirected yet;
//  2. Publish: the pollers use the new snapshot;
//  3. the classifier gets exactly the new rules: new frontends are
//     redirected, departed endpoints stop being (except retained ones).
//
// So a reply from a new endpoint is never passed to the kernel because the
// classifier did not know it yet, and a packet to a new frontend never
// reaches a poller that does not know the frontend. The rules are bounded by
// the classifier's Limits: service ports that do not fit are left out one
// by one (those already programmed keep their place), named in the log,
// reported by Status and through ApplierConfig.Health.
//
// The node's addresses are followed (Run polls NodeAddrs every tick): the
// pipeline masquerades to the current source address of the route towards
// the endpoint, so every node address is a SNAT address for the classifier,
// and every node address marks a packet from an endpoint as the node's own
// traffic rather than a reply of a translated flow (dataplane.Rules).
//
// Concurrency: Apply (control loop) and Run (housekeeping goroutine) may
// run at once; mu serialises them, so an older rule set never overwrites a
// newer one, and guards every field below it.
type Applier struct {
	p      *Pipeline
	cfg    ApplierConfig
	limits dataplane.ClassifierConfig
	log    *slog.Logger

	mu       sync.Mutex
	local    []netip.Addr // the node's addresses the rules were built with
	localGen uint64
	current  *RuleSet // what the classifier holds; nil before the first update
	status   ProgramStatus
	// seniority numbers the service ports the classifier holds in the
	// order they were first programmed (Pipeline.Rules places lower first).
	seniority map[uint32]uint64
	nextRank  uint64
}

// NewApplier returns an Applier for p.
func NewApplier(p *Pipeline, cfg ApplierConfig) *Applier {
	a := &Applier{p: p, cfg: cfg, limits: cfg.Classifier.Limits(), log: p.log, seniority: map[uint32]uint64{}}
	a.local, a.localGen = cfg.Addrs.LocalAddrs()
	return a
}

// Apply makes s the snapshot the pollers use and programs the classifier
// for it (see Applier for the order).
func (a *Applier) Apply(s *snapshot.Snapshot) {
	a.p.PrimeNextHops(s) // first: resolution starts before traffic can arrive
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.current != nil {
		next := a.p.Rules(s, a.local, a.limits, a.seniority)
		if err := a.cfg.Classifier.Update(staging(a.current.Rules, next.Rules)); err != nil {
			// Typically the union does not fit: step 3 alone still gets
			// there, with the kernel's view lagging a moment.
			a.log.Debug("classifier staging update skipped", "err", err)
		}
	}
	if a.current == nil && s != nil {
		a.p.retainAdopted(s)
	}
	a.p.Publish(s)
	a.programLocked(s)
	a.log.Debug("snapshot applied", "generation", s.Generation, "service_ports", len(s.ServicePorts))
}

// programLocked programs the classifier with exactly the rules of s (and
// the retained endpoints) and records the outcome.
func (a *Applier) programLocked(s *snapshot.Snapshot) {
	next := a.p.Rules(s, a.local, a.limits, a.seniority)
	st := ProgramStatus{Skipped: next.Skipped, Limits: a.limits}
	if s != nil {
		st.Generation = s.Generation
	}
	if err := a.cfg.Classifier.Update(next.Rules); err != nil {
		st.Err = fmt.Errorf("classifier update refused, previous rules kept: %w", err)
		a.log.Error("classifier update", "err", err)
		if a.current != nil {
			st.Frontends, st.Endpoints, st.NodePorts = len(a.current.Rules.Frontends), len(a.current.Rules.Endpoints), len(a.current.Rules.NodePorts)
		}
	} else {
		a.current = &next
		for id := range a.seniority {
			if !next.Placed[id] {
				delete(a.seniority, id)
			}
		}
		for id := range next.Placed {
			if _, ok := a.seniority[id]; !ok {
				a.seniority[id] = a.nextRank
				a.nextRank++
			}
		}
		st.Frontends, st.Endpoints, st.NodePorts = len(next.Rules.Frontends), len(next.Rules.Endpoints), len(next.Rules.NodePorts)
		if len(next.Skipped) > 0 {
			named, more := next.Skipped[:min(len(next.Skipped), maxNamedSkipped)], ""
			if len(next.Skipped) > len(named) {
				more = ", ..."
			}
			st.Err = fmt.Errorf("%w: %d left out (%s%s); raise the classifier limits", ErrServicesSkipped,
				len(next.Skipped), strings.Join(named, ", "), more)
		}
	}
	if !slices.Equal(st.Skipped, a.status.Skipped) {
		if len(st.Skipped) > 0 {
			a.log.Error("service ports do not fit the classifier and are not served", "count", len(st.Skipped),
				"service_ports", st.Skipped, "max_frontends", a.limits.MaxFrontends, "max_endpoints", a.limits.MaxEndpoints,
				"max_node_ports", a.limits.MaxNodePorts)
		} else if len(a.status.Skipped) > 0 {
			a.log.Info("every service port fits the classifier again")
		}
	}
	a.status = st
	if a.cfg.Health != nil {
		a.cfg.Health(st.Err)
	}
}

// Status returns the outcome of the latest programming.
func (a *Applier) Status() ProgramStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.status
	st.Skipped = slices.Clone(st.Skipped)
	return st
}

// followAddrs re-programs the classifier when the node's addresses changed.
func (a *Applier) followAddrs() {
	a.mu.Lock()
	defer a.mu.Unlock()
	addrs, gen := a.cfg.Addrs.LocalAddrs()
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

// pruneRetained forgets removed endpoints whose last flow ended and
// re-programs the classifier without them.
func (a *Applier) pruneRetained() {
	if !a.p.PruneRetained() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.programLocked(a.p.Snapshot())
}

// Run follows the node's addresses and sweeps expired flows and affinity
// entries every HousekeepTick; every LoadSampleEvery, samples the
// per-endpoint connection rates and reports departed endpoints' clients;
// and, every RetainedEvery, forgets removed endpoints whose last flow ended
// and re-programs the classifier without them. It returns when ctx ends.
func (a *Applier) Run(ctx context.Context) {
	v4, v6 := a.p.ct.Capacity()
	ticksPer := func(d time.Duration) int { return int(d / HousekeepTick) }
	ctBudget := max((v4+v6)/ticksPer(CTSweepPeriod), minSweepBudget)
	affBudget := max(int(a.p.aff.Stats().Slots)/ticksPer(AffinitySweepPeriod), minSweepBudget)
	a.log.Info("housekeeping started", "tick", HousekeepTick, "conntrack_budget", ctBudget, "affinity_budget", affBudget)
	defer a.log.Info("housekeeping stopped")
	t := time.NewTicker(HousekeepTick)
	defer t.Stop()
	lastPrune, lastLoad := time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.followAddrs()
			a.p.Housekeep(a.p.Now(), ctBudget, affBudget)
			if now.Sub(lastLoad) >= LoadSampleEvery {
				lastLoad = now
				a.p.SampleLoad(a.p.Now())
				a.p.ReportDepartures()
			}
			if now.Sub(lastPrune) >= RetainedEvery {
				lastPrune = now
				a.pruneRetained()
			}
		}
	}
}

// retainAdopted retains, before the first snapshot is published, the
// endpoints of TCP flows already in the table (adopted from a previous
// process) that s does not have: they left while no xdpgate ran, or had
// been retained by the previous process. As for endpoints that leave
// under a running pipeline (OnSnapshot), the classifier keeps redirecting
// their replies until their last flow ends (PruneRetained).
func (p *Pipeline) retainAdopted(s *snapshot.Snapshot) {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	n := 0
	p.ct.Range(func(e *conntrack.Entry) bool {
		if e.Orig.Proto != nat.ProtoTCP {
			return true
		}
		if _, _, ok := s.Endpoint(e.Endpoint); ok {
			return true
		}
		a := dataplane.L4Addr{Addr: e.Reply.SrcAddr().Unmap(), Port: e.Reply.SrcPort, Proto: uint8(nat.ProtoTCP)}
		if _, seen := p.retained[a]; !seen {
			p.retained[a] = e.Endpoint
			n++
		}
		return true
	})
	if n > 0 {
		p.log.Info("endpoints of adopted flows retained", "endpoints", n)
	}
}
