package affinity

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/xdpgate/xdpgate/internal/owned"
)

// Table sizing defaults and limits.
const (
	// DefaultCapacity is the Capacity used when Config.Capacity is 0.
	DefaultCapacity = 1 << 20
	// MaxCapacity is the largest Config.Capacity (about 64 GB of slots).
	MaxCapacity = 1 << 30
	// DefaultShards is the shard count used when Config.Shards is 0 and
	// the table is large enough (see Config.Shards).
	DefaultShards = 256
	// MaxShards is the largest Config.Shards.
	MaxShards = 1 << 16
	// DefaultProbeWindow is the ProbeWindow used when Config.ProbeWindow
	// is 0.
	DefaultProbeWindow = 128
	// MaxProbeWindow is the largest Config.ProbeWindow.
	MaxProbeWindow = 1024
)

// Slots per client at full capacity: 3/2, so with 40-byte slots the table
// costs 60 bytes per client of Capacity, empty slots included, at a load
// factor of 2/3 where linear probing still averages two probes per hit.
const (
	slotsPerClientNum = 3
	slotsPerClientDen = 2
)

// sweepChunk bounds how many slots Sweep and the Delete methods examine
// under one shard lock, so that a writer never waits long behind them.
const sweepChunk = 256

// Config sizes a Table. The zero value is valid; defaults are applied by
// New in one place (withDefaults).
type Config struct {
	// Capacity is the number of clients the table is sized for (default
	// DefaultCapacity). The table allocates Capacity*3/2 slots of 40 bytes
	// up front. It accepts more clients while probe windows have room;
	// eviction starts when a new client's probe window is full.
	Capacity int
	// Shards is the number of independently locked shards, a power of two
	// (default DefaultShards, lowered for small tables so that each shard
	// holds at least four probe windows).
	Shards int
	// ProbeWindow is the number of consecutive slots, starting at a key's
	// home slot, in which the key may live (default DefaultProbeWindow). It
	// bounds every lookup and the set of eviction candidates. Filling a
	// table with exactly Capacity random clients evicts about 500 per
	// million with a window of 32, 16 per million with 64 and under 1 per
	// million with 128 (measured); misses stop at the first empty slot, so
	// a wide window costs only when a window is full.
	ProbeWindow int
	// Seed keys the hash that places clients in shards and slots; 0 picks
	// a random seed, so an attacker cannot aim many source addresses at
	// one probe window. Tests set it for reproducibility.
	Seed uint64
}

func (c Config) withDefaults() (Config, error) {
	if c.Capacity == 0 {
		c.Capacity = DefaultCapacity
	}
	if c.Capacity < 1 || c.Capacity > MaxCapacity {
		return c, fmt.Errorf("capacity %d (want 1..%d): %w", c.Capacity, MaxCapacity, ErrCapacity)
	}
	if c.ProbeWindow == 0 {
		c.ProbeWindow = DefaultProbeWindow
	}
	if c.ProbeWindow < 1 || c.ProbeWindow > MaxProbeWindow {
		return c, fmt.Errorf("probe window %d (want 1..%d): %w", c.ProbeWindow, MaxProbeWindow, ErrProbeWindow)
	}
	total := totalSlots(c.Capacity)
	if c.Shards == 0 {
		c.Shards = DefaultShards
		for c.Shards > 1 && total/uint64(c.Shards) < 4*uint64(c.ProbeWindow) {
			c.Shards /= 2
		}
	}
	if c.Shards < 1 || c.Shards > MaxShards || c.Shards&(c.Shards-1) != 0 {
		return c, fmt.Errorf("shards %d (want a power of two in 1..%d): %w", c.Shards, MaxShards, ErrShards)
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64() | 1
	}
	return c, nil
}

func totalSlots(capacity int) uint64 {
	return (uint64(capacity)*slotsPerClientNum + slotsPerClientDen - 1) / slotsPerClientDen
}

// Table is the ClientIP session-affinity table: (service port ID, client
// address) -> (endpoint ID, time of the client's last new connection).
// It is safe for concurrent use by any number of goroutines. Lookup and
// Range take no lock; Pin, Sweep and the Delete methods take one shard lock
// at a time. See doc.go for the layout and the concurrency argument.
type Table struct {
	shards []shard // fixed after New
	shift  uint    // 64 - log2(len(shards)): shard index = hash >> shift
	window int     // probe window, min(Config.ProbeWindow, slots per shard)
	seed   uint64
	cfg    Config

	sweepMu    sync.Mutex // guards sweepShard and sweepSlot
	sweepShard int
	sweepSlot  uint64

	// onChange is OnChange's hook; every shard points to it.
	onChange atomic.Pointer[func(Change)]
}

// shard is one independently locked part of the table. Its fields are on
// three cache lines: read-mostly, writer-owned and reader-updated, so that
// lookups counting hits do not disturb the line the slice header lives on.
type shard struct {
	slots []slot // the array is pointer-free; fixed after New
	n     uint64 // len(slots)
	// onChange is the table's OnChange hook (nil inside: none).
	onChange *atomic.Pointer[func(Change)]
	_        [64 - 40]byte

	// mu serialises writers of this shard: every store to slots and to
	// the counters below happens with mu held. Readers never take it. The
	// counters are added to with plain stores (internal/owned).
	mu        sync.Mutex
	entries   atomic.Int64
	inserts   atomic.Uint64
	refreshes atomic.Uint64
	repins    atomic.Uint64
	expiries  atomic.Uint64
	evictions atomic.Uint64
	deletes   atomic.Uint64
	_         [64 - 8 - 7*8]byte

	// hits and misses are added to by lock-free readers.
	hits   atomic.Uint64
	misses atomic.Uint64
	_      [64 - 16]byte
}

// New allocates a table sized by cfg. All memory is allocated here; the
// table never grows.
func New(cfg Config) (*Table, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("affinity table: %w", err)
	}
	return newShardedTable(cfg, nil), nil
}

// perShard returns the slots per shard of a table for cfg (defaults
// applied).
func perShard(cfg Config) uint64 {
	return (totalSlots(cfg.Capacity) + uint64(cfg.Shards) - 1) / uint64(cfg.Shards)
}

// newShardedTable builds a table for cfg (defaults applied) over slots, or over
// new memory when slots is nil.
func newShardedTable(cfg Config, slots []slot) *Table {
	perShard := perShard(cfg)
	if slots == nil {
		slots = make([]slot, perShard*uint64(cfg.Shards))
	}
	t := &Table{
		shards: make([]shard, cfg.Shards),
		shift:  uint(64 - bits.TrailingZeros(uint(cfg.Shards))),
		window: int(min(uint64(cfg.ProbeWindow), perShard)),
		seed:   cfg.Seed,
		cfg:    cfg,
	}
	for i := range t.shards {
		t.shards[i].slots = slots[uint64(i)*perShard : uint64(i+1)*perShard : uint64(i+1)*perShard]
		t.shards[i].n = perShard
		t.shards[i].onChange = &t.onChange
	}
	return t
}

// ChangeCause says why an entry changed (Change).
type ChangeCause uint8

// Change causes.
const (
	// CausePinned: Pin started an affinity (From is 0), in a free slot or
	// over an entry of another client, which was reported first.
	CausePinned ChangeCause = iota
	// CauseRepinned: Pin re-pointed a live entry whose endpoint the caller
	// found unusable.
	CauseRepinned
	// CauseExpired: the entry expired and was removed (To is 0) by Lookup,
	// Pin or Sweep, or, when the same client pinned again, replaced (To is
	// the new endpoint, possibly From).
	CauseExpired
	// CauseEvicted: Pin replaced the least recently pinned entry of a full
	// probe window (To is 0; the new entry follows as CausePinned).
	CauseEvicted
	// CauseDeleted: DeleteServicePort(s) or DeleteEndpoint removed it.
	CauseDeleted
)

// Change is one change to the table's live entries: the entry of a client
// of ServicePort named endpoint From (0: there was none) and now names To
// (0: it is gone). Endpoint IDs are never 0. A Pin that only restarts an
// entry's timer is not a change.
type Change struct {
	ServicePort, From, To uint32
	Cause                 ChangeCause
}

// OnChange sets a function called with every change to the live entries
// (from Lookup, Pin, Sweep and the Delete methods, with the shard's lock
// held, so it must be quick, must not block and must not call the table).
// Summing +1 for To and -1 for From per endpoint gives each endpoint's
// pinned clients exactly, expired entries included until they are removed.
// nil removes it. It costs one atomic load per change, none per lookup or
// refresh.
func (t *Table) OnChange(fn func(Change)) {
	if fn == nil {
		t.onChange.Store(nil)
		return
	}
	t.onChange.Store(&fn)
}

// changed reports a change. sh.mu is held.
func (sh *shard) changed(svc, from, to uint32, cause ChangeCause) {
	if fn := sh.onChange.Load(); fn != nil {
		(*fn)(Change{ServicePort: svc, From: from, To: to, Cause: cause})
	}
}

// expired counts and reports the removal of an expired entry (of service
// port svc, naming ep) or, when to is not 0, its replacement by the same
// client's new pin. sh.mu is held.
func (sh *shard) expired(svc, ep, to uint32) {
	owned.Add64(&sh.expiries, 1)
	sh.changed(svc, ep, to, CauseExpired)
}

// Config returns the table's configuration with defaults applied.
func (t *Table) Config() Config { return t.cfg }

// Address family tags in the key hash, so that 1.2.3.4 and ::ffff:1.2.3.4
// differ.
const (
	famV4 = 4
	famV6 = 6
)

// hash places a key: the top bits choose the shard, the low 32 bits the
// home slot inside it. The input is 24 bytes (xxhash's short-input path):
// address words with the table seed folded in, then service port and
// family.
func (t *Table) hash(k key) uint64 {
	var b [24]byte
	binary.LittleEndian.PutUint64(b[0:8], k.a0^t.seed)
	binary.LittleEndian.PutUint64(b[8:16], k.a1)
	fam := uint64(famV6)
	if k.is4 {
		fam = famV4
	}
	binary.LittleEndian.PutUint64(b[16:24], uint64(k.svc)|fam<<32)
	return xxhash.Sum64(b[:])
}

// locate returns the key's shard and home slot index.
func (t *Table) locate(k key) (*shard, uint64) {
	h := t.hash(k)
	sh := &t.shards[h>>t.shift]
	return sh, (uint64(uint32(h)) * sh.n) >> 32
}

func (sh *shard) next(i uint64) uint64 {
	i++
	if i == sh.n {
		return 0
	}
	return i
}

func (sh *shard) prev(i uint64) uint64 {
	if i == 0 {
		return sh.n - 1
	}
	return i - 1
}

// Lookup returns the endpoint pinned for client on service port svcPort,
// if the entry exists and its last Pin is less than timeoutSeconds before
// now (nanoseconds of the caller's monotonic clock). A timeoutSeconds
// outside 1..MaxTimeoutSeconds or an invalid client is a miss that changes
// nothing. It does not refresh
// the entry: the affinity timer runs from the client's last new
// connection, which the caller records with Pin.
//
// The caller must then check that the endpoint is still usable in the
// chain it is choosing from; if it is not, the entry is ignored, the caller
// chooses anew and Pins the choice, which overwrites the entry.
//
// Lookup does not wait for any lock and does not allocate. An expired
// entry is a miss; Lookup removes it if the shard lock is free at that
// moment (TryLock), and otherwise leaves it to the Pin that follows or to
// Sweep.
func (t *Table) Lookup(svcPort uint32, client netip.Addr, timeoutSeconds uint32, now int64) (ep uint32, ok bool) {
	pr := t.Probe(svcPort, client)
	return t.LookupProbe(&pr, timeoutSeconds, now)
}

// Probe is a client's key and place in the table for one service port,
// computed once for the Lookup and the Pin of one new connection (the
// hash is a good part of either's cost).
type Probe struct {
	k     key
	valid bool
	sh    *shard
	i     uint64
}

// Probe computes the probe of client on service port svcPort.
func (t *Table) Probe(svcPort uint32, client netip.Addr) Probe {
	k := makeKey(svcPort, client)
	sh, i := t.locate(k)
	return Probe{k: k, valid: client.IsValid(), sh: sh, i: i}
}

// LookupProbe is Lookup with the probe of the same table.
func (t *Table) LookupProbe(p *Probe, timeoutSeconds uint32, now int64) (ep uint32, ok bool) {
	k, sh, i := p.k, p.sh, p.i
	svcPort := k.svc
	if !p.valid || !validTimeout(timeoutSeconds) {
		sh.misses.Add(1) // nothing can match; removing on a bad timeout would wipe entries
		return 0, false
	}
	for range t.window {
		s := &sh.slots[i]
	again:
		c := s.ctl.Load()
		switch ctlState(c) {
		case stEmpty:
			// A key never lives beyond an empty slot in its window.
			sh.misses.Add(1)
			return 0, false
		case stLive:
			if ctlSvc(c) != svcPort {
				break
			}
			a0, a1, v, seen := s.a0.Load(), s.a1.Load(), s.val.Load(), s.seen.Load()
			if s.ctl.Load() != c {
				goto again // a writer changed the slot while we read it
			}
			if a0 != k.a0 || a1 != k.a1 || valIsV4(v) != k.is4 {
				break
			}
			if expired(seen, now, timeoutSeconds) {
				sh.misses.Add(1)
				sh.expire(i, c, now, timeoutSeconds)
				return 0, false
			}
			sh.hits.Add(1)
			return valEP(v), true
		}
		i = sh.next(i)
	}
	sh.misses.Add(1)
	return 0, false
}

// expire removes the expired entry a Lookup found in slot i (control word
// c), if the shard lock is free and the slot still holds that entry,
// expired: a concurrent Pin may have refreshed it without changing c.
func (sh *shard) expire(i, c uint64, now int64, timeoutSeconds uint32) {
	if !sh.mu.TryLock() {
		return
	}
	s := &sh.slots[i]
	if s.ctl.Load() == c && expired(s.seen.Load(), now, timeoutSeconds) {
		ep := valEP(s.val.Load())
		sh.remove(i)
		sh.expired(ctlSvc(c), ep, 0)
	}
	sh.mu.Unlock()
}

// PinResult says what Pin did.
type PinResult uint8

// Pin results.
const (
	// PinInvalid: nothing was stored because the client address was
	// invalid or timeoutSeconds was outside 1..MaxTimeoutSeconds.
	PinInvalid PinResult = iota
	// PinInserted: a new affinity started, in a free slot, in the slot of
	// an expired entry, or over this client's own expired entry.
	PinInserted
	// PinRefreshed: the client's live entry already named ep; its timer
	// restarted at now.
	PinRefreshed
	// PinRepinned: the client's live entry named another endpoint (no
	// longer eligible, as the caller decided) and now names ep.
	PinRepinned
	// PinEvicted: the probe window was full of live entries; the least
	// recently pinned one was replaced.
	PinEvicted
)

var pinResultNames = [...]string{"invalid", "inserted", "refreshed", "repinned", "evicted"}

// String returns the result's lower-case name.
func (r PinResult) String() string {
	if int(r) < len(pinResultNames) {
		return pinResultNames[r]
	}
	return fmt.Sprintf("PinResult(%d)", r)
}

// Pin records that a new connection from client to service port svcPort
// was sent to endpoint ep at now, with the service port's current
// timeoutSeconds: it inserts the entry or overwrites the client's existing
// one (kube-proxy's `recent --set` / nft set `update`). Call it once per
// new flow, never per packet.
//
// When the client's probe window has no free slot, Pin replaces an expired
// entry (counted as an expiry) or else the least recently pinned one
// (counted as an eviction). Pin takes the shard lock and does not
// allocate.
func (t *Table) Pin(svcPort uint32, client netip.Addr, ep uint32, timeoutSeconds uint32, now int64) PinResult {
	pr := t.Probe(svcPort, client)
	return t.PinProbe(&pr, ep, timeoutSeconds, now)
}

// PinProbe is Pin with the probe of the same table.
func (t *Table) PinProbe(p *Probe, ep uint32, timeoutSeconds uint32, now int64) PinResult {
	if !p.valid || !validTimeout(timeoutSeconds) {
		return PinInvalid
	}
	k, sh, i := p.k, p.sh, p.i
	val := makeVal(ep, timeoutSeconds, k.is4)

	sh.mu.Lock()
	free, stale, oldest := -1, -1, -1
	var oldestSeen int64
scan:
	for range t.window {
		s := &sh.slots[i]
		c := s.ctl.Load()
		switch ctlState(c) {
		case stEmpty:
			if free < 0 {
				free = int(i)
			}
			break scan // the key cannot live beyond an empty slot
		case stTomb:
			if free < 0 {
				free = int(i)
			}
		case stLive:
			v, seen := s.val.Load(), s.seen.Load()
			if ctlSvc(c) == k.svc && s.a0.Load() == k.a0 && s.a1.Load() == k.a1 && valIsV4(v) == k.is4 {
				r := sh.update(s, v, seen, k, val, timeoutSeconds, now)
				sh.mu.Unlock()
				return r
			}
			if stale < 0 && expired(seen, now, valTimeout(v)) {
				stale = int(i)
			}
			if oldest < 0 || seen < oldestSeen {
				oldest, oldestSeen = int(i), seen
			}
		}
		i = sh.next(i)
	}

	r := PinInserted
	switch {
	case free >= 0:
		// An empty or tombstone slot: readers skip it whatever its other
		// words hold, so they are filled with plain stores (internal/owned) and
		// published by the atomic store of ctl.
		s := &sh.slots[free]
		c := s.ctl.Load()
		owned.Set64(&s.a0, k.a0)
		owned.Set64(&s.a1, k.a1)
		owned.Set64(&s.val, val)
		owned.SetI64(&s.seen, now)
		s.ctl.Store(nextCtl(c, k.svc, stLive)) // publish
		owned.AddI64(&sh.entries, 1)
	case stale >= 0:
		s := &sh.slots[stale]
		staleSvc, staleEP := ctlSvc(s.ctl.Load()), valEP(s.val.Load())
		sh.replace(s, k, val, now)
		sh.expired(staleSvc, staleEP, 0)
	default:
		s := &sh.slots[oldest]
		oldSvc, oldEP := ctlSvc(s.ctl.Load()), valEP(s.val.Load())
		sh.replace(s, k, val, now)
		owned.Add64(&sh.evictions, 1)
		sh.changed(oldSvc, oldEP, 0, CauseEvicted)
		r = PinEvicted
	}
	sh.changed(k.svc, 0, ep, CausePinned)
	owned.Add64(&sh.inserts, 1)
	sh.mu.Unlock()
	return r
}

// update handles Pin of key k, which has the live slot s holding val v.
// sh.mu is held.
func (sh *shard) update(s *slot, v uint64, seen int64, k key, val uint64, timeoutSeconds uint32, now int64) PinResult {
	switch {
	case expired(seen, now, timeoutSeconds):
		sh.expired(k.svc, valEP(v), valEP(val))
		owned.Add64(&sh.inserts, 1)
		if valEP(v) != valEP(val) {
			sh.replace(s, k, val, now)
			return PinInserted
		}
		s.val.Store(val)
		s.seen.Store(now)
		return PinInserted
	case valEP(v) != valEP(val):
		owned.Add64(&sh.repins, 1)
		sh.replace(s, k, val, now)
		sh.changed(k.svc, valEP(v), valEP(val), CauseRepinned)
		return PinRepinned
	default:
		// Same endpoint: only the timer (and perhaps the timeout) moves.
		// Each is one word and readers use neither to identify the
		// entry, so single stores keep every reader's view consistent.
		owned.Add64(&sh.refreshes, 1)
		if v != val {
			s.val.Store(val)
		}
		if now > seen {
			s.seen.Store(now)
		}
		return PinRefreshed
	}
}

// replace overwrites the live slot s with key k. The slot goes through a
// tombstone first, so a reader either sees the old entry whole, the new
// entry whole, or no entry; never a mix. sh.mu is held.
func (sh *shard) replace(s *slot, k key, val uint64, now int64) {
	c := s.ctl.Load()
	c = nextCtl(c, ctlSvc(c), stTomb)
	s.ctl.Store(c)
	s.a0.Store(k.a0)
	s.a1.Store(k.a1)
	s.val.Store(val)
	s.seen.Store(now)
	s.ctl.Store(nextCtl(c, k.svc, stLive))
}

// remove deletes the live entry in slot i. The slot becomes a tombstone;
// tombstones that directly precede an empty slot become empty, walking
// backwards (no key can live beyond an empty slot, so none needs them).
// sh.mu is held.
func (sh *shard) remove(i uint64) {
	s := &sh.slots[i]
	c := s.ctl.Load()
	s.ctl.Store(nextCtl(c, ctlSvc(c), stTomb))
	owned.AddI64(&sh.entries, -1)
	sh.reclaim(i)
}

// reclaim turns the tombstone run ending at slot i into empty slots if the
// slot after i is empty. sh.mu is held.
//
// Invariant kept: for every live key at slot q with home slot h, no slot in
// [h, q) is empty. A tombstone at p followed by an empty p+1 cannot lie in
// such a range (the range would contain p+1 as well), so emptying it is
// safe; by induction so is the run before it.
func (sh *shard) reclaim(i uint64) {
	if ctlState(sh.slots[sh.next(i)].ctl.Load()) != stEmpty {
		return
	}
	for range sh.n {
		s := &sh.slots[i]
		c := s.ctl.Load()
		if ctlState(c) != stTomb {
			return
		}
		s.ctl.Store(nextCtl(c, 0, stEmpty))
		i = sh.prev(i)
	}
}
