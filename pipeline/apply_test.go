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
	updates []dataplane.Rules
	seen    []*snapshot.Snapshot
	fail    error
}

func (c *recordingClassifier) Update(r dataplane.Rules) error {
	c.updates = append(c.updates, r)
	c.seen = append(c.seen, c.p.Snapshot())
	return c.fail
}

// fixedAddrs is a NodeAddrs whose set the test changes.
type fixedAddrs struct {
	addrs []netip.Addr
	gen   uint64
}

func (f *fixedAddrs) LocalAddrs() ([]netip.Addr, uint64) { return f.addrs, f.gen }

func TestApplierOrderAndRetained(t *testing.T) {
	old := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a}, nil),
	}})
	w := newWorld(t, nil, func(c *Config) { c.SNATPortMin, c.SNATPortMax = 100, 200 })
	cls := &recordingClassifier{p: w.p}
	a := NewApplier(w.p, cls, &fixedAddrs{addrs: []netip.Addr{ptGW4}, gen: 1})

	a.Apply(old)
	if len(cls.updates) != 1 || cls.seen[0] != old {
		t.Fatalf("Apply: %d updates, snapshot at update %v; want 1, the new one published first", len(cls.updates), cls.seen)
	}
	r := cls.updates[0]
	wantEP := dataplane.L4Addr{Addr: ptEP4a, Port: 8080, Proto: 6}
	if !slices.Contains(r.Endpoints, wantEP) || r.SNATPortMin != 100 || r.SNATPortMax != 200 ||
		!slices.Equal(r.SNATAddrs, []netip.Addr{ptGW4}) || !slices.Equal(r.LocalAddrs, []netip.Addr{ptGW4}) {
		t.Errorf("Apply rules = %+v, want endpoint %v, SNAT and local address %v, ports 100-200", r, wantEP, ptGW4)
	}

	// A TCP flow to the endpoint, then the endpoint leaves: its replies stay
	// redirected while the flow lives.
	w.run(t, tcpPkt(ptClient4, 1, ptVIP4, 80, "S").build(t))
	newSnap := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, nil, nil),
	}})
	cls.fail = errors.New("map full")
	a.Apply(newSnap) // a failed update is logged, not fatal
	if got := cls.updates[1]; !slices.Contains(got.Endpoints, wantEP) {
		t.Errorf("rules after the endpoint left = %v, want the retained %v", got.Endpoints, wantEP)
	}
	if w.p.Snapshot() != newSnap {
		t.Errorf("Snapshot() after a failed classifier update is not the applied one")
	}
}

// TestApplierFollowsAddrs: a changed set of node addresses re-programs the
// classifier (SNAT and local addresses), an unchanged one does not.
func TestApplierFollowsAddrs(t *testing.T) {
	w := newWorld(t, nil, nil)
	cls := &recordingClassifier{p: w.p}
	addrs := &fixedAddrs{addrs: []netip.Addr{ptGW4}, gen: 1}
	a := NewApplier(w.p, cls, addrs)
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
