package dataplane

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/xdpgate/xdpgate/internal/benchcpu"
	"github.com/xdpgate/xdpgate/internal/testnet"
)

// BenchmarkPrivForwarderUDP measures the raw AF_XDP forwarder (no
// translation) in the two-arm namespace topology: an AF_XDP generator in
// the client namespace sends b.N 64-byte UDP frames to the gateway, whose
// pollers forward them to the server namespace, where an XDP program drops
// them. It reports gateway-forwarded frames per second and the loss. Run
// with a bounded count, e.g. -bench PrivForwarder -benchtime 500000x.
func BenchmarkPrivForwarderUDP(b *testing.B) {
	testnet.RequirePriv(b)
	c, g, s := testnet.NewNS(b), testnet.NewNS(b), testnet.NewNS(b)
	cg := testnet.NewVeth(b, c, "c", g, "g", testnet.VethOpts{})
	gs := testnet.NewVeth(b, g, "g", s, "s", testnet.VethOpts{})
	g.AddAddr(b, cg.BName, "198.18.1.1/24")
	g.AddAddr(b, gs.AName, "198.18.2.1/24")
	s.AddAddr(b, gs.BName, "198.18.2.2/24")
	// Static neighbour so no frame waits for resolution.
	g.MustRun(b, "ip", "neigh", "replace", "198.18.2.2", "lladdr", net.HardwareAddr(gs.BMAC[:]).String(), "dev", gs.AName, "nud", "permanent")

	// Sink: XDP_DROP on the server end.
	testnet.AttachXDP(b, s, gs.BIndex, testnet.Return(testnet.XDPDrop))

	var dp *Dataplane
	var eg *Egress
	cfg := Config{Interfaces: []string{cg.BName, gs.AName}, NumFrames: 4096, Logger: testLoggerB(b)}
	if err := g.Do(func() (err error) {
		if dp, err = Open(cfg); err != nil {
			return err
		}
		eg, err = NewEgress(EgressConfig{Logger: testLoggerB(b)})
		return err
	}); err != nil {
		b.Fatalf("gateway: %v", err)
	}
	defer dp.Close()
	defer eg.Close()
	srv := netip.MustParseAddr("198.18.2.2")
	if err := dp.Classifier().Update(Rules{Frontends: []L4Addr{{srv, 9000, 17}}}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dp.Run(ctx, NewForwarder(eg)) }()
	defer func() { cancel(); <-done }()

	// Generator socket on the client end (TX only: no XDP program there).
	var gen *xsk
	if err := c.Do(func() (err error) {
		gen, err = openXSK(cg.AIndex, 0, xskConfig{numFrames: 4096, frameSize: 2048, fillSize: 2048,
			compSize: 2048, rxSize: 2048, txSize: 2048, bind: BindAuto})
		return err
	}); err != nil {
		b.Fatalf("generator: %v", err)
	}
	defer gen.close()
	frame := benchFrame(b, cg.AMAC, cg.BMAC)
	for _, ch := range gen.txFree {
		copy(gen.umem[ch:], frame)
	}

	forwarded := func() (n uint64) {
		for _, st := range dp.Stats() {
			n += st.TxFrames
		}
		return n
	}
	base := forwarded()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent := benchSend(gen, b.N, len(frame))
	genDur := time.Since(start)
	// Wait (bounded) until the gateway stops forwarding.
	last, stable := forwarded(), 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && stable < 5; {
		time.Sleep(20 * time.Millisecond)
		if n := forwarded(); n == last {
			stable++
		} else {
			last, stable = n, 0
		}
	}
	elapsed := time.Since(start) - time.Duration(stable)*20*time.Millisecond
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	fwd := last - base
	// Process-wide: pollers, Forwarder and Egress included.
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs), "mallocs_total")
	b.ReportMetric(float64(fwd)/elapsed.Seconds(), "fwd_frames/s")
	b.ReportMetric(float64(sent)/genDur.Seconds(), "gen_frames/s")
	b.ReportMetric(100*(1-float64(fwd)/float64(max(sent, 1))), "loss_%")
	for _, st := range dp.Stats() {
		b.Logf("%s/%d rx=%d tx=%d drops=%v kernel=%+v wakeups=%d sleeps=%d", st.Ifname, st.QueueID, st.RxFrames,
			st.TxFrames, nonZero(st.Drops[:]), st.Kernel, st.Wakeups, st.Sleeps)
	}
}

// benchSend transmits n copies of the prebuilt frame; it returns how many
// the TX ring accepted.
func benchSend(s *xsk, n, flen int) int {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	sent := 0
	for spins := 0; sent < n && spins < 1<<24; spins++ {
		s.reclaimLocked()
		k := min(int(s.tx.freeSlots(64)), len(s.txFree), 64, n-sent)
		for i := 0; i < k; i++ {
			ch := s.txFree[len(s.txFree)-1]
			s.txFree = s.txFree[:len(s.txFree)-1]
			s.tx.descs[s.tx.cachedProd&s.tx.mask] = unix.XDPDesc{Addr: ch, Len: uint32(flen)}
			s.tx.cachedProd++
		}
		if k > 0 {
			s.tx.publish()
		}
		s.kickLocked()
		sent += k
	}
	return sent
}

func benchFrame(b *testing.B, src, dst [6]byte) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(src[:]), DstMAC: net.HardwareAddr(dst[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP{198, 18, 1, 2}, DstIP: net.IP{198, 18, 2, 2}}
	udp := &layers.UDP{SrcPort: 1000, DstPort: 9000}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(make([]byte, 18))); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func nonZero(d []uint64) map[DropReason]uint64 {
	m := map[DropReason]uint64{}
	for r, n := range d {
		if n != 0 {
			m[DropReason(r)] = n
		}
	}
	return m
}

// BenchmarkPrivTxByDeviceKind measures what sending one frame costs for
// each kind of device the dataplane transmits on (doc.go, "Reach"): a
// 64-byte UDP frame submitted on an AF_XDP socket bound to a veth (a pod's
// host end, or a managed NIC on this machine), to a Linux bridge (cni0:
// the bridge forwards it to a port) and to a VXLAN device (the kernel
// encapsulates it onto its underlay veth). Each receiving end drops with
// XDP. It reports ns/frame of wall time and cpu-ns/frame of the whole
// process (the copy-mode transmit runs in the sending thread's syscall).
// Run with a bounded count, e.g. -bench PrivTxByDeviceKind -benchtime 200000x.
func BenchmarkPrivTxByDeviceKind(b *testing.B) {
	testnet.RequirePriv(b)
	g, p, n2 := testnet.NewNS(b), testnet.NewNS(b), testnet.NewNS(b)
	// veth: g -> p.
	v := testnet.NewVeth(b, g, "tv", p, "tp", testnet.VethOpts{})
	testnet.AttachXDP(b, p, v.BIndex, testnet.Return(testnet.XDPDrop))
	// bridge: br0 in g with one port whose peer in p drops.
	bp := testnet.NewVeth(b, g, "tb", p, "tq", testnet.VethOpts{})
	g.MustRun(b, "ip", "link", "add", "br0", "type", "bridge")
	g.MustRun(b, "ip", "link", "set", bp.AName, "master", "br0")
	g.MustRun(b, "ip", "link", "set", "br0", "up")
	testnet.AttachXDP(b, p, bp.BIndex, testnet.Return(testnet.XDPDrop))
	// vxlan: vx0 in g over an underlay veth to n2, which drops.
	u := testnet.NewVeth(b, g, "tu", n2, "tn", testnet.VethOpts{})
	g.AddAddr(b, u.AName, "198.18.40.1/24")
	n2.AddAddr(b, u.BName, "198.18.40.2/24")
	g.MustRun(b, "ip", "neigh", "replace", "198.18.40.2", "lladdr", net.HardwareAddr(u.BMAC[:]).String(), "dev", u.AName, "nud", "permanent")
	g.MustRun(b, "ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789", "remote", "198.18.40.2", "local", "198.18.40.1", "dev", u.AName)
	g.MustRun(b, "ip", "link", "set", "vx0", "up")
	testnet.AttachXDP(b, n2, u.BIndex, testnet.Return(testnet.XDPDrop))

	ifindex := func(name string) int {
		var idx int
		if err := g.Do(func() error {
			ifi, err := net.InterfaceByName(name)
			if err == nil {
				idx = ifi.Index
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
		return idx
	}
	for _, dev := range []struct{ kind, name string }{{"veth", v.AName}, {"bridge", "br0"}, {"vxlan", "vx0"}} {
		b.Run(dev.kind, func(b *testing.B) {
			var tx *TxSocket
			if err := g.Do(func() (err error) { tx, err = OpenTxSocket(ifindex(dev.name), 0, 2048, 2048); return err }); err != nil {
				b.Fatalf("tx socket on %s: %v", dev.name, err)
			}
			defer tx.Close()
			frame := benchFrame(b, v.AMAC, v.BMAC)
			umem := tx.UMEM()
			for _, a := range tx.Frames() {
				copy(umem[a:], frame)
			}
			stop := benchcpu.Process(b)
			start := time.Now()
			sent := 0
			for sent < b.N {
				got := tx.Reserve(min(64, b.N-sent))
				if len(got) == 0 {
					tx.Flush()
					continue
				}
				n, err := tx.Submit(len(got), len(frame))
				if err != nil {
					b.Fatal(err)
				}
				sent += n
			}
			for tx.Flush() > 0 {
			}
			elapsed := time.Since(start)
			stop()
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "ns/frame")
		})
	}
}
