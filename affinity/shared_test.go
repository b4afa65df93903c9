package affinity

import (
	"errors"
	"net/netip"
	"testing"
	"unsafe"
)

// sharedMem returns zeroed, 8-byte aligned memory of n bytes, as a mapped
// state file would be.
func sharedMem(n int) []byte {
	w := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), n)
}

// findSlot returns the shard and slot holding client's entry for svc.
func findSlot(t *testing.T, tb *Table, svc uint32, client netip.Addr) (*shard, uint64) {
	t.Helper()
	k := makeKey(svc, client)
	sh, i := tb.locate(k)
	for range tb.window {
		s := &sh.slots[i]
		if c := s.ctl.Load(); ctlState(c) == stLive && ctlSvc(c) == svc && s.a0.Load() == k.a0 && s.a1.Load() == k.a1 {
			return sh, i
		}
		i = sh.next(i)
	}
	t.Fatalf("no slot for %v", client)
	return nil, 0
}

// TestAdoptAfterCrash pins clients in shared memory, leaves slots the way
// a crash or a stray write would (a rewrite stopped at its tombstone, an
// invalid state word, a timeout out of range, a key moved out of its
// reach, a second copy of a key), and adopts the memory with a new Table:
// every intact pin is found with its endpoint and pin time, the broken
// slots are dropped and counted, and the table works on.
func TestAdoptAfterCrash(t *testing.T) {
	cfg := Config{Capacity: 1000, Shards: 4, ProbeWindow: 16, Seed: 99}
	_, size, err := StateLayout(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mem := sharedMem(size)
	a, _, err := NewShared(cfg, mem, false)
	if err != nil {
		t.Fatal(err)
	}
	client := func(i int) netip.Addr {
		if i%5 == 0 {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 14: byte(i >> 8), 15: byte(i)})
		}
		return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
	}
	const n = 600
	for i := range n {
		if r := a.Pin(uint32(1+i%3), client(i), uint32(100+i%7), 300, sec(float64(i)/1000)); r != PinInserted {
			t.Fatalf("Pin %d = %v", i, r)
		}
	}
	broken := map[int]bool{}
	// A rewrite stopped after its tombstone: the entry is absent.
	sh, i := findSlot(t, a, 1+10%3, client(10))
	sh.slots[i].ctl.Store(nextCtl(sh.slots[i].ctl.Load(), 1+10%3, stTomb))
	broken[10] = true
	// An invalid state word.
	sh, i = findSlot(t, a, 1+11%3, client(11))
	sh.slots[i].ctl.Store(sh.slots[i].ctl.Load() | ctlStateMask)
	broken[11] = true
	// A timeout out of range.
	sh, i = findSlot(t, a, 1+12%3, client(12))
	sh.slots[i].val.Store(makeVal(100, 0, true))
	broken[12] = true
	// A key moved out of its probe window.
	sh, i = findSlot(t, a, 1+13%3, client(13))
	_, home := a.locate(makeKey(1+13%3, client(13)))
	j := home
	for d := 0; d < a.window || ctlState(sh.slots[j].ctl.Load()) != stEmpty; d++ {
		j = sh.next(j)
	}
	copySlot(&sh.slots[j], &sh.slots[i])
	sh.slots[i].ctl.Store(nextCtl(sh.slots[i].ctl.Load(), 0, stTomb))
	broken[13] = true
	// A second copy of a key, after the first.
	sh, i = findSlot(t, a, 1+14%3, client(14))
	j = i
	for ctlState(sh.slots[j].ctl.Load()) == stLive {
		j = sh.next(j)
	}
	copySlot(&sh.slots[j], &sh.slots[i])
	// a is abandoned: its locks and counters are not in mem.
	sh.mu.Lock()

	b, ad, err := NewShared(cfg, mem, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Adoption{Entries: n - 4, Dropped: 4}); ad != want {
		t.Errorf("NewShared(adopt) = %+v, want %+v", ad, want)
	}
	if st := b.Stats(); st.Entries != n-4 {
		t.Errorf("Stats().Entries after adoption = %d, want %d", st.Entries, n-4)
	}
	for i := range n {
		ep, ok := b.Lookup(uint32(1+i%3), client(i), 300, sec(1))
		switch {
		case broken[i] && ok:
			t.Errorf("client %d (broken) found after adoption", i)
		case !broken[i] && (!ok || ep != uint32(100+i%7)):
			t.Errorf("Lookup(client %d) after adoption = %d, %v; want %d, true", i, ep, ok, 100+i%7)
		}
	}
	// Pin times survive: client 1 was pinned at 1 ms with 300 s.
	if _, ok := b.Lookup(2, client(1), 300, sec(300.001)); ok {
		t.Errorf("client 0 found at its expiry, want its adopted pin time kept")
	}
	// The table works on: re-pinning a dropped client, then its Lookup.
	if r := b.Pin(1+10%3, client(10), 5, 300, sec(1)); r != PinInserted {
		t.Errorf("Pin of a dropped client = %v, want inserted", r)
	}
	if ep, ok := b.Lookup(1+10%3, client(10), 300, sec(1)); !ok || ep != 5 {
		t.Errorf("Lookup after re-pin = %d, %v; want 5, true", ep, ok)
	}
}

func copySlot(dst, src *slot) {
	dst.a0.Store(src.a0.Load())
	dst.a1.Store(src.a1.Load())
	dst.val.Store(src.val.Load())
	dst.seen.Store(src.seen.Load())
	dst.ctl.Store(src.ctl.Load())
}

func TestNewSharedChecks(t *testing.T) {
	cfg := Config{Capacity: 100, Seed: 1}
	_, size, _ := StateLayout(cfg)
	for _, tc := range []struct {
		name string
		cfg  Config
		mem  []byte
	}{
		{"no seed", Config{Capacity: 100}, sharedMem(size)},
		{"short", cfg, sharedMem(size - 8)},
		{"unaligned", cfg, sharedMem(size + 8)[1 : size+1]},
	} {
		if _, _, err := NewShared(tc.cfg, tc.mem, false); !errors.Is(err, ErrSharedMemory) {
			t.Errorf("NewShared(%s) = %v, want ErrSharedMemory", tc.name, err)
		}
	}
}
