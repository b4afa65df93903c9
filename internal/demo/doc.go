// Package demo is `xdpgate demo`: a throw-away topology of network
// namespaces with the gateway dataplane in the middle, HTTP traffic from
// many client addresses through two Services, and a live view of what the
// clients saw next to what the gateway itself reports (`xdpgate top`).
//
// # Topology
//
// All addresses come from the benchmarking range 198.18.0.0/15:
//
//	xgdemo-clients            xgdemo-gw (xdpgate run)             xgdemo-gwpods (node gw)
//	lo: 198.19.0.1-64/32 --  dc 198.18.1.2 | gc 198.18.1.1   gp 198.18.2.1 | dp 198.18.2.2 -- lo: 198.18.3.x
//	                                         gn 198.18.4.1 | dn 198.18.4.2   xgdemo-node2 (remote node)
//	                                                                          lo: 198.18.5.x
//
// The gateway manages gc, gp and gn; its kernel does not forward, so every
// answer the clients get went through the dataplane. The veth ends feeding
// managed interfaces send complete checksums (checksum offload off).
//
// Two Services are rendered from manifest.yaml.tmpl into a manifest file the
// gateway polls: shop, a LoadBalancer with ClientIP affinity and
// externalTrafficPolicy Local (its remote-node backend gets no external
// traffic), and api, a NodePort with policy Cluster (SNAT). Halfway through,
// one shop backend leaves the manifest; the view reports, once every
// client has answered again, how many clients moved and how many stayed.
//
// # Processes
//
// The demo runs no dataplane code of its own: it starts its own executable
// (os.Executable) inside the namespaces, which is why it lives behind a
// contract with the binary that carries it (cmd/xdpgate):
//
//   - `BINARY run --interfaces gc,gp,gn --manifests ...` in xgdemo-gw: the
//     product, exactly as a user runs it;
//   - `BINARY demo _serve-backends NAME=ADDR:PORT...` (BackendHelper) in
//     each backend namespace: the binary must pass these arguments to
//     ServeBackends, which serves HTTP answering with the backend's name
//     and the peer address it saw.
//
// Each child runs in its own process group with its output in a log file
// under /run/xdpgate-demo, so Ctrl-C reaches only the demo, which then stops
// the gateway first (its SIGTERM detaches the XDP programs while the
// peers still exist) and the backends after it.
//
// # The view
//
// Client-side counts (connections and TCP segments per service, answers per
// backend, whether a backend saw the client's own address) come from the
// traffic workers. Gateway-side figures are `xdpgate top`'s: two samples of
// the admin API's /v1/top one interval apart, read from the gateway's admin
// socket and drawn by admin.RenderTop, the code `xdpgate top` draws with.
// /metrics is still scraped (Prometheus text-format parser) for the
// snapshot generation that tells when the backend removal was published.
// On a terminal each frame redraws the screen; otherwise frames are
// appended. `--keep` prints `xdpgate top`, `inspect` and `capture` commands
// naming the gateway's admin socket, which is not the default one.
//
// # Cleanup
//
// Namespace names are fixed, so a second demo refuses to start over a
// running or kept one and `--cleanup` finds what `--keep` (or a killed demo)
// left: it stops every process in the xgdemo-* namespaces, deletes them and
// the state directory. Without --keep the demo does the same on exit, on
// Ctrl-C and on error.
package demo
