package pipeline

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// reflectionWorld has a service with endpoints (ptVIP4), one without
// (198.18.100.2) and a LoadBalancer IP whose source ranges refuse the
// test clients (ptLB4).
func reflectionWorld(t *testing.T) *ptWorld {
	s := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), func(sp *snapshot.ServicePort) {
			sp.LoadBalancerIPs = []netip.Addr{ptLB4}
			sp.SourceRanges = []netip.Prefix{netip.MustParsePrefix("198.19.99.0/24")}
		}),
		ptPort(2, nat.ProtoUDP, netip.MustParseAddr("198.18.100.2"), nil, nil),
		ptPort(3, nat.ProtoTCP, ptVIP6, []netip.Addr{ptEP6a, ptEP6b}, nil),
		ptPort(4, nat.ProtoUDP, noEP6, nil, nil),
	}})
	return newWorld(t, s, func(c *Config) { c.NumQueues = reflectionQueues })
}

// noEP6 is the reflection world's IPv6 service without endpoints.
var noEP6 = netip.MustParseAddr("2001:2:0:100::2")

// reflectionQueues is how many queues the reflection tests spread a flood
// over (RSS spreads one by its spoofed ports): the budget is the
// gateway's, not one per queue.
const reflectionQueues = 4

// processSpread processes fs split over reflectionQueues queues, each
// chunk by its own goroutine at once, as pollers do.
func processSpread(w *ptWorld, fs []dataplane.Frame) {
	var wg sync.WaitGroup
	n := (len(fs) + reflectionQueues - 1) / reflectionQueues
	for q := 0; q < reflectionQueues; q++ {
		chunk := fs[min(q*n, len(fs)):min((q+1)*n, len(fs))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.p.Process(&dataplane.Queue{Index: q, Ifindex: 2}, chunk)
		}()
	}
	wg.Wait()
}

// sent counts the ICMP errors among frames (transmitted back out of the
// receiving interface).
func sent(fs []dataplane.Frame) (n int) {
	for i := range fs {
		if fs[i].Verdict == dataplane.VerdictTX && fs[i].Ifindex == 0 {
			n++
		}
	}
	return n
}

// TestICMPReflection sends 5,000 packets that each ask for an ICMP error
// in one clock tick, spoofed from one victim or from many sources, spread
// over four queues; before the limit every one was answered, and with
// per-queue budgets four times the gateway's budget.
func TestICMPReflection(t *testing.T) {
	victim, victim6 := netip.MustParseAddr("198.18.9.9"), netip.MustParseAddr("2001:2:0:9::9")
	noEP := netip.MustParseAddr("198.18.100.2")
	tests := []struct {
		name   string
		pkt    func(i int) ptPkt
		many   bool // from 5,000 sources rather than the victim
		want   int
		reason dataplane.DropReason
	}{
		{"time exceeded, one victim", func(i int) ptPkt {
			k := tcpPkt(victim, uint16(1000+i), ptVIP4, 80, "S")
			k.ttl = 1
			return k
		}, false, icmpDestBurst, DropICMPRateLimited},
		{"port unreachable, one victim", func(i int) ptPkt {
			return udpPkt(victim, uint16(1000+i), noEP, 80)
		}, false, icmpDestBurst, DropICMPRateLimited},
		{"time exceeded, many sources", func(i int) ptPkt {
			k := tcpPkt(netip.AddrFrom4([4]byte{198, 18, 10 + byte(i>>8), byte(i)}), 1000, ptVIP4, 80, "S")
			k.ttl = 1
			return k
		}, true, icmpBurst, DropICMPRateLimited},
		{"port unreachable, many sources", func(i int) ptPkt {
			return udpPkt(netip.AddrFrom4([4]byte{198, 18, 10 + byte(i>>8), byte(i)}), 1000, noEP, 80)
		}, true, icmpBurst, DropICMPRateLimited},
		{"hop limit exceeded, one IPv6 victim", func(i int) ptPkt {
			k := tcpPkt(victim6, uint16(1000+i), ptVIP6, 80, "S")
			k.ttl = 1
			return k
		}, false, icmpDestBurst, DropICMPRateLimited},
		{"IPv6 port unreachable, one victim", func(i int) ptPkt {
			return udpPkt(victim6, uint16(1000+i), noEP6, 80)
		}, false, icmpDestBurst, DropICMPRateLimited},
		{"IPv6 port unreachable, many sources", func(i int) ptPkt {
			return udpPkt(netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 0, 9, 15: byte(i), 14: byte(i >> 8)}), 1000, noEP6, 80)
		}, true, icmpBurst, DropICMPRateLimited},
		{"time exceeded for traffic source ranges refuse", func(i int) ptPkt {
			k := tcpPkt(victim, uint16(1000+i), ptLB4, 80, "S")
			k.ttl = 1
			return k
		}, false, 0, DropSourceRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := reflectionWorld(t)
			fs := make([]dataplane.Frame, 5000)
			for i := range fs {
				fs[i] = ptFrame(tc.pkt(i).build(t))
			}
			processSpread(w, fs)
			if got := sent(fs); got != tc.want {
				t.Errorf("ICMP errors sent for 5,000 packets in one tick = %d, want %d", got, tc.want)
			}
			drops := 0
			for i := range fs {
				if fs[i].Verdict == dataplane.VerdictDrop && fs[i].Reason == tc.reason {
					drops++
				}
			}
			if drops != 5000-tc.want {
				t.Errorf("drops %v = %d, want %d", tc.reason, drops, 5000-tc.want)
			}
			// The budget refills with the clock: one more a second per
			// destination.
			if tc.many || tc.want == 0 {
				return
			}
			w.clock.t += second
			fs = fs[:2]
			for i := range fs {
				fs[i] = ptFrame(tc.pkt(i).build(t))
			}
			w.p.Process(&dataplane.Queue{Index: 0, Ifindex: 2}, fs)
			if got := sent(fs); got != 1 {
				t.Errorf("ICMP errors sent a second later = %d, want 1", got)
			}
		})
	}
}

// TestICMPLimiterVictimDoesNotStarveOthers: a flooded destination's
// refusals cost no global tokens.
func TestICMPLimiterVictimDoesNotStarveOthers(t *testing.T) {
	var l icmpLimiter
	victim, other := netip.MustParseAddr("198.18.9.9"), netip.MustParseAddr("2001:2::9")
	for range 10000 {
		l.allow(victim, 0)
	}
	if !l.allow(other, 0) {
		t.Fatalf("allow(other) after flooding one victim = false, want true")
	}
}
