package config

import (
	"strconv"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/pipeline"
)

// APIVersion is the apiVersion a configuration file must declare.
const APIVersion = "xdpgate.io/v1alpha1"

// Kind is the kind a configuration file must declare.
const Kind = "XdpgateConfiguration"

// Off as a server address (healthzBindAddress, metricsBindAddress,
// xdp.adminSocket) disables that server. The empty string means the same
// (kube-proxy's spelling); Decode and Parse rewrite it to Off so the rest of
// the program checks one value.
const Off = "off"

// Configuration is the file format of `xdpgate run --config`. Fields that
// kube-proxy's KubeProxyConfiguration also has keep its names and meanings;
// the dataplane settings kube-proxy lacks live under xdp.
type Configuration struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// ClientConnection says how to reach the API server.
	ClientConnection ClientConnection `json:"clientConnection"`
	// Master is the API server URL; it overrides the kubeconfig's server
	// or the in-cluster address (kube-proxy --master).
	Master string `json:"master"`
	// HostnameOverride is this node's name (flag --node-name). Empty means
	// the lower-cased hostname, filled in by Parse.
	HostnameOverride string `json:"hostnameOverride"`
	// NodeIPs are the node's addresses. Empty means the Node object's, or
	// in standalone mode the managed interfaces' addresses.
	NodeIPs []string `json:"nodeIPs"`
	// Manifests selects standalone mode: a YAML file of Services,
	// EndpointSlices and optionally the Node.
	Manifests string `json:"manifests"`
	// HealthzBindAddress serves /healthz and /livez; "" or "off" disables.
	HealthzBindAddress string `json:"healthzBindAddress"`
	// MetricsBindAddress serves /metrics; "" or "off" disables.
	MetricsBindAddress string `json:"metricsBindAddress"`
	// ClusterCIDR is the comma-separated pod CIDRs (kube-proxy's
	// ClusterCIDR local traffic detector).
	ClusterCIDR string `json:"clusterCIDR"`
	// NodePortAddresses are CIDRs or "primary"/"all" selecting the node
	// addresses that serve NodePorts; empty means all.
	NodePortAddresses []string `json:"nodePortAddresses"`
	// MasqueradeAll SNATs all traffic to ClusterIPs.
	MasqueradeAll bool `json:"masqueradeAll"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"logLevel"`
	// XDP holds the dataplane settings.
	XDP XDPConfiguration `json:"xdp"`
}

// ClientConnection is the API server connection, as kube-proxy's
// clientConnection (only the kubeconfig path: xdpgate has no QPS or
// content-type knobs).
type ClientConnection struct {
	// Kubeconfig is the kubeconfig file. Empty, without manifests, means
	// in-cluster credentials.
	Kubeconfig string `json:"kubeconfig"`
}

// XDPConfiguration holds the AF_XDP dataplane settings.
type XDPConfiguration struct {
	// Interfaces are the managed interfaces (required).
	Interfaces []string `json:"interfaces"`
	// Mode is the XDP attach mode: native, generic or auto (native, else
	// generic).
	Mode string `json:"mode"`
	// CPUs lists the CPUs the pollers are pinned to, e.g. "0,2,4-6";
	// empty means no pinning.
	CPUs string `json:"cpus"`
	// ConntrackMax is the IPv4 flow table capacity (IPv6: an eighth).
	ConntrackMax int `json:"conntrackMax"`
	// AffinityMax is the ClientIP affinity table capacity (clients).
	AffinityMax int `json:"affinityMax"`
	// MetricsMaxEndpoints: a ClientIP service port with at most this many
	// endpoints gets one metric series per endpoint for its load, one
	// with more the distribution over its endpoints (bounded series).
	MetricsMaxEndpoints int `json:"metricsMaxEndpoints"`
	// MaxFrontends, MaxEndpoints, MaxNodePorts and MaxNodeAddresses size
	// the XDP classifier's maps: frontends (address, port, protocol),
	// endpoints (address, port, protocol), NodePorts (port, protocol) and
	// node addresses. Service ports whose rules do not fit are not served,
	// and /healthz says so. The defaults hold 10,000 Services of two ports
	// with ten endpoints each.
	MaxFrontends     int `json:"maxFrontends"`
	MaxEndpoints     int `json:"maxEndpoints"`
	MaxNodePorts     int `json:"maxNodePorts"`
	MaxNodeAddresses int `json:"maxNodeAddresses"`
	// SNATPortRange is the SNAT source port range "MIN-MAX"; it must not
	// overlap net.ipv4.ip_local_port_range.
	SNATPortRange string `json:"snatPortRange"`
	// AdminSocket is the unix socket of `xdpgate inspect` and `xdpgate
	// capture`; "" or "off" disables.
	AdminSocket string `json:"adminSocket"`
	// StateDir holds the conntrack and affinity tables and the ID
	// journal, which the next xdpgate on this boot adopts (a tmpfs
	// directory: /run); "" or "off" keeps them in process memory.
	StateDir string `json:"stateDir"`
	// BusyPoll is how long a poller spins on an empty receive ring before
	// it sleeps in poll(2), as a Go duration; "0" never spins. Spinning
	// cuts latency when the pollers have their CPUs to themselves, and
	// costs throughput when a poller shares its CPU with the interface's
	// interrupt or NAPI processing (the spin keeps the CPU from the
	// kernel work that would fill the ring).
	BusyPoll string `json:"busyPoll"`
	// ReplaceForeignProgram lets xdpgate remove an XDP program of another
	// tool from a managed interface. By default only xdpgate's own program
	// (one left by an earlier run) is replaced, and a foreign one makes
	// xdpgate refuse to start, naming it: silently removing it would
	// disable whatever that tool does (a firewall, a load balancer).
	ReplaceForeignProgram bool `json:"replaceForeignProgram"`
	// FastPath is "xdp" to let the XDP program forward established flows
	// itself (the pipeline installs them and stays the slow path), or
	// "off": every owned packet goes through the userspace pipeline.
	FastPath string `json:"fastPath"`
	// FastPathFlows is the fast path's flow capacity (128 bytes of kernel
	// memory each); flows beyond it stay in userspace.
	FastPathFlows int `json:"fastPathFlows"`
}

// Defaults, in one place. The SNAT range and the attach mode are the
// packages' own (pipeline.DefaultSNATPortMin/Max, dataplane.AttachNative),
// spelled in the file's text form.
const (
	DefaultHealthzBindAddress  = "0.0.0.0:10256"
	DefaultMetricsBindAddress  = "127.0.0.1:10249"
	DefaultLogLevel            = "info"
	DefaultConntrackMax        = 1 << 20
	DefaultAffinityMax         = 1 << 20
	DefaultMetricsMaxEndpoints = 64
	DefaultAdminSocket         = "/run/xdpgate/admin.sock"
	DefaultStateDir            = "/run/xdpgate"
	DefaultBusyPoll            = "50us"
	// DefaultFastPath is xdp.fastPath's default (README, "XDP fast path",
	// says why).
	DefaultFastPath = Off
	// FastPathXDP is xdp.fastPath's value that turns the fast path on.
	FastPathXDP = "xdp"
)

var (
	// DefaultXDPMode is xdp.mode's default, native.
	DefaultXDPMode = dataplane.AttachNative.String()
	// DefaultSNATPortRange is xdp.snatPortRange's default, the pipeline's
	// (see pipeline.DefaultSNATPortMin for why the range sits there).
	DefaultSNATPortRange = strconv.Itoa(pipeline.DefaultSNATPortMin) + "-" + strconv.Itoa(pipeline.DefaultSNATPortMax)
)

// Default returns the configuration used for every field that neither the
// file nor a flag sets.
func Default() Configuration {
	return Configuration{
		APIVersion:         APIVersion,
		Kind:               Kind,
		HealthzBindAddress: DefaultHealthzBindAddress,
		MetricsBindAddress: DefaultMetricsBindAddress,
		LogLevel:           DefaultLogLevel,
		XDP: XDPConfiguration{
			Mode:                DefaultXDPMode,
			ConntrackMax:        DefaultConntrackMax,
			MetricsMaxEndpoints: DefaultMetricsMaxEndpoints,
			AffinityMax:         DefaultAffinityMax,
			MaxFrontends:        dataplane.DefaultMaxFrontends,
			MaxEndpoints:        dataplane.DefaultMaxEndpoints,
			MaxNodePorts:        dataplane.DefaultMaxNodePorts,
			MaxNodeAddresses:    dataplane.DefaultMaxNodeAddrs,
			SNATPortRange:       DefaultSNATPortRange,
			AdminSocket:         DefaultAdminSocket,
			StateDir:            DefaultStateDir,
			BusyPoll:            DefaultBusyPoll,
			FastPath:            DefaultFastPath,
			FastPathFlows:       dataplane.DefaultFastPathFlows,
		},
	}
}

// Mode is where the service model comes from.
type Mode string

// The modes. Exactly one of manifests and clientConnection.kubeconfig may be
// set; with neither, xdpgate runs in the cluster it is deployed in.
const (
	// ModeStandalone reads the manifests file.
	ModeStandalone Mode = "standalone"
	// ModeKubeconfig watches the API server named by a kubeconfig file.
	ModeKubeconfig Mode = "kubeconfig"
	// ModeInCluster watches the API server with the pod's service account
	// (or, outside a pod, the master URL without credentials).
	ModeInCluster Mode = "in-cluster"
)

// Mode returns the source mode c selects. With both manifests and a
// kubeconfig set (which Validate rejects) it returns ModeStandalone.
func (c Configuration) Mode() Mode {
	switch {
	case c.Manifests != "":
		return ModeStandalone
	case c.ClientConnection.Kubeconfig != "":
		return ModeKubeconfig
	default:
		return ModeInCluster
	}
}

// normalize rewrites equivalent spellings to one: "" to Off for the
// servers, and empty lists to nil (a file's "[]" and an absent list mean
// the same, and Default has nil).
func (c *Configuration) normalize() {
	for _, p := range []*string{&c.HealthzBindAddress, &c.MetricsBindAddress, &c.XDP.AdminSocket, &c.XDP.StateDir} {
		if *p == "" {
			*p = Off
		}
	}
	for _, p := range []*[]string{&c.NodeIPs, &c.NodePortAddresses, &c.XDP.Interfaces} {
		if len(*p) == 0 {
			*p = nil
		}
	}
}
