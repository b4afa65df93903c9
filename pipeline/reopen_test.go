package pipeline

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// withoutEndpoint returns service port sp without the endpoint at addr,
// the others keeping their IDs and chains.
func withoutEndpoint(sp snapshot.ServicePort, addr netip.Addr) snapshot.ServicePort {
	i := slices.IndexFunc(sp.Endpoints, func(e snapshot.Endpoint) bool { return e.Addr == addr })
	sp.Endpoints = slices.Delete(slices.Clone(sp.Endpoints), i, i+1)
	fix := func(chain []int32) []int32 {
		var out []int32
		for _, k := range chain {
			switch {
			case int(k) < i:
				out = append(out, k)
			case int(k) > i:
				out = append(out, k-1)
			}
		}
		return out
	}
	sp.Cluster, sp.Local = fix(sp.Cluster), fix(sp.Local)
	return sp
}

// TestPipelineReopenChoosesAfresh: a client that reuses the port of a
// closed connection (its flow still in TIME_WAIT, or CLOSE after a RST)
// opens a new connection, as nf_conntrack sees it: the old flow goes and
// the SYN is load-balanced again, so it reaches a current endpoint when
// the old one has left, and the client's ClientIP pin follows. A SYN on a
// flow that is not closed stays on its flow.
func TestPipelineReopenChoosesAfresh(t *testing.T) {
	for _, tc := range []struct {
		name     string
		affinity uint32
		rst      bool // close with a RST from the client instead of FINs
	}{
		{"TIME_WAIT", 0, false},
		{"CLOSE after RST", 0, true},
		{"TIME_WAIT, ClientIP", 100, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), func(sp *snapshot.ServicePort) { sp.AffinitySeconds = tc.affinity })
			w := newWorld(t, ptSnapshot(t, snapshot.Snapshot{Generation: 1, ServicePorts: []snapshot.ServicePort{sp}}), nil)
			client := netip.MustParseAddr("198.19.7.7")
			const sport = 40000
			if !connect(t, w, client, sport) {
				t.Fatal("handshake not forwarded")
			}
			k := conntrack.MakeTuple(client, ptVIP4, sport, 80, nat.ProtoTCP)
			old, ok := w.ct.Lookup(k, w.clock.t)
			if !ok {
				t.Fatal("no flow after the handshake")
			}
			oldEP := old.Rewrite.DstAddr() // the translated destination: the endpoint
			if tc.rst {
				w.run(t, ptPkt{src: client, dst: ptVIP4, sport: sport, dport: 80, proto: tcpPkt(client, 0, ptVIP4, 0, "").proto, tcpFlags: "R", seq: 1001}.build(t))
				if fl, _ := w.ct.Lookup(k, w.clock.t); fl.State != conntrack.StateClose {
					t.Fatalf("after the RST the flow is %v, want CLOSE", fl.State)
				}
			} else {
				closeConn(t, w, client, sport)
			}
			// The old endpoint leaves; the other stays with its ID.
			w.p.Publish(ptSnapshot(t, snapshot.Snapshot{Generation: 2, ServicePorts: []snapshot.ServicePort{withoutEndpoint(sp, oldEP)}}))
			before := w.p.Stats()[0]
			f := w.run(t, ptPkt{src: client, dst: ptVIP4, sport: sport, dport: 80, proto: tcpPkt(client, 0, ptVIP4, 0, "").proto, tcpFlags: "S", seq: 9000}.build(t))
			if f.Verdict != dataplane.VerdictTX {
				t.Fatalf("the reopening SYN: %v/%v, want forwarded", f.Verdict, f.Reason)
			}
			if got := ptDecode(t, f.Data()).dst; got == oldEP {
				t.Fatalf("the reopening SYN went to %v, the endpoint that left", got)
			}
			after := w.p.Stats()[0]
			if after.Reopens != before.Reopens+1 || after.NewFlows != before.NewFlows+1 {
				t.Errorf("Reopens %d -> %d, NewFlows %d -> %d: want one more of each", before.Reopens, after.Reopens, before.NewFlows, after.NewFlows)
			}
			fl, ok := w.ct.Lookup(k, w.clock.t)
			if !ok || fl.Handle == old.Handle || fl.State != conntrack.StateSynSent || fl.Rewrite.DstAddr() == oldEP {
				t.Fatalf("flow after the reopen: %+v (found %v), want a new SYN_SENT flow to the remaining endpoint", fl, ok)
			}
			if tc.affinity > 0 {
				id, ok := w.aff.Lookup(1, client, tc.affinity, w.clock.t)
				if !ok || id != fl.Endpoint {
					t.Errorf("pin after the reopen: %d (found %v), want the new endpoint %d", id, ok, fl.Endpoint)
				}
			}

			// A SYN on a flow that is not closed (a retransmission while
			// SYN_SENT) is not a reopen.
			w.run(t, ptPkt{src: client, dst: ptVIP4, sport: sport, dport: 80, proto: tcpPkt(client, 0, ptVIP4, 0, "").proto, tcpFlags: "S", seq: 9000}.build(t))
			if again, _ := w.ct.Lookup(k, w.clock.t); again.Handle != fl.Handle || w.p.Stats()[0].Reopens != after.Reopens {
				t.Errorf("a retransmitted SYN replaced the flow (handle %v -> %v, Reopens %d)", fl.Handle, again.Handle, w.p.Stats()[0].Reopens)
			}
		})
	}
}

// TestPipelineReopenKeepsSNATPort: a masqueraded flow reopened by the
// client takes its old SNAT port again, so the endpoint sees the client's
// reuse of its tuple. The case that needs it, from a SYN flood whose
// forged flows the endpoint answered (e2e TestPrivSNATFlood): the client's
// SYN on a reclaimed port meets the endpoint's state for the forged
// connection, which answers with an ACK for it; the client resets that
// (RST with the ACK's number: the gateway's tracking, resynchronised by
// the first reply, takes it, and the flow closes), which ends the state
// at the endpoint, and retransmits its SYN, which reopens the flow. On a
// fresh port it would meet another forged connection's state; with the
// old one it is answered. Also after TIME_WAIT.
func TestPipelineReopenKeepsSNATPort(t *testing.T) {
	for _, tc := range []struct {
		name string
		rst  bool // the forged connection's ACK and the client's RST; else a full connection, closed
	}{{"challenge ACK, RST", true}, {"TIME_WAIT", false}} {
		t.Run(tc.name, func(t *testing.T) {
			w := attackWorld(t, 4096, true, func(c *Config) { c.SNATPortMin, c.SNATPortMax = 20000, 59999 })
			client := netip.MustParseAddr("198.19.7.8")
			const sport = 40001
			proto := tcpPkt(client, 0, ptVIP4, 0, "").proto
			syn := ptPkt{src: client, dst: ptVIP4, sport: sport, dport: 80, proto: proto, tcpFlags: "S", seq: 1000}.build(t)
			var first decoded
			if tc.rst {
				f := w.run(t, syn)
				if f.Verdict != dataplane.VerdictTX {
					t.Fatalf("SYN: %v/%v, want forwarded", f.Verdict, f.Reason)
				}
				first = ptDecode(t, f.Data())
				// The endpoint's ACK for the forged connection on that tuple
				// (its SYN-ACK acknowledged sequence 777), the client's RST.
				if r := w.run(t, ptPkt{src: first.dst, dst: first.src, sport: first.dport, dport: first.sport, proto: proto, tcpFlags: "A", seq: 5000, ack: 777}.build(t)); r.Verdict != dataplane.VerdictTX {
					t.Fatalf("the endpoint's ACK: %v/%v, want forwarded", r.Verdict, r.Reason)
				}
				w.run(t, ptPkt{src: client, dst: ptVIP4, sport: sport, dport: 80, proto: proto, tcpFlags: "R", seq: 777}.build(t))
			} else {
				if !connect(t, w, client, sport) {
					t.Fatal("handshake not forwarded")
				}
				fl, _ := w.ct.Lookup(conntrack.MakeTuple(client, ptVIP4, sport, 80, nat.ProtoTCP), w.clock.t)
				first = decoded{src: fl.Rewrite.SrcAddr(), sport: fl.Rewrite.SrcPort}
				closeConn(t, w, client, sport)
			}
			k := conntrack.MakeTuple(client, ptVIP4, sport, 80, nat.ProtoTCP)
			if fl, _ := w.ct.Lookup(k, w.clock.t); fl.State != conntrack.StateClose && fl.State != conntrack.StateTimeWait {
				t.Fatalf("the flow is %v, want closed", fl.State)
			}
			before := w.p.Stats()[0].Reopens
			f := w.run(t, syn) // the retransmission, or a new connection on the port
			if f.Verdict != dataplane.VerdictTX {
				t.Fatalf("the reopening SYN: %v/%v, want forwarded", f.Verdict, f.Reason)
			}
			if w.p.Stats()[0].Reopens != before+1 {
				t.Fatal("the SYN did not reopen the flow")
			}
			if got := ptDecode(t, f.Data()); got.src != first.src || got.sport != first.sport {
				t.Errorf("the reopening SYN left from %v:%d, want the old SNAT source %v:%d", got.src, got.sport, first.src, first.sport)
			}
		})
	}
}
