package pipeline

import (
	"net/netip"
	"testing"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"

	"github.com/xdpgate/xdpgate/snapshot"
)

// FuzzPipeline feeds arbitrary frames (seeded with valid ones of every
// kind) through a pipeline with services of every kind: it must never
// panic, and every dropped frame must carry a specific reason.
func FuzzPipeline(f *testing.F) {
	s := ptSnapshot(f, snapshot.Snapshot{NodePortAddrs: []netip.Addr{ptGW4, ptGW6}, ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), func(sp *snapshot.ServicePort) { sp.AffinitySeconds = 10; sp.NodePort = 30000 }),
		ptPort(2, nat.ProtoUDP, ptVIP4, twoEndpoints4(), nil),
		ptPort(3, nat.ProtoTCP, ptVIP6, []netip.Addr{ptEP6a}, func(sp *snapshot.ServicePort) { sp.NodePort = 30000 }),
		ptPort(4, nat.ProtoTCP, netip.MustParseAddr("198.18.100.2"), nil, nil),
	}})
	w := newWorld(f, s, nil)
	for _, k := range []ptPkt{
		tcpPkt(ptClient4, 1, ptVIP4, 80, "S"), udpPkt(ptClient4, 2, ptVIP4, 80), tcpPkt(ptClient6, 3, ptVIP6, 80, "S"),
		tcpPkt(ptClient4, 4, ptGW4, 30000, "S"), tcpPkt(ptClient4, 5, netip.MustParseAddr("198.18.100.2"), 80, "S"),
		tcpPkt(ptEP4a, 8080, ptClient4, 1, "SA"),
	} {
		f.Add(k.build(f))
	}
	f.Add(icmp4Error(ptEP4a, ptClient4, tcpPkt(ptClient4, 1, ptEP4a, 8080, "S").build(f)[14:42]))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1792 {
			b = b[:1792]
		}
		fs := []dataplane.Frame{ptFrame(b)}
		w.p.Process(&dataplane.Queue{Index: 0}, fs)
		fr := fs[0]
		if fr.Verdict == dataplane.VerdictDrop && fr.Reason == dataplane.DropUnspecified {
			t.Fatalf("frame %x dropped without a reason", b)
		}
		if fr.Verdict == dataplane.VerdictTX && (fr.Off+fr.Len > len(fr.Buf) || fr.Len < 14) {
			t.Fatalf("TX frame out of bounds: off %d len %d", fr.Off, fr.Len)
		}
	})
}
