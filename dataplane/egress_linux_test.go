package dataplane

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// testEgress builds an Egress around a hand-made table (no netlink).
func testEgress() *Egress {
	a := netip.MustParseAddr
	mac := func(b byte) [6]byte { return [6]byte{2, 0, 0, 0, 0, b} }
	t := &egressTable{
		neigh: map[neighKey][6]byte{
			makeNeighKey(2, a("198.18.2.2")):  mac(0x22),
			makeNeighKey(3, a("198.18.9.1")):  mac(0x91),
			makeNeighKey(2, a("2001:2::2:2")): mac(0x62),
		},
		links: map[int]linkInfo{
			2: {mac: mac(2), mtu: 1500, v4: a("198.18.2.1"), v6: a("2001:2::2:1"),
				addrs: []netip.Addr{a("198.18.2.1"), a("198.18.2.100"), a("2001:2::2:1")}},
			3: {mac: mac(3), mtu: 9000, v4: a("198.18.9.2")},
		},
	}
	p := netip.MustParsePrefix
	t.v4.add(p("0.0.0.0/0"), routeEntry{ifindex: 3, gw: a("198.18.9.1")})
	t.v4.add(p("198.18.2.0/24"), routeEntry{ifindex: 2})
	t.v4.add(p("198.18.2.128/25"), routeEntry{reject: true})
	t.v4.add(p("198.18.4.0/24"), routeEntry{ifindex: 2, src: a("198.18.2.100")})
	t.v4.add(p("198.18.4.0/24"), routeEntry{ifindex: 3, priority: 10}) // higher metric loses
	t.v4.add(p("198.18.8.8/32"), routeEntry{ifindex: 3, gw: a("198.18.9.1")})
	t.v6.add(p("2001:2::2:0/112"), routeEntry{ifindex: 2})
	t.v6.add(p("2001:2::/48"), routeEntry{reject: true})
	t.v6.add(p("2001:2:0:77::/64"), routeEntry{ifindex: 3, gw: a("198.18.9.1")})
	e := &Egress{resolve: newResolveQueue(4)}
	e.table.Store(t)
	return e
}

func TestEgressLookup(t *testing.T) {
	e := testEgress()
	a := netip.MustParseAddr
	cases := []struct {
		dst     string
		st      LookupStatus
		ifindex int
		dstMAC  byte
		src     string
	}{
		{"198.18.2.2", LookupOK, 2, 0x22, "198.18.2.1"},
		{"::ffff:198.18.2.2", LookupOK, 2, 0x22, "198.18.2.1"},
		{"198.18.2.3", LookupUnresolved, 2, 0, "198.18.2.1"},
		{"198.18.2.200", LookupNoRoute, 0, 0, ""},
		{"198.18.4.4", LookupUnresolved, 2, 0, "198.18.2.100"},
		{"198.18.100.1", LookupOK, 3, 0x91, "198.18.9.2"},
		{"2001:2::2:2", LookupOK, 2, 0x62, "2001:2::2:1"},
		{"2001:2::3:3", LookupNoRoute, 0, 0, ""},
		{"198.18.8.8", LookupOK, 3, 0x91, "198.18.9.2"},
		{"198.18.8.9", LookupOK, 3, 0x91, "198.18.9.2"},
		{"2001:2:0:77::1", LookupOK, 3, 0x91, ""},
		{"2001:2:0:78::1", LookupNoRoute, 0, 0, ""},
	}
	for _, tc := range cases {
		h, st := e.Lookup(a(tc.dst))
		if st != tc.st || h.Ifindex != tc.ifindex || (st == LookupOK && h.DstMAC[5] != tc.dstMAC) {
			t.Errorf("Lookup(%s) = %+v, %d, want ifindex %d mac ..%02x status %d", tc.dst, h, st, tc.ifindex, tc.dstMAC, tc.st)
		}
		if tc.src != "" && h.Src != a(tc.src) {
			t.Errorf("Lookup(%s).Src = %v, want %s", tc.dst, h.Src, tc.src)
		}
	}
	// Unresolved lookups queued resolution requests for the next hop.
	var got []netip.Addr
	for _, k := range e.resolve.take(nil) {
		got = append(got, k.Addr())
	}
	if !slices.Contains(got, a("198.18.2.3")) || !slices.Contains(got, a("198.18.4.4")) {
		t.Errorf("resolution requests = %v, want 198.18.2.3 and 198.18.4.4", got)
	}
}

// TestEgressIfaceAddrs: an interface's addresses of one family, the SNAT
// addresses the pipeline falls back to.
func TestEgressIfaceAddrs(t *testing.T) {
	e := testEgress()
	a := netip.MustParseAddr
	for _, tc := range []struct {
		ifindex int
		src     netip.Addr
		want    []netip.Addr
	}{
		{2, a("198.18.2.1"), []netip.Addr{a("198.18.2.1"), a("198.18.2.100")}},
		{2, a("2001:2::2:1"), []netip.Addr{a("2001:2::2:1")}},
		{3, a("198.18.9.2"), nil},
		{9, a("198.18.9.2"), nil},
	} {
		if got := e.IfaceAddrs(tc.ifindex, tc.src); !slices.Equal(got, tc.want) {
			t.Errorf("IfaceAddrs(%d, %v) = %v, want %v", tc.ifindex, tc.src, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { e.IfaceAddrs(2, a("198.18.2.1")) }); n != 0 {
		t.Errorf("IfaceAddrs allocs = %v, want 0", n)
	}
}

func TestNoAllocsEgressLookup(t *testing.T) {
	e := testEgress()
	dsts := []netip.Addr{netip.MustParseAddr("198.18.2.2"), netip.MustParseAddr("198.18.100.1"),
		netip.MustParseAddr("2001:2::2:2"), netip.MustParseAddr("198.18.2.3")}
	keys := make([]neighKey, 0, 4)
	if n := testing.AllocsPerRun(1000, func() {
		for _, d := range dsts {
			e.Lookup(d)
		}
		keys = e.resolve.take(keys)
	}); n != 0 {
		t.Errorf("Egress.Lookup allocs = %v, want 0", n)
	}
}

func BenchmarkEgressLookup(b *testing.B) {
	e := testEgress()
	d := netip.MustParseAddr("198.18.100.1")
	b.ReportAllocs()
	for b.Loop() {
		e.Lookup(d)
	}
}

// TestPrivEgressFollowsKernel checks that route and neighbour changes reach
// the table through the subscriptions, and that an unresolved neighbour is
// resolved by the kernel after Lookup asks for it.
func TestPrivEgressFollowsKernel(t *testing.T) {
	testnet.RequirePriv(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	v := testnet.NewVeth(t, a, "eg", b, "egp", testnet.VethOpts{})
	a.AddAddr(t, v.AName, "198.18.20.1/24")
	b.AddAddr(t, v.BName, "198.18.20.2/24")
	goroutines, fds := runtime.NumGoroutine(), openFDSet(t)
	var e *Egress
	if err := a.Do(func() (err error) { e, err = NewEgress(EgressConfig{Logger: testLogger(t)}); return err }); err != nil {
		t.Fatalf("NewEgress: %v", err)
	}
	defer func() {
		e.Close()
		noLeakedGoroutines(t, goroutines)
		checkNoNewFDs(t, fds, "Egress.Close")
	}()
	dst := netip.MustParseAddr("198.18.30.3")
	if _, st := e.Lookup(dst); st != LookupNoRoute {
		t.Fatalf("Lookup(%s) before route = %d, want LookupNoRoute", dst, st)
	}
	a.AddRoute(t, "198.18.30.0/24", "198.18.20.2")
	// Bounded wait for the subscription-driven rebuild, then for the
	// kernel's ARP exchange triggered by the lookup itself.
	var st LookupStatus
	var h Hop
	for i := 0; i < 100; i++ {
		if h, st = e.Lookup(dst); st == LookupOK {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st != LookupOK || h.Ifindex != v.AIndex || h.DstMAC != v.BMAC || h.SrcMAC != v.AMAC ||
		h.Src != netip.MustParseAddr("198.18.20.1") || h.Gateway != netip.MustParseAddr("198.18.20.2") {
		t.Fatalf("Lookup(%s) = %+v, %d, want OK via ifindex %d to %x", dst, h, st, v.AIndex, v.BMAC)
	}
	if e.resolveRequests.Load() == 0 {
		t.Errorf("resolution requests = 0, want > 0 (the neighbour was unknown)")
	}
	a.MustRun(t, "ip", "route", "del", "198.18.30.0/24")
	for i := 0; i < 100; i++ {
		if _, st = e.Lookup(dst); st == LookupNoRoute {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st != LookupNoRoute {
		t.Errorf("Lookup(%s) after route delete = %d, want LookupNoRoute", dst, st)
	}
}

// TestRouteTableRandom compares routeTable.lookup with a linear scan over
// netip.Prefix.Contains (longest prefix wins), on seeded random prefixes.
func TestRouteTableRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, v6 := range []bool{false, true} {
		var rt routeTable
		type ref struct {
			p   netip.Prefix
			idx int
		}
		var refs []ref
		randAddr := func() netip.Addr {
			var b [16]byte
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			if !v6 {
				// Few distinct high bits so that prefixes overlap.
				return netip.AddrFrom4([4]byte{198, 18 + b[0]&1, b[1] & 3, b[2]})
			}
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0, 2
			b[4] &= 1
			return netip.AddrFrom16(b)
		}
		maxBits := 32
		if v6 {
			maxBits = 128
		}
		for i := 1; i <= 300; i++ {
			p := netip.PrefixFrom(randAddr(), r.IntN(maxBits+1)).Masked()
			dup := false
			for _, x := range refs {
				dup = dup || x.p == p
			}
			if dup {
				continue
			}
			refs = append(refs, ref{p, i})
			rt.add(p, routeEntry{ifindex: i})
		}
		for i := 0; i < 20000; i++ {
			a := randAddr()
			want, wantBits := 0, -1
			for _, x := range refs {
				if x.p.Contains(a) && x.p.Bits() > wantBits {
					want, wantBits = x.idx, x.p.Bits()
				}
			}
			got, ok := rt.lookup(a)
			if (want != 0) != ok || got.ifindex != want {
				t.Fatalf("lookup(%s) = %d, %v, want %d", a, got.ifindex, ok, want)
			}
		}
	}
}

// TestEgressPrime queues one request per unresolved next hop of a burst far
// larger than the old 256-entry channel, none for resolved next hops or
// destinations without a route, and counts what the bound refuses.
func TestEgressPrime(t *testing.T) {
	e := testEgress()
	e.resolve = newResolveQueue(1000)
	var dsts []netip.Addr
	for i := 0; i < 600; i++ {
		dsts = append(dsts, netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 13: 2, 14: byte(i >> 8), 15: byte(i)})) // 2001:2::2:0/112 is connected
	}
	dsts = append(dsts, dsts[:10]...) // duplicates
	a := netip.MustParseAddr
	dsts = append(dsts, a("198.18.2.2"), a("198.18.100.1"), a("2001:2::3:3"), a("198.18.2.200"), a("198.18.8.8"))
	e.Prime(dsts)
	keys := e.resolve.take(nil)
	if len(keys) != 599 { // 2001:2::2:2 is resolved
		t.Errorf("Prime queued %d requests, want 599 (one per unresolved neighbour)", len(keys))
	}
	for _, k := range keys {
		if k.ifindex != 2 || !k.Addr().Is6() {
			t.Errorf("Prime queued %v on %d, want only the unresolved IPv6 neighbours on 2", k.Addr(), k.ifindex)
			break
		}
	}
	select {
	case <-e.resolve.wake:
	default:
		t.Errorf("Prime did not wake the resolver")
	}
	e.resolve = newResolveQueue(100)
	e.Prime(dsts)
	if n, d := e.resolve.len(), e.resolve.dropped.Load(); n != 100 || d != 499 {
		t.Errorf("Prime beyond the bound: %d queued, %d dropped; want 100 and 499", n, d)
	}
}

// TestEgressPrimeGateways: a rebuilt table's new, unresolved gateways are
// queued once; resolved ones and ones the previous table had are not.
func TestEgressPrimeGateways(t *testing.T) {
	e := testEgress()
	a := netip.MustParseAddr
	resolved, known, fresh := makeNeighKey(3, a("198.18.9.1")), makeNeighKey(3, a("198.18.9.7")), makeNeighKey(2, a("2001:2::2:9"))
	old := &egressTable{gateways: map[neighKey]struct{}{known: {}}}
	t1 := &egressTable{
		neigh:    map[neighKey][6]byte{resolved: {2}},
		gateways: map[neighKey]struct{}{resolved: {}, known: {}, fresh: {}},
	}
	e.primeGateways(old, t1)
	if got := e.resolve.take(nil); len(got) != 1 || got[0] != fresh {
		t.Errorf("primeGateways(old, new) queued %v, want only %v", got, fresh.Addr())
	}
	e.primeGateways(nil, t1)
	if got := e.resolve.take(nil); len(got) != 2 || slices.Contains(got, resolved) {
		t.Errorf("primeGateways(nil, new) queued %v, want the two unresolved gateways", got)
	}
}
