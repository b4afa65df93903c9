package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// Facts the manifests must agree on.
const (
	namespace     = "xdpgate-system"
	containerName = "xdpgate"
	gatewayLabel  = "xdpgate.io/gateway"
	configKey     = "config.yaml"
	nameLabel     = "app.kubernetes.io/name"
	// healthzPort is kube-proxy's healthz port, which xdpgate keeps
	// (control.DefaultHealthzAddr).
	healthzPort = 10256
)

// document is one decoded YAML document of a manifest file.
type document struct {
	file  string // base name
	index int    // position in the file, from 0, counting empty documents
	obj   runtime.Object
}

func (d document) String() string {
	return fmt.Sprintf("%s document %d (%s)", d.file, d.index, d.obj.GetObjectKind().GroupVersionKind().Kind)
}

// strictDecoder decodes YAML into client-go's typed objects and fails on
// unknown and duplicated fields, which kubectl would drop or merge silently
// (server-side field validation is only a warning by default).
func strictDecoder() runtime.Decoder {
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
}

// decodeManifest decodes every non-empty YAML document of data (the file
// name) strictly.
func decodeManifest(name string, data []byte) ([]document, error) {
	dec := strictDecoder()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []document
	for i := 0; ; i++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		var v any
		if err := yaml.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if v == nil {
			continue // only comments, or a trailing ---
		}
		obj, _, err := dec.Decode(raw, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		docs = append(docs, document{file: name, index: i, obj: obj})
	}
}

// manifestFiles returns the manifests kubectl apply -k should apply: every
// *.yaml file here but kustomization.yaml.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	if yml, _ := filepath.Glob("*.yml"); len(yml) > 0 {
		t.Fatalf("manifests %q: name them *.yaml, which the tests and kustomization.yaml cover", yml)
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	if len(files) == 0 {
		t.Fatal("no *.yaml manifests in the package directory")
	}
	return files
}

// bundle is the decoded manifests, one object of each kind.
type bundle struct {
	docs           []document
	namespace      *corev1.Namespace
	serviceAccount *corev1.ServiceAccount
	clusterRole    *rbacv1.ClusterRole
	binding        *rbacv1.ClusterRoleBinding
	configMap      *corev1.ConfigMap
	daemonSet      *appsv1.DaemonSet
}

// loadManifests decodes every manifest file strictly and sorts the objects
// by kind; it fails the test on a decoding error, an unexpected kind, or a
// kind present twice.
func loadManifests(t *testing.T) bundle {
	t.Helper()
	var b bundle
	for _, f := range manifestFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := decodeManifest(f, data)
		if err != nil {
			t.Fatal(err)
		}
		b.docs = append(b.docs, docs...)
	}
	for _, d := range b.docs {
		var dup bool
		switch o := d.obj.(type) {
		case *corev1.Namespace:
			dup, b.namespace = b.namespace != nil, o
		case *corev1.ServiceAccount:
			dup, b.serviceAccount = b.serviceAccount != nil, o
		case *rbacv1.ClusterRole:
			dup, b.clusterRole = b.clusterRole != nil, o
		case *rbacv1.ClusterRoleBinding:
			dup, b.binding = b.binding != nil, o
		case *corev1.ConfigMap:
			dup, b.configMap = b.configMap != nil, o
		case *appsv1.DaemonSet:
			dup, b.daemonSet = b.daemonSet != nil, o
		default:
			t.Fatalf("%v: unexpected kind %T; extend bundle and the tests", d, o)
		}
		if dup {
			t.Fatalf("%v: a second %T; the tests expect one of each", d, d.obj)
		}
	}
	for name, missing := range map[string]bool{
		"Namespace": b.namespace == nil, "ServiceAccount": b.serviceAccount == nil,
		"ClusterRole": b.clusterRole == nil, "ClusterRoleBinding": b.binding == nil,
		"ConfigMap": b.configMap == nil, "DaemonSet": b.daemonSet == nil,
	} {
		if missing {
			t.Fatalf("no %s in %q", name, manifestFiles(t))
		}
	}
	return b
}

// container returns the DaemonSet's xdpgate container.
func (b bundle) container(t *testing.T) *corev1.Container {
	t.Helper()
	spec := &b.daemonSet.Spec.Template.Spec
	for i := range spec.Containers {
		if spec.Containers[i].Name == containerName {
			return &spec.Containers[i]
		}
	}
	t.Fatalf("DaemonSet %s has no container %q", b.daemonSet.Name, containerName)
	return nil
}

// configFile is the fields of the ConfigMap's config.yaml the manifests
// depend on, read generically (internal/config's own decoder is exercised
// by config_test.go).
type configFile struct {
	apiVersion, kind string
	manifests        string
	healthzBind      string
	interfaces       []any
	adminSocket      string
	stateDir         string // "" when the file leaves the default
}

func (b bundle) config(t *testing.T) configFile {
	t.Helper()
	data, ok := b.configMap.Data[configKey]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %q", b.configMap.Name, configKey)
	}
	var m map[string]any
	if err := yaml.Unmarshal([]byte(data), &m); err != nil {
		t.Fatalf("ConfigMap %s key %s: %v", b.configMap.Name, configKey, err)
	}
	str := func(m map[string]any, k string) string {
		s, _ := m[k].(string)
		return s
	}
	xdp, _ := m["xdp"].(map[string]any)
	ifaces, _ := xdp["interfaces"].([]any)
	return configFile{
		apiVersion: str(m, "apiVersion"), kind: str(m, "kind"), manifests: str(m, "manifests"),
		healthzBind: str(m, "healthzBindAddress"), interfaces: ifaces, adminSocket: str(xdp, "adminSocket"),
		stateDir: str(xdp, "stateDir"),
	}
}

// configArg returns the path given to --config (as --config=P or --config P).
func configArg(args []string) (string, bool) {
	for i, a := range args {
		for _, prefix := range []string{"--config", "-config"} {
			if v, ok := strings.CutPrefix(a, prefix+"="); ok {
				return v, true
			}
			if a == prefix && i+1 < len(args) {
				return args[i+1], true
			}
		}
	}
	return "", false
}

// mountFor returns the container's volume mount whose directory holds p
// (the longest match) and the volume behind it.
func (b bundle) mountFor(t *testing.T, p string) (corev1.VolumeMount, corev1.Volume) {
	t.Helper()
	c := b.container(t)
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if (p == m.MountPath || strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/")) &&
			(best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	if best == nil {
		t.Fatalf("no volume mount of container %s holds %s", c.Name, p)
	}
	for _, v := range b.daemonSet.Spec.Template.Spec.Volumes {
		if v.Name == best.Name {
			return *best, v
		}
	}
	t.Fatalf("volume mount %s of container %s: no volume %q", best.MountPath, c.Name, best.Name)
	return corev1.VolumeMount{}, corev1.Volume{}
}

func TestDecodeManifestRejects(t *testing.T) {
	// The strict decoder is what makes a typo in a manifest a test failure.
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown field", "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      hostNetwrok: true\n",
			"hostNetwrok"},
		{"duplicated field", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\nmetadata: {name: y}\n", "metadata"},
		{"unknown kind", "apiVersion: v1\nkind: Servise\nmetadata: {name: x}\n", "Servise"},
		{"wrong type", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: [a]\n", "data"},
		{"bad second document", "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {nmae: x}\n",
			"document 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := decodeManifest("test.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("decodeManifest(%q) = %d documents, want an error", tc.yaml, len(docs))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decodeManifest(%q) = %v, want an error naming %q", tc.yaml, err, tc.want)
			}
		})
	}
}

func TestManifestsDecodeStrictly(t *testing.T) {
	b := loadManifests(t)
	for _, d := range b.docs {
		meta, ok := d.obj.(metav1.Object)
		if !ok {
			t.Errorf("%v: no object metadata", d)
			continue
		}
		if got := meta.GetLabels()[nameLabel]; got != "xdpgate" {
			t.Errorf("%v: label %s = %q, want xdpgate", d, nameLabel, got)
		}
		wantNS := namespace
		switch d.obj.(type) {
		case *corev1.Namespace, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding:
			wantNS = "" // cluster-scoped
		}
		if got := meta.GetNamespace(); got != wantNS {
			t.Errorf("%v: namespace = %q, want %q", d, got, wantNS)
		}
	}
	if b.namespace.Name != namespace {
		t.Errorf("Namespace name = %q, want %q", b.namespace.Name, namespace)
	}
}

// kustomization is the part of kustomize's Kustomization type this
// directory uses; UnmarshalStrict rejects any other field, so a new one
// must be added here (and thought about) first.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

func TestKustomizationListsManifests(t *testing.T) {
	data, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: apiVersion, kind = %s, %s, want kustomize.config.k8s.io/v1beta1, Kustomization", k.APIVersion, k.Kind)
	}
	got := slices.Clone(k.Resources)
	slices.Sort(got)
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Errorf("kustomization.yaml: resource %s listed twice", got[i])
		}
	}
	got = slices.Compact(got)
	if want := manifestFiles(t); !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml resources = %q, want the manifest files %q", got, want)
	}
}
