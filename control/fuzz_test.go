package control

import (
	"bytes"
	"testing"
)

// FuzzManifestBuild decodes arbitrary manifest bytes and builds whatever
// decodes: neither step may panic, and a build always yields a snapshot.
func FuzzManifestBuild(f *testing.F) {
	f.Add([]byte(manifestV1))
	f.Add([]byte(manifestList))
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIP: 198.18.100.1, ports: [{port: 99999}]}\n"))
	f.Add([]byte("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s, labels: {kubernetes.io/service-name: x}}\naddressType: IPv6\nendpoints: [{addresses: ['198.18.1.1']}]\nports: [{name: '', port: 0}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeManifest(bytes.NewReader(data), testNode)
		if err != nil {
			return
		}
		b, err := NewBuilder(testOpts())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st.services {
			b.SetService(s.Namespace, s.Name, s)
		}
		for _, s := range st.slices {
			b.SetEndpointSlice(s.Namespace, s.Name, s)
		}
		b.SetNode(st.node)
		if res := b.Build(); res.Snapshot == nil {
			t.Fatal("Build returned a nil snapshot")
		}
	})
}
