package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Classifier counter indexes, in step with the enum in bpf/classifier.c.
const (
	cntPassNotIP = iota
	cntPassNotOwned
	cntPassFragment
	cntPassTruncated
	cntPassICMP
	cntRedirectFrontend
	cntRedirectNodePort
	cntRedirectEndpoint
	cntRedirectSNAT
	cntRedirectICMPError
	cntRedirectFragment
	cntPassNodeTraffic
	cntRedirectNoSocket
	cntMax
)

// Node address flags, as in bpf/classifier.c.
const (
	addrNodePort = 1
	addrSNAT     = 2
	addrLocal    = 4
)

// l4Key mirrors struct l4_key.
type l4Key struct {
	Addr  [16]byte
	Port  [2]byte // network order
	Proto uint8
	Pad   uint8
}

// portKey mirrors struct port_key.
type portKey struct {
	Port  [2]byte
	Proto uint8
	Pad   uint8
}

// cfgValue mirrors struct config (host order).
type cfgValue struct {
	SNATPortMin uint16
	SNATPortMax uint16
}

// Classifier is the XDP program and its rule maps. The rule maps are shared
// by the program instances attached to every managed interface; each
// instance has its own XSKMAP keyed by receive queue.
//
// mu serialises Update and attach; the maps themselves are safe for
// concurrent use by the kernel and Go.
type Classifier struct {
	mu    sync.Mutex
	spec  *ebpf.CollectionSpec
	cfg   ClassifierConfig
	rules classifierMaps // shared rule maps; Xsks unused (nil), see instance
	// fast is the XDP fast path's shared state, nil when it is off
	// (ClassifierConfig.FastPathFlows 0).
	fast *FastPathMaps
}

// NewClassifier loads the rule maps. It does not attach anything.
func NewClassifier(cfg ClassifierConfig) (*Classifier, error) {
	cfg = cfg.withDefaults()
	if cfg.MaxFrontends < 1 || cfg.MaxEndpoints < 1 || cfg.MaxNodePorts < 1 || cfg.MaxNodeAddrs < 1 {
		return nil, fmt.Errorf("classifier map sizes must be positive: %w", ErrBadConfig)
	}
	spec, err := loadClassifier()
	if err != nil {
		return nil, fmt.Errorf("load classifier spec: %w", err)
	}
	spec.Maps[classifierMapFrontends].MaxEntries = uint32(cfg.MaxFrontends)
	spec.Maps[classifierMapEndpoints].MaxEntries = uint32(cfg.MaxEndpoints)
	spec.Maps[classifierMapFrontendAddrs].MaxEntries = uint32(cfg.MaxFrontends)
	spec.Maps[classifierMapEndpointAddrs].MaxEntries = uint32(cfg.MaxEndpoints)
	spec.Maps[classifierMapNodePorts].MaxEntries = uint32(cfg.MaxNodePorts)
	spec.Maps[classifierMapNodeAddrs].MaxEntries = uint32(cfg.MaxNodeAddrs)
	// The rule maps are sized for the largest clusters (a million entries
	// with everything raised); preallocating them would pin that much
	// kernel memory whatever is used. Entries are allocated on update
	// instead: updates come from the control plane, lookups cost the same.
	for _, name := range []string{classifierMapFrontends, classifierMapEndpoints, classifierMapFrontendAddrs,
		classifierMapEndpointAddrs, classifierMapNodePorts, classifierMapNodeAddrs} {
		spec.Maps[name].Flags |= unix.BPF_F_NO_PREALLOC
	}
	c := &Classifier{spec: spec, cfg: cfg}
	for name, dst := range map[string]**ebpf.Map{
		classifierMapFrontends:     &c.rules.Frontends,
		classifierMapEndpoints:     &c.rules.Endpoints,
		classifierMapFrontendAddrs: &c.rules.FrontendAddrs,
		classifierMapEndpointAddrs: &c.rules.EndpointAddrs,
		classifierMapNodePorts:     &c.rules.NodePorts,
		classifierMapNodeAddrs:     &c.rules.NodeAddrs,
		classifierMapConfig:        &c.rules.Config,
		classifierMapCounters:      &c.rules.Counters,
	} {
		m, err := ebpf.NewMap(spec.Maps[name])
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("create classifier map %s: %w", name, err)
		}
		*dst = m
	}
	if cfg.FastPathFlows > 0 {
		if c.fast, err = newFastPathMaps(spec, cfg.FastPathFlows); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// FastPath returns the XDP fast path for established flows, nil when it is
// off (ClassifierConfig.FastPathFlows 0).
func (c *Classifier) FastPath() *FastPathMaps { return c.fast }

// Close releases the rule maps. Attached programs keep their own references
// until detached.
func (c *Classifier) Close() error {
	var errs []error
	for _, m := range c.ruleMaps() {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	if c.fast != nil {
		errs = append(errs, c.fast.Close())
	}
	return errors.Join(errs...)
}

// ruleMaps lists the shared maps (all but xsks).
func (c *Classifier) ruleMaps() []*ebpf.Map {
	return []*ebpf.Map{c.rules.Frontends, c.rules.Endpoints, c.rules.FrontendAddrs, c.rules.EndpointAddrs,
		c.rules.NodePorts, c.rules.NodeAddrs, c.rules.Config, c.rules.Counters}
}

// classifierInstance is the program loaded for one interface with its XSKMAP.
type classifierInstance struct {
	prog *ebpf.Program
	xsks *ebpf.Map
	link link.Link
}

func (ci *classifierInstance) close() error {
	var errs []error
	if ci.link != nil {
		errs = append(errs, ci.link.Close())
	}
	if ci.prog != nil {
		errs = append(errs, ci.prog.Close())
	}
	if ci.xsks != nil {
		errs = append(errs, ci.xsks.Close())
	}
	return errors.Join(errs...)
}

// instance loads a program bound to the shared rule maps and a fresh XSKMAP
// of numQueues entries. It does not attach it.
func (c *Classifier) instance(numQueues int) (*classifierInstance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	spec := c.spec.Copy()
	spec.Maps[classifierMapXsks].MaxEntries = uint32(max(numQueues, 1))
	var objs classifierObjects
	repl := map[string]*ebpf.Map{
		classifierMapFrontends:     c.rules.Frontends,
		classifierMapEndpoints:     c.rules.Endpoints,
		classifierMapFrontendAddrs: c.rules.FrontendAddrs,
		classifierMapEndpointAddrs: c.rules.EndpointAddrs,
		classifierMapNodePorts:     c.rules.NodePorts,
		classifierMapNodeAddrs:     c.rules.NodeAddrs,
		classifierMapConfig:        c.rules.Config,
		classifierMapCounters:      c.rules.Counters,
	}
	if c.fast != nil {
		c.fast.replacements(repl)
		if err := spec.Variables[classifierVarFastEnabled].Set(uint32(1)); err != nil {
			return nil, fmt.Errorf("enable fast path: %w", err)
		}
	}
	err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, fmt.Errorf("load classifier program: %w", err)
	}
	// objs also holds duplicates of the replaced rule maps (cilium/ebpf
	// clones MapReplacements on assignment): close them, the program keeps
	// its own references.
	for _, m := range []*ebpf.Map{objs.Frontends, objs.Endpoints, objs.FrontendAddrs, objs.EndpointAddrs,
		objs.NodePorts, objs.NodeAddrs, objs.Config, objs.Counters,
		objs.FastFlows, objs.FastStats, objs.FastPorts, objs.FastCounters} {
		if m != nil {
			m.Close()
		}
	}
	return &classifierInstance{prog: objs.XdpgateClassify, xsks: objs.Xsks}, nil
}

func addr16(a netip.Addr) [16]byte {
	return a.Unmap().As16() // IPv4 becomes ::ffff:a.b.c.d, as the program maps it
}

func makeL4Key(a L4Addr) l4Key {
	return l4Key{Addr: addr16(a.Addr), Port: [2]byte{byte(a.Port >> 8), byte(a.Port)}, Proto: a.Proto}
}

// Limits returns the map sizes the classifier was created with (defaults
// applied): the most rules Update accepts.
func (c *Classifier) Limits() ClassifierConfig { return c.cfg }

// Update replaces the content of the rule maps with r: new entries are added
// first, then stale ones deleted, so a rule present in both the old and new
// set never disappears. Between the two steps the union of both sets is
// matched. A rule set that does not fit (ErrTooManyRules) or is invalid is
// refused before any map is written: the previous rules stay whole. Only a
// kernel error while writing leaves a mix of old and new entries; call
// Update again.
func (c *Classifier) Update(r Rules) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range append(append([]L4Addr(nil), r.Frontends...), r.Endpoints...) {
		if !a.Addr.IsValid() {
			return fmt.Errorf("invalid address in rule %v: %w", a, ErrBadConfig)
		}
	}
	fe := make(map[l4Key]uint8, len(r.Frontends))
	feAddrs := make(map[[16]byte]uint8)
	for _, a := range r.Frontends {
		fe[makeL4Key(a)] = 1
		feAddrs[addr16(a.Addr)] = 1
	}
	ep := make(map[l4Key]uint8, len(r.Endpoints))
	epAddrs := make(map[[16]byte]uint8)
	for _, a := range r.Endpoints {
		ep[makeL4Key(a)] = 1
		epAddrs[addr16(a.Addr)] = 1
	}
	np := make(map[portKey]uint8, len(r.NodePorts))
	for _, p := range r.NodePorts {
		np[portKey{Port: [2]byte{byte(p.Port >> 8), byte(p.Port)}, Proto: p.Proto}] = 1
	}
	na := make(map[[16]byte]uint8)
	for _, a := range r.NodePortAddrs {
		if !a.IsValid() {
			return fmt.Errorf("invalid node port address: %w", ErrBadConfig)
		}
		na[addr16(a)] |= addrNodePort
	}
	for _, a := range r.SNATAddrs {
		if !a.IsValid() {
			return fmt.Errorf("invalid SNAT address: %w", ErrBadConfig)
		}
		na[addr16(a)] |= addrSNAT
	}
	for _, a := range r.LocalAddrs {
		if !a.IsValid() {
			return fmt.Errorf("invalid local address: %w", ErrBadConfig)
		}
		na[addr16(a)] |= addrLocal
	}
	if r.SNATPortMax != 0 && r.SNATPortMin > r.SNATPortMax {
		return fmt.Errorf("SNAT port range %d-%d: %w", r.SNATPortMin, r.SNATPortMax, ErrBadConfig)
	}
	for _, m := range []struct {
		what     string
		n, limit int
	}{
		{"frontends", len(fe), c.cfg.MaxFrontends}, {"endpoints", len(ep), c.cfg.MaxEndpoints},
		{"frontend addresses", len(feAddrs), c.cfg.MaxFrontends}, {"endpoint addresses", len(epAddrs), c.cfg.MaxEndpoints},
		{"node ports", len(np), c.cfg.MaxNodePorts}, {"node addresses", len(na), c.cfg.MaxNodeAddrs},
	} {
		if m.n > m.limit {
			return fmt.Errorf("%s: %d entries, capacity %d: %w", m.what, m.n, m.limit, ErrTooManyRules)
		}
	}
	if err := syncMap(c.rules.Frontends, fe, "frontends"); err != nil {
		return err
	}
	if err := syncMap(c.rules.Endpoints, ep, "endpoints"); err != nil {
		return err
	}
	if err := syncMap(c.rules.FrontendAddrs, feAddrs, "frontend addresses"); err != nil {
		return err
	}
	if err := syncMap(c.rules.EndpointAddrs, epAddrs, "endpoint addresses"); err != nil {
		return err
	}
	if err := syncMap(c.rules.NodePorts, np, "node ports"); err != nil {
		return err
	}
	if err := syncMap(c.rules.NodeAddrs, na, "node addresses"); err != nil {
		return err
	}
	cfg := cfgValue{SNATPortMin: r.SNATPortMin, SNATPortMax: r.SNATPortMax}
	if err := c.rules.Config.Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("update classifier config: %w", err)
	}
	return nil
}

// syncMap makes m hold exactly want: put everything, then delete the rest.
func syncMap[K comparable](m *ebpf.Map, want map[K]uint8, what string) error {
	var stale []K
	var k K
	var v uint8
	it := m.Iterate()
	for it.Next(&k, &v) {
		if nv, ok := want[k]; !ok {
			stale = append(stale, k)
		} else if nv == v {
			delete(want, k) // unchanged
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate %s: %w", what, err)
	}
	// Put first so that a kept rule never disappears; when the map is full
	// (E2BIG), delete the stale entries early and retry.
	for key, val := range want {
		err := m.Put(key, val)
		if errors.Is(err, unix.E2BIG) && stale != nil {
			if derr := deleteKeys(m, stale, what); derr != nil {
				return derr
			}
			stale = nil
			err = m.Put(key, val)
		}
		if err != nil {
			return fmt.Errorf("update %s: %w", what, err)
		}
	}
	return deleteKeys(m, stale, what)
}

func deleteKeys[K comparable](m *ebpf.Map, keys []K, what string) error {
	for _, key := range keys {
		if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete stale %s: %w", what, err)
		}
	}
	return nil
}

// Counters sums the per-CPU decision counters.
func (c *Classifier) Counters() (ClassifierCounters, error) {
	var out [cntMax]uint64
	var vals []uint64
	for i := uint32(0); i < cntMax; i++ {
		if err := c.rules.Counters.Lookup(i, &vals); err != nil {
			return ClassifierCounters{}, fmt.Errorf("read classifier counters: %w", err)
		}
		for _, v := range vals {
			out[i] += v
		}
	}
	return ClassifierCounters{
		PassNotIP: out[cntPassNotIP], PassNotOwned: out[cntPassNotOwned],
		PassFragment: out[cntPassFragment], PassTruncated: out[cntPassTruncated],
		PassICMP: out[cntPassICMP], RedirectFrontend: out[cntRedirectFrontend],
		RedirectNodePort: out[cntRedirectNodePort], RedirectEndpoint: out[cntRedirectEndpoint],
		RedirectSNAT: out[cntRedirectSNAT], RedirectICMPError: out[cntRedirectICMPError],
		RedirectFragment: out[cntRedirectFragment], PassNodeTraffic: out[cntPassNodeTraffic],
		RedirectNoSocket: out[cntRedirectNoSocket],
	}, nil
}
