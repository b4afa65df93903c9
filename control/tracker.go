package control

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Sink receives object changes from a Source. Every method only records the
// change and returns at once (kube-proxy's change trackers); the controller's
// runner applies them. Objects passed in must not be modified afterwards.
type Sink interface {
	// UpsertService records a Service as added or updated.
	UpsertService(svc *v1.Service)
	// DeleteService records that a Service is gone.
	DeleteService(namespace, name string)
	// UpsertEndpointSlice records an EndpointSlice as added or updated.
	UpsertEndpointSlice(s *discoveryv1.EndpointSlice)
	// DeleteEndpointSlice records that an EndpointSlice is gone.
	DeleteEndpointSlice(namespace, name string)
	// SetNode records this node's Node object (nil: deleted or unknown).
	SetNode(n *v1.Node)
	// Synced says that the source has delivered its complete initial state.
	// Nothing is built or published before the first call.
	Synced()
}

// Source delivers Services, EndpointSlices and the Node to a Sink until ctx
// ends. ManifestSource and KubeSource implement it.
type Source interface {
	Run(ctx context.Context, sink Sink) error
}

// changes is what the tracker hands to one sync.
type changes struct {
	services     map[nsName]*v1.Service
	slices       map[nsName]*discoveryv1.EndpointSlice
	node         *v1.Node
	nodeSet      bool
	svcCount     int
	epCount      int
	triggerTimes []time.Time
}

// tracker collects changes between syncs. mu guards every field; notify
// (the runner's Notify) is called after each recorded change.
type tracker struct {
	clock  Clock
	notify func()
	queued func() // proxy health QueuedUpdate

	mu      sync.Mutex
	pending changes
	synced  bool
	// lastQueued is the time of the latest recorded change (metric).
	lastQueued time.Time
}

func newTracker(clock Clock, notify, queued func()) *tracker {
	t := &tracker{clock: clock, notify: notify, queued: queued}
	t.reset()
	return t
}

func (t *tracker) reset() {
	t.pending = changes{
		services: make(map[nsName]*v1.Service),
		slices:   make(map[nsName]*discoveryv1.EndpointSlice),
	}
}

func (t *tracker) record(f func()) {
	t.mu.Lock()
	f()
	t.lastQueued = t.clock.Now()
	synced := t.synced
	t.mu.Unlock()
	if synced {
		t.queued()
	}
	t.notify()
}

// UpsertService implements Sink.
func (t *tracker) UpsertService(svc *v1.Service) {
	t.record(func() {
		t.pending.services[nsName{svc.Namespace, svc.Name}] = svc
		t.pending.svcCount++
	})
}

// DeleteService implements Sink.
func (t *tracker) DeleteService(namespace, name string) {
	t.record(func() {
		t.pending.services[nsName{namespace, name}] = nil
		t.pending.svcCount++
	})
}

// UpsertEndpointSlice implements Sink.
func (t *tracker) UpsertEndpointSlice(s *discoveryv1.EndpointSlice) {
	t.record(func() {
		t.pending.slices[nsName{s.Namespace, s.Name}] = s
		t.pending.epCount++
		if v, ok := s.Annotations[v1.EndpointsLastChangeTriggerTime]; ok {
			if tt, err := time.Parse(time.RFC3339Nano, v); err == nil {
				t.pending.triggerTimes = append(t.pending.triggerTimes, tt)
			}
		}
	})
}

// DeleteEndpointSlice implements Sink.
func (t *tracker) DeleteEndpointSlice(namespace, name string) {
	t.record(func() {
		t.pending.slices[nsName{namespace, name}] = nil
		t.pending.epCount++
	})
}

// SetNode implements Sink.
func (t *tracker) SetNode(n *v1.Node) {
	t.record(func() {
		t.pending.node, t.pending.nodeSet = n, true
	})
}

// Synced implements Sink.
func (t *tracker) Synced() {
	t.mu.Lock()
	t.synced = true
	t.mu.Unlock()
	t.queued()
	t.notify()
}

// pendingCounts returns the numbers of queued Service and EndpointSlice
// changes.
func (t *tracker) pendingCounts() (svc, ep int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pending.svcCount, t.pending.epCount
}

// take returns the pending changes and clears them; ok is false before the
// source has synced (changes stay queued).
func (t *tracker) take() (c changes, lastQueued time.Time, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.synced {
		return changes{}, time.Time{}, false
	}
	c = t.pending
	t.reset()
	return c, t.lastQueued, true
}
