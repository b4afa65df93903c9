// Package e2e holds xdpgate's end-to-end tests: real kernel TCP/UDP stacks
// as clients and servers, in network namespaces, through the xdpgate binary.
//
// Every test is privileged (TestPriv..., via internal/testnet.RequirePriv:
// skipped without root, a failure when CI=true or XDPGATE_REQUIRE_PRIV=1)
// and builds its own topology, removed by t.Cleanup also on failure:
//
//	client ns                 gateway ns (xdpgate)              backend ns
//	lo: 198.19.0.x/32  --  c0 198.18.1.2 | g0 198.18.1.1   g1 198.18.2.1 | b0 198.18.2.2 -- lo: 198.18.3.1x/32
//	    2001:2:0:9::x       2001:2:0:1::2 | 2001:2:0:1::1 2001:2:0:2::1 | 2001:2:0:2::2      2001:2:0:3::1x
//
// Client addresses live on the client namespace's loopback behind one router
// hop, so the gateway needs one neighbour entry, not one per client.
// Transmit checksum offload is off on c0 and b0 (the veth ends feeding the
// managed interfaces g0 and g1). The gateway's kernel does not forward
// (ip_forward=0): only xdpgate does.
//
// XDPGATE_E2E_FAST_PATH=xdp runs every test with the XDP fast path on
// (--fast-path xdp, and an XDP program on the veth ends facing the gateway
// so that XDP frames can be delivered to them, as a NIC driver would);
// TestPrivFastPath and TestPrivFastPathIneligibleDevice set it themselves.
//
// The binary is built once (go build, in the first test that needs it)
// and run with `ip netns exec GATEWAY xdpgate run --manifests FILE`, so
// the tests exercise the real command: flags, wiring, signals (SIGTERM must
// detach and exit 0). Services are Kubernetes YAML written by each test;
// the manifest source polls the file every second, so a test changes
// endpoints by rewriting it.
//
// Tests: TestPrivFrontends (ClusterIP, LB IP, externalIP, NodePort; TCP and
// UDP; IPv4 and IPv6; SNAT or not; spread over endpoints), TestPrivOneArm
// and TestPrivMultiQueue (the same on a one-arm gateway and with two
// queues), TestPrivAffinity, TestPrivTrafficPolicy (Local: client address,
// local endpoints only, drop, health check node ports), TestPrivEndpointRemoved
// (TCP) and TestPrivUDPEndpointRemoved, TestPrivNoEndpoints (refused),
// TestPrivNotServiceTraffic, TestPrivMalformed, TestPrivTTLExpired,
// TestPrivPMTUThroughNAT, TestPrivMissingCapabilities, TestPrivVersion,
// TestPrivInspectCapture (xdpgate inspect and capture against a running
// gateway), TestPrivTop (xdpgate top's JSON sample and live frames),
// TestPrivPrometheus (a real Prometheus scraping the gateway evaluates every
// query of deploy/monitoring's dashboard and alert rules), TestPrivDemo (xdpgate demo end to end, nothing left behind),
// TestPrivNodeTrafficToEndpoints (the gateway's own TCP and UDP to every
// endpoint beside masqueraded service traffic), TestPrivAPIServerBehindTheGateway
// (xdpgate runs from a real kube-apiserver that is itself the endpoint of a
// Service it serves, reached through a managed interface),
// TestPrivNodeAddressChanges (a route's src and the node's address change
// under live traffic), TestPrivClassifierCapacity (10,000 Services of two
// ports with ten endpoints each, then one that does not fit),
// TestPrivNewNeighbours (hundreds of never-resolved next hops: first
// datagrams answered, connects faster than a SYN retransmit),
// the hostile-object tests: TestPrivExternalIPOnNodeAddress (a Service
// on the gateway's own address and server port does not take it),
// TestPrivFrontendConflictOlderWins, TestPrivManifestRewrittenInPlace
// (truncated and rewritten in pieces: traffic and affinity survive) and
// TestPrivForeignXDPProgram (refused, named; replaced with
// --xdp-replace-foreign), and TestPrivRestartKeepsState (open masqueraded
// connections and sticky clients across SIGTERM + start and SIGKILL + start;
// an incompatible state file), and the attack tests: TestPrivAnsweredSYNFlood
// (20,000 answered SYNs from forged sources against a 1,024-flow table: idle
// established connections keep their flows, new clients are served, the
// gateway's memory stays flat), TestPrivSpoofedTCP (out-of-window RST and
// FIN against a live connection change nothing; flows picked up from forged
// ACKs live at most 300 s). Forged sources are in 198.19.128.0/17, sent
// from an AF_PACKET socket in the client namespace; a blackhole route there
// (or in the backend namespace) stands for the attacker who never answers),
// TestPrivICMPReflection (datagrams with TTL 1 and to a Service without
// endpoints, sent through a raw socket with their source spoofed to two
// victims: each victim gets at most its ICMP error budget, a legitimate
// client its port unreachable) and TestPrivIdleHTTPClients (silent and
// 2,000 idle connections to a healthCheckNodePort, /healthz and /metrics:
// the server closes them, oldest first, and answers a fresh request). Each
// world runs xdpgate with its own --state-dir. The whole package takes
// about three minutes.
//
// A test that needs an API server runs internal/kubetest's real
// kube-apiserver and etcd on the host's loopback and reaches it from the
// topology through a TCP relay listening inside the backend namespace.
package e2e
