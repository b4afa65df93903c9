package xdpfwd

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Forwarder is the program attached to a set of interfaces. Its counters
// are per-CPU map values written only by the program; Stats sums them.
type Forwarder struct {
	objs  xdpfwdObjects
	links []link.Link
}

// Attach loads the program and attaches it in native (driver) mode to
// every interface in ifnames, which are also the devices it may redirect
// to. Call it inside the interfaces' network namespace (names are looked up
// there and bpf_fib_lookup uses that namespace's routes); the Forwarder can
// be used and closed from any goroutine. Native mode is required: generic
// mode would measure the kernel's socket-buffer path, not XDP's. On error
// nothing stays attached.
func Attach(ifnames []string) (f *Forwarder, err error) {
	if len(ifnames) == 0 {
		return nil, errors.New("xdpfwd: no interfaces")
	}
	f = &Forwarder{}
	if err := loadXdpfwdObjects(&f.objs, nil); err != nil {
		return nil, fmt.Errorf("load xdpfwd: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.Close())
			f = nil
		}
	}()
	indices := make([]int, len(ifnames))
	for i, name := range ifnames {
		iface, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("xdpfwd: %w", err)
		}
		indices[i] = iface.Index
		idx := uint32(iface.Index)
		if err := f.objs.TxPorts.Put(idx, idx); err != nil {
			return nil, fmt.Errorf("xdpfwd: add %s to tx_ports: %w", name, err)
		}
	}
	for i, name := range ifnames {
		l, err := link.AttachXDP(link.XDPOptions{Program: f.objs.XdpFwd, Interface: indices[i], Flags: link.XDPDriverMode})
		if err != nil {
			return nil, fmt.Errorf("xdpfwd: attach native xdp to %s: %w", name, err)
		}
		f.links = append(f.links, l)
	}
	return f, nil
}

// Stats sums the per-CPU counters.
func (f *Forwarder) Stats() (Stats, error) {
	var s Stats
	var per []uint64
	for r := range numReasons {
		if err := f.objs.Stats.Lookup(uint32(r), &per); err != nil {
			return s, fmt.Errorf("xdpfwd: read %s: %w", r, err)
		}
		for _, v := range per {
			s[r] += v
		}
	}
	return s, nil
}

// Close detaches the program from every interface and frees it.
func (f *Forwarder) Close() error {
	var errs []error
	for _, l := range f.links {
		errs = append(errs, l.Close())
	}
	f.links = nil
	errs = append(errs, f.objs.Close())
	return errors.Join(errs...)
}

// program is the loaded program, for tests (BPF_PROG_RUN).
func (f *Forwarder) program() *ebpf.Program { return f.objs.XdpFwd }
