// Package admin is xdpgate's operator interface to a running gateway: the
// admin API (HTTP+JSON over a root-only unix socket: services, conntrack,
// affinity, stats, per-service top and pcap capture), its clients
// (`xdpgate inspect`, `xdpgate top` and `xdpgate capture`; the demo draws
// its gateway view with top's RenderTop), the JSON types both sides
// share, and the Prometheus collector of the dataplane's counters.
// /v1/load (load.go) answers for ClientIP services: per endpoint its
// pinned clients, live flows and new connections, the imbalance, and the
// heaviest clients (`xdpgate inspect affinity --service NS/NAME --top N`);
// the collector exports the same per endpoint up to
// Source.MaxEndpointSeries endpoints and as a distribution beyond.
//
// Everything reads published state only (Source: the snapshot pointer,
// lock-free table walks, counters the pollers publish once per batch), so an
// inspection or a scrape never blocks a poller. /v1/conntrack and
// /v1/affinity stream their answers as the table is walked, through a
// bounded buffer (stream.go), and `xdpgate inspect` prints them as they
// arrive: limit=0 on a table of millions costs neither side more memory
// than a buffer. HTTP rather than a bespoke
// protocol lets operators use
// `curl --unix-socket /run/xdpgate/admin.sock http://x/v1/stats`.
package admin
