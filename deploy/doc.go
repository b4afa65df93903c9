// Package deploy holds the manifests that run xdpgate on a Kubernetes
// cluster (a DaemonSet on the nodes labelled xdpgate.io/gateway=true), the
// Containerfile of its image, and the tests that keep both honest. It has no
// Go code of its own: README.md describes the install, and `kubectl apply -k
// deploy/` applies the manifests that kustomization.yaml lists.
//
// # What the tests check
//
// The manifests repeat facts that live in Go code: the capabilities
// `xdpgate run` checks (cmd/xdpgate/caps_linux.go), the resources its
// informers list and watch (control/kube.go), the flags and configuration
// file format of `xdpgate run`, and the health port. The tests read those
// facts from the code and compare (file by file: deploy_test.go decoding
// and kustomization, daemonset_test.go, config_test.go, rbac_test.go,
// rbac_integration_test.go):
//
//   - every document decodes strictly (unknown fields are errors) with
//     client-go's scheme, and kustomization.yaml lists exactly the manifest
//     files present;
//   - the DaemonSet's capability set is the one caps_linux.go checks, its
//     probes reach /livez and /healthz on the configured health port, the
//     ConfigMap key lands at the path passed to --config, and the admin
//     socket's directory is shared with the node;
//   - the ConfigMap's file and the container's arguments pass the binary's
//     own configuration parser;
//   - the ClusterRole grants list and watch on exactly the informers'
//     resources (control/kube.go, parsed);
//   - against a real kube-apiserver authorizing with RBAC only
//     (internal/kubetest), the ServiceAccount can do what
//     control.KubeSource does and nothing else, KubeSource itself syncs and
//     publishes snapshots with its credentials, and the API server's own
//     validation and admission accept every manifest. This test is skipped
//     without the kube-apiserver binary unless XDPGATE_REQUIRE_APISERVER=1
//     or CI=true.
//
// Like internal/kubetest, the tests import client-go although house style
// keeps it inside control: they are the API server's client by nature, and
// nothing in the xdpgate binary links this package.
package deploy
