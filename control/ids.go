package control

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/xdpgate/xdpgate/nat"
)

// portKey identifies a snapshot.ServicePort: kube-proxy's ServicePortName
// plus the IP family (one snapshot ServicePort per family, see doc.go).
type portKey struct {
	ns, name, port string
	proto          nat.Proto
	v6             bool
}

// epKey identifies an endpoint of a service port.
type epKey struct {
	sp   uint32
	addr netip.AddrPort
}

// idAllocator hands out the stable IDs of service ports and endpoints.
//
// IDs come from one monotonic uint32 counter per kind. An ID stays assigned
// while its key is present in the built snapshot and is released (never
// handed out again) when the key leaves. After 2^32 allocations the counter
// wraps; it then skips 0 and every ID still in use, so an ID can only be
// reused after four billion others, far beyond any conntrack or affinity
// timeout. It is owned by the Builder and not safe for concurrent use.
//
// With a journal (BuildOptions.IDFile) the IDs also survive the process:
// see idJournal.
type idAllocator struct {
	nextSP, nextEP uint32
	sp             map[portKey]uint32
	ep             map[epKey]uint32
	spInUse        map[uint32]struct{}
	epInUse        map[uint32]struct{}
	journal        *idJournal // nil: memory only
}

func newIDAllocator() *idAllocator {
	return &idAllocator{
		sp:      make(map[portKey]uint32),
		ep:      make(map[epKey]uint32),
		spInUse: make(map[uint32]struct{}),
		epInUse: make(map[uint32]struct{}),
	}
}

func next(counter *uint32, inUse map[uint32]struct{}) uint32 {
	for {
		*counter++
		if *counter == 0 {
			continue
		}
		if _, used := inUse[*counter]; !used {
			inUse[*counter] = struct{}{}
			return *counter
		}
	}
}

// servicePort returns the ID of k, allocating one if k is new.
func (a *idAllocator) servicePort(k portKey) uint32 {
	id, ok := a.sp[k]
	if !ok {
		id = next(&a.nextSP, a.spInUse)
		a.sp[k] = id
		if a.journal != nil {
			a.journal.assignSP(k, id)
		}
	} else if a.journal != nil && a.journal.unseenSP != nil {
		delete(a.journal.unseenSP, k)
	}
	return id
}

// endpoint returns the ID of k, allocating one if k is new.
func (a *idAllocator) endpoint(k epKey) uint32 {
	id, ok := a.ep[k]
	if !ok {
		id = next(&a.nextEP, a.epInUse)
		a.ep[k] = id
		if a.journal != nil {
			a.journal.assignEP(k, id)
		}
	} else if a.journal != nil && a.journal.unseenEP != nil {
		delete(a.journal.unseenEP, k)
	}
	return id
}

// releaseServicePort forgets k (its endpoints are released by the caller).
func (a *idAllocator) releaseServicePort(k portKey) {
	id, ok := a.sp[k]
	if !ok {
		return
	}
	delete(a.sp, k)
	delete(a.spInUse, id)
	if a.journal != nil {
		a.journal.release('s', id)
	}
}

// releaseEndpoint forgets k.
func (a *idAllocator) releaseEndpoint(k epKey) {
	id, ok := a.ep[k]
	if !ok {
		return
	}
	delete(a.ep, k)
	delete(a.epInUse, id)
	if a.journal != nil {
		a.journal.release('e', id)
	}
}

// The ID journal. With BuildOptions.IDFile set, the allocator appends every
// assignment and release to that file before the snapshot that uses it is
// published, and a new Builder (the next xdpgate process, after a restart,
// an upgrade or a crash) replays it: the same service ports and endpoints
// get the IDs that the adopted conntrack and affinity entries name, a
// departed endpoint's ID is still never handed out again, and an endpoint
// that left and came back before the restart keeps its second ID.
//
// Lines, one record each (strings quoted with strconv.Quote):
//
//	S id "ns" "name" "port" proto v6   service port assigned
//	E id sp addr:port                  endpoint assigned
//	s id                               service port released
//	e id                               endpoint released
//	N nextSP nextEP                    the counters (after a compaction)
//
// A record is written whole by one write(2) per build, so a crash leaves
// at most a torn last line, which the replay ignores (the build that wrote
// it never published its snapshot). Keys replayed but absent from the
// first build (they left while no xdpgate ran) are released after it.
// The file is rewritten (temporary file and rename) when it holds more
// than twice the live records plus compactSlack.

const compactSlack = 4096

// idJournal is the allocator's file and the records not yet written.
type idJournal struct {
	path    string
	f       *os.File
	buf     bytes.Buffer
	records int // records in the file
	// unseen holds the replayed keys no build has asked for yet; nil
	// after the first build.
	unseenSP map[portKey]struct{}
	unseenEP map[epKey]struct{}
}

// openIDAllocator returns an allocator that persists to path (replaying
// it if it exists), or a memory-only one when path is "".
func openIDAllocator(path string) (*idAllocator, error) {
	a := newIDAllocator()
	if path == "" {
		return a, nil
	}
	j := &idJournal{path: path, unseenSP: make(map[portKey]struct{}), unseenEP: make(map[epKey]struct{})}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("id journal: %w", err)
	}
	a.replay(b)
	for k := range a.sp {
		j.unseenSP[k] = struct{}{}
	}
	for k := range a.ep {
		j.unseenEP[k] = struct{}{}
	}
	a.journal = j
	// Start from a compact file: no torn line to append after.
	if err := a.compact(); err != nil {
		return nil, err
	}
	return a, nil
}

// replay applies the journal's records; it stops at the first line it
// cannot parse (a torn last write).
func (a *idAllocator) replay(b []byte) {
	for len(b) > 0 {
		line, rest, ok := bytes.Cut(b, []byte{'\n'})
		if !ok || !a.apply(string(line)) {
			return
		}
		b = rest
	}
}

// apply applies one journal record; false when it is malformed.
func (a *idAllocator) apply(line string) bool {
	f, err := journalFields(line)
	if err != nil || len(f) < 2 {
		return false
	}
	id64, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return false
	}
	id := uint32(id64)
	switch {
	case f[0] == "S" && len(f) == 7:
		proto, err1 := strconv.ParseUint(f[5], 10, 8)
		v6, err2 := strconv.ParseBool(f[6])
		if err1 != nil || err2 != nil || id == 0 {
			return false
		}
		k := portKey{ns: f[2], name: f[3], port: f[4], proto: nat.Proto(proto), v6: v6}
		a.sp[k], a.spInUse[id], a.nextSP = id, struct{}{}, id
	case f[0] == "E" && len(f) == 4:
		sp, err1 := strconv.ParseUint(f[2], 10, 32)
		ap, err2 := netip.ParseAddrPort(f[3])
		if err1 != nil || err2 != nil || id == 0 {
			return false
		}
		a.ep[epKey{uint32(sp), ap}], a.epInUse[id], a.nextEP = id, struct{}{}, id
	case f[0] == "s" && len(f) == 2:
		for k, v := range a.sp {
			if v == id {
				delete(a.sp, k)
			}
		}
		delete(a.spInUse, id)
	case f[0] == "e" && len(f) == 2:
		for k, v := range a.ep {
			if v == id {
				delete(a.ep, k)
			}
		}
		delete(a.epInUse, id)
	case f[0] == "N" && len(f) == 3:
		ep, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return false
		}
		a.nextSP, a.nextEP = id, uint32(ep)
	default:
		return false
	}
	return true
}

// journalFields splits a journal line into words, unquoting quoted ones.
func journalFields(line string) ([]string, error) {
	var out []string
	for line = strings.TrimLeft(line, " "); line != ""; line = strings.TrimLeft(line, " ") {
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return nil, err
			}
			s, _ := strconv.Unquote(q)
			out = append(out, s)
			line = line[len(q):]
			continue
		}
		w, rest, _ := strings.Cut(line, " ")
		out = append(out, w)
		line = rest
	}
	return out, nil
}

func (j *idJournal) assignSP(k portKey, id uint32) {
	fmt.Fprintf(&j.buf, "S %d %s %s %s %d %t\n", id, strconv.Quote(k.ns), strconv.Quote(k.name), strconv.Quote(k.port), k.proto, k.v6)
	j.records++
}

func (j *idJournal) assignEP(k epKey, id uint32) {
	fmt.Fprintf(&j.buf, "E %d %d %s\n", id, k.sp, k.addr)
	j.records++
}

func (j *idJournal) release(kind byte, id uint32) {
	fmt.Fprintf(&j.buf, "%c %d\n", kind, id)
	j.records++
}

// commit ends a build: it releases the replayed keys the first build did
// not ask for, then writes the build's records (compacting when the file
// has grown). Call it before publishing the build's snapshot.
func (a *idAllocator) commit() error {
	j := a.journal
	if j == nil {
		return nil
	}
	if j.unseenSP != nil {
		for k := range j.unseenEP {
			a.releaseEndpoint(k)
		}
		for k := range j.unseenSP {
			a.releaseServicePort(k)
		}
		j.unseenSP, j.unseenEP = nil, nil
	}
	if j.records > 2*(len(a.sp)+len(a.ep))+compactSlack {
		return a.compact()
	}
	if j.buf.Len() == 0 {
		return nil
	}
	_, err := j.f.Write(j.buf.Bytes())
	j.buf.Reset()
	if err != nil {
		return fmt.Errorf("id journal %s: %w", j.path, err)
	}
	return nil
}

// compact rewrites the journal with the live records only.
func (a *idAllocator) compact() error {
	j := a.journal
	j.buf.Reset()
	j.records = 0
	for k, id := range a.sp {
		j.assignSP(k, id)
	}
	for k, id := range a.ep {
		j.assignEP(k, id)
	}
	fmt.Fprintf(&j.buf, "N %d %d\n", a.nextSP, a.nextEP)
	tmp := j.path + ".tmp"
	err := os.WriteFile(tmp, j.buf.Bytes(), 0o600)
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	j.buf.Reset()
	if err != nil {
		return fmt.Errorf("id journal %s: %w", j.path, err)
	}
	if j.f != nil {
		j.f.Close()
	}
	if j.f, err = os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
		return fmt.Errorf("id journal %s: %w", j.path, err)
	}
	return nil
}
