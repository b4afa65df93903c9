package control

import (
	"net/netip"

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
type idAllocator struct {
	nextSP, nextEP uint32
	sp             map[portKey]uint32
	ep             map[epKey]uint32
	spInUse        map[uint32]struct{}
	epInUse        map[uint32]struct{}
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
	}
	return id
}

// endpoint returns the ID of k, allocating one if k is new.
func (a *idAllocator) endpoint(k epKey) uint32 {
	id, ok := a.ep[k]
	if !ok {
		id = next(&a.nextEP, a.epInUse)
		a.ep[k] = id
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
}

// releaseEndpoint forgets k.
func (a *idAllocator) releaseEndpoint(k epKey) {
	id, ok := a.ep[k]
	if !ok {
		return
	}
	delete(a.ep, k)
	delete(a.epInUse, id)
}
