package conntrack

import (
	"testing"
	"time"

	"github.com/xdpgate/xdpgate/nat"
)

func TestTCPNext(t *testing.T) {
	const (
		O = Original
		R = Reply
	)
	syn, synack, ack, fin, finack, rst := uint8(TCPSyn), uint8(TCPSyn|TCPAck), uint8(TCPAck), uint8(TCPFin), uint8(TCPFin|TCPAck), uint8(TCPRst|TCPAck)
	tests := []struct {
		name       string
		s          State
		closer     Dir
		dir        Dir
		flags      uint8
		want       State
		wantCloser Dir
	}{
		{"syn opens", StateTCPNone, O, O, syn, StateSynSent, O},
		{"syn retransmit", StateSynSent, O, O, syn, StateSynSent, O},
		{"synack", StateSynSent, O, R, synack, StateSynRecv, O},
		{"synack retransmit", StateSynRecv, O, R, synack, StateSynRecv, O},
		{"simultaneous open", StateSynSent, O, R, syn, StateSynRecv, O},
		{"handshake ack", StateSynRecv, O, O, ack, StateEstablished, O},
		{"reply ack in syn_recv stays", StateSynRecv, O, R, ack, StateSynRecv, O},
		{"ack without syn picks up", StateTCPNone, O, O, ack, StateEstablished, O},
		{"data in established", StateEstablished, O, R, ack, StateEstablished, O},
		{"syn in established ignored", StateEstablished, O, O, syn, StateEstablished, O},
		{"orig fin", StateEstablished, O, O, finack, StateFinWait, O},
		{"reply fin", StateEstablished, O, R, fin, StateFinWait, R},
		{"fin retransmit", StateFinWait, R, R, finack, StateFinWait, R},
		{"fin acked", StateFinWait, O, R, ack, StateCloseWait, O},
		{"closer ack in fin_wait stays", StateFinWait, O, O, ack, StateFinWait, O},
		{"second fin from fin_wait", StateFinWait, O, R, finack, StateLastAck, O},
		{"second fin from close_wait", StateCloseWait, O, R, finack, StateLastAck, O},
		{"closer fin in close_wait stays", StateCloseWait, O, O, finack, StateCloseWait, O},
		{"last ack", StateLastAck, O, O, ack, StateTimeWait, O},
		{"last ack wrong side", StateLastAck, O, R, ack, StateLastAck, O},
		{"last ack reply closer", StateLastAck, R, R, ack, StateTimeWait, R},
		{"fin in syn_recv", StateSynRecv, O, O, fin, StateFinWait, O},
		{"fin in syn_sent stays", StateSynSent, O, O, fin, StateSynSent, O},
		{"rst established", StateEstablished, O, R, rst, StateClose, O},
		{"rst syn_sent", StateSynSent, O, R, rst, StateClose, O},
		{"rst time_wait", StateTimeWait, O, O, TCPRst, StateClose, O},
		{"reuse from time_wait", StateTimeWait, R, O, syn, StateSynSent, O},
		{"reuse from close", StateClose, O, O, syn, StateSynSent, O},
		{"reply syn in close stays", StateClose, O, R, syn, StateClose, O},
		{"no flags", StateSynRecv, O, O, 0, StateSynRecv, O},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, gotCloser := tcpNext(tc.s, tc.closer, tc.dir, tc.flags)
			if got != tc.want || gotCloser != tc.wantCloser {
				t.Errorf("tcpNext(%v, %v, %v, %#x) = %v, %v, want %v, %v",
					tc.s, tc.closer, tc.dir, tc.flags, got, gotCloser, tc.want, tc.wantCloser)
			}
		})
	}
}

// TestTCPLifecycle drives whole connections through Touch and checks the
// state and the timeout that applies after each packet.
func TestTCPLifecycle(t *testing.T) {
	type pkt struct {
		dir   Dir
		flags uint8
		want  State
	}
	tests := []struct {
		name string
		pkts []pkt
	}{
		{"client closes", []pkt{
			{Original, TCPSyn, StateSynSent}, {Reply, TCPSyn | TCPAck, StateSynRecv},
			{Original, TCPAck, StateEstablished}, {Original, TCPAck, StateEstablished},
			{Original, TCPFin | TCPAck, StateFinWait}, {Reply, TCPAck, StateCloseWait},
			{Reply, TCPFin | TCPAck, StateLastAck}, {Original, TCPAck, StateTimeWait},
		}},
		{"server closes", []pkt{
			{Original, TCPSyn, StateSynSent}, {Reply, TCPSyn | TCPAck, StateSynRecv},
			{Original, TCPAck, StateEstablished}, {Reply, TCPFin | TCPAck, StateFinWait},
			{Original, TCPFin | TCPAck, StateLastAck}, {Reply, TCPAck, StateTimeWait},
		}},
		{"reset", []pkt{
			{Original, TCPSyn, StateSynSent}, {Reply, TCPRst | TCPAck, StateClose},
		}},
	}
	to := DefaultTimeouts()
	wantTimeout := map[State]time.Duration{
		StateSynSent: to.SynSent, StateSynRecv: to.SynRecv, StateEstablished: 86400 * time.Second,
		StateFinWait: to.FinWait, StateCloseWait: 3600 * time.Second, StateLastAck: to.LastAck,
		StateTimeWait: to.TimeWait, StateClose: 10 * time.Second,
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestTable(t, Config{MaxFlows: 64})
			f, res := tb.Insert(tup4(1, 2, 1000, 80, nat.ProtoTCP), xlate4(3, 8080), 1, 1, 0)
			if res != Inserted {
				t.Fatalf("Insert = %v, want inserted", res)
			}
			for i, p := range tc.pkts {
				now := int64(i) * int64(time.Second)
				if !tb.Touch(f.Handle, p.dir, p.flags, 60, now) {
					t.Fatalf("packet %d: Touch = false, want true", i)
				}
				e, _ := tb.Get(f.Handle)
				if e.State != p.want {
					t.Fatalf("packet %d (%v %#x): state = %v, want %v", i, p.dir, p.flags, e.State, p.want)
				}
				if got := time.Duration(tb.timeouts[e.State]); got != wantTimeout[p.want] {
					t.Errorf("packet %d: timeout(%v) = %v, want %v", i, e.State, got, wantTimeout[p.want])
				}
			}
		})
	}
}

func TestUDPReplied(t *testing.T) {
	tb := newTestTable(t, Config{MaxFlows: 64})
	f, _ := tb.Insert(tup4(1, 2, 1000, 53, nat.ProtoUDP), xlate4(3, 5353), 1, 1, 0)
	sec := int64(time.Second)
	tb.Touch(f.Handle, Original, 0, 100, 0)
	if e, _ := tb.Get(f.Handle); e.State != StateUDPUnreplied {
		t.Fatalf("state after original = %v, want %v", e.State, StateUDPUnreplied)
	}
	// Unreplied: gone after 30 s.
	if _, ok := tb.Lookup(tup4(1, 2, 1000, 53, nat.ProtoUDP), 31*sec); ok {
		t.Fatalf("Lookup(unreplied after 31s) = hit, want miss")
	}
	f, _ = tb.Insert(tup4(1, 2, 1000, 53, nat.ProtoUDP), xlate4(3, 5353), 1, 1, 40*sec)
	tb.Touch(f.Handle, Reply, 0, 100, 40*sec)
	if e, _ := tb.Get(f.Handle); e.State != StateUDPReplied || !e.Replied {
		t.Fatalf("state after reply = %v replied %v, want %v true", e.State, e.Replied, StateUDPReplied)
	}
	if _, ok := tb.Lookup(tup4(1, 2, 1000, 53, nat.ProtoUDP), 40*sec+100*sec); !ok {
		t.Fatalf("Lookup(replied after 100s) = miss, want hit")
	}
	if _, ok := tb.Lookup(tup4(1, 2, 1000, 53, nat.ProtoUDP), 40*sec+221*sec); ok {
		t.Fatalf("Lookup(replied, 121s after last touch) = hit, want miss")
	}
}
