package nat

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestSCTPCRCDelta compares the linear CRC32c update with the bitwise
// reference recomputing the whole packet.
func TestSCTPCRCDelta(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 2000; i++ {
		n := 12 + r.IntN(1500)
		if i < 8 {
			n = 12 + i
		}
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		copy(b[8:12], []byte{0, 0, 0, 0})
		before := refCRC32c(b)
		old := binary.BigEndian.Uint32(b)
		nw := r.Uint32()
		binary.BigEndian.PutUint32(b, nw)
		after := refCRC32c(b)
		if got, want := sctpCRCDelta(old, nw, n), before^after; got != want {
			t.Fatalf("sctpCRCDelta(%#x, %#x, %d) = %#x, want %#x", old, nw, n, got, want)
		}
	}
}
