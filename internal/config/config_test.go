package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

// header is the apiVersion and kind every test file starts with.
const header = "apiVersion: xdpgate.io/v1alpha1\nkind: XdpgateConfiguration\n"

// with returns Default() changed by f.
func with(f func(c *Configuration)) Configuration {
	c := Default()
	f(&c)
	return c
}

func TestConfigDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Configuration
	}{
		{"header only keeps defaults", header, Default()},
		{"every field", header + `
clientConnection: {kubeconfig: /etc/k}
master: https://198.18.0.1:6443
hostnameOverride: n1
nodeIPs: [198.18.0.2, "2001:2::2"]
healthzBindAddress: 198.18.0.2:10256
metricsBindAddress: "[2001:2::2]:10249"
clusterCIDR: 198.18.64.0/18,2001:2:1::/64
nodePortAddresses: [primary]
masqueradeAll: true
logLevel: debug
xdp:
  interfaces: [eth0, eth1]
  mode: generic
  cpus: 0,2-3
  conntrackMax: 1000
  affinityMax: 2000
  metricsMaxEndpoints: 8
  maxFrontends: 10
  maxEndpoints: 20
  maxNodePorts: 30
  maxNodeAddresses: 40
  snatPortRange: 1000-2000
  adminSocket: /tmp/a.sock
  stateDir: /run/x
  busyPoll: 0s
  replaceForeignProgram: true
  fastPath: xdp
  fastPathFlows: 5
`, Configuration{
			APIVersion: APIVersion, Kind: Kind,
			ClientConnection: ClientConnection{Kubeconfig: "/etc/k"},
			Master:           "https://198.18.0.1:6443", HostnameOverride: "n1",
			NodeIPs:            []string{"198.18.0.2", "2001:2::2"},
			HealthzBindAddress: "198.18.0.2:10256", MetricsBindAddress: "[2001:2::2]:10249",
			ClusterCIDR: "198.18.64.0/18,2001:2:1::/64", NodePortAddresses: []string{"primary"},
			MasqueradeAll: true, LogLevel: "debug",
			XDP: XDPConfiguration{
				Interfaces: []string{"eth0", "eth1"}, Mode: "generic", CPUs: "0,2-3",
				ConntrackMax: 1000, AffinityMax: 2000, MetricsMaxEndpoints: 8, SNATPortRange: "1000-2000", AdminSocket: "/tmp/a.sock",
				StateDir: "/run/x", BusyPoll: "0s", MaxFrontends: 10, MaxEndpoints: 20, MaxNodePorts: 30, MaxNodeAddresses: 40, ReplaceForeignProgram: true,
				FastPath: "xdp", FastPathFlows: 5,
			},
		}},
		{"partial xdp keeps the other xdp defaults", header + "xdp: {mode: auto}\n",
			with(func(c *Configuration) { c.XDP.Mode = "auto" })},
		{"null keeps the default", header + "healthzBindAddress: null\nxdp:\n", Default()},
		{`"" is off`, header + "healthzBindAddress: \"\"\nmetricsBindAddress: ''\nxdp: {adminSocket: \"\"}\n",
			with(func(c *Configuration) { c.HealthzBindAddress, c.MetricsBindAddress, c.XDP.AdminSocket = Off, Off, Off })},
		{"bare off is off", header + "healthzBindAddress: off\nmetricsBindAddress: \"off\"\nxdp: {adminSocket: no}\n",
			with(func(c *Configuration) { c.HealthzBindAddress, c.MetricsBindAddress, c.XDP.AdminSocket = Off, Off, Off })},
		{"numbers in string fields are their text", header + "xdp: {cpus: 3}\n",
			with(func(c *Configuration) { c.XDP.CPUs = "3" })},
		{"empty list is nil", header + "nodeIPs: []\n", Default()},
		{"JSON", `{"apiVersion": "xdpgate.io/v1alpha1", "kind": "XdpgateConfiguration", "xdp": {"interfaces": ["eth0"]}}`,
			with(func(c *Configuration) { c.XDP.Interfaces = []string{"eth0"} })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.in))
			if err != nil {
				t.Fatalf("Decode(%q) = %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Decode(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestConfigDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error
	}{
		{"unknown top-level field", header + "proxyMode: iptables\n", []string{"proxyMode: unknown field"}},
		{"unknown nested field", header + "xdp: {queues: 4}\n", []string{"xdp.queues: unknown field"}},
		{"field names are case-sensitive", header + "Master: https://198.18.0.1\n", []string{"Master: unknown field"}},
		{"all unknown fields reported", header + "a: 1\nclientConnection: {qps: 5}\n",
			[]string{"a: unknown field", "clientConnection.qps: unknown field"}},
		{"duplicate field", header + "master: https://198.18.0.1\nmaster: https://198.18.0.2\n", []string{`"master" already set`}},
		{"duplicate nested field", header + "xdp:\n  mode: native\n  mode: generic\n", []string{`"mode" already set`}},
		{"wrong kind", "apiVersion: xdpgate.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: iptables\n",
			[]string{`kind: "KubeProxyConfiguration", want "XdpgateConfiguration"`}},
		{"wrong apiVersion", "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: XdpgateConfiguration\n",
			[]string{"apiVersion: ", "want \"xdpgate.io/v1alpha1\""}},
		{"missing apiVersion and kind", "master: https://198.18.0.1\n", []string{"apiVersion: missing", "kind: missing"}},
		{"int field given a string", header + "xdp: {conntrackMax: lots}\n", []string{"xdp.conntrackMax: want int, got string"}},
		{"int field given a fraction", header + "xdp: {conntrackMax: 1.5}\n", []string{"xdp.conntrackMax:"}},
		{"bool field given a string", header + "masqueradeAll: \"sometimes\"\n", []string{"masqueradeAll: want bool"}},
		{"string field given a bare yes", header + "hostnameOverride: yes\n", []string{"hostnameOverride: want a string, got boolean true", "quote"}},
		{"server given true", header + "healthzBindAddress: on\n", []string{"healthzBindAddress: want a string, got boolean true"}},
		{"list given a string", header + "xdp: {interfaces: eth0}\n", []string{`xdp.interfaces: want a list, got string "eth0"`}},
		{"list element given a mapping", header + "nodeIPs: [{a: 1}]\n", []string{"nodeIPs"}},
		{"section given a scalar", header + "xdp: 5\n", []string{"xdp: want a mapping, got a number"}},
		{"empty document", "", []string{"want a mapping", "got nothing"}},
		{"list document", "- a\n", []string{"want a mapping", "got a list"}},
		{"bad YAML", header + "xdp: [\n", []string{"parse YAML"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.in))
			if err == nil {
				t.Fatalf("Decode(%q) = nil error, want one containing %q", tc.in, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Decode(%q) = %q, want it to contain %q", tc.in, err, w)
				}
			}
		})
	}
}

// valid is a configuration Validate accepts.
func valid() Configuration {
	return with(func(c *Configuration) {
		c.HostnameOverride = "n1"
		c.XDP.Interfaces = []string{"eth0"}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		f     func(c *Configuration)
		field string // the FieldError's field; "" means valid
	}{
		{"valid", func(c *Configuration) {}, ""},
		{"valid everything", func(c *Configuration) {
			c.ClientConnection.Kubeconfig, c.Master = "/k", "https://198.18.0.1:6443"
			c.NodeIPs = []string{"198.18.0.2", "::ffff:198.18.0.3"}
			c.HealthzBindAddress, c.MetricsBindAddress, c.XDP.AdminSocket = "", Off, ""
			c.ClusterCIDR, c.NodePortAddresses = " 198.18.64.0/18 , 2001:2:1::/64", []string{"primary", "all", "localhost", "198.18.0.0/24"}
			c.LogLevel, c.XDP.Mode, c.XDP.CPUs = "warn", "auto", "1,3-4"
		}, ""},
		{"manifests mode", func(c *Configuration) { c.Manifests = "m.yaml" }, ""},
		{"in-cluster with master", func(c *Configuration) { c.Master = "http://198.18.0.1:8001" }, ""},
		{"wrong apiVersion", func(c *Configuration) { c.APIVersion = "v1" }, "apiVersion"},
		{"wrong kind", func(c *Configuration) { c.Kind = "" }, "kind"},
		{"manifests and kubeconfig", func(c *Configuration) { c.Manifests, c.ClientConnection.Kubeconfig = "m", "k" }, "manifests"},
		{"master in standalone mode", func(c *Configuration) { c.Manifests, c.Master = "m", "https://198.18.0.1" }, "master"},
		{"master not a URL", func(c *Configuration) { c.Master = "198.18.0.1:6443" }, "master"},
		{"no node name", func(c *Configuration) { c.HostnameOverride = "" }, "hostnameOverride"},
		{"node name with space", func(c *Configuration) { c.HostnameOverride = "n 1" }, "hostnameOverride"},
		{"bad node IP", func(c *Configuration) { c.NodeIPs = []string{"198.18.0.1", "nope"} }, "nodeIPs[1]"},
		{"bad healthz address", func(c *Configuration) { c.HealthzBindAddress = "0.0.0.0" }, "healthzBindAddress"},
		{"bad metrics port", func(c *Configuration) { c.MetricsBindAddress = "127.0.0.1:http" }, "metricsBindAddress"},
		{"bad cluster CIDR", func(c *Configuration) { c.ClusterCIDR = "198.18.0.0/16,nope" }, "clusterCIDR"},
		{"bad nodeport address", func(c *Configuration) { c.NodePortAddresses = []string{"all", "some"} }, "nodePortAddresses[1]"},
		{"bad log level", func(c *Configuration) { c.LogLevel = "loud" }, "logLevel"},
		{"no interfaces", func(c *Configuration) { c.XDP.Interfaces = nil }, "xdp.interfaces"},
		{"empty interface", func(c *Configuration) { c.XDP.Interfaces = []string{"eth0", ""} }, "xdp.interfaces[1]"},
		{"interface name too long", func(c *Configuration) { c.XDP.Interfaces = []string{"abcdefghijklmnop"} }, "xdp.interfaces[0]"},
		{"interface twice", func(c *Configuration) { c.XDP.Interfaces = []string{"eth0", "eth0"} }, "xdp.interfaces[1]"},
		{"bad mode", func(c *Configuration) { c.XDP.Mode = "turbo" }, "xdp.mode"},
		{"bad cpus", func(c *Configuration) { c.XDP.CPUs = "x" }, "xdp.cpus"},
		{"reversed cpu range", func(c *Configuration) { c.XDP.CPUs = "3-1" }, "xdp.cpus"},
		{"huge cpu range", func(c *Configuration) { c.XDP.CPUs = "0-999999999" }, "xdp.cpus"},
		{"zero conntrack", func(c *Configuration) { c.XDP.ConntrackMax = 0 }, "xdp.conntrackMax"},
		{"zero classifier endpoints", func(c *Configuration) { c.XDP.MaxEndpoints = 0 }, "xdp.maxEndpoints"},
		{"huge classifier frontends", func(c *Configuration) { c.XDP.MaxFrontends = 1 << 30 }, "xdp.maxFrontends"},
		{"negative affinity", func(c *Configuration) { c.XDP.AffinityMax = -1 }, "xdp.affinityMax"},
		{"negative metrics max endpoints", func(c *Configuration) { c.XDP.MetricsMaxEndpoints = -1 }, "xdp.metricsMaxEndpoints"},
		{"relative state dir", func(c *Configuration) { c.XDP.StateDir = "run/x" }, "xdp.stateDir"},
		{"reversed snat range", func(c *Configuration) { c.XDP.SNATPortRange = "2000-1000" }, "xdp.snatPortRange"},
		{"snat port 0", func(c *Configuration) { c.XDP.SNATPortRange = "0-10" }, "xdp.snatPortRange"},
		{"snat not a range", func(c *Configuration) { c.XDP.SNATPortRange = "20000" }, "xdp.snatPortRange"},
		{"admin socket too long", func(c *Configuration) { c.XDP.AdminSocket = "/" + strings.Repeat("a", 107) }, "xdp.adminSocket"},
		{"busy poll not a duration", func(c *Configuration) { c.XDP.BusyPoll = "50" }, "xdp.busyPoll"},
		{"busy poll negative", func(c *Configuration) { c.XDP.BusyPoll = "-1us" }, "xdp.busyPoll"},
		{"bad fast path", func(c *Configuration) { c.XDP.FastPath = "tc" }, "xdp.fastPath"},
		{"zero fast path flows", func(c *Configuration) { c.XDP.FastPathFlows = 0 }, "xdp.fastPathFlows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.f(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", c, err)
				}
				return
			}
			fe, ok := errors.AsType[*FieldError](err)
			if !ok || fe.Field != tc.field || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want a *FieldError for %s", err, tc.field)
			}
			if !strings.HasPrefix(err.Error(), tc.field+": ") {
				t.Errorf("Validate() = %q, want it to start with %q", err, tc.field+": ")
			}
		})
	}
}

func TestConfigValidateReportsEveryField(t *testing.T) {
	c := valid()
	c.XDP.Mode, c.XDP.ConntrackMax, c.LogLevel = "turbo", 0, "loud"
	err := c.Validate()
	for _, f := range []string{"xdp.mode: ", "xdp.conntrackMax: ", "logLevel: "} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("Validate() = %v, want it to name %s", err, f)
		}
	}
}

func TestConfigResolve(t *testing.T) {
	c := valid()
	c.NodeIPs = []string{"::ffff:198.18.0.2"}
	c.ClusterCIDR = "198.18.64.1/18"
	c.XDP.CPUs, c.XDP.SNATPortRange, c.LogLevel = "0,2-3", "1000-2000", "debug"
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(r.NodeIPs, r.ClusterCIDRs, r.CPUs, r.SNATPortMin, r.SNATPortMax, r.LogLevel)
	if want := "[198.18.0.2] [198.18.64.0/18] [0 2 3] 1000 2000 DEBUG"; got != want {
		t.Errorf("Resolve() = %s, want %s", got, want)
	}
}

func TestConfigMode(t *testing.T) {
	for _, tc := range []struct {
		manifests, kubeconfig string
		want                  Mode
	}{{"m", "", ModeStandalone}, {"", "k", ModeKubeconfig}, {"", "", ModeInCluster}} {
		c := Configuration{Manifests: tc.manifests, ClientConnection: ClientConnection{Kubeconfig: tc.kubeconfig}}
		if got := c.Mode(); got != tc.want {
			t.Errorf("Mode(manifests %q, kubeconfig %q) = %s, want %s", tc.manifests, tc.kubeconfig, got, tc.want)
		}
	}
}

func TestConfigMarshalRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    Configuration
	}{
		{"default", Default()},
		{"off and tricky strings", with(func(c *Configuration) {
			c.HealthzBindAddress, c.MetricsBindAddress, c.XDP.AdminSocket = Off, Off, Off
			c.HostnameOverride = `yes: "no" # not a comment \ 'q'`
			c.Master = "0"
			c.NodeIPs = []string{"198.18.0.1", "null", "true", "ünïcode\u2028\t"}
			c.NodePortAddresses = []string{"- a", "[b]", "{c}"}
			c.XDP.CPUs, c.ClusterCIDR, c.LogLevel = "1e3", "~", "&anchor"
			c.XDP.Interfaces = []string{"*alias", "!tag", "%d"}
			c.XDP.ConntrackMax, c.XDP.AffinityMax = 1<<40, -3
			c.MasqueradeAll = true
			c.XDP.ReplaceForeignProgram = true
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Marshal(tc.c)
			if err != nil {
				t.Fatalf("Marshal = %v", err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(Marshal(c)) = %v\n%s", err, b)
			}
			if !reflect.DeepEqual(got, tc.c) {
				t.Errorf("Decode(Marshal(c)) = %+v, want %+v\n%s", got, tc.c, b)
			}
		})
	}
}

func TestConfigMarshalSetsTypeAndOrder(t *testing.T) {
	b, err := Marshal(Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "apiVersion: \"xdpgate.io/v1alpha1\"\nkind: \"XdpgateConfiguration\"\n") {
		t.Errorf("Marshal(Configuration{}) starts %q, want apiVersion then kind", s[:min(len(s), 80)])
	}
	if !strings.Contains(s, "# --interfaces: ") || strings.Index(s, "clientConnection:") > strings.Index(s, "xdp:") {
		t.Errorf("Marshal output lacks flag comments or declaration order:\n%s", s)
	}
}

// FuzzConfigDecode checks that no input crashes Decode and that whatever
// Decode accepts survives Marshal and Decode unchanged.
func FuzzConfigDecode(f *testing.F) {
	f.Add([]byte(header + "xdp: {interfaces: [eth0], cpus: 0-3}\nhealthzBindAddress: off\n"))
	f.Add([]byte(header + "nodeIPs: [\"198.18.0.1\"]\nmaster: https://198.18.0.1\n"))
	f.Add([]byte(`{"apiVersion":"xdpgate.io/v1alpha1","kind":"XdpgateConfiguration","xdp":{"conntrackMax":5}}`))
	f.Add([]byte(header + "xdp: {queues: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			return
		}
		_ = c.Validate()
		b, err := Marshal(c)
		if err != nil {
			t.Fatalf("Marshal(Decode(%q)) = %v", data, err)
		}
		again, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Marshal(Decode(%q))) = %v\n%s", data, err, b)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip of %q: %+v, want %+v", data, again, c)
		}
	})
}

// TestConfigFlagTablePaths checks each flag's declared YAML path against
// the field its accessor reaches: setting the flag changes exactly that
// JSON leaf.
func TestConfigFlagTablePaths(t *testing.T) {
	leaves := func(c Configuration) map[string]string {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		var walk func(string, map[string]any)
		walk = func(p string, m map[string]any) {
			for k, v := range m {
				if sub, ok := v.(map[string]any); ok {
					walk(join(p, k), sub)
					continue
				}
				out[join(p, k)] = fmt.Sprint(v)
			}
		}
		walk("", m)
		return out
	}
	base := leaves(Default())
	names := map[string]bool{}
	for _, d := range flags {
		if names[d.name] || names[d.path] {
			t.Errorf("flag %s or path %s declared twice", d.name, d.path)
		}
		names[d.name], names[d.path] = true, true
		c := Default()
		v := d.value(&c)
		sample := map[string]string{"string": "sample", "list": "a,b", "int": "7", "": "true"}[v.(interface{ typeName() string }).typeName()]
		if err := v.Set(sample); err != nil {
			t.Fatalf("--%s: Set(%q) = %v", d.name, sample, err)
		}
		var changed []string
		for p, val := range leaves(c) {
			if base[p] != val {
				changed = append(changed, p)
			}
		}
		if len(changed) != 1 || changed[0] != d.path {
			t.Errorf("--%s (path %s) changed %v", d.name, d.path, changed)
		}
		// copy moves the same field.
		dst := Default()
		d.copy(&dst, &c)
		if !reflect.DeepEqual(dst, c) {
			t.Errorf("--%s: copy did not copy the field", d.name)
		}
	}
	// Every field except the type is reachable by a flag.
	for p := range base {
		if !names[p] && p != "apiVersion" && p != "kind" {
			t.Errorf("field %s has no flag", p)
		}
	}
}

// TestConfigDocExample keeps the example in the package documentation a
// valid file.
func TestConfigDocExample(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var example strings.Builder
	in := false
	for line := range strings.Lines(string(src)) {
		body, indented := strings.CutPrefix(line, "//\t")
		if strings.HasPrefix(body, "apiVersion:") {
			in = true
		}
		if in && !indented {
			break
		}
		if in {
			example.WriteString(body)
		}
	}
	c, err := Decode([]byte(example.String()))
	if err != nil {
		t.Fatalf("Decode(doc example) = %v\n%s", err, example.String())
	}
	if err := c.Validate(); err != nil {
		t.Errorf("doc example: Validate() = %v", err)
	}
	if c.HostnameOverride != "gw-1" || len(c.XDP.Interfaces) != 2 || c.XDP.CPUs != "2-5" {
		t.Errorf("doc example decoded to %+v", c)
	}
}
