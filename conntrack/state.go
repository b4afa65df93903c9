package conntrack

import (
	"fmt"

	"github.com/xdpgate/xdpgate/nat"
)

// Dir is the direction of a packet relative to its flow.
type Dir uint8

// Directions.
const (
	// Original: the direction of the packet that created the flow.
	Original Dir = 0
	// Reply: the opposite direction.
	Reply Dir = 1
)

// String names the direction.
func (d Dir) String() string {
	if d == Original {
		return "original"
	}
	return "reply"
}

// TCP header flag bits, as in byte 13 of the TCP header.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPAck = 0x10
)

// State is the protocol state of a flow; it selects the flow's timeout.
type State uint8

// States. The TCP states are nf_conntrack's, without SYN_SENT2 and the
// window tracking (like kube-proxy's --conntrack-tcp-be-liberal).
const (
	// StateTCPNone: a TCP flow inserted before any packet was applied to
	// it with Touch. It times out like SynSent.
	StateTCPNone State = iota
	StateSynSent
	StateSynRecv
	StateEstablished
	// StateFinWait: one side sent a FIN.
	StateFinWait
	// StateCloseWait: the other side acknowledged that FIN and may still
	// send.
	StateCloseWait
	// StateLastAck: both sides sent a FIN; the first closer's ACK is due.
	StateLastAck
	StateTimeWait
	// StateClose: reset, or closed from an unexpected state.
	StateClose
	StateUDPUnreplied
	StateUDPReplied
	StateICMP
	// StateOther: any other protocol, SCTP included (not state-tracked).
	StateOther
	// NumStates is the number of states; it sizes Stats.States.
	NumStates
)

var stateNames = [NumStates]string{"TCP_NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED",
	"FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "UDP_UNREPLIED",
	"UDP_REPLIED", "ICMP", "OTHER"}

// String names the state as conntrack(8) does.
func (s State) String() string {
	if s < NumStates {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// initialState is the state of a newly inserted flow of protocol proto.
func initialState(proto nat.Proto) State {
	switch proto {
	case nat.ProtoTCP:
		return StateTCPNone
	case nat.ProtoUDP:
		return StateUDPUnreplied
	case nat.ProtoICMP, nat.ProtoICMPv6:
		return StateICMP
	}
	return StateOther
}

// tcpNext is the TCP state machine: the state after a packet with flags
// going in direction dir, given the current state s and, once a FIN was
// seen, the direction of the first FIN (closer). It returns the new state
// and closer. Unknown combinations keep the state (be liberal: the
// endpoints, not the gateway, decide what is valid).
func tcpNext(s State, closer Dir, dir Dir, flags uint8) (State, Dir) {
	switch {
	case flags&TCPRst != 0:
		return StateClose, closer
	case flags&TCPSyn != 0 && flags&TCPAck == 0:
		switch {
		case dir == Original && (s == StateTCPNone || s == StateSynSent):
			return StateSynSent, closer
		case dir == Original && (s == StateTimeWait || s == StateClose):
			// Port reuse: a new connection on the same tuple.
			return StateSynSent, Original
		case dir == Reply && s == StateSynSent:
			// Simultaneous open.
			return StateSynRecv, closer
		}
		return s, closer
	case flags&TCPSyn != 0: // SYN+ACK
		if dir == Reply && (s == StateTCPNone || s == StateSynSent || s == StateSynRecv) {
			return StateSynRecv, closer
		}
		return s, closer
	case flags&TCPFin != 0:
		switch s {
		case StateTCPNone, StateSynRecv, StateEstablished:
			return StateFinWait, dir
		case StateFinWait, StateCloseWait:
			if dir != closer {
				return StateLastAck, closer
			}
		}
		return s, closer
	case flags&TCPAck != 0:
		switch {
		case s == StateTCPNone:
			// Mid-stream pickup (nf_conntrack_tcp_loose).
			return StateEstablished, closer
		case s == StateSynRecv && dir == Original:
			return StateEstablished, closer
		case s == StateFinWait && dir != closer:
			return StateCloseWait, closer
		case s == StateLastAck && dir == closer:
			return StateTimeWait, closer
		}
	}
	return s, closer
}
