package nat

import "testing"

func TestProtoString(t *testing.T) {
	for _, tc := range []struct {
		p    Proto
		want string
	}{
		{ProtoTCP, "TCP"},
		{ProtoUDP, "UDP"},
		{ProtoSCTP, "SCTP"},
		{ProtoICMP, "ICMP"},
		{ProtoICMPv6, "ICMPv6"},
		{ProtoFragment, "proto(44)"},
		{255, "proto(255)"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("Proto(%d).String() = %q, want %q", uint8(tc.p), got, tc.want)
		}
	}
}
