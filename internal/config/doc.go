// Package config is the configuration of `xdpgate run`: a YAML file (kind
// XdpgateConfiguration) and the command-line flags that override it.
//
// # The file
//
// The file is shaped like kube-proxy's KubeProxyConfiguration: where a
// field means the same thing (clientConnection.kubeconfig, master,
// hostnameOverride, nodeIPs, healthzBindAddress, metricsBindAddress,
// clusterCIDR, nodePortAddresses, masqueradeAll) it has kube-proxy's name,
// and the settings kube-proxy has no equivalent for are under xdp. A full
// example, every field set (`xdpgate config print-defaults` prints the
// defaults, with each field's flag and help):
//
//	apiVersion: xdpgate.io/v1alpha1
//	kind: XdpgateConfiguration
//	clientConnection:
//	  kubeconfig: ""                 # --kubeconfig; "" and no manifests: in-cluster
//	master: ""                       # --master: API server URL override
//	hostnameOverride: gw-1           # --node-name; "": the hostname, lower-cased
//	nodeIPs: ["198.18.0.2", "2001:2::2"] # --node-ips; []: the Node object's
//	manifests: ""                    # --manifests: standalone mode
//	healthzBindAddress: 0.0.0.0:10256  # --healthz-bind-address; "" or off disables
//	metricsBindAddress: 127.0.0.1:10249 # --metrics-bind-address; "" or off disables
//	clusterCIDR: 198.18.64.0/18,2001:2:1::/64 # --cluster-cidr, comma-separated
//	nodePortAddresses: [primary]     # --nodeport-addresses; []: all
//	masqueradeAll: false             # --masquerade-all
//	logLevel: info                   # --log-level: debug, info, warn or error
//	xdp:
//	  interfaces: [eth1, eth2]       # --interfaces (required)
//	  mode: native                   # --xdp-mode: native, generic or auto
//	  cpus: "2-5"                    # --cpus; "": no pinning
//	  conntrackMax: 1048576          # --conntrack-max
//	  affinityMax: 1048576           # --affinity-max
//	  metricsMaxEndpoints: 64        # --metrics-max-endpoints
//	  maxFrontends: 65536            # --max-frontends (classifier capacity)
//	  maxEndpoints: 262144           # --max-endpoints
//	  maxNodePorts: 16384            # --max-nodeports
//	  maxNodeAddresses: 1024         # --max-node-addresses
//	  snatPortRange: 20000-29999     # --snat-ports
//	  adminSocket: /run/xdpgate/admin.sock # --admin-socket; "" or off disables
//	  stateDir: /run/xdpgate         # --state-dir; "" or off: tables die with the process
//	  busyPoll: 50us                 # --busy-poll; 0: never spin
//	  replaceForeignProgram: false   # --xdp-replace-foreign: remove another tool's XDP program
//	  fastPath: "off"                # --fast-path: xdp (XDP forwards established flows) or off
//	  fastPathFlows: 131072          # --fast-path-flows
//
// Decoding is strict, as for kube-proxy's --config: an unknown field
// (matched case-sensitively), a duplicate key, a value of the wrong type or
// a missing or wrong apiVersion or kind is an error that names the field by
// its YAML path ("xdp.snatPortRange"). A field the file leaves out, or sets
// to null, keeps its default. JSON is YAML, so a JSON file works too.
//
// The YAML reader is YAML 1.1, in which the bare words yes, no, on, off, y
// and n are booleans. The three server addresses accept a bare off (any
// false boolean) as "off"; anywhere else a string field given such a word
// is an error asking to quote it ("hostnameOverride: \"n\"").
//
// # Which source
//
// Exactly one of manifests and clientConnection.kubeconfig may be set.
// manifests runs standalone from a file of Services and EndpointSlices;
// kubeconfig watches that cluster; with neither, xdpgate uses the pod's
// service account (in-cluster), which is how a DaemonSet runs it. master,
// when set, replaces the API server address in the last two modes.
//
// # Flags override the file
//
// Parse loads --config FILE first and then applies only the flags given on
// the command line, found with flag.FlagSet.Visit: a flag that is not given
// leaves the file's value, and a flag that is given wins even when its
// value equals the default. Then an empty hostnameOverride becomes the
// hostname, and Validate checks the result. Every flag is declared once, in
// a table binding it to its field, so a flag's name, field, default (the
// field's value in Default) and help text (also written by Marshal) cannot
// drift apart.
//
// Errors name what the user wrote: the flag when the command line set the
// field (or there is no file), else the file and the YAML path.
package config
