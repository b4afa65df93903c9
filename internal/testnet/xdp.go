//go:build linux

package testnet

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// XDP actions for the programs tests build with asm.
const (
	XDPDrop = 1
	XDPPass = 2
)

// AttachXDP loads an XDP program made of insns and attaches it in native
// (driver) mode to interface ifindex of namespace ns. Program and link are
// released at test cleanup. Tests use it for sinks (XDP_DROP), counters and
// pass-through programs on veth ends.
func AttachXDP(t testing.TB, ns *NS, ifindex int, insns asm.Instructions) *ebpf.Program {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatalf("load XDP program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	var l link.Link
	if err := ns.Do(func() (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		return err
	}); err != nil {
		t.Fatalf("attach XDP program to ifindex %d in %s: %v", ifindex, ns.Name, err)
	}
	t.Cleanup(func() { l.Close() })
	return prog
}

// Return returns an XDP program that only returns action.
func Return(action int32) asm.Instructions {
	return asm.Instructions{asm.Mov.Imm(asm.R0, action), asm.Return()}
}

// AttachDropCounter attaches to interface ifindex of ns an XDP program that
// counts frames per receive queue (in a per-CPU array, 64 queues) and drops
// them. The returned function reads the count of one queue, or of all
// queues when queue is negative.
func AttachDropCounter(t testing.TB, ns *NS, ifindex int) (received func(queue int) uint64) {
	t.Helper()
	const queues = 64
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: queues})
	if err != nil {
		t.Fatalf("counter map: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	AttachXDP(t, ns, ifindex, asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 16, asm.Word), // struct xdp_md.rx_queue_index
		asm.StoreMem(asm.RFP, -4, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord), // per-CPU slot: no atomic needed
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, XDPDrop).WithSymbol("drop"),
		asm.Return(),
	})
	one := func(q int) uint64 {
		var per []uint64
		if err := m.Lookup(uint32(q), &per); err != nil {
			t.Fatalf("read counter of queue %d: %v", q, err)
		}
		var n uint64
		for _, v := range per {
			n += v
		}
		return n
	}
	return func(q int) uint64 {
		if q >= 0 {
			return one(q)
		}
		var n uint64
		for i := range queues {
			n += one(i)
		}
		return n
	}
}
