package control

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// DefaultManifestInterval is how often ManifestSource checks its file.
const DefaultManifestInterval = time.Second

// ManifestSource reads Services, EndpointSlices and Nodes from a file
// holding a YAML (or JSON) stream of objects as `kubectl get -o yaml` prints
// them, including `kind: List` documents, and reloads it when it changes
// (standalone mode, no cluster).
//
// The file is polled every Interval: a change of modification time or size
// triggers a read, and the content hash decides whether anything changed. A
// file that cannot be read or decoded is logged (file, document index,
// field) and the last good state is kept. Objects that decode but hold bad
// values are not a file error: the builder skips them individually.
//
// # Files being written
//
// Replace the file atomically (write a temporary file, rename it over the
// old one). A file rewritten in place is read, sooner or later, while it is
// half written, and a YAML stream cut at a line boundary usually still
// parses: applied, it would delete the Services it lost, and bring them
// back with new IDs (and empty affinity) a second later. So a file is
// applied only when it looks finished:
//
//   - It is settled: unchanged for a quarter of the Interval (250 ms by
//     default), by its modification time, or else by reading it again
//     that much later. A writer that never pauses that long is never read
//     half-way. The wait is short so that a change still takes effect
//     within about one Interval (ClientIP affinity timeouts of a few
//     seconds rely on it); the checks below hold whatever the pauses. (Not
//     before the first good state: there is nothing to lose yet, and
//     start-up is not delayed; a file cut at a boundary then only adds
//     objects later.)
//   - It is not empty: a file with no document (empty, blank, comments or
//     "---" only) is what an in-place rewrite looks like right after the
//     truncation, and keeps the last good state. To remove every object,
//     write an explicit empty list: "apiVersion: v1", "kind: List",
//     "items: []".
//   - It ends in a newline, unless it is a single JSON document ending in
//     "}": a cut inside a line can leave a shorter but valid value (port
//     8080 cut to 80).
//   - Every document is a complete known object: apiVersion, kind and
//     metadata.name; a List has items (possibly []); a Service that is not
//     headless or ExternalName has spec.ports and an EndpointSlice an
//     addressType, as the API server requires. A document cut short
//     usually lacks one of them.
//
// A cut exactly at a document or list-item boundary that stays for longer
// than the settling time is indistinguishable from a smaller file and is
// applied.
type ManifestSource struct {
	// Path is the manifest file.
	Path string
	// NodeName selects the Node object used (others are ignored).
	NodeName string
	// Interval defaults to DefaultManifestInterval.
	Interval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock defaults to RealClock.
	Clock Clock
}

// manifestState is one decoded file.
type manifestState struct {
	services map[nsName]*v1.Service
	slices   map[nsName]*discoveryv1.EndpointSlice
	node     *v1.Node
	// docs is the number of non-empty documents: 0 for a file that is
	// empty, blank or only comments and separators.
	docs int
}

// checkComplete rejects a non-empty file that does not end in a newline
// (it was cut inside a line), unless it is one JSON document ending in "}"
// (a cut JSON document does not parse). The returned state is always nil.
func checkComplete(data []byte) (*manifestState, error) {
	t := bytes.TrimSpace(data)
	if len(t) == 0 || data[len(data)-1] == '\n' || (t[0] == '{' && t[len(t)-1] == '}') {
		return nil, nil
	}
	return nil, fmt.Errorf("%w: does not end in a newline: incomplete (being written?)", ErrManifest)
}

// Run implements Source. The first successful load calls Synced; until the
// file is valid nothing is published. Run returns when ctx ends.
func (m *ManifestSource) Run(ctx context.Context, sink Sink) error {
	interval, clock := m.Interval, m.Clock
	if interval <= 0 {
		interval = DefaultManifestInterval
	}
	if clock == nil {
		clock = RealClock{}
	}
	l := m.loader()
	l.check(sink)
	for {
		wait := interval
		if l.pending {
			wait = l.settle // look again soon: the change may be complete then
		}
		select {
		case <-ctx.Done():
			return nil
		case <-clock.After(wait):
			l.check(sink)
		}
	}
}

func (m *ManifestSource) loader() *manifestLoader {
	log := m.Logger
	if log == nil {
		log = slog.Default()
	}
	interval := m.Interval
	if interval <= 0 {
		interval = DefaultManifestInterval
	}
	return &manifestLoader{path: m.Path, nodeName: m.NodeName, log: log.With("file", m.Path), settle: interval / 4}
}

// manifestLoader is the state of one ManifestSource.Run: the last good
// decoded file and what was last seen of it. Used by one goroutine.
type manifestLoader struct {
	path, nodeName string
	log            *slog.Logger

	cur      *manifestState
	lastStat os.FileInfo
	lastHash [32]byte
	synced   bool
	// settle is how long a change must stay unchanged before it is
	// applied; seen is the hash of the unapplied content read last (valid
	// when pending).
	settle  time.Duration
	pending bool
	seen    [32]byte
}

// check reloads the file if it changed and sends the differences to sink.
// It reports whether a new state was applied.
func (l *manifestLoader) check(sink Sink) bool {
	st, err := os.Stat(l.path)
	if err != nil {
		if l.lastStat != nil || !l.synced {
			l.log.Error("manifest unreadable; keeping last good state", "err", err)
		}
		l.lastStat = nil
		return false
	}
	if !l.pending && l.lastStat != nil && st.ModTime().Equal(l.lastStat.ModTime()) && st.Size() == l.lastStat.Size() {
		return false
	}
	l.lastStat = st
	data, err := os.ReadFile(l.path)
	if err != nil {
		l.log.Error("manifest unreadable; keeping last good state", "err", err)
		return false
	}
	h := sha256.Sum256(data)
	if l.cur != nil && h == l.lastHash {
		l.pending = false
		return false
	}
	// The modification time is the kernel's wall clock, so its age is
	// measured with the wall clock, not the injected Clock. Before the
	// first good state there is nothing to lose: no wait.
	settled := l.cur == nil || (l.pending && h == l.seen) || time.Since(st.ModTime()) >= l.settle
	if !settled {
		l.pending, l.seen = true, h
		l.log.Debug("manifest changed just now; reading it again before applying it", "after", l.settle)
		return false
	}
	l.pending = false
	next, err := checkComplete(data)
	if err == nil {
		next, err = decodeManifest(bytes.NewReader(data), l.nodeName)
	}
	if err == nil && next.docs == 0 {
		err = fmt.Errorf("%w: no objects: incomplete (being rewritten?); to remove every object write a List with items: []", ErrManifest)
	}
	if err != nil {
		l.log.Error("invalid manifest; keeping last good state", "err", err)
		return false
	}
	l.lastHash = h
	applyManifest(l.cur, next, sink)
	l.cur = next
	l.log.Info("manifest loaded", "services", len(next.services), "endpointSlices", len(next.slices), "node", next.node != nil)
	if !l.synced {
		l.synced = true
		sink.Synced()
	}
	return true
}

// applyManifest sends sink the differences between prev (nil at start) and
// next.
func applyManifest(prev, next *manifestState, sink Sink) {
	if prev == nil {
		prev = &manifestState{}
		sink.SetNode(next.node)
	} else if !equality.Semantic.DeepEqual(prev.node, next.node) {
		sink.SetNode(next.node)
	}
	for k, s := range next.services {
		if old, ok := prev.services[k]; !ok || !equality.Semantic.DeepEqual(old, s) {
			sink.UpsertService(s)
		}
	}
	for k := range prev.services {
		if _, ok := next.services[k]; !ok {
			sink.DeleteService(k.ns, k.name)
		}
	}
	for k, s := range next.slices {
		if old, ok := prev.slices[k]; !ok || !equality.Semantic.DeepEqual(old, s) {
			sink.UpsertEndpointSlice(s)
		}
	}
	for k := range prev.slices {
		if _, ok := next.slices[k]; !ok {
			sink.DeleteEndpointSlice(k.ns, k.name)
		}
	}
}

// typeMeta is the part of a document that says what it is.
type typeMeta struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"` // nil when absent or null
}

// decodeManifest decodes a YAML or JSON stream of v1 Services,
// discovery.k8s.io/v1 EndpointSlices, v1 Nodes and v1 Lists of them. Only the
// Node named nodeName is kept. Any undecodable document, unknown kind,
// missing name or duplicate object fails the whole stream with an error
// wrapping ErrManifest that names the document (0-based) and, for a List,
// the item.
func decodeManifest(r io.Reader, nodeName string) (*manifestState, error) {
	st := &manifestState{
		services: make(map[nsName]*v1.Service),
		slices:   make(map[nsName]*discoveryv1.EndpointSlice),
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for doc := 0; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: document %d: %v", ErrManifest, doc, err)
		}
		js, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: document %d: %v", ErrManifest, doc, err)
		}
		if len(bytes.TrimSpace(js)) == 0 || string(bytes.TrimSpace(js)) == "null" {
			continue // empty document
		}
		if err := st.add(js, fmt.Sprintf("document %d", doc), nodeName, true); err != nil {
			return nil, err
		}
		st.docs++
	}
}

func (st *manifestState) add(js []byte, where, nodeName string, listOK bool) error {
	var tm typeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrManifest, where, err)
	}
	switch {
	case tm.APIVersion == "v1" && tm.Kind == "List" && listOK:
		if tm.Items == nil {
			return fmt.Errorf("%w: %s (List): items: missing (an empty list is items: [])", ErrManifest, where)
		}
		for i, item := range tm.Items {
			if err := st.add(item, fmt.Sprintf("%s: items[%d]", where, i), nodeName, false); err != nil {
				return err
			}
		}
		return nil
	case tm.APIVersion == "v1" && tm.Kind == "Service":
		svc := &v1.Service{}
		if err := json.Unmarshal(js, svc); err != nil {
			return fmt.Errorf("%w: %s (Service): %v", ErrManifest, where, err)
		}
		if svc.Name == "" {
			return fmt.Errorf("%w: %s (Service): metadata.name: missing", ErrManifest, where)
		}
		if svc.Namespace == "" {
			svc.Namespace = "default"
		}
		k := nsName{svc.Namespace, svc.Name}
		if len(svc.Spec.Ports) == 0 && svc.Spec.Type != v1.ServiceTypeExternalName && svc.Spec.ClusterIP != v1.ClusterIPNone {
			// Required by the API server (ValidateService) for every
			// Service but headless and ExternalName ones.
			return fmt.Errorf("%w: %s: Service %s: spec.ports: missing (incomplete?)", ErrManifest, where, k)
		}
		if _, dup := st.services[k]; dup {
			return fmt.Errorf("%w: %s: Service %s: duplicate", ErrManifest, where, k)
		}
		st.services[k] = svc
	case tm.APIVersion == "discovery.k8s.io/v1" && tm.Kind == "EndpointSlice":
		s := &discoveryv1.EndpointSlice{}
		if err := json.Unmarshal(js, s); err != nil {
			return fmt.Errorf("%w: %s (EndpointSlice): %v", ErrManifest, where, err)
		}
		if s.Name == "" {
			return fmt.Errorf("%w: %s (EndpointSlice): metadata.name: missing", ErrManifest, where)
		}
		if s.Namespace == "" {
			s.Namespace = "default"
		}
		k := nsName{s.Namespace, s.Name}
		if s.AddressType == "" {
			return fmt.Errorf("%w: %s: EndpointSlice %s: addressType: missing (incomplete?)", ErrManifest, where, k)
		}
		if _, dup := st.slices[k]; dup {
			return fmt.Errorf("%w: %s: EndpointSlice %s: duplicate", ErrManifest, where, k)
		}
		st.slices[k] = s
	case tm.APIVersion == "v1" && tm.Kind == "Node":
		n := &v1.Node{}
		if err := json.Unmarshal(js, n); err != nil {
			return fmt.Errorf("%w: %s (Node): %v", ErrManifest, where, err)
		}
		if n.Name == "" {
			return fmt.Errorf("%w: %s (Node): metadata.name: missing", ErrManifest, where)
		}
		if n.Name == nodeName {
			st.node = n
		}
	default:
		return fmt.Errorf("%w: %s: unsupported apiVersion %q kind %q (want v1 Service, Node or List, discovery.k8s.io/v1 EndpointSlice)", ErrManifest, where, tm.APIVersion, tm.Kind)
	}
	return nil
}
