package pipeline

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket/layers"

	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/internal/testnet"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/snapshot"
)

// XDP actions (linux/bpf.h).
const (
	xdpTX       = 3
	xdpRedirect = 4
)

// xdpMD is struct xdp_md, BPF_PROG_TEST_RUN's context for XDP.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// oracleHops is ptHops on two real devices (veth ends in a test namespace): clients behind cli,
// endpoints behind eps (the same device in a one-arm gateway).
type oracleHops struct {
	cli, eps int
}

func (h oracleHops) Lookup(dst netip.Addr) (dataplane.Hop, dataplane.LookupStatus) {
	hop, st := ptHops{}.Lookup(dst)
	switch hop.Ifindex {
	case 2:
		hop.Ifindex = h.cli
	case 3:
		hop.Ifindex = h.eps
	}
	return hop, st
}

// TestPrivFastPathOracle is the fast path's correctness oracle: random
// established flows of every kind (IPv4 and IPv6, TCP and UDP, DNAT only
// and SNAT, both directions, up to two VLAN tags, a one-arm and a two-arm
// gateway) are opened through the Go pipeline, which installs them in the
// XDP fast path itself; then the same frames go through the Go pipeline
// and through the XDP program (BPF_PROG_TEST_RUN), and the outputs must be
// byte-identical, with XDP_TX where the egress device is the receiving one
// and XDP_REDIRECT otherwise. Frames the fast path must leave to userspace
// (SYN, FIN, RST, TTL 1, larger than the egress MTU) must come out of XDP
// untouched and not forwarded. The XDP counters credited back into
// conntrack must equal what XDP forwarded.
func TestPrivFastPathOracle(t *testing.T) {
	testnet.RequirePriv(t)
	ns := testnet.NewNS(t)
	for _, d := range []string{"xgcli", "xgeps"} {
		ns.MustRun(t, "ip", "link", "add", d, "type", "veth", "peer", "name", d+"p")
		ns.MustRun(t, "ip", "link", "set", d, "up")
		ns.MustRun(t, "ip", "link", "set", d+"p", "up")
	}
	for _, oneArm := range []bool{false, true} {
		t.Run(fmt.Sprintf("one-arm=%v", oneArm), func(t *testing.T) {
			// Everything in the namespace's thread: device lookups, the
			// devmap and BPF_PROG_TEST_RUN use the caller's namespace.
			err := ns.Do(func() error {
				cli, err := net.InterfaceByName("xgcli")
				if err != nil {
					return err
				}
				eps, err := net.InterfaceByName("xgeps")
				if err != nil {
					return err
				}
				c, err := dataplane.NewClassifier(dataplane.ClassifierConfig{FastPathFlows: 4096})
				if err != nil {
					return err
				}
				defer c.Close()
				prog, err := c.Program()
				if err != nil {
					return err
				}
				defer prog.Close()
				fp := c.FastPath()
				if err := fp.SetDevices([]int{cli.Index, eps.Index}); err != nil {
					return err
				}
				hops := oracleHops{cli: cli.Index, eps: eps.Index}
				if oneArm {
					hops.eps = cli.Index
				}
				oracleRun(t, prog, fp, hops)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func oracleRun(t *testing.T, prog *ebpf.Program, fp *dataplane.FastPathMaps, hops oracleHops) {
	s := ptSnapshot(t, snapshot.Snapshot{
		NodePortAddrs: []netip.Addr{ptGW4, ptGW6},
		ServicePorts: []snapshot.ServicePort{
			ptPort(1, nat.ProtoTCP, ptVIP4, []netip.Addr{ptEP4a, ptEP4b}, func(sp *snapshot.ServicePort) { sp.NodePort = 30080 }),
			ptPort(2, nat.ProtoUDP, ptVIP4, []netip.Addr{ptEP4a, ptEP4b}, func(sp *snapshot.ServicePort) { sp.NodePort = 30081 }),
			ptPort(3, nat.ProtoTCP, ptVIP6, []netip.Addr{ptEP6a, ptEP6b}, func(sp *snapshot.ServicePort) { sp.NodePort = 30080 }),
			ptPort(4, nat.ProtoUDP, ptVIP6, []netip.Addr{ptEP6a, ptEP6b}, func(sp *snapshot.ServicePort) { sp.NodePort = 30081 }),
		}})
	w := newWorld(t, s, func(c *Config) { c.Hops = hops; c.FastPath = fp })
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 7))
	t.Logf("seed %d", seed)

	var compared, slowChecked int
	kinds := map[string]int{}
	for flow := 0; flow < 120; flow++ {
		v6, tcp, snat := rng.IntN(2) == 1, rng.IntN(2) == 1, rng.IntN(2) == 1
		tags := rng.IntN(3)
		client := netip.AddrFrom4([4]byte{198, 19, byte(rng.IntN(256)), byte(1 + rng.IntN(250))})
		dst, dport := ptVIP4, uint16(80)
		if v6 {
			b := ptClient6.As16()
			b[14], b[15] = byte(rng.IntN(256)), byte(1+rng.IntN(250))
			client, dst = netip.AddrFrom16(b), ptVIP6
		}
		proto := layers.IPProtocolUDP
		if tcp {
			proto = layers.IPProtocolTCP
		}
		if snat {
			dst, dport = ptGW4, 30081
			if v6 {
				dst = ptGW6
			}
			if tcp {
				dport = 30080
			}
		}
		sport := uint16(1024 + rng.IntN(60000))
		kinds[fmt.Sprintf("v6=%v tcp=%v snat=%v vlan=%d", v6, tcp, snat, tags)]++
		orig := ptPkt{src: client, dst: dst, sport: sport, dport: dport, proto: proto}

		// Open the flow through the pipeline: it installs the fast path
		// entries once the flow is established.
		first := orig
		if tcp {
			first.tcpFlags = "S"
		}
		f := oracleGo(t, w, vlan(first.build(t), tags, rng), hops.cli)
		if f.Verdict != dataplane.VerdictTX {
			t.Fatalf("flow %d: first packet verdict %v reason %v", flow, f.Verdict, f.Reason)
		}
		out := ptDecode(t, stripVLAN(f.Data(), tags))
		reply := ptPkt{src: out.dst, dst: out.src, sport: out.dport, dport: out.sport, proto: proto}
		rin := reply
		if tcp {
			rin.tcpFlags, rin.seq, rin.ack = "SA", 5000, 101
		}
		if f = oracleGo(t, w, vlan(rin.build(t), tags, rng), hops.eps); f.Verdict != dataplane.VerdictTX {
			t.Fatalf("flow %d: reply verdict %v reason %v", flow, f.Verdict, f.Reason)
		}
		if tcp {
			ack := orig
			ack.tcpFlags, ack.seq, ack.ack = "A", 101, 5001
			if f = oracleGo(t, w, vlan(ack.build(t), tags, rng), hops.cli); f.Verdict != dataplane.VerdictTX {
				t.Fatalf("flow %d: ACK verdict %v reason %v", flow, f.Verdict, f.Reason)
			}
		} else {
			// UDP: the first reply made the flow established; the next
			// packet of the flow offers it.
			if f = oracleGo(t, w, vlan(orig.build(t), tags, rng), hops.cli); f.Verdict != dataplane.VerdictTX {
				t.Fatalf("flow %d: second datagram verdict %v reason %v", flow, f.Verdict, f.Reason)
			}
		}
		fl, ok := w.ct.Lookup(oracleTuple(orig), w.clock.now())
		if !ok {
			t.Fatalf("flow %d: not in conntrack", flow)
		}
		slot := int(uint32(w.p.fast.byRec[w.ct.RecordSlot(fl.Handle)].Load())) - 1
		if slot < 0 || slot >= fp.Slots() || !fp.Installed(slot, fl.Handle.Generation()) {
			st, _ := w.p.FastPathStats()
			t.Fatalf("flow %d (%s): not installed in the fast path (mark %#x, stats %+v)", flow, orig.src, w.p.fast.byRec[w.ct.RecordSlot(fl.Handle)].Load(), st)
		}

		before, _ := w.ct.Get(fl.Handle)
		var forwarded [2]uint64
		seqs := [2]uint32{101, 5001}
		for i := 0; i < 12; i++ {
			dir := rng.IntN(2)
			k, in := orig, hops.cli
			if dir == 1 {
				k, in = reply, hops.eps
			}
			k.ttl = uint8(2 + rng.IntN(254))
			k.payload = make([]byte, rng.IntN(200))
			for j := range k.payload {
				k.payload[j] = byte(rng.Uint32())
			}
			if tcp {
				k.tcpFlags, k.seq, k.ack = "A", seqs[dir], seqs[1-dir]
				seqs[dir] += uint32(len(k.payload))
			}
			b := k.build(t)
			if !v6 && !tcp && rng.IntN(4) == 0 {
				clearUDPChecksum(b)
			}
			b = vlan(b, tags, rng)
			act, xout := oracleXDP(t, prog, b, in)
			g := oracleGo(t, w, b, in)
			if g.Verdict != dataplane.VerdictTX {
				t.Fatalf("flow %d: Go verdict %v reason %v for %x", flow, g.Verdict, g.Reason, b)
			}
			want := uint32(xdpRedirect)
			if g.Ifindex == in {
				want = xdpTX
			}
			if act != want {
				t.Fatalf("flow %d dir %d: XDP action %d, want %d (Go egress %d, ingress %d)", flow, dir, act, want, g.Ifindex, in)
			}
			if !bytes.Equal(xout, g.Data()) {
				t.Fatalf("flow %d dir %d (v6=%v tcp=%v snat=%v vlan=%d): XDP output\n %x\nwant (Go)\n %x\ninput\n %x",
					flow, dir, v6, tcp, snat, tags, xout, g.Data(), b)
			}
			forwarded[dir]++
			compared++
		}

		// What XDP must leave to userspace: out of it unchanged.
		var slow []ptPkt
		k := orig
		k.ttl = 1
		slow = append(slow, k)
		k = orig
		k.payload = make([]byte, 1500) // larger than the egress MTU (1500) with headers
		slow = append(slow, k)
		if tcp {
			for _, fl := range []string{"S", "FA", "RA", "SA"} {
				k = orig
				k.tcpFlags, k.seq, k.ack = fl, seqs[0], seqs[1]
				slow = append(slow, k)
			}
		}
		for _, k := range slow {
			b := vlan(k.build(t), tags, rng)
			act, xout := oracleXDP(t, prog, b, hops.cli)
			if act == xdpTX || act == xdpRedirect || !bytes.Equal(xout, b) {
				t.Fatalf("flow %d: %+v went through the fast path (action %d)", flow, k, act)
			}
			slowChecked++
		}

		// Credited back: every frame went through XDP and, for the
		// comparison, through the pipeline too, so conntrack counts each
		// twice once XDP's counts are credited.
		for d := 0; d < 2; d++ {
			if st := fp.Stats(slot, d); st.Packets != forwarded[d] {
				t.Fatalf("flow %d: XDP counted %d packets in direction %d, forwarded %d", flow, st.Packets, d, forwarded[d])
			}
		}
		w.p.fastSync(w.clock.now(), true)
		after, _ := w.ct.Get(fl.Handle)
		for d := 0; d < 2; d++ {
			if got := after.Packets[d] - before.Packets[d]; got != 2*forwarded[d] {
				t.Fatalf("flow %d: conntrack counted %d packets in direction %d, want %d (pipeline and XDP %d each)", flow, got, d, 2*forwarded[d], forwarded[d])
			}
		}
	}
	t.Logf("%d frames compared byte for byte, %d slow-path frames checked; flow kinds: %v", compared, slowChecked, kinds)
}

// oracleGo runs b through the pipeline as received on ingress and returns
// the frame (the pipeline's output in Data()).
func oracleGo(t *testing.T, w *ptWorld, b []byte, ingress int) dataplane.Frame {
	t.Helper()
	fs := []dataplane.Frame{ptFrame(bytes.Clone(b))}
	w.p.Process(&dataplane.Queue{Index: 0, Ifindex: ingress}, fs)
	return fs[0]
}

// oracleXDP runs b through the XDP program as received on ingress.
func oracleXDP(t *testing.T, prog *ebpf.Program, b []byte, ingress int) (uint32, []byte) {
	t.Helper()
	opts := &ebpf.RunOptions{Data: bytes.Clone(b), DataOut: make([]byte, len(b)+512),
		Context: xdpMD{DataEnd: uint32(len(b)), IngressIfindex: uint32(ingress)}}
	ret, err := prog.Run(opts)
	if err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return ret, opts.DataOut
}

// vlan inserts n 802.1Q/802.1ad tags with random IDs after the MACs.
func vlan(b []byte, n int, rng *rand.Rand) []byte {
	for i := 0; i < n; i++ {
		tpid := []byte{0x81, 0x00}
		if i == n-1 && n == 2 {
			tpid = []byte{0x88, 0xa8} // outer tag of a QinQ pair
		}
		tci := uint16(rng.IntN(4095) + 1)
		tag := append(tpid, byte(tci>>8), byte(tci))
		b = append(b[:12:12], append(tag, b[12:]...)...)
	}
	return b
}

// stripVLAN removes n tags (to decode with ptDecode).
func stripVLAN(b []byte, n int) []byte {
	return append(bytes.Clone(b[:12]), b[12+4*n:]...)
}

// clearUDPChecksum sets an IPv4 UDP checksum to 0 (none, RFC 768).
func clearUDPChecksum(b []byte) {
	ihl := int(b[14]&0x0f) * 4
	b[14+ihl+6], b[14+ihl+7] = 0, 0
}

// oracleTuple is the conntrack tuple of k.
func oracleTuple(k ptPkt) conntrack.Tuple {
	return conntrack.MakeTuple(k.src, k.dst, k.sport, k.dport, nat.Proto(k.proto))
}
