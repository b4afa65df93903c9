package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/nat"
	"github.com/xdpgate/xdpgate/pipeline"
	"github.com/xdpgate/xdpgate/snapshot"
)

// The admin socket serves `xdpgate inspect` with HTTP+JSON over a unix
// socket readable by root only. HTTP (rather than a bespoke protocol) lets
// operators use `curl --unix-socket /run/xdpgate/admin.sock http://x/v1/stats`.
// Every handler reads published state only (the snapshot pointer, lock-free
// table walks, atomically published counters): an inspection never blocks
// a poller.

// defaultConntrackLimit bounds /v1/conntrack when no limit is given.
const defaultConntrackLimit = 1000

// Service is one service port in /v1/services.
type Service struct {
	ID                  uint32         `json:"id"`
	Namespace           string         `json:"namespace"`
	Name                string         `json:"name"`
	PortName            string         `json:"portName,omitempty"`
	Protocol            string         `json:"protocol"`
	Port                uint16         `json:"port"`
	NodePort            uint16         `json:"nodePort,omitempty"`
	ClusterIPs          []netip.Addr   `json:"clusterIPs,omitempty"`
	ExternalIPs         []netip.Addr   `json:"externalIPs,omitempty"`
	LoadBalancerIPs     []netip.Addr   `json:"loadBalancerIPs,omitempty"`
	SourceRanges        []netip.Prefix `json:"sourceRanges,omitempty"`
	ExternalPolicy      string         `json:"externalTrafficPolicy"`
	InternalPolicy      string         `json:"internalTrafficPolicy"`
	HealthCheckNodePort uint16         `json:"healthCheckNodePort,omitempty"`
	AffinitySeconds     uint32         `json:"affinityTimeoutSeconds,omitempty"`
	Endpoints           []Endpoint     `json:"endpoints"`
}

// Endpoint is one endpoint of an Service.
type Endpoint struct {
	ID          uint32         `json:"id"`
	Addr        netip.AddrPort `json:"addr"`
	Node        string         `json:"node,omitempty"`
	Local       bool           `json:"local"`
	Ready       bool           `json:"ready"`
	Serving     bool           `json:"serving"`
	Terminating bool           `json:"terminating"`
	InCluster   bool           `json:"inCluster"`
	InLocal     bool           `json:"inLocal"`
}

// Services is the /v1/services answer.
type Services struct {
	Generation uint64    `json:"generation"`
	Services   []Service `json:"services"`
}

// Flow is one flow in /v1/conntrack.
type Flow struct {
	Proto     string `json:"proto"`
	State     string `json:"state"`
	Service   string `json:"service,omitempty"`
	Endpoint  uint32 `json:"endpointID"`
	Orig      Tuple  `json:"orig"`
	Reply     Tuple  `json:"reply"`
	Replied   bool   `json:"replied"`
	Assured   bool   `json:"assured"`
	IdleMilli int64  `json:"idleMs"`
	// TimeoutMilli is the flow's idle timeout (conntrack.Entry.Timeout).
	TimeoutMilli int64     `json:"timeoutMs"`
	Packets      [2]uint64 `json:"packets"`
	Bytes        [2]uint64 `json:"bytes"`
}

// Tuple is one direction of a flow.
type Tuple struct {
	Src netip.AddrPort `json:"src"`
	Dst netip.AddrPort `json:"dst"`
}

// Conntrack is the /v1/conntrack answer.
type Conntrack struct {
	Flows []Flow `json:"flows"`
	// Matched counts every matching flow; Truncated is true when Flows
	// holds fewer because of the limit.
	Matched   int  `json:"matched"`
	Truncated bool `json:"truncated"`
}

// Affinity is one entry in /v1/affinity.
type Affinity struct {
	Service        string     `json:"service"`
	ServicePortID  uint32     `json:"servicePortID"`
	Client         netip.Addr `json:"client"`
	EndpointID     uint32     `json:"endpointID"`
	Endpoint       string     `json:"endpoint,omitempty"`
	RemainingMilli int64      `json:"remainingMs"`
	TimeoutSeconds uint32     `json:"timeoutSeconds"`
}

// Queue is one queue in /v1/stats.
type Queue struct {
	Interface     string            `json:"interface"`
	Queue         int               `json:"queue"`
	ZeroCopy      bool              `json:"zeroCopy"`
	RxFrames      uint64            `json:"rxFrames"`
	RxBytes       uint64            `json:"rxBytes"`
	TxFrames      uint64            `json:"txFrames"`
	TxBytes       uint64            `json:"txBytes"`
	TxCopied      uint64            `json:"txCopied"`
	TxRingFull    uint64            `json:"txRingFull"`
	FillRingEmpty uint64            `json:"fillRingEmpty"`
	NeighHeld     uint64            `json:"neighHeld"`
	NeighReleased uint64            `json:"neighReleased"`
	Drops         map[string]uint64 `json:"drops,omitempty"`
	// Kernel is what the kernel counted for the socket (XDP_STATISTICS).
	Kernel Kernel `json:"kernel"`
}

// Kernel is one socket's XDP_STATISTICS in /v1/stats: frames the kernel
// lost before the poller saw them (dataplane.KernelXSKStats).
type Kernel struct {
	RxDropped      uint64 `json:"rxDropped"`
	RxRingFull     uint64 `json:"rxRingFull"`
	FillRingEmpty  uint64 `json:"fillRingEmpty"`
	TxRingEmpty    uint64 `json:"txRingEmpty"`
	RxInvalidDescs uint64 `json:"rxInvalidDescs"`
	TxInvalidDescs uint64 `json:"txInvalidDescs"`
	// RingCounters is false on kernels before 5.9, which report only
	// rxDropped and the invalid descriptors.
	RingCounters bool `json:"ringCounters"`
}

// Classifier is the XDP classifier's decisions in /v1/stats, packets by
// reason, with the names of xdpgate_classifier_packets_total: Redirect to an
// AF_XDP socket, Pass to the kernel. Each packet is counted once.
type Classifier struct {
	Redirect map[string]uint64 `json:"redirect"`
	Pass     map[string]uint64 `json:"pass"`
}

// Stats is the /v1/stats answer.
type Stats struct {
	Queues   []Queue               `json:"queues"`
	Pipeline []pipeline.QueueStats `json:"pipeline"`
	// Drops sums QueueStats.Drops over the queues, by reason.
	Drops     map[string]uint64 `json:"drops"`
	Conntrack *conntrack.Stats  `json:"conntrack,omitempty"`
	Affinity  *affinity.Stats   `json:"affinity,omitempty"`
	// Classifier is absent when the classifier's counters cannot be read.
	Classifier *Classifier `json:"classifier,omitempty"`
}

// Handler returns the admin API's handler.
func Handler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, servicesOf(src.snap()))
	})
	mux.HandleFunc("GET /v1/conntrack", func(w http.ResponseWriter, r *http.Request) {
		f, err := parseFlowFilter(r.URL.Query(), src.snap())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		streamConntrack(w, src, f)
	})
	mux.HandleFunc("GET /v1/affinity", func(w http.ResponseWriter, r *http.Request) {
		f, err := parseFlowFilter(r.URL.Query(), src.snap())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		streamAffinity(w, src, f)
	})
	mux.HandleFunc("GET /v1/load", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var ids map[uint32]bool
		if v := q.Get("service"); v != "" {
			var err error
			if ids, err = serviceIDs(src.snap(), v); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		top, ok := parseTop(q.Get("top"))
		if !ok {
			http.Error(w, fmt.Sprintf("top %q: want 0-1000", q.Get("top")), http.StatusBadRequest)
			return
		}
		writeJSON(w, Load{Services: loadsOf(src, ids, true, top)})
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, statsOf(src))
	})
	mux.HandleFunc("GET /v1/top", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, topOf(src))
	})
	mux.HandleFunc("GET /v1/devices", func(w http.ResponseWriter, r *http.Request) {
		out := []dataplane.DeviceStatus{}
		if src.Devices != nil {
			out = append(out, src.Devices()...)
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /v1/capture", func(w http.ResponseWriter, r *http.Request) {
		serveCapture(src, w, r)
	})
	return mux
}

func (s Source) snap() *snapshot.Snapshot {
	if s.Snapshot == nil {
		return nil
	}
	return s.Snapshot()
}

func (s Source) clock() int64 {
	if s.Now == nil {
		return 0
	}
	return s.Now()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing to do
}

func policyName(local bool) string {
	if local {
		return "Local"
	}
	return "Cluster"
}

func servicesOf(s *snapshot.Snapshot) Services {
	out := Services{Services: []Service{}}
	if s == nil {
		return out
	}
	out.Generation = s.Generation
	for i := range s.ServicePorts {
		sp := &s.ServicePorts[i]
		as := Service{
			ID: sp.ID, Namespace: sp.Namespace, Name: sp.Name, PortName: sp.PortName,
			Protocol: sp.Protocol.String(), Port: sp.Port, NodePort: sp.NodePort,
			ClusterIPs: sp.ClusterIPs, ExternalIPs: sp.ExternalIPs, LoadBalancerIPs: sp.LoadBalancerIPs,
			SourceRanges:   sp.SourceRanges,
			ExternalPolicy: policyName(sp.ExternalPolicyLocal), InternalPolicy: policyName(sp.InternalPolicyLocal),
			HealthCheckNodePort: sp.HealthCheckNodePort, AffinitySeconds: sp.AffinitySeconds,
			Endpoints: make([]Endpoint, 0, len(sp.Endpoints)),
		}
		for _, ep := range sp.Endpoints {
			as.Endpoints = append(as.Endpoints, Endpoint{
				ID: ep.ID, Addr: ep.AddrPort(), Node: ep.NodeName, Local: ep.Local,
				Ready: ep.Ready, Serving: ep.Serving, Terminating: ep.Terminating,
				InCluster: ep.InCluster, InLocal: ep.InLocal,
			})
		}
		out.Services = append(out.Services, as)
	}
	return out
}

// flowFilter selects flows and affinity entries. Zero fields match
// everything.
type flowFilter struct {
	host  netip.Addr
	port  uint16
	proto nat.Proto
	// services are the IDs of the service ports of --service ns/name
	// (nil: any).
	services map[uint32]bool
	limit    int
}

// parseFlowFilter reads host, port, proto, service and limit from q.
func parseFlowFilter(q map[string][]string, s *snapshot.Snapshot) (flowFilter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	f := flowFilter{limit: defaultConntrackLimit}
	if v := get("host"); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return f, fmt.Errorf("host: %w", err)
		}
		f.host = a.Unmap()
	}
	if v := get("port"); v != "" {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil || p == 0 {
			return f, fmt.Errorf("port %q: want 1-65535", v)
		}
		f.port = uint16(p)
	}
	switch strings.ToLower(get("proto")) {
	case "":
	case "tcp":
		f.proto = nat.ProtoTCP
	case "udp":
		f.proto = nat.ProtoUDP
	case "sctp":
		f.proto = nat.ProtoSCTP
	case "icmp":
		f.proto = nat.ProtoICMP
	case "icmpv6":
		f.proto = nat.ProtoICMPv6
	default:
		return f, fmt.Errorf("proto %q: want tcp, udp, sctp, icmp or icmpv6", get("proto"))
	}
	if v := get("service"); v != "" {
		ids, err := serviceIDs(s, v)
		if err != nil {
			return f, err
		}
		f.services = ids
	}
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return f, fmt.Errorf("limit %q: want a number >= 0 (0: no limit)", v)
		}
		f.limit = n
	}
	return f, nil
}

// serviceIDs returns the IDs of the service ports of "ns/name" in s.
func serviceIDs(s *snapshot.Snapshot, nsName string) (map[uint32]bool, error) {
	ns, name, ok := strings.Cut(nsName, "/")
	if !ok || ns == "" || name == "" {
		return nil, fmt.Errorf("service %q: want namespace/name", nsName)
	}
	ids := map[uint32]bool{}
	if s != nil {
		for i := range s.ServicePorts {
			if sp := &s.ServicePorts[i]; sp.Namespace == ns && sp.Name == name {
				ids[sp.ID] = true
			}
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("service %s: not found", nsName)
	}
	return ids, nil
}

// matchTuple reports whether one direction of a flow matches the host and
// port parts of f.
func (f flowFilter) matchTuple(t conntrack.Tuple) bool {
	if f.host.IsValid() && t.SrcAddr() != f.host && t.DstAddr() != f.host {
		return false
	}
	if f.port != 0 && t.SrcPort != f.port && t.DstPort != f.port {
		return false
	}
	return true
}

func (f flowFilter) matchEntry(e *conntrack.Entry) bool {
	if f.proto != 0 && e.Orig.Proto != f.proto {
		return false
	}
	if f.services != nil && !f.services[e.ServicePort] {
		return false
	}
	return f.matchTuple(e.Orig) || f.matchTuple(e.Reply)
}

func protoName(p nat.Proto) string {
	switch p {
	case nat.ProtoICMP:
		return "icmp"
	case nat.ProtoTCP:
		return "tcp"
	case nat.ProtoUDP:
		return "udp"
	case nat.ProtoICMPv6:
		return "icmpv6"
	case nat.ProtoSCTP:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// spNames maps service port IDs to "ns/name:port/PROTO" and endpoint IDs to
// "addr:port" for a snapshot.
type spNames struct {
	svc map[uint32]string
	ep  map[uint32]string
}

func namesOf(s *snapshot.Snapshot) spNames {
	n := spNames{svc: map[uint32]string{}, ep: map[uint32]string{}}
	if s == nil {
		return n
	}
	for i := range s.ServicePorts {
		sp := &s.ServicePorts[i]
		n.svc[sp.ID] = sp.Key()
		for _, ep := range sp.Endpoints {
			n.ep[ep.ID] = ep.AddrPort().String()
		}
	}
	return n
}

// walkConntrack calls fn for each flow matching f, up to f.limit (0: all),
// and returns how many matched and whether the limit cut the list. fn
// returning false stops the walk (the client went away).
func walkConntrack(src Source, f flowFilter, fn func(*Flow) bool) (matched int, truncated bool) {
	if src.Conntrack == nil {
		return 0, false
	}
	names := namesOf(src.snap())
	now := src.clock()
	shown := 0
	var fl Flow
	src.Conntrack.Range(func(e *conntrack.Entry) bool {
		if !f.matchEntry(e) {
			return true
		}
		matched++
		if f.limit > 0 && shown >= f.limit {
			truncated = true
			return true
		}
		shown++
		fl = Flow{
			Proto: protoName(e.Orig.Proto), State: e.State.String(),
			Service: names.svc[e.ServicePort], Endpoint: e.Endpoint,
			Orig:    Tuple{netip.AddrPortFrom(e.Orig.SrcAddr(), e.Orig.SrcPort), netip.AddrPortFrom(e.Orig.DstAddr(), e.Orig.DstPort)},
			Reply:   Tuple{netip.AddrPortFrom(e.Reply.SrcAddr(), e.Reply.SrcPort), netip.AddrPortFrom(e.Reply.DstAddr(), e.Reply.DstPort)},
			Replied: e.Replied, IdleMilli: max(now-e.LastSeen, 0) / int64(time.Millisecond),
			Assured: e.Assured, TimeoutMilli: e.Timeout / int64(time.Millisecond),
			Packets: e.Packets, Bytes: e.Bytes,
		}
		return fn(&fl)
	})
	return matched, truncated
}

// walkAffinity calls fn for each affinity entry matching f, up to f.limit
// (0: all); fn returning false stops the walk.
func walkAffinity(src Source, f flowFilter, fn func(*Affinity) bool) {
	if src.Affinity == nil {
		return
	}
	names := namesOf(src.snap())
	now := src.clock()
	n := 0
	var a Affinity
	src.Affinity.Range(now, func(e affinity.Entry) bool {
		if f.services != nil && !f.services[e.ServicePort] {
			return true
		}
		if f.host.IsValid() && e.Client != f.host {
			return true
		}
		if f.limit > 0 && n >= f.limit {
			return false
		}
		n++
		a = Affinity{
			Service: names.svc[e.ServicePort], ServicePortID: e.ServicePort,
			Client: e.Client, EndpointID: e.Endpoint, Endpoint: names.ep[e.Endpoint],
			RemainingMilli: e.Remaining(now).Milliseconds(), TimeoutSeconds: e.TimeoutSeconds,
		}
		return fn(&a)
	})
}

func dropMap(d *[dataplane.NumDropReasons]uint64, into map[string]uint64) map[string]uint64 {
	for r, n := range d {
		if n != 0 {
			if into == nil {
				into = map[string]uint64{}
			}
			into[dataplane.DropReason(r).String()] += n
		}
	}
	return into
}

func statsOf(src Source) Stats {
	out := Stats{Queues: []Queue{}, Pipeline: []pipeline.QueueStats{}, Drops: map[string]uint64{}}
	if src.Queues != nil {
		for _, q := range src.Queues() {
			out.Queues = append(out.Queues, Queue{
				Interface: q.Ifname, Queue: q.QueueID, ZeroCopy: q.ZeroCopy,
				RxFrames: q.RxFrames, RxBytes: q.RxBytes, TxFrames: q.TxFrames, TxBytes: q.TxBytes,
				TxCopied: q.TxCopied, TxRingFull: q.TxRingFull, FillRingEmpty: q.FillRingEmpty,
				NeighHeld: q.NeighHeld, NeighReleased: q.NeighReleased,
				Drops: dropMap(&q.Drops, nil),
				Kernel: Kernel{RxDropped: q.Kernel.RxDropped, RxRingFull: q.Kernel.RxRingFull,
					FillRingEmpty: q.Kernel.RxFillRingEmpty, TxRingEmpty: q.Kernel.TxRingEmpty,
					RxInvalidDescs: q.Kernel.RxInvalidDescs, TxInvalidDescs: q.Kernel.TxInvalidDescs,
					RingCounters: q.Kernel.RingCounters},
			})
			dropMap(&q.Drops, out.Drops)
		}
	}
	if src.Pipeline != nil {
		out.Pipeline = src.Pipeline()
	}
	if src.Conntrack != nil {
		st := src.Conntrack.Stats()
		out.Conntrack = &st
	}
	if src.Affinity != nil {
		st := src.Affinity.Stats()
		out.Affinity = &st
	}
	if src.ClassifierCounters != nil {
		if cc, err := src.ClassifierCounters(); err == nil {
			cls := &Classifier{Redirect: map[string]uint64{}, Pass: map[string]uint64{}}
			for _, e := range classifierCounts(cc) {
				if e.action == "redirect" {
					cls.Redirect[e.reason] = e.n
				} else {
					cls.Pass[e.reason] = e.n
				}
			}
			out.Classifier = cls
		}
	}
	return out
}

// Server is a running admin socket.
type Server struct {
	path string
	srv  *http.Server
	done chan struct{}
}

// Start listens on the unix socket path (mode 0600, parent directory
// created 0700 when missing, a stale socket replaced) and serves h until
// Close.
func Start(path string, h http.Handler, log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("admin socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("admin socket %s: exists and is not a socket", path)
		}
		// A live xdpgate still answering owns it: do not steal it.
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale admin socket: %w", err)
		}
	}
	// The umask makes the socket 0600 from its creation (no window in which
	// another user could connect before a chmod).
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket mode: %w", err)
	}
	a := &Server{path: path, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin socket", "err", err)
		}
	}()
	log.Info("admin socket listening", "path", path)
	return a, nil
}

// Close stops the server (open requests get up to 2 s) and removes the
// socket file.
func (a *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	if err != nil {
		err = a.srv.Close()
	}
	<-a.done
	if rmErr := os.Remove(a.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
		err = rmErr
	}
	return err
}
