package maglev

import (
	"net/netip"
	"testing"
)

func TestSlotsFor(t *testing.T) {
	tests := []struct {
		n    int
		size uint32
	}{{0, 0}, {1, 0}, {2, 251}, {3, 509}, {5, 509}, {6, 1021}, {10, 1021}, {11, 2039}, {100, 16381}, {700, 65537}, {5000, 65537}}
	for _, tc := range tests {
		if got := SizeFor(tc.n); got != tc.size {
			t.Errorf("SizeFor(%d) = %d, want %d", tc.n, got, tc.size)
		}
	}
	ids := func(n, skip int) []uint64 {
		var out []uint64
		for i := 0; i < n; i++ {
			if i == skip {
				continue
			}
			out = append(out, BackendID(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), 8080)))
		}
		return out
	}
	full := SlotsFor(ids(10, -1))
	if len(full) != 1021 {
		t.Fatalf("len(SlotsFor(10)) = %d, want 1021", len(full))
	}
	counts := make([]int, 10)
	for _, v := range full {
		counts[v]++
	}
	for i, c := range counts {
		// 1021/10 = 102.1; Maglev keeps every share within a few slots.
		if c < 92 || c > 112 {
			t.Errorf("backend %d owns %d of 1021 slots, want about 102", i, c)
		}
	}
	again := SlotsFor(ids(10, -1))
	for i := range full {
		if full[i] != again[i] {
			t.Fatalf("SlotsFor not deterministic at slot %d", i)
		}
	}
	// Removing backend 4 mostly moves only its own slots.
	less := SlotsFor(ids(10, 4))
	moved := 0
	for i := range full {
		old := int(full[i])
		if old == 4 {
			continue
		}
		nw := int(less[i])
		if nw >= 4 {
			nw++ // indices after the removed backend shift down by one
		}
		if nw != old {
			moved++
		}
	}
	if moved > 100 {
		t.Errorf("removing one of 10 backends moved %d other slots, want few", moved)
	}
	if SlotsFor(ids(1, -1)) != nil {
		t.Errorf("SlotsFor(1 backend) != nil")
	}
}
