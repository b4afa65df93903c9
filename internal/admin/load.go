package admin

import (
	"strconv"

	"github.com/xdpgate/xdpgate/conntrack"
	"github.com/xdpgate/xdpgate/pipeline"
)

// /v1/load answers "how are a ClientIP service's clients spread": per
// endpoint its pinned clients, live flows and new connections, the
// service's imbalance (max/mean pinned clients), and on request its
// heaviest client addresses. Pinned clients and new connections are the
// pipeline's exact counters (pipeline.EndpointLoads); live flows come from
// one walk of the flow table (a few tens of milliseconds per million flows
// of capacity, on the admin goroutine).

// DefaultTop is how many heavy clients `xdpgate inspect affinity --top`
// shows unless told.
const DefaultTop = 20

// EndpointLoad is one endpoint in /v1/load.
type EndpointLoad struct {
	ID       uint32 `json:"id"`
	Endpoint string `json:"endpoint"`
	// Departed: the endpoint left the service and still has pinned
	// clients, which move on their next connection.
	Departed bool `json:"departed,omitempty"`
	// Pinned counts the clients pinned to it; Flows its live flows;
	// NewConnections the flows this gateway sent to it since it joined
	// (or since xdpgate started); ConnectionsPerSecond their rate over
	// the pipeline's last load sample (pipeline.LoadSampleEvery).
	Pinned               uint64  `json:"pinned"`
	Flows                uint64  `json:"flows"`
	NewConnections       uint64  `json:"newConnections"`
	ConnectionsPerSecond float64 `json:"connectionsPerSecond"`
	// MovedIn counts clients that came here from departed endpoints;
	// MovedOut, for a departed endpoint, those that have left it.
	MovedIn  uint64 `json:"movedIn,omitempty"`
	MovedOut uint64 `json:"movedOut,omitempty"`
}

// ServiceLoad is one ClientIP service port (both IP families) in
// /v1/load.
type ServiceLoad struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	PortName  string `json:"portName,omitempty"`
	Protocol  string `json:"protocol"`
	// IDs are the service port IDs (one per IP family).
	IDs                    []uint32 `json:"ids"`
	AffinitySeconds        uint32   `json:"affinityTimeoutSeconds"`
	AffinityMaxLoadPercent uint32   `json:"affinityMaxLoadPercent,omitempty"`
	// Imbalance is max/mean pinned clients over the endpoints still in
	// the service (0 without pins): 1 is perfect balance.
	Imbalance float64        `json:"imbalance"`
	Endpoints []EndpointLoad `json:"endpoints"`
	// DepartedPins counts clients pinned to endpoints when they left,
	// Rebalanced those pinned to another endpoint since.
	DepartedPins uint64 `json:"departedPins"`
	Rebalanced   uint64 `json:"rebalanced"`
	// RebalanceOnScale is the port's xdpgate.io/affinity-rebalance-on-scale;
	// ScaleExpiries counts the pins it expired early.
	RebalanceOnScale bool   `json:"rebalanceOnScale,omitempty"`
	ScaleExpiries    uint64 `json:"scaleExpiries"`
	// Heavy is present when asked for (top > 0).
	Heavy *pipeline.HeavyClients `json:"heavy,omitempty"`
}

// Load is the /v1/load answer.
type Load struct {
	Services []ServiceLoad `json:"services"`
}

// imbalance is max/mean of the pinned clients of the endpoints that are
// not departed.
func imbalance(eps []EndpointLoad) float64 {
	var sum, most uint64
	n := 0
	for _, e := range eps {
		if e.Departed {
			continue
		}
		sum += e.Pinned
		most = max(most, e.Pinned)
		n++
	}
	if sum == 0 {
		return 0
	}
	return float64(most) * float64(n) / float64(sum)
}

// loadsOf aggregates the ClientIP service ports matching services (nil:
// all) per ServicePortLabels, in snapshot order. With flows it walks the
// flow table for the endpoints' live flows; with top > 0 it adds each
// service's heaviest clients.
func loadsOf(src Source, services map[uint32]bool, flows bool, top int) []ServiceLoad {
	if src.Loads == nil {
		return nil
	}
	out := []ServiceLoad{}
	at := map[pipeline.ServicePortLabels]int{}
	for _, l := range src.Loads() {
		if services != nil && !services[l.ID] {
			continue
		}
		i, ok := at[l.ServicePortLabels]
		if !ok {
			i = len(out)
			at[l.ServicePortLabels] = i
			out = append(out, ServiceLoad{Namespace: l.Namespace, Name: l.Name, PortName: l.PortName, Protocol: l.Protocol})
		}
		s := &out[i]
		s.IDs = append(s.IDs, l.ID)
		s.AffinitySeconds = max(s.AffinitySeconds, l.AffinitySeconds)
		s.AffinityMaxLoadPercent = max(s.AffinityMaxLoadPercent, l.MaxLoadPercent)
		s.RebalanceOnScale = s.RebalanceOnScale || l.RebalanceOnScale
		for _, e := range l.Endpoints {
			s.Endpoints = append(s.Endpoints, EndpointLoad{ID: e.ID, Endpoint: e.Endpoint, Departed: e.Departed, Pinned: e.Pins,
				NewConnections: e.NewConnections, ConnectionsPerSecond: e.ConnectionsPerSecond, MovedIn: e.MovedIn, MovedOut: e.MovedOut})
		}
	}
	if src.Services != nil {
		for _, st := range src.Services() {
			if i, ok := at[st.ServicePortLabels]; ok {
				out[i].DepartedPins, out[i].Rebalanced, out[i].ScaleExpiries = st.DepartedPins, st.Rebalanced, st.ScaleExpiries
			}
		}
	}
	if flows && src.Conntrack != nil && len(out) > 0 {
		type ref struct{ s, e int }
		byEP := map[uint32]ref{}
		for i := range out {
			for k := range out[i].Endpoints {
				byEP[out[i].Endpoints[k].ID] = ref{i, k}
			}
		}
		src.Conntrack.Range(func(e *conntrack.Entry) bool {
			if r, ok := byEP[e.Endpoint]; ok {
				out[r.s].Endpoints[r.e].Flows++
			}
			return true
		})
	}
	for i := range out {
		out[i].Imbalance = imbalance(out[i].Endpoints)
		if top > 0 && src.Heavy != nil {
			if h, ok := src.Heavy(out[i].IDs[0], top); ok {
				out[i].Heavy = &h
			}
		}
	}
	return out
}

// parseTop reads the top query parameter: 0 when absent.
func parseTop(v string) (int, bool) {
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 0 && n <= 1000
}
