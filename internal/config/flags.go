package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// flagDef binds one `xdpgate run` flag to one Configuration field. The
// table below is the only place a flag is declared: its default is the
// field's value in Default(), its help text is the one Marshal writes next
// to the field, and Parse copies exactly the flags the command line set.
type flagDef struct {
	name  string // flag name, without dashes
	path  string // YAML path of the field (a test checks it against the JSON tags)
	usage string
	value func(*Configuration) flag.Value // the field as a flag.Value
	copy  func(dst, src *Configuration)   // copies the field
}

// def builds a flagDef from a field accessor and the flag.Value type that
// parses it.
func def[T any](name, path, usage string, field func(*Configuration) *T, value func(*T) flag.Value) flagDef {
	return flagDef{
		name: name, path: path, usage: usage,
		value: func(c *Configuration) flag.Value { return value(field(c)) },
		copy:  func(dst, src *Configuration) { *field(dst) = *field(src) },
	}
}

func str(p *string) flag.Value    { return (*stringValue)(p) }
func list(p *[]string) flag.Value { return (*listValue)(p) }
func integer(p *int) flag.Value   { return (*intValue)(p) }
func boolean(p *bool) flag.Value  { return (*boolValue)(p) }

// flags is the flag table of `xdpgate run` (besides --config).
var flags = []flagDef{
	def("interfaces", "xdp.interfaces", "comma-separated managed interfaces (required)",
		func(c *Configuration) *[]string { return &c.XDP.Interfaces }, list),
	def("node-name", "hostnameOverride", "this node's name (endpoint locality, the Node object); empty: the hostname",
		func(c *Configuration) *string { return &c.HostnameOverride }, str),
	def("node-ips", "nodeIPs", "comma-separated node addresses (default: the Node object's, or in standalone mode the managed interfaces' addresses)",
		func(c *Configuration) *[]string { return &c.NodeIPs }, list),
	def("manifests", "manifests", "standalone mode: YAML file of Services, EndpointSlices and optionally the Node",
		func(c *Configuration) *string { return &c.Manifests }, str),
	def("kubeconfig", "clientConnection.kubeconfig", "cluster mode: kubeconfig file (with neither this nor --manifests: in-cluster credentials)",
		func(c *Configuration) *string { return &c.ClientConnection.Kubeconfig }, str),
	def("master", "master", "cluster mode: API server URL, overriding the kubeconfig's or the in-cluster address",
		func(c *Configuration) *string { return &c.Master }, str),
	def("cpus", "xdp.cpus", "CPUs to pin pollers to, e.g. 0,1 or 2-5 (default: no pinning)",
		func(c *Configuration) *string { return &c.XDP.CPUs }, str),
	def("xdp-mode", "xdp.mode", "XDP attach mode: native, generic or auto (native, else generic)",
		func(c *Configuration) *string { return &c.XDP.Mode }, str),
	def("conntrack-max", "xdp.conntrackMax", "IPv4 flow table capacity (IPv6: an eighth of it)",
		func(c *Configuration) *int { return &c.XDP.ConntrackMax }, integer),
	def("affinity-max", "xdp.affinityMax", "ClientIP affinity table capacity (clients)",
		func(c *Configuration) *int { return &c.XDP.AffinityMax }, integer),
	def("metrics-max-endpoints", "xdp.metricsMaxEndpoints", "per-endpoint load metrics for ClientIP services with at most this many endpoints; a distribution for larger ones",
		func(c *Configuration) *int { return &c.XDP.MetricsMaxEndpoints }, integer),
	def("max-frontends", "xdp.maxFrontends", "classifier capacity: frontends (address, port, protocol)",
		func(c *Configuration) *int { return &c.XDP.MaxFrontends }, integer),
	def("max-endpoints", "xdp.maxEndpoints", "classifier capacity: endpoints (address, port, protocol)",
		func(c *Configuration) *int { return &c.XDP.MaxEndpoints }, integer),
	def("max-nodeports", "xdp.maxNodePorts", "classifier capacity: NodePorts (port, protocol)",
		func(c *Configuration) *int { return &c.XDP.MaxNodePorts }, integer),
	def("max-node-addresses", "xdp.maxNodeAddresses", "classifier capacity: node addresses",
		func(c *Configuration) *int { return &c.XDP.MaxNodeAddresses }, integer),
	def("snat-ports", "xdp.snatPortRange", "SNAT port range MIN-MAX; must not overlap net.ipv4.ip_local_port_range",
		func(c *Configuration) *string { return &c.XDP.SNATPortRange }, str),
	def("metrics-bind-address", "metricsBindAddress", `/metrics address; "off" or "" disables`,
		func(c *Configuration) *string { return &c.MetricsBindAddress }, str),
	def("healthz-bind-address", "healthzBindAddress", `/healthz and /livez address; "off" or "" disables`,
		func(c *Configuration) *string { return &c.HealthzBindAddress }, str),
	def("cluster-cidr", "clusterCIDR", "comma-separated pod CIDRs (kube-proxy's ClusterCIDR local traffic detector)",
		func(c *Configuration) *string { return &c.ClusterCIDR }, str),
	def("nodeport-addresses", "nodePortAddresses", `comma-separated CIDRs or "primary"/"all" selecting NodePort addresses (default all)`,
		func(c *Configuration) *[]string { return &c.NodePortAddresses }, list),
	def("masquerade-all", "masqueradeAll", "SNAT all traffic to ClusterIPs",
		func(c *Configuration) *bool { return &c.MasqueradeAll }, boolean),
	def("log-level", "logLevel", "debug, info, warn or error",
		func(c *Configuration) *string { return &c.LogLevel }, str),
	def("busy-poll", "xdp.busyPoll", "how long a poller spins on an empty ring before sleeping, e.g. 50us; 0 never spins (best when pollers share CPUs with the NIC's interrupts)",
		func(c *Configuration) *string { return &c.XDP.BusyPoll }, str),
	def("admin-socket", "xdp.adminSocket", `unix socket (root only) for xdpgate inspect and capture; "off" or "" disables`,
		func(c *Configuration) *string { return &c.XDP.AdminSocket }, str),
	def("xdp-replace-foreign", "xdp.replaceForeignProgram", "replace another tool's XDP program on a managed interface (default: refuse to start, naming it)",
		func(c *Configuration) *bool { return &c.XDP.ReplaceForeignProgram }, boolean),
	def("fast-path", "xdp.fastPath", `"xdp": the XDP program forwards established flows itself; "off": every packet through the userspace pipeline`,
		func(c *Configuration) *string { return &c.XDP.FastPath }, str),
	def("fast-path-flows", "xdp.fastPathFlows", "XDP fast path capacity (flows; 128 bytes of kernel memory each)",
		func(c *Configuration) *int { return &c.XDP.FastPathFlows }, integer),
	def("state-dir", "xdp.stateDir", `directory (tmpfs) of the flow and affinity tables the next xdpgate adopts; "off" or "" disables`,
		func(c *Configuration) *string { return &c.XDP.StateDir }, str),
}

// hostname is os.Hostname, replaceable in tests.
var hostname = os.Hostname

// Parse parses the arguments of `xdpgate run`: the --config file first,
// then exactly the flags set on the command line (so a flag set to its
// default value still overrides the file), then a hostname for an empty
// hostnameOverride, then Validate.
//
// On a flag syntax error, or -h, the flag package has written the problem
// and the usage to stderr and the error wraps ErrUsage. Other errors are
// returned, not written: an unreadable or invalid file, and *FieldError
// problems, which name the flag when the command line set the field (or no
// file was given) and otherwise the file and the YAML path.
func Parse(args []string, stderr io.Writer) (Configuration, error) {
	fs := flag.NewFlagSet("xdpgate run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: xdpgate run [--config FILE] [flags]\n\n"+
			"Flags given on the command line override the file's fields; the file overrides the defaults.\n"+
			"The file format: xdpgate config print-defaults.\n\n")
		printDefaults(fs)
	}
	configPath := fs.String("config", "", "configuration file (YAML, kind "+Kind+")")
	fromFlags := Default()
	byName := make(map[string]flagDef, len(flags))
	for _, d := range flags {
		fs.Var(d.value(&fromFlags), d.name, d.usage)
		byName[d.name] = d
	}
	if err := fs.Parse(args); err != nil {
		return Configuration{}, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected arguments %q", fs.Args())
		fmt.Fprintf(stderr, "%v\n", err)
		fs.Usage()
		return Configuration{}, fmt.Errorf("%w: %v", ErrUsage, err)
	}

	c := Default()
	if *configPath != "" {
		data, err := os.ReadFile(*configPath)
		if err != nil {
			return Configuration{}, fmt.Errorf("config: %w", err)
		}
		if c, err = Decode(data); err != nil {
			return Configuration{}, fmt.Errorf("config %s: %w", *configPath, err)
		}
	}
	setBy := make(map[string]string) // YAML path -> flag name
	fs.Visit(func(f *flag.Flag) {
		if d, ok := byName[f.Name]; ok {
			d.copy(&c, &fromFlags)
			setBy[d.path] = d.name
		}
	})
	c.normalize()
	if c.HostnameOverride == "" {
		if h, err := hostname(); err == nil {
			c.HostnameOverride = strings.ToLower(strings.TrimSpace(h))
		}
	}
	if err := c.Validate(); err != nil {
		return Configuration{}, renameFields(err, setBy, *configPath)
	}
	return c, nil
}

// renameFields words validation errors for where the value came from: the
// flag when the command line set it or there is no file, else the file and
// the YAML path.
func renameFields(err error, setBy map[string]string, file string) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	pathFlag := make(map[string]string, len(flags))
	for _, d := range flags {
		pathFlag[d.path] = d.name
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		fe, ok := e.(*FieldError)
		if !ok {
			out = append(out, e)
			continue
		}
		base, _, _ := strings.Cut(fe.Field, "[") // xdp.interfaces[1] -> xdp.interfaces
		name, set := setBy[base]
		if !set && file == "" {
			name, set = pathFlag[base]
		}
		switch {
		case set:
			out = append(out, &FieldError{Field: "--" + name, Err: fe.Err})
		case file != "":
			out = append(out, &FieldError{Field: file + ": " + fe.Field, Err: fe.Err})
		default:
			out = append(out, fe)
		}
	}
	return errors.Join(out...)
}

// stringValue is a string field as a flag.Value.
type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

// listValue is a list field as a comma-separated flag; setting it again
// replaces the list, as the comma-separated string flags did.
type listValue []string

func (v *listValue) String() string     { return strings.Join(*v, ",") }
func (v *listValue) Set(s string) error { *v = SplitList(s); return nil }

// intValue is an int field as a flag.Value.
type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if err != nil {
		return errors.New("not an integer")
	}
	*v = intValue(n)
	return nil
}

// boolValue is a bool field as a flag.Value; IsBoolFlag lets --name stand
// for --name=true.
type boolValue bool

func (v *boolValue) String() string { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("not a boolean")
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) IsBoolFlag() bool { return true }

// printDefaults is flag.PrintDefaults naming each flag's argument by its
// type (flag.Value types other than the flag package's own print "value").
func printDefaults(fs *flag.FlagSet) {
	w := fs.Output()
	fs.VisitAll(func(f *flag.Flag) {
		arg := "string"
		if t, ok := f.Value.(interface{ typeName() string }); ok {
			arg = t.typeName()
		}
		fmt.Fprintf(w, "  --%s", f.Name)
		if arg != "" {
			fmt.Fprintf(w, " %s", arg)
		}
		fmt.Fprintf(w, "\n    \t%s", f.Usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

func (*stringValue) typeName() string { return "string" }
func (*listValue) typeName() string   { return "list" }
func (*intValue) typeName() string    { return "int" }
func (*boolValue) typeName() string   { return "" }
