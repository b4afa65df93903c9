package admin

import (
	"time"

	"github.com/xdpgate/xdpgate/affinity"
	"github.com/xdpgate/xdpgate/conntrack"
)

// /v1/top is one sample of what `xdpgate top` shows, aggregated in the
// server: one walk of the flow table and one of the affinity table,
// summed per service port, so the client receives a few hundred bytes per
// service instead of every flow.
//
// Per-service figures come from the live flows' own counters (conntrack
// keeps packets and bytes per flow and direction). A rate computed from two
// samples is therefore the traffic of the flows alive at both samples:
// a flow that ended in between takes its packets with it (the difference is
// clamped at zero) and a flow that started and ended in between is never
// seen. Gateway-wide figures (frames, new flows, drops) are the pollers'
// exact counters. Exact per-service counters are issue 17's item 1.
//
// Cost: the walks visit every record of both tables (capacity, not live
// entries): a few tens of milliseconds at a million flows, on the admin
// goroutine, never blocking a poller. `xdpgate top` asks once a second.

// TopService is one service port in /v1/top.
type TopService struct {
	ID        uint32 `json:"id"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	PortName  string `json:"portName,omitempty"`
	Protocol  string `json:"protocol"`
	Port      uint16 `json:"port"`
	// Endpoints counts the service port's endpoints, Ready the ready ones.
	Endpoints int `json:"endpoints"`
	Ready     int `json:"ready"`
	// Flows counts its live flows; Active those that saw a packet within
	// the last TopActiveWindow; Unreplied those that never saw a reply.
	Flows     int `json:"flows"`
	Active    int `json:"active"`
	Unreplied int `json:"unreplied"`
	// Packets and Bytes sum the live flows' counters, [0] client to
	// endpoint, [1] back.
	Packets [2]uint64 `json:"packets"`
	Bytes   [2]uint64 `json:"bytes"`
	// Affinity counts live ClientIP affinity entries (0 without affinity).
	Affinity int `json:"affinity"`
	// AffinitySeconds is the service port's ClientIP timeout (0: none).
	AffinitySeconds uint32 `json:"affinityTimeoutSeconds,omitempty"`
	// Load is, for a ClientIP service port, its endpoints' load
	// (and its departed endpoints that still have pinned clients).
	Load []TopEndpoint `json:"endpointLoad,omitempty"`
}

// TopEndpoint is one endpoint of a ClientIP service port in /v1/top: its
// pinned clients, live flows and new connections (exact, cumulative; top
// shows their rate).
type TopEndpoint struct {
	ID             uint32 `json:"id"`
	Endpoint       string `json:"endpoint"`
	Departed       bool   `json:"departed,omitempty"`
	Pinned         uint64 `json:"pinned"`
	Flows          int    `json:"flows"`
	NewConnections uint64 `json:"newConnections"`
}

// TopTotals are the gateway-wide counters in /v1/top: sums over queues
// of the pollers' and the pipeline's counters.
type TopTotals struct {
	RxFrames       uint64 `json:"rxFrames"`
	RxBytes        uint64 `json:"rxBytes"`
	TxFrames       uint64 `json:"txFrames"`
	TxBytes        uint64 `json:"txBytes"`
	NewFlows       uint64 `json:"newFlows"`
	Forwarded      uint64 `json:"forwarded"`
	Rejects        uint64 `json:"rejects"`
	AffinityHits   uint64 `json:"affinityHits"`
	AffinityMisses uint64 `json:"affinityMisses"`
	Drops          uint64 `json:"drops"`
}

// TopTable is the fill of a flow or affinity table.
type TopTable struct {
	Entries  uint64 `json:"entries"`
	Capacity uint64 `json:"capacity"`
}

// Top is the /v1/top answer.
type Top struct {
	// Time is the gateway's wall clock at the sample; Clock its pipeline
	// clock (monotonic nanoseconds), which rates use when both samples
	// have it.
	Time       time.Time `json:"time"`
	Clock      int64     `json:"clockNs"`
	Generation uint64    `json:"generation"`
	// Services holds every service port of the snapshot in its order,
	// and one entry with ID 0 and Name "(gone)" for flows of service
	// ports no longer in it, when there are any.
	Services []TopService `json:"services"`
	Totals   TopTotals    `json:"totals"`
	// Drops sums the queues' drop counters by reason.
	Drops     map[string]uint64 `json:"drops"`
	Conntrack TopTable          `json:"conntrack"`
	Affinity  TopTable          `json:"affinity"`
}

// TopActiveWindow is how recent a flow's last packet must be for it to
// count as active in /v1/top.
const TopActiveWindow = 10 * time.Second

// topOf aggregates one /v1/top sample from src.
func topOf(src Source) Top {
	out := Top{Time: time.Now(), Clock: src.clock(), Services: []TopService{}, Drops: map[string]uint64{}}
	idx := map[uint32]int{}
	if s := src.snap(); s != nil {
		out.Generation = s.Generation
		for i := range s.ServicePorts {
			sp := &s.ServicePorts[i]
			ts := TopService{ID: sp.ID, Namespace: sp.Namespace, Name: sp.Name, PortName: sp.PortName,
				Protocol: sp.Protocol.String(), Port: sp.Port, Endpoints: len(sp.Endpoints), AffinitySeconds: sp.AffinitySeconds}
			for _, ep := range sp.Endpoints {
				if ep.Ready {
					ts.Ready++
				}
			}
			idx[sp.ID] = len(out.Services)
			out.Services = append(out.Services, ts)
		}
	}
	gone := -1
	service := func(id uint32) *TopService {
		if i, ok := idx[id]; ok {
			return &out.Services[i]
		}
		if gone < 0 {
			gone = len(out.Services)
			out.Services = append(out.Services, TopService{Name: "(gone)"})
		}
		return &out.Services[gone]
	}
	type ref struct{ s, e int }
	byEP := map[uint32]ref{}
	if src.Loads != nil {
		for _, l := range src.Loads() {
			i, ok := idx[l.ID]
			if !ok {
				continue
			}
			for _, e := range l.Endpoints {
				byEP[e.ID] = ref{i, len(out.Services[i].Load)}
				out.Services[i].Load = append(out.Services[i].Load, TopEndpoint{ID: e.ID, Endpoint: e.Endpoint,
					Departed: e.Departed, Pinned: e.Pins, NewConnections: e.NewConnections})
			}
		}
	}
	if src.Conntrack != nil {
		now := out.Clock
		src.Conntrack.Range(func(e *conntrack.Entry) bool {
			ts := service(e.ServicePort)
			ts.Flows++
			if r, ok := byEP[e.Endpoint]; ok {
				out.Services[r.s].Load[r.e].Flows++
			}
			if now != 0 && now-e.LastSeen < int64(TopActiveWindow) {
				ts.Active++
			}
			if !e.Replied {
				ts.Unreplied++
			}
			for d := range 2 {
				ts.Packets[d] += e.Packets[d]
				ts.Bytes[d] += e.Bytes[d]
			}
			return true
		})
		st := src.Conntrack.Stats()
		v4, v6 := src.Conntrack.Capacity()
		out.Conntrack = TopTable{Entries: uint64(max(st.Entries, 0)), Capacity: uint64(v4 + v6)}
	}
	if src.Affinity != nil {
		src.Affinity.Range(out.Clock, func(e affinity.Entry) bool {
			service(e.ServicePort).Affinity++
			return true
		})
		st := src.Affinity.Stats()
		out.Affinity = TopTable{Entries: st.Entries, Capacity: st.Capacity}
	}
	if src.Queues != nil {
		for _, q := range src.Queues() {
			out.Totals.RxFrames += q.RxFrames
			out.Totals.RxBytes += q.RxBytes
			out.Totals.TxFrames += q.TxFrames
			out.Totals.TxBytes += q.TxBytes
			dropMap(&q.Drops, out.Drops)
		}
	}
	for _, n := range out.Drops {
		out.Totals.Drops += n
	}
	if src.Pipeline != nil {
		for _, p := range src.Pipeline() {
			out.Totals.NewFlows += p.NewFlows
			out.Totals.Forwarded += p.Forwarded
			out.Totals.Rejects += p.Rejects
			out.Totals.AffinityHits += p.AffinityHits
			out.Totals.AffinityMisses += p.AffinityMisses
		}
	}
	return out
}
