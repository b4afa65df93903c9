package conntrack

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/xdpgate/xdpgate/nat"
)

// sharedMem returns zeroed, 8-byte aligned memory of n bytes, as a mapped
// state file would be.
func sharedMem(n int) []byte {
	w := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), n)
}

// TestAdoptAfterCrash writes a table into shared memory, leaves it the way
// a process killed in the middle of its writes would (a record being built
// with index entries published, a removal half done, a spin bit held, a
// record whose state its protocol cannot have, a second live record with
// another flow's tuples), and adopts it with a new Table: every complete
// flow comes back whole, the broken ones are dropped and counted, and the
// table works on.
func TestAdoptAfterCrash(t *testing.T) {
	cfg := Config{MaxFlows: 256, MaxFlows6: 64, Seed: 7}
	_, size, err := StateLayout(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mem := sharedMem(size)
	a, _, err := NewShared(cfg, mem, false)
	if err != nil {
		t.Fatal(err)
	}
	const now = 5e9
	type flow struct {
		k Tuple
		f Flow
	}
	var flows []flow
	for i := range 100 {
		proto := nat.ProtoTCP
		if i%3 == 0 {
			proto = nat.ProtoUDP
		}
		k := tup4(uint32(i), 900, uint16(10000+i), 80, proto)
		x := xlate4(uint32(500+i%7), 8080)
		x.SNAT, x.SNATPort = true, uint16(20000+i)
		copy(x.SNATAddr[:4], []byte{198, 18, 9, 1})
		if i%10 == 0 {
			k = MakeTuple(netipAddr6(i), netipAddr6(9000), uint16(10000+i), 80, proto)
			x = MakeTranslation(netipAddrPort(k, i%7), netipAddrPortZero())
		}
		f, res := a.Insert(k, x, uint32(1+i%4), uint32(500+i%7), now)
		if res != Inserted {
			t.Fatalf("Insert %d = %v", i, res)
		}
		if proto == nat.ProtoTCP {
			a.Touch(f.Handle, Original, TCPSyn, 60, now)
			a.Touch(f.Handle, Reply, TCPSyn|TCPAck, 60, now+1)
			a.Touch(f.Handle, Original, TCPAck, 60, now+2)
		} else {
			a.Touch(f.Handle, Original, 0, 60, now)
		}
		f, _ = a.Lookup(k, now+3)
		flows = append(flows, flow{k, f})
	}

	// The crash. A removal that won its CAS and stopped there: the flow
	// is gone, its index entries are left behind.
	removed := flows[1]
	r := a.hdr(false, removed.f.Handle.idx())
	c := r.ctl.Load()
	r.ctl.Store(ctlFree(ctlGen(c) + 1))
	// A record being built: fields written, index entry published,
	// generation still even.
	idx, _ := a.free4.pop(0)
	k := tup4(7777, 900, 1, 80, nat.ProtoTCP)
	a.r4[idx].t[Original].store(&k)
	a.r4[idx].t[Reply].store(&k)
	a.claimSlot(k.hash(&a.key), entryKey(k.hash(&a.key), false)|uint64(idx), now)
	// A spin bit held.
	a.lock(a.bucketOf(flows[2].k.hash(&a.key)))
	// A UDP flow claiming a TCP state.
	corrupt := flows[3]
	r = a.hdr(false, corrupt.f.Handle.idx())
	c = r.ctl.Load()
	r.ctl.Store(makeCtl(ctlGen(c), ctlProto(c), ctlFlags(c), StateEstablished))
	// A live record repeating another flow's tuples.
	dup := flows[4]
	idx2 := len(a.r4) - 1 // a free record after the original
	if ctlLive(a.r4[idx2].ctl.Load()) {
		t.Fatal("last record in use")
	}
	for d := range 2 {
		k := a.r4[dup.f.Handle.idx()].t[d].load(nat.ProtoTCP)
		a.r4[idx2].t[d].store(&k)
	}
	a.r4[idx2].ctl.Store(makeCtl(1, nat.ProtoTCP, 0, StateEstablished))
	// a is abandoned here: nothing of it is used again.

	b, ad, err := NewShared(cfg, mem, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Adoption{Flows: 98, Dropped: 2}); ad != want {
		t.Errorf("NewShared(adopt) = %+v, want %+v", ad, want)
	}
	for i, fl := range flows {
		got, ok := b.Lookup(fl.k, now+10)
		switch i {
		case 1, 3:
			if ok {
				t.Errorf("flow %d (removed or corrupt) found after adoption", i)
			}
			continue
		}
		if !ok {
			t.Errorf("flow %d (%v) lost in adoption", i, fl.k)
			continue
		}
		if got.Rewrite != fl.f.Rewrite || got.ServicePort != fl.f.ServicePort || got.Endpoint != fl.f.Endpoint ||
			got.State != fl.f.State || got.Dir != Original {
			t.Errorf("flow %d after adoption = %+v, want %+v", i, got, fl.f)
		}
		// The reply direction is indexed too.
		rk := got.Rewrite.Reverse()
		if rf, ok := b.Lookup(rk, now+10); !ok || rf.Dir != Reply || rf.Handle != got.Handle {
			t.Errorf("flow %d reply %v = %+v, %v; want its reply direction", i, rk, rf, ok)
		}
	}
	if _, ok := b.Lookup(k, now+10); ok {
		t.Errorf("half-built flow found after adoption")
	}
	st := b.Stats()
	if st.Entries != 98 || st.States[StateEstablished] != 65 {
		t.Errorf("Stats after adoption: %d entries, %d established; want 98, 65", st.Entries, st.States[StateEstablished])
	}
	// The spin bit is not carried over: an insert into that bucket works,
	// and the free lists hold exactly the records not in use.
	if _, res := b.Insert(tup4(2, 900, 10002, 80, nat.ProtoTCP), xlate4(501, 8080), 1, 501, now); res != Exists {
		t.Errorf("Insert of an adopted flow's tuple = %v, want exists", res)
	}
	for i := range 256 - int(st.Entries4) {
		if _, res := b.Insert(tup4(uint32(3000+i), 901, 1, 80, nat.ProtoTCP), xlate4(1, 1), 1, 1, now); res != Inserted {
			t.Fatalf("Insert %d into the adopted table = %v, want inserted", i, res)
		}
	}
	if st := b.Stats(); st.Evictions != 0 || st.Entries4 != 256 {
		t.Errorf("after filling the IPv4 records: %d entries, %d evictions; want 256, 0", st.Entries4, st.Evictions)
	}
	for _, i := range []int{0, 2, 99} {
		if _, ok := b.Lookup(flows[i].k, now+10); !ok {
			t.Errorf("flow %d lost after new inserts", i)
		}
	}
}

func TestNewSharedChecks(t *testing.T) {
	cfg := Config{MaxFlows: 64, Seed: 1}
	_, size, _ := StateLayout(cfg)
	for _, tc := range []struct {
		name string
		cfg  Config
		mem  []byte
	}{
		{"no seed", Config{MaxFlows: 64}, sharedMem(size)},
		{"short", cfg, sharedMem(size - 8)},
		{"unaligned", cfg, sharedMem(size + 8)[1 : size+1]},
	} {
		if _, _, err := NewShared(tc.cfg, tc.mem, false); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewShared(%s) = %v, want ErrInvalidConfig", tc.name, err)
		}
	}
}
