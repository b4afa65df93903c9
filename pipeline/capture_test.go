package pipeline

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"

	"github.com/xdpgate/xdpgate/snapshot"
)

func captureWorld(t *testing.T) *ptWorld {
	s := ptSnapshot(t, snapshot.Snapshot{ServicePorts: []snapshot.ServicePort{
		ptPort(1, nat.ProtoTCP, ptVIP4, twoEndpoints4(), nil),
	}})
	return newWorld(t, s, nil)
}

func TestCapturePrePost(t *testing.T) {
	w := captureWorld(t)
	c, err := w.p.StartCapture(CaptureConfig{Host: ptClient4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.p.StartCapture(CaptureConfig{}); !errors.Is(err, ErrCaptureBusy) {
		t.Errorf("second StartCapture error = %v, want ErrCaptureBusy", err)
	}
	out := w.run(t, tcpPkt(ptClient4, 1111, ptVIP4, 80, "S").build(t))
	w.run(t, tcpPkt(netip.MustParseAddr("198.19.77.1"), 1111, ptVIP4, 80, "S").build(t)) // filtered out
	ctx := context.Background()
	pre, ok := c.Next(ctx)
	if !ok || pre.Point != CapturePre {
		t.Fatalf("first record = %v %v, want pre", pre.Point, ok)
	}
	if d := ptDecode(t, pre.Data); d.dst != ptVIP4 || d.dport != 80 {
		t.Errorf("pre dst = %v:%d, want %v:80", d.dst, d.dport, ptVIP4)
	}
	post, ok := c.Next(ctx)
	if !ok || post.Point != CapturePost {
		t.Fatalf("second record = %v %v, want post", post.Point, ok)
	}
	want := ptDecode(t, out.Data())
	if d := ptDecode(t, post.Data); d.dst != want.dst || d.dport != 8080 || d.dst == ptVIP4 {
		t.Errorf("post dst = %v:%d, want %v:8080 (translated)", d.dst, d.dport, want.dst)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if r, ok := c.Next(cctx); ok {
		t.Errorf("Next after the last frame = %v, want none (filtered client must not be captured)", r.Point)
	}
	if copied, skipped := c.Stop(); copied != 2 || skipped != 0 {
		t.Errorf("Stop = %d copied, %d skipped; want 2, 0", copied, skipped)
	}
	// After Stop a new session may start.
	c2, err := w.p.StartCapture(CaptureConfig{Points: CapturePost})
	if err != nil {
		t.Fatalf("StartCapture after Stop: %v", err)
	}
	c2.Stop()
}

func TestCaptureRingFullSkips(t *testing.T) {
	w := captureWorld(t)
	c, err := w.p.StartCapture(CaptureConfig{Points: CapturePre, Ring: 2, SnapLen: 64})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		w.run(t, tcpPkt(ptClient4, uint16(2000+i), ptVIP4, 80, "S").build(t))
	}
	copied, skipped := c.Stop()
	if copied != 2 || skipped != 3 {
		t.Errorf("Stop = %d copied, %d skipped; want 2, 3", copied, skipped)
	}
	r, ok := c.Next(context.Background())
	if !ok || len(r.Data) != 64 || r.Len <= 64 {
		t.Errorf("record = len %d, data %d, ok %v; want snapped to 64 of a longer frame", r.Len, len(r.Data), ok)
	}
}

func TestCaptureFilter(t *testing.T) {
	v4 := tcpPkt(ptClient4, 1111, ptVIP4, 80, "S")
	v6 := udpPkt(netip.MustParseAddr("2001:2::5"), 5353, netip.MustParseAddr("2001:2::100"), 53)
	for _, tc := range []struct {
		name string
		cfg  CaptureConfig
		pkt  ptPkt
		want bool
	}{
		{"empty", CaptureConfig{}, v4, true},
		{"src host", CaptureConfig{Host: ptClient4}, v4, true},
		{"dst host", CaptureConfig{Host: ptVIP4}, v4, true},
		{"other host", CaptureConfig{Host: netip.MustParseAddr("198.18.9.9")}, v4, false},
		{"sport", CaptureConfig{Port: 1111}, v4, true},
		{"dport", CaptureConfig{Port: 80}, v4, true},
		{"other port", CaptureConfig{Port: 81}, v4, false},
		{"host and port", CaptureConfig{Host: ptClient4, Port: 81}, v4, false},
		{"addrport", CaptureConfig{AddrPorts: []netip.AddrPort{netip.AddrPortFrom(ptVIP4, 80)}}, v4, true},
		{"addrport wrong port", CaptureConfig{AddrPorts: []netip.AddrPort{netip.AddrPortFrom(ptVIP4, 443)}}, v4, false},
		{"v6 host", CaptureConfig{Host: netip.MustParseAddr("2001:2::100")}, v6, true},
		{"v6 port", CaptureConfig{Port: 53}, v6, true},
		{"v6 v4 host", CaptureConfig{Host: ptClient4}, v6, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.match(tc.pkt.build(t)); got != tc.want {
				t.Errorf("match(%+v) = %v, want %v", tc.pkt, got, tc.want)
			}
		})
	}
	if (&CaptureConfig{Port: 80}).match([]byte{1, 2, 3}) {
		t.Errorf("match(runt) = true, want false")
	}
}

// TestCaptureNoAllocs: Process allocates nothing with no capture (after a
// session was started and stopped) and nothing per frame while one runs.
func TestCaptureNoAllocs(t *testing.T) {
	w := captureWorld(t)
	est := tcpPkt(ptClient4, 1111, ptVIP4, 80, "A").build(t)
	w.run(t, est)
	frames := make([]dataplane.Frame, 1)
	buf := make([]byte, 2048)
	q := &dataplane.Queue{Index: 1}
	run := func() {
		copy(buf[256:], est)
		frames[0] = dataplane.Frame{Buf: buf, Off: 256, Len: len(est)}
		w.p.Process(q, frames)
	}
	c, err := w.p.StartCapture(CaptureConfig{Ring: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n := testing.AllocsPerRun(200, func() {
		run()
		c.Next(ctx) // keep the ring from filling: both points copy
		c.Next(ctx)
	}); n != 0 {
		t.Errorf("Process with capture allocs = %v, want 0", n)
	}
	if copied, _ := c.Stop(); copied < 400 {
		t.Errorf("copied = %d, want >= 400", copied)
	}
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Errorf("Process after capture stopped allocs = %v, want 0", n)
	}
}
