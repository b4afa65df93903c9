package e2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// sendFirstFragment sends the first fragment of a UDP datagram src -> dst
// that claims 3,000 bytes (IPv4 id id, more fragments, offset 0), of which
// no other fragment will ever come.
func (s *rawSender) sendFirstFragment(src, dst netip.AddrPort, id uint16) error {
	if !testnet.InTestRange(src.Addr()) || !testnet.InTestRange(dst.Addr()) {
		return fmt.Errorf("%v -> %v: %w", src, dst, testnet.ErrOutsideTestRange)
	}
	eth := layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}, DstMAC: s.w.gMAC[:], EthernetType: layers.EthernetTypeIPv4}
	ip := layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, Id: id, Flags: layers.IPv4MoreFragments,
		SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	udp := layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port()), Length: 3000}
	udp.SetNetworkLayerForChecksum(&ip)
	payload := gopacket.Payload(make([]byte, 1000))
	// No FixLengths: the UDP length is the whole datagram's; the IPv4
	// total length is this fragment's.
	ip.Length = 20 + 8 + uint16(len(payload))
	if err := gopacket.SerializeLayers(s.buf, gopacket.SerializeOptions{ComputeChecksums: true}, &eth, &ip, &udp, payload); err != nil {
		return err
	}
	return unix.Sendto(s.fd, s.buf.Bytes(), 0, &s.to)
}

// TestPrivFragmentFlood: spoofed first fragments that are never completed
// (12,000 from random sources at 5,000/s, more than the 8,192-entry
// fragment table holds) while a real client sends 100 datagrams of 3,000
// bytes, which its kernel fragments, to a ClusterIP. Every datagram must
// reach the endpoint and be answered, each sent once. The fragments of a
// datagram arrive here back to back, so this checks forwarding under the
// flood end to end; conntrack's TestFragmentFlood delays the later
// fragments, which is what the old table (30 s entries, about 270 spoofed
// first fragments a second pushed real ones out) failed.
func TestPrivFragmentFlood(t *testing.T) {
	const (
		floodFrags = 12000
		perTick    = 50 // every 10 ms: 5,000/s
		datagrams  = 100
	)
	w := newWorld(t, 2, 1, 1)
	w.c.MustRun(t, "ip", "route", "add", "blackhole", spoofed.String())
	// The gateway forwards fragments as they come (it does not reassemble,
	// unlike netfilter's defrag), so the flood's incomplete datagrams reach
	// the endpoint's kernel too: give its reassembly the memory for them
	// (per namespace; the default 4 MiB holds about 2,000), or it, not the
	// gateway, would drop the real fragments.
	w.b.MustRun(t, "sysctl", "-qw", "net.ipv4.ipfrag_high_thresh=134217728")
	w.writeManifest(manifest(svc{name: "web", family: "IPv4", clusterIP: vip4, endpoints: endpoints4(1)}))
	w.start()
	w.waitTCP(client4(0), ap(vip4, 80), 20*time.Second)

	var pc net.PacketConn
	if err := w.c.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(client4(1), 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	big := make([]byte, 3000)
	// Before the flood: a fragmented datagram is answered.
	pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := pc.WriteTo(big, net.UDPAddrFromAddrPort(ap(vip4, 80))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pc.ReadFrom(make([]byte, 256)); err != nil {
		t.Fatalf("fragmented datagram before the flood: %v", err)
	}
	s := newRawSender(w)
	r := rand.New(rand.NewPCG(16, 1))
	tick := time.NewTicker(10 * time.Millisecond)
	var sendErrs, sentReal, ticks int
	for sent := 0; sent < floodFrags; {
		<-tick.C
		for i := 0; i < perTick && sent < floodFrags; i, sent = i+1, sent+1 {
			src := netip.AddrPortFrom(spoofedAddr(r), uint16(1024+r.UintN(64512)))
			if err := s.sendFirstFragment(src, ap(vip4, 80), uint16(r.Uint32())); err != nil {
				if !errors.Is(err, unix.ENOBUFS) {
					t.Fatalf("send fragment %d: %v", sent, err)
				}
				sendErrs++
			}
		}
		// A real datagram every 10 ms from 1.4 s on (about 7,000 spoofed
		// entries by then) to the end of the flood.
		if ticks++; ticks > 140 && sentReal < datagrams {
			if _, err := pc.WriteTo(big, net.UDPAddrFromAddrPort(ap(vip4, 80))); err != nil {
				t.Fatalf("send datagram %d: %v", sentReal, err)
			}
			sentReal++
		}
	}
	tick.Stop()
	// The answers wait in the socket's buffer.
	got := 0
	for buf := make([]byte, 256); got < datagrams; got++ {
		pc.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := pc.ReadFrom(buf); err != nil {
			break
		}
	}
	frags := metricSum(w.metrics(), "xdpgate_pipeline_packets_total{", `event="fragment"`)
	t.Logf("%d spoofed first fragments not sent (ENOBUFS); %d of %d fragmented datagrams answered; %v non-first fragments forwarded",
		sendErrs, got, sentReal, frags)
	if sentReal != datagrams {
		t.Fatalf("sent %d real datagrams, want %d", sentReal, datagrams)
	}
	if got != datagrams {
		t.Errorf("%d of %d fragmented datagrams answered during the flood, want all", got, datagrams)
	}
	if frags < datagrams {
		t.Errorf("%v non-first fragments forwarded, want at least %d: the datagrams were not fragmented", frags, datagrams)
	}
	w.alive()
}
