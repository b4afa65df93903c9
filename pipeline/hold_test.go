package pipeline

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// ptRouterAddr is the router of ptFarClient4, whose MAC is not known.
var (
	ptFarClient4 = netip.MustParseAddr("198.19.77.1")
	ptRouterAddr = netip.MustParseAddr("198.18.0.1")
)

// primingHops is ptHops with a router that is not resolved (towards
// ptFarClient4) and a record of Prime calls.
type primingHops struct {
	ptHops
	primed [][]netip.Addr
}

func (h *primingHops) Lookup(dst netip.Addr) (dataplane.Hop, dataplane.LookupStatus) {
	if dst == ptFarClient4 {
		return dataplane.Hop{Ifindex: 2, SrcMAC: ptGWMAC, Src: ptGW4, Gateway: ptRouterAddr}, dataplane.LookupUnresolved
	}
	return h.ptHops.Lookup(dst)
}

func (h *primingHops) Prime(dsts []netip.Addr) { h.primed = append(h.primed, slices.Clone(dsts)) }

func TestPipelineHoldUnresolved(t *testing.T) {
	vip := netip.MustParseAddr("198.18.100.2")
	s := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, vip, []netip.Addr{ptUnknown4}, nil),
		ptPort(2, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a}, nil),
	}})
	hops := &primingHops{}
	w := newWorld(t, s, func(c *Config) { c.Hops = hops })
	for _, tc := range []struct {
		name    string
		in      ptPkt
		ifindex int
		nextHop netip.Addr
		dst     netip.Addr
	}{
		// A new flow to an endpoint that is its own, unresolved, neighbour.
		{"new flow, endpoint unresolved", tcpPkt(ptClient4, 1, vip, 80, "S"), 3, ptUnknown4, ptUnknown4},
		// Its retransmission finds the flow and is held too.
		{"established, endpoint unresolved", tcpPkt(ptClient4, 1, vip, 80, "S"), 3, ptUnknown4, ptUnknown4},
		// A reply to a client behind an unresolved router.
		{"reply, router unresolved", tcpPkt(ptEP4a, 8080, ptFarClient4, 2, "SA"), 2, ptRouterAddr, ptFarClient4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "reply, router unresolved" {
				w.run(t, tcpPkt(ptFarClient4, 2, ptVIP4, 80, "S").build(t)) // the flow the reply belongs to
			}
			f := w.run(t, tc.in.build(t))
			if f.Verdict != dataplane.VerdictHold || f.Ifindex != tc.ifindex || f.NextHop != tc.nextHop {
				t.Fatalf("Process = verdict %v ifindex %d next hop %v, want hold on %d for %v",
					f.Verdict, f.Ifindex, f.NextHop, tc.ifindex, tc.nextHop)
			}
			d := f.Data()
			if got := [6]byte(d[6:12]); got != ptGWMAC {
				t.Errorf("source MAC = %x, want %x (the dataplane only writes the destination)", got, ptGWMAC)
			}
			if got := ptDecode(t, d); got.dst != tc.dst {
				t.Errorf("held packet to %v, want it translated to %v", got.dst, tc.dst)
			}
		})
	}
	if st := w.ct.Stats(); st.Entries != 2 {
		t.Errorf("conntrack entries = %d, want 2 (flows kept while their neighbours resolve)", st.Entries)
	}
}

func TestApplierPrimesEndpoints(t *testing.T) {
	s := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4b, ptEP4a}, nil),
		ptPort(2, nat.ProtoUDP, ptVIP4, []netip.Addr{ptEP4a, ptUnknown4}, nil),
		ptPort(3, nat.ProtoTCP, ptVIP6, []netip.Addr{ptEP6a}, nil),
	}})
	hops := &primingHops{}
	w := newWorld(t, nil, func(c *Config) { c.Hops = hops })
	cls := &recordingClassifier{p: w.p}
	a := NewApplier(w.p, ApplierConfig{Classifier: cls, Addrs: &fixedAddrs{addrs: []netip.Addr{ptGW4}, gen: 1}})
	a.Apply(s)
	want := []netip.Addr{ptEP4a, ptEP4b, ptUnknown4, ptEP6a}
	if len(hops.primed) != 1 || !slices.Equal(hops.primed[0], want) {
		t.Errorf("Prime calls = %v, want one with every endpoint once: %v", hops.primed, want)
	}
	// A next hopper that cannot prime is fine.
	NewApplier(newWorld(t, nil, nil).p, ApplierConfig{Classifier: cls, Addrs: &fixedAddrs{}}).Apply(s)
}
