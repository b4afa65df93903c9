package conntrack

import (
	"testing"

	"github.com/xdpgate/xdpgate/nat"
)

// TestDeleteUDPByServicePort follows kube-proxy's UDP reconcile: only UDP
// flows of the service port whose endpoint is not serving go.
func TestDeleteUDPByServicePort(t *testing.T) {
	type flow struct {
		proto   nat.Proto
		svc, ep uint32
		want    bool // survives
	}
	flows := []flow{
		{nat.ProtoUDP, 1, 10, true},  // serving endpoint
		{nat.ProtoUDP, 1, 11, false}, // endpoint no longer serving
		{nat.ProtoTCP, 1, 11, true},  // TCP is never reconciled
		{nat.ProtoUDP, 2, 11, true},  // other service port
		{nat.ProtoSCTP, 1, 11, true}, // SCTP neither (kube-proxy: UDP only)
	}
	tb := newTestTable(t, Config{MaxFlows: 64})
	var hs []Handle
	for i, f := range flows {
		fl, res := tb.Insert(tup4(uint32(i), 100, 1000, 53, f.proto), xlate4(200+f.ep, 5353), f.svc, f.ep, 0)
		if res != Inserted {
			t.Fatalf("Insert %d = %v", i, res)
		}
		hs = append(hs, fl.Handle)
	}
	serving := map[uint32]bool{10: true}
	if got := tb.DeleteUDPByServicePort(1, func(ep uint32) bool { return serving[ep] }); got != 1 {
		t.Fatalf("DeleteUDPByServicePort(1) = %d, want 1", got)
	}
	for i, f := range flows {
		if _, live := tb.Get(hs[i]); live != f.want {
			t.Errorf("flow %d %+v live = %v, want %v", i, f, live, f.want)
		}
	}
	if got := tb.DeleteByEndpoint(11); got != 3 {
		t.Fatalf("DeleteByEndpoint(11) = %d, want 3", got)
	}
	if st := tb.Stats(); st.Entries != 1 || st.Deletes != 4 {
		t.Fatalf("Stats() entries %d deletes %d, want 1 4", st.Entries, st.Deletes)
	}
	if tb.Delete(hs[1]) || tb.Touch(hs[1], Original, 0, 1, 0) {
		t.Fatalf("Delete/Touch of a removed flow's handle = true, want false")
	}
	if tb.Delete(0) || tb.Touch(Handle(1<<63|1<<31|12345), Original, 0, 1, 0) {
		t.Fatalf("Delete/Touch of a bogus handle = true, want false")
	}
}
