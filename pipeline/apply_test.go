package pipeline

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// recordingClassifier records every rule set and what the pipeline had
// published when it was programmed.
type recordingClassifier struct {
	p       *Pipeline
	limits  dataplane.ClassifierConfig
	updates []dataplane.Rules
	seen    []*snapshot.Snapshot
	fail    error
}

func (c *recordingClassifier) Update(r dataplane.Rules) error {
	c.updates = append(c.updates, r)
	c.seen = append(c.seen, c.p.Snapshot())
	return c.fail
}

func (c *recordingClassifier) Limits() dataplane.ClassifierConfig { return c.limits }

// fixedAddrs is a NodeAddrs whose set the test changes.
type fixedAddrs struct {
	addrs []netip.Addr
	gen   uint64
}

func (f *fixedAddrs) LocalAddrs() ([]netip.Addr, uint64) { return f.addrs, f.gen }

func newApplier(t *testing.T, w *ptWorld, limits dataplane.ClassifierConfig) (*Applier, *recordingClassifier, *fixedAddrs, *[]error) {
	t.Helper()
	cls := &recordingClassifier{p: w.p, limits: limits}
	addrs := &fixedAddrs{addrs: []netip.Addr{ptGW4}, gen: 1}
	var health []error
	a := NewApplier(w.p, ApplierConfig{Classifier: cls, Addrs: addrs, Health: func(err error) { health = append(health, err) }})
	return a, cls, addrs, &health
}

var (
	apVIP2 = netip.MustParseAddr("198.18.100.2")
	apEP2  = netip.MustParseAddr("198.19.2.30")
)

// TestApplierOrder: before a new snapshot is published the classifier gets
// its new endpoints and loses departing frontends, but not its new
// frontends; after, exactly the new rules.
func TestApplierOrder(t *testing.T) {
	w := newWorld(t, nil, func(c *Config) { c.SNATPortMin, c.SNATPortMax = 100, 200 })
	a, cls, _, health := newApplier(t, w, dataplane.ClassifierConfig{})
	old := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a}, nil),
	}})
	a.Apply(old)
	if len(cls.updates) != 1 || cls.seen[0] != old {
		t.Fatalf("first Apply: %d updates, snapshot at update %v; want 1, after publishing", len(cls.updates), cls.seen)
	}
	r := cls.updates[0]
	wantEP := dataplane.L4Addr{Addr: ptEP4a, Port: 8080, Proto: 6}
	if !slices.Contains(r.Endpoints, wantEP) || r.SNATPortMin != 100 || r.SNATPortMax != 200 ||
		!slices.Equal(r.SNATAddrs, []netip.Addr{ptGW4}) || !slices.Equal(r.LocalAddrs, []netip.Addr{ptGW4}) {
		t.Errorf("Apply rules = %+v, want endpoint %v, SNAT and local address %v, ports 100-200", r, wantEP, ptGW4)
	}

	// Service port 1 leaves, 2 arrives.
	next := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(2, nat.ProtoUDP, apVIP2, []netip.Addr{apEP2}, nil),
	}})
	a.Apply(next)
	if len(cls.updates) != 3 {
		t.Fatalf("second Apply: %d updates, want 3 (staging, then final)", len(cls.updates))
	}
	stage, final := cls.updates[1], cls.updates[2]
	fe1 := dataplane.L4Addr{Addr: ptVIP4, Port: 80, Proto: 6}
	fe2 := dataplane.L4Addr{Addr: apVIP2, Port: 80, Proto: 17}
	ep2 := dataplane.L4Addr{Addr: apEP2, Port: 8080, Proto: 17}
	if cls.seen[1] != old || slices.Contains(stage.Frontends, fe2) || slices.Contains(stage.Frontends, fe1) ||
		!slices.Contains(stage.Endpoints, ep2) || !slices.Contains(stage.Endpoints, wantEP) {
		t.Errorf("staging update (published %v) = %+v; want before publishing, the new endpoint %v and the old one, neither frontend",
			cls.seen[1] == old, stage, ep2)
	}
	if cls.seen[2] != next || !slices.Equal(final.Frontends, []dataplane.L4Addr{fe2}) || !slices.Contains(final.Endpoints, ep2) {
		t.Errorf("final update = %+v, want after publishing, exactly the new frontend %v", final, fe2)
	}
	if st := a.Status(); st.Err != nil || st.Generation != next.Generation || st.Frontends != 1 {
		t.Errorf("Status() = %+v, want no error, generation %d, 1 frontend", st, next.Generation)
	}
	if n := len(*health); n != 2 || (*health)[1] != nil {
		t.Errorf("health reports = %v, want two nil", *health)
	}
}

// TestApplierRetainedAndRefused: a TCP endpoint that leaves keeps its
// replies redirected while its flow lives; a refused update keeps the
// snapshot published and is reported.
func TestApplierRetainedAndRefused(t *testing.T) {
	w := newWorld(t, nil, nil)
	a, cls, _, health := newApplier(t, w, dataplane.ClassifierConfig{})
	a.Apply(ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a}, nil),
	}}))
	w.run(t, tcpPkt(ptClient4, 1, ptVIP4, 80, "S").build(t))
	newSnap := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, nil, nil),
	}})
	cls.fail = errors.New("kernel says no")
	a.Apply(newSnap)
	wantEP := dataplane.L4Addr{Addr: ptEP4a, Port: 8080, Proto: 6}
	if got := cls.updates[len(cls.updates)-1]; !slices.Contains(got.Endpoints, wantEP) {
		t.Errorf("rules after the endpoint left = %v, want the retained %v", got.Endpoints, wantEP)
	}
	if w.p.Snapshot() != newSnap {
		t.Errorf("Snapshot() after a refused classifier update is not the applied one")
	}
	if st := a.Status(); st.Err == nil || (*health)[len(*health)-1] == nil {
		t.Errorf("Status().Err = %v, last health %v; want the refusal reported", st.Err, (*health)[len(*health)-1])
	}
}

// TestApplierSkipsWhatDoesNotFit: a service port over the limits is left
// out, named, and health reports it; the others are programmed; removing
// it heals.
func TestApplierSkipsWhatDoesNotFit(t *testing.T) {
	w := newWorld(t, nil, nil)
	a, cls, _, health := newApplier(t, w, dataplane.ClassifierConfig{MaxFrontends: 1})
	one := ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a}, nil)
	a.Apply(ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{one}}))
	two := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(2, nat.ProtoUDP, apVIP2, []netip.Addr{apEP2}, func(sp *snapshot.ServicePort) { sp.Name = "aaa-new" }), one,
	}})
	a.Apply(two)
	final := cls.updates[len(cls.updates)-1]
	if !slices.Equal(final.Frontends, []dataplane.L4Addr{{Addr: ptVIP4, Port: 80, Proto: 6}}) {
		t.Errorf("frontends = %v, want only the service port programmed first", final.Frontends)
	}
	st := a.Status()
	if len(st.Skipped) != 1 || !errors.Is(st.Err, ErrServicesSkipped) || !errors.Is((*health)[len(*health)-1], ErrServicesSkipped) {
		t.Fatalf("Status() = %+v, health %v; want one skipped service port reported", st, *health)
	}
	a.Apply(ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{one}}))
	if st := a.Status(); st.Err != nil || len(st.Skipped) != 0 || (*health)[len(*health)-1] != nil {
		t.Errorf("after removing it: Status() = %+v, want healthy", st)
	}
}

// TestApplierFollowsAddrs: a changed set of node addresses re-programs the
// classifier (SNAT and local addresses), an unchanged one does not.
func TestApplierFollowsAddrs(t *testing.T) {
	w := newWorld(t, nil, nil)
	a, cls, addrs, _ := newApplier(t, w, dataplane.ClassifierConfig{})
	a.Apply(ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a}, nil),
	}}))
	a.followAddrs()
	addrs.gen++ // rebuilt, same addresses
	a.followAddrs()
	if len(cls.updates) != 1 {
		t.Fatalf("updates = %d after unchanged addresses, want 1", len(cls.updates))
	}
	renewed := netip.MustParseAddr("198.18.0.77")
	addrs.addrs, addrs.gen = []netip.Addr{renewed}, addrs.gen+1
	a.followAddrs()
	if len(cls.updates) != 2 {
		t.Fatalf("updates = %d after an address change, want 2", len(cls.updates))
	}
	r := cls.updates[1]
	if !slices.Equal(r.SNATAddrs, []netip.Addr{renewed}) || !slices.Equal(r.LocalAddrs, []netip.Addr{renewed}) ||
		len(r.Frontends) != 1 {
		t.Errorf("rules after the change = %+v, want SNAT and local %v and the service kept", r, renewed)
	}
}

// TestApplierSeniority: a service port that grows past the limits is the
// one left out, not an older one that sorts after it.
func TestApplierSeniority(t *testing.T) {
	w := newWorld(t, nil, nil)
	a, cls, _, _ := newApplier(t, w, dataplane.ClassifierConfig{MaxEndpoints: 1})
	older := ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a}, func(sp *snapshot.ServicePort) { sp.Name = "zzz-older" })
	empty := ptPort(2, nat.ProtoUDP, apVIP2, nil, func(sp *snapshot.ServicePort) { sp.Name = "aaa-newer" })
	a.Apply(ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{older}}))
	a.Apply(ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{empty, older}}))
	if st := a.Status(); len(st.Skipped) != 0 {
		t.Fatalf("Status() = %+v, want both placed (the newer has no endpoints)", st)
	}
	grown := ptPort(2, nat.ProtoUDP, apVIP2, []netip.Addr{apEP2}, func(sp *snapshot.ServicePort) { sp.Name = "aaa-newer" })
	a.Apply(ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{grown, older}}))
	st := a.Status()
	if len(st.Skipped) != 1 || st.Skipped[0] != grown.Key() {
		t.Errorf("Skipped = %v, want [%s] (the junior that grew)", st.Skipped, grown.Key())
	}
	if final := cls.updates[len(cls.updates)-1]; !slices.Contains(final.Endpoints, dataplane.L4Addr{Addr: ptEP4a, Port: 8080, Proto: 6}) {
		t.Errorf("endpoints = %v, want the older service port's kept", final.Endpoints)
	}
}
