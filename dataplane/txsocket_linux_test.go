package dataplane

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/internal/testnet"
)

// TestTxSocketArgs: bad sizes are refused before any syscall.
func TestTxSocketArgs(t *testing.T) {
	tests := []struct {
		name                          string
		ifindex, queue, frames, fsize int
		want                          string
	}{
		{"frames-not-pow2", 1, 0, 100, 2048, "numFrames"},
		{"frames-small", 1, 0, 32, 2048, "numFrames"},
		{"frames-large", 1, 0, MaxTxFrames * 2, 2048, "numFrames"},
		{"frame-size", 1, 0, 64, 1500, "frameSize"},
		{"ifindex", 0, 0, 64, 2048, "ifindex"},
		{"queue", 1, -1, 64, 2048, "queue"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenTxSocket(tc.ifindex, tc.queue, tc.frames, tc.fsize)
			if s != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenTxSocket(%d, %d, %d, %d) = %v, %v, want an error naming %s",
					tc.ifindex, tc.queue, tc.frames, tc.fsize, s, err, tc.want)
			}
		})
	}
}

// newDropCounter attaches to (ns, ifindex) an XDP program that counts
// frames and drops them; it returns the reader.
func newDropCounter(t *testing.T, ns *testnet.NS, ifindex int) func() uint64 {
	t.Helper()
	received := testnet.AttachDropCounter(t, ns, ifindex)
	return func() uint64 { return received(-1) }
}

// TestPrivTxSocket: every frame of the pool is usable and recycled through
// the completion ring, Submit sends exactly what was reserved (and keeps
// the rest free), completions are counted even when the copy-mode kick
// reclaims them itself, and Close makes the socket inert.
func TestPrivTxSocket(t *testing.T) {
	testnet.RequirePriv(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	v := testnet.NewVeth(t, a, "a", b, "b", testnet.VethOpts{})
	a.Sysctl(t, "net.ipv6.conf."+v.AName+".disable_ipv6=1") // no router solicitations in the count
	count := newDropCounter(t, b, v.BIndex)
	base := count()

	const frames = 256
	var s *TxSocket
	if err := a.Do(func() (err error) { s, err = OpenTxSocket(v.AIndex, 0, frames, 2048); return err }); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.NumFrames() != frames || s.FrameSize() != 2048 {
		t.Errorf("NumFrames, FrameSize = %d, %d, want %d, 2048", s.NumFrames(), s.FrameSize(), frames)
	}
	addrs := s.Frames()
	sorted := slices.Sorted(slices.Values(addrs))
	if len(slices.Compact(sorted)) != frames {
		t.Fatalf("Frames() = %d distinct addresses, want %d", len(slices.Compact(sorted)), frames)
	}
	for _, a := range addrs {
		if a%2048 != 0 || a+2048 > uint64(len(s.UMEM())) {
			t.Fatalf("frame address %d: not an aligned frame inside the %d-byte UMEM", a, len(s.UMEM()))
		}
	}
	frame := benchFrame(nil, v.AMAC, v.BMAC)
	for _, a := range addrs {
		copy(s.UMEM()[a:], frame)
	}

	if _, err := s.Submit(1, 4096); !errors.Is(err, ErrTxFrameLength) {
		t.Errorf("Submit(length 4096) = %v, want ErrTxFrameLength", err)
	}
	// Reserve 10, submit 4: the other 6 stay free.
	if r := s.Reserve(10); len(r) != 10 {
		t.Fatalf("Reserve(10) = %d frames", len(r))
	}
	if n, err := s.Submit(4, len(frame)); n != 4 || err != nil {
		t.Fatalf("Submit(4) = %d, %v, want 4, nil", n, err)
	}
	// Ten rounds through the whole pool: frames come back and are reused.
	sent := uint64(4)
	const total = 10 * frames
	for deadline := time.Now().Add(10 * time.Second); sent < total && time.Now().Before(deadline); {
		r := s.Reserve(int(min(64, total-sent)))
		if len(r) == 0 {
			s.Flush()
			continue
		}
		n, err := s.Submit(len(r), len(frame))
		if err != nil || n != len(r) {
			t.Fatalf("Submit(%d) = %d, %v", len(r), n, err)
		}
		sent += uint64(n)
	}
	for deadline := time.Now().Add(5 * time.Second); s.Flush() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	st := s.Stats()
	if st.Submitted != total || st.Completed != total || st.InFlight != 0 {
		t.Errorf("Stats() = %+v, want %d submitted and completed, none in flight", st, total)
	}
	if r := s.Reserve(frames); len(r) != frames {
		t.Errorf("after completion Reserve(all) = %d frames, want %d (frames leaked)", len(r), frames)
	}
	for deadline := time.Now().Add(3 * time.Second); count()-base < total && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := count() - base; got != total {
		t.Errorf("peer counted %d frames, want %d", got, total)
	}
	// Every kernel this project supports (6.x) has the ring counters (5.9+).
	if ks, err := s.KernelStats(); err != nil || ks.TxInvalidDescs != 0 || !ks.RingCounters {
		t.Errorf("KernelStats() = %+v, %v, want no invalid descriptors, ring counters reported", ks, err)
	}

	if err := s.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	if r := s.Reserve(1); r != nil {
		t.Errorf("Reserve after Close = %v, want nil", r)
	}
	if _, err := s.Submit(1, 60); !errors.Is(err, ErrTxSocketClosed) {
		t.Errorf("Submit after Close = %v, want ErrTxSocketClosed", err)
	}
	if n := s.Flush(); n != 0 {
		t.Errorf("Flush after Close = %d, want 0", n)
	}
	if _, err := s.KernelStats(); !errors.Is(err, ErrTxSocketClosed) {
		t.Errorf("KernelStats after Close = %v, want ErrTxSocketClosed", err)
	}
}
