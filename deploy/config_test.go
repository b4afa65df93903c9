package deploy

// The ConfigMap's file and the DaemonSet's arguments through
// internal/config, the parser `xdpgate run` itself uses.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/xdpgate/xdpgate/internal/config"
)

func TestConfigMapDecodes(t *testing.T) {
	cm := loadManifests(t).configMap
	data, ok := cm.Data[configKey]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %q", cm.Name, configKey)
	}
	c, err := config.Decode([]byte(data))
	if err != nil {
		t.Fatalf("config.Decode(ConfigMap %s key %s) = %v", cm.Name, configKey, err)
	}
	// One file serves every node, so it leaves hostnameOverride empty and
	// the DaemonSet passes --node-name (TestDaemonSetNodeName); stand in
	// for that flag. Everything else must be valid as written.
	if c.HostnameOverride == "" {
		c.HostnameOverride = testNodeName
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(ConfigMap %s key %s) = %v", cm.Name, configKey, err)
	}
}

// testNodeName stands in for the pod's spec.nodeName.
const testNodeName = "gw-1"

// runArgs returns the container's arguments as the kubelet would pass them
// (environment references expanded, spec.nodeName being testNodeName),
// with the --config path replaced by configPath.
func runArgs(t *testing.T, c *corev1.Container, configPath string) []string {
	t.Helper()
	vars := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			vars[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName":
			vars[e.Name] = testNodeName
		default:
			t.Fatalf("container %s variable %s: a source the test cannot stand in for: %+v", c.Name, e.Name, e.ValueFrom)
		}
	}
	var args []string
	replaceNext := false
	for _, a := range c.Args {
		for name, v := range vars {
			a = strings.ReplaceAll(a, "$("+name+")", v)
		}
		if strings.Contains(a, "$(") {
			// The kubelet leaves an unknown reference as it is, and
			// xdpgate would get it literally.
			t.Fatalf("container %s argument %q: reference to an undeclared variable", c.Name, a)
		}
		switch {
		case replaceNext:
			a, replaceNext = configPath, false
		case a == "--config" || a == "-config":
			replaceNext = true
		case strings.HasPrefix(a, "--config="):
			a = "--config=" + configPath
		case strings.HasPrefix(a, "-config="):
			a = "-config=" + configPath
		}
		args = append(args, a)
	}
	return args
}

func TestDaemonSetArgsParse(t *testing.T) {
	b := loadManifests(t)
	c := b.container(t)
	data := b.configMap.Data[configKey]
	file := filepath.Join(t.TempDir(), configKey)
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	args := runArgs(t, c, file)
	var stderr bytes.Buffer
	if _, err := config.Parse(args, &stderr); err != nil {
		t.Fatalf("config.Parse(%q) = %v, want success; stderr:\n%s", args, err, stderr.String())
	}

	// The parser read the file given on the command line: the same
	// arguments with that file's interfaces removed fail, since no flag
	// names them.
	var m map[string]any
	if err := yaml.Unmarshal([]byte(data), &m); err != nil {
		t.Fatal(err)
	}
	xdp, ok := m["xdp"].(map[string]any)
	if !ok {
		t.Fatalf("ConfigMap %s key %s: no xdp section", b.configMap.Name, configKey)
	}
	xdp["interfaces"] = []string{}
	noIfaces, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, noIfaces, 0o644); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	_, err = config.Parse(args, &stderr)
	if err == nil {
		t.Fatalf("config.Parse(%q) with a file without xdp.interfaces succeeded, want an error: --config is not read", args)
	}
	if !strings.Contains(err.Error(), "interfaces") {
		t.Errorf("config.Parse(%q) with a file without xdp.interfaces = %v, want an error naming xdp.interfaces", args, err)
	}
}
