package deploy

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// capsSource is the file whose capability check the DaemonSet must satisfy,
// relative to this package.
const capsSource = "../cmd/xdpgate/caps_linux.go"

// wantCaps is the capability set of cmd/xdpgate/caps_linux.go (neededCaps),
// kept here so that a change there shows up in this package's diff too.
// TestDaemonSetCapabilities also parses caps_linux.go and fails when the two
// differ.
var wantCaps = []string{"CAP_BPF", "CAP_IPC_LOCK", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_PERFMON"}

func TestDaemonSetScheduling(t *testing.T) {
	b := loadManifests(t)
	ds := b.daemonSet
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork {
		t.Error("hostNetwork = false, want true: AF_XDP sockets bind the node's NICs")
	}
	if spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy = %q, want %q", spec.DNSPolicy, corev1.DNSClusterFirstWithHostNet)
	}
	if got := spec.NodeSelector[gatewayLabel]; got != "true" {
		t.Errorf("nodeSelector[%s] = %q, want \"true\"", gatewayLabel, got)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Key == gatewayLabel && tol.Operator == corev1.TolerationOpExists && tol.Effect == ""
	}) {
		t.Errorf("tolerations = %+v, want one for any effect of the %s taint", spec.Tolerations, gatewayLabel)
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName = %q, want system-node-critical", spec.PriorityClassName)
	}
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds <= 0 {
		t.Errorf("terminationGracePeriodSeconds = %v, want a positive value set explicitly", spec.TerminationGracePeriodSeconds)
	}
	us := ds.Spec.UpdateStrategy
	if us.Type != appsv1.RollingUpdateDaemonSetStrategyType || us.RollingUpdate == nil ||
		us.RollingUpdate.MaxUnavailable == nil || *us.RollingUpdate.MaxUnavailable != intstr.FromInt32(1) {
		t.Errorf("updateStrategy = %+v, want RollingUpdate with maxUnavailable 1", us)
	}
	if us.RollingUpdate != nil && us.RollingUpdate.MaxSurge != nil && us.RollingUpdate.MaxSurge.IntValue() != 0 {
		// Two xdpgate processes cannot attach to the same NICs.
		t.Errorf("updateStrategy.rollingUpdate.maxSurge = %v, want 0", us.RollingUpdate.MaxSurge)
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		t.Fatalf("DaemonSet selector: %v", err)
	}
	if sel.Empty() || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("DaemonSet selector %q does not select its pod template's labels %v", sel, ds.Spec.Template.Labels)
	}
}

func TestDaemonSetServiceAccount(t *testing.T) {
	b := loadManifests(t)
	sa := b.serviceAccount
	spec := b.daemonSet.Spec.Template.Spec
	if spec.ServiceAccountName != sa.Name || b.daemonSet.Namespace != sa.Namespace {
		t.Errorf("DaemonSet %s/%s runs as ServiceAccount %q, want %s/%s",
			b.daemonSet.Namespace, b.daemonSet.Name, spec.ServiceAccountName, sa.Namespace, sa.Name)
	}
	if spec.AutomountServiceAccountToken != nil && !*spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken = false: in-cluster config needs the token")
	}
	want := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: sa.Namespace}
	if !slices.Contains(b.binding.Subjects, want) {
		t.Errorf("ClusterRoleBinding %s subjects = %+v, want %+v", b.binding.Name, b.binding.Subjects, want)
	}
	wantRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: b.clusterRole.Name}
	if b.binding.RoleRef != wantRef {
		t.Errorf("ClusterRoleBinding %s roleRef = %+v, want %+v", b.binding.Name, b.binding.RoleRef, wantRef)
	}
}

// neededCaps returns the sorted capability names of the neededCaps table
// of cmd/xdpgate/caps_linux.go, parsed from file (or from src when it is
// not nil, as go/parser takes it).
func neededCaps(file string, src any) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), file, src, 0)
	if err != nil {
		return nil, err
	}
	var lit *ast.CompositeLit
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok && len(vs.Names) == 1 && vs.Names[0].Name == "neededCaps" && len(vs.Values) == 1 {
			lit, _ = vs.Values[0].(*ast.CompositeLit)
		}
		return lit == nil
	})
	if lit == nil {
		return nil, fmt.Errorf("%s: no var neededCaps = []struct{...}{...}", file)
	}
	var names []string
	for _, e := range lit.Elts {
		el, ok := e.(*ast.CompositeLit)
		if !ok {
			return nil, fmt.Errorf("%s: neededCaps element %d is not a composite literal", file, len(names))
		}
		var name ast.Expr
		for i, f := range el.Elts {
			if kv, ok := f.(*ast.KeyValueExpr); ok {
				if id, ok := kv.Key.(*ast.Ident); ok && id.Name == "name" {
					name = kv.Value
				}
			} else if i == 1 { // positional {bit, name, why}
				name = f
			}
		}
		bl, ok := name.(*ast.BasicLit)
		if !ok || bl.Kind != token.STRING {
			return nil, fmt.Errorf("%s: neededCaps element %d: no string name", file, len(names))
		}
		s, err := strconv.Unquote(bl.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: neededCaps element %d: %w", file, len(names), err)
		}
		names = append(names, s)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: neededCaps is empty", file)
	}
	slices.Sort(names)
	return names, nil
}

func TestNeededCaps(t *testing.T) {
	// A guard on the parser, which TestDaemonSetCapabilities trusts.
	tests := []struct {
		name, src string
		want      []string // nil: an error
	}{
		{"positional", `package main
var neededCaps = []struct{bit uint; name, why string}{{13, "CAP_NET_RAW", "x"}, {12, "CAP_NET_ADMIN", "y"}}`,
			[]string{"CAP_NET_ADMIN", "CAP_NET_RAW"}},
		{"keyed", `package main
var neededCaps = []struct{bit uint; name, why string}{{name: "CAP_BPF", bit: 39}}`,
			[]string{"CAP_BPF"}},
		{"renamed", `package main
var caps = []struct{bit uint; name string}{{39, "CAP_BPF"}}`, nil},
		{"empty", `package main
var neededCaps = []struct{bit uint; name string}{}`, nil},
		{"computed name", `package main
var neededCaps = []struct{bit uint; name string}{{39, bpfName}}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := neededCaps("test.go", tc.src)
			switch {
			case tc.want == nil && err == nil:
				t.Errorf("neededCaps(%q) = %q, want an error", tc.src, got)
			case tc.want != nil && (err != nil || !slices.Equal(got, tc.want)):
				t.Errorf("neededCaps(%q) = %q, %v, want %q", tc.src, got, err, tc.want)
			}
		})
	}
}

func TestDaemonSetCapabilities(t *testing.T) {
	b := loadManifests(t)
	c := b.container(t)
	fromSource, err := neededCaps(capsSource, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fromSource, wantCaps) {
		t.Errorf("%s checks %q; wantCaps here = %q: update wantCaps and daemonset.yaml", capsSource, fromSource, wantCaps)
	}
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatalf("container %s: no securityContext.capabilities", c.Name)
	}
	var added []string
	for _, capName := range sc.Capabilities.Add {
		added = append(added, "CAP_"+string(capName))
	}
	slices.Sort(added)
	if !slices.Equal(added, fromSource) {
		t.Errorf("container %s capabilities.add = %q, want exactly the set %s checks: %q", c.Name, added, capsSource, fromSource)
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container %s capabilities.drop = %q, want [ALL]", c.Name, sc.Capabilities.Drop)
	}
	if sc.Privileged == nil || *sc.Privileged {
		t.Errorf("container %s privileged = %v, want false set explicitly", c.Name, sc.Privileged)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container %s allowPrivilegeEscalation = %v, want false", c.Name, sc.AllowPrivilegeEscalation)
	}
	// Kubernetes puts added capabilities into the effective set of uid 0
	// only (no ambient capabilities), and missingCaps reads CapEff.
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Errorf("container %s runAsUser = %v, want 0", c.Name, sc.RunAsUser)
	}
}

// resolvePort returns the port number of a probe's port, which may name a
// container port.
func resolvePort(c *corev1.Container, p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("no container port named %q", p.StrVal)
}

func TestDaemonSetProbes(t *testing.T) {
	b := loadManifests(t)
	c := b.container(t)
	cfg := b.config(t)
	_, portStr, err := net.SplitHostPort(cfg.healthzBind)
	if err != nil {
		t.Fatalf("config healthzBindAddress %q: %v", cfg.healthzBind, err)
	}
	if portStr != strconv.Itoa(healthzPort) {
		t.Errorf("config healthzBindAddress = %q, want port %d", cfg.healthzBind, healthzPort)
	}
	for _, tc := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"livenessProbe", c.LivenessProbe, "/livez"},
		{"readinessProbe", c.ReadinessProbe, "/healthz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.probe == nil || tc.probe.HTTPGet == nil {
				t.Fatalf("container %s %s = %+v, want an httpGet", c.Name, tc.name, tc.probe)
			}
			g := tc.probe.HTTPGet
			if g.Path != tc.path {
				t.Errorf("%s path = %q, want %q", tc.name, g.Path, tc.path)
			}
			port, err := resolvePort(c, g.Port)
			if err != nil {
				t.Fatalf("%s port: %v", tc.name, err)
			}
			if port != healthzPort {
				t.Errorf("%s port = %d, want %d", tc.name, port, healthzPort)
			}
			if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
				t.Errorf("%s scheme = %q, want HTTP", tc.name, g.Scheme)
			}
			if g.Host != "" {
				t.Errorf("%s host = %q, want empty (the pod's, i.e. the node's, address)", tc.name, g.Host)
			}
		})
	}
}

func TestDaemonSetConfigMount(t *testing.T) {
	b := loadManifests(t)
	c := b.container(t)
	cfgPath, ok := configArg(c.Args)
	if !ok {
		t.Fatalf("container %s args %q: no --config", c.Name, c.Args)
	}
	if !path.IsAbs(cfgPath) {
		t.Fatalf("--config %q: want an absolute path", cfgPath)
	}
	mount, vol := b.mountFor(t, cfgPath)
	if vol.ConfigMap == nil || vol.ConfigMap.Name != b.configMap.Name {
		t.Fatalf("--config %s is in volume %s (%+v), want ConfigMap %s", cfgPath, vol.Name, vol.VolumeSource, b.configMap.Name)
	}
	if !mount.ReadOnly {
		t.Errorf("volume mount %s: readOnly = false, want true", mount.MountPath)
	}
	if mount.SubPath != "" {
		// A subPath mount never sees ConfigMap updates.
		t.Errorf("volume mount %s: subPath %q, want none", mount.MountPath, mount.SubPath)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(cfgPath, mount.MountPath), "/")
	key := rel // without items, each key is a file named after it
	if len(vol.ConfigMap.Items) > 0 {
		key = ""
		for _, it := range vol.ConfigMap.Items {
			if it.Path == rel {
				key = it.Key
			}
		}
		if key == "" {
			t.Fatalf("--config %s: volume %s maps no ConfigMap key to %s (items %+v)", cfgPath, vol.Name, rel, vol.ConfigMap.Items)
		}
	}
	if key != configKey {
		t.Errorf("--config %s is ConfigMap %s key %q, want %q", cfgPath, b.configMap.Name, key, configKey)
	}
	if _, ok := b.configMap.Data[configKey]; !ok {
		t.Errorf("ConfigMap %s has no key %q", b.configMap.Name, configKey)
	}
}

func TestDaemonSetNodeName(t *testing.T) {
	b := loadManifests(t)
	c := b.container(t)
	if !slices.Contains(c.Args, "--node-name=$(NODE_NAME)") {
		t.Errorf("container %s args = %q, want --node-name=$(NODE_NAME)", c.Name, c.Args)
	}
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "NODE_NAME" })
	if i < 0 {
		t.Fatalf("container %s has no NODE_NAME variable", c.Name)
	}
	if vf := c.Env[i].ValueFrom; vf == nil || vf.FieldRef == nil || vf.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME = %+v, want valueFrom.fieldRef.fieldPath spec.nodeName", c.Env[i])
	}
	if cfg := b.config(t); cfg.manifests != "" {
		t.Errorf("config manifests = %q, want empty: a cluster DaemonSet runs in cluster mode", cfg.manifests)
	}
}

func TestDaemonSetAdminSocket(t *testing.T) {
	b := loadManifests(t)
	cfg := b.config(t)
	if cfg.adminSocket == "" || cfg.adminSocket == "off" {
		t.Skipf("admin socket %q disabled in the ConfigMap", cfg.adminSocket)
	}
	mount, vol := b.mountFor(t, cfg.adminSocket)
	// The same path on the node, so `xdpgate inspect` there finds the
	// socket at its default path.
	if vol.HostPath == nil || vol.HostPath.Path != mount.MountPath {
		t.Errorf("admin socket %s is in volume %s (%+v), want a hostPath of %s", cfg.adminSocket, vol.Name, vol.VolumeSource, mount.MountPath)
	}
	if mount.ReadOnly {
		t.Errorf("volume mount %s is read-only; xdpgate creates the admin socket there", mount.MountPath)
	}
}

func TestConfigMapFile(t *testing.T) {
	cfg := loadManifests(t).config(t)
	if cfg.apiVersion != "xdpgate.io/v1alpha1" || cfg.kind != "XdpgateConfiguration" {
		t.Errorf("config apiVersion, kind = %q, %q, want xdpgate.io/v1alpha1, XdpgateConfiguration", cfg.apiVersion, cfg.kind)
	}
	if len(cfg.interfaces) == 0 {
		t.Error("config xdp.interfaces is empty; `xdpgate run` requires at least one")
	}
}

func TestContainerfile(t *testing.T) {
	data, err := os.ReadFile("Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if !strings.Contains(text, "go build -trimpath") || !strings.Contains(text, "./cmd/xdpgate") {
		t.Error("Containerfile does not run go build -trimpath ./cmd/xdpgate")
	}
	// The DaemonSet's command names the binary where the last stage puts it.
	var dest string
	for line := range strings.Lines(text) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "COPY" && strings.HasPrefix(f[1], "--from=") {
			dest = f[len(f)-1]
		}
	}
	c := loadManifests(t).container(t)
	if len(c.Command) != 2 || c.Command[0] != dest || c.Command[1] != "run" {
		t.Errorf("container %s command = %q, want [%s run] (the Containerfile's binary)", c.Name, c.Command, dest)
	}
}

// TestDaemonSetStateDir: the state directory is a writable hostPath on
// the node's /run (tmpfs), at the same path, so a restarted or upgraded
// pod adopts the tables its predecessor left; and maxSurge stays 0 (the
// directory is locked by one process at a time).
func TestDaemonSetStateDir(t *testing.T) {
	b := loadManifests(t)
	cfg := b.config(t)
	dir := cfg.stateDir
	if dir == "" {
		dir = "/run/xdpgate" // internal/config.DefaultStateDir
	}
	if dir == "off" {
		t.Skipf("state dir off in the ConfigMap")
	}
	mount, vol := b.mountFor(t, path.Join(dir, "conntrack"))
	if vol.HostPath == nil || vol.HostPath.Path != mount.MountPath || mount.MountPath != dir {
		t.Errorf("state dir %s is in volume %s (%+v), want a hostPath of the same path", dir, vol.Name, vol.VolumeSource)
	}
	if !strings.HasPrefix(dir, "/run/") {
		t.Errorf("state dir %s, want it under /run (tmpfs: gone with the boot, as the tables' times are)", dir)
	}
	if mount.ReadOnly {
		t.Errorf("volume mount %s is read-only; xdpgate writes its tables there", mount.MountPath)
	}
}
