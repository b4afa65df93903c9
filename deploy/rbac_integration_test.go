package deploy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/xdpgate/xdpgate/control"
	"github.com/xdpgate/xdpgate/internal/kubetest"
	"github.com/xdpgate/xdpgate/snapshot"
)

// rbacWait bounds each wait for the API server to act (an RBAC change to
// reach the authorizer's cache, a snapshot to be published). It is a
// liveness bound for a loaded shared machine, not a performance
// expectation.
const rbacWait = 2 * time.Minute

// startRBACAPIServer starts kubetest's API server with RBAC as its only
// authorizer. TestRBACIntegration checks first that an unprivileged user
// is forbidden, which catches the harness or the flag's semantics
// changing.
func startRBACAPIServer(t *testing.T) *kubetest.Env {
	t.Helper()
	return kubetest.StartOpts(t, kubetest.Opts{AuthorizationMode: "RBAC"})
}

// impersonate returns a client acting as user, through the admin's
// credentials; the API server gives a service-account user its groups.
func impersonate(t *testing.T, env *kubetest.Env, user string) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// check is one request made as the ServiceAccount.
type check struct {
	name string
	do   func(ctx context.Context, cs kubernetes.Interface) error
}

// fromNow returns opts for a watch from the resource version of a list, as
// an informer's reflector watches (list is the admin's, so that a
// forbidden list cannot hide a forbidden watch). A watch without a
// resource version would make the API server wait for a fresh one from
// etcd, seconds per check.
func fromNow[L interface{ GetResourceVersion() string }](ctx context.Context, list func(context.Context, metav1.ListOptions) (L, error), opts metav1.ListOptions) metav1.ListOptions {
	if l, err := list(ctx, opts); err == nil {
		opts.ResourceVersion = l.GetResourceVersion()
	}
	return opts
}

// watchOnce opens a watch and stops it: the API server authorizes a watch
// when it opens, before any event.
func watchOnce(w interface{ Stop() }, err error) error {
	if err == nil {
		w.Stop()
	}
	return err
}

func TestRBACIntegration(t *testing.T) {
	b := loadManifests(t)
	env := startRBACAPIServer(t)
	admin := env.Client
	ctx := t.Context()
	user := "system:serviceaccount:" + b.serviceAccount.Namespace + ":" + b.serviceAccount.Name
	sa := impersonate(t, env, user)
	const node = "xdpgate-gw-1"
	nodeSelector := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", node).String()}

	// Before anything is granted the ServiceAccount (which need not exist
	// to be impersonated) must be refused, or the allowed checks below
	// prove nothing.
	if _, err := sa.CoreV1().Services("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("list services as %s before RBAC objects exist: err = %v, want Forbidden: the API server does not authorize with RBAC alone", user, err)
	}

	// The identity and its grants, as kubectl apply -k orders them. Strict
	// field validation on the server too, although decodeManifest has
	// checked the fields against the same types.
	strict := metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, b.namespace, strict); err != nil {
		t.Fatalf("create Namespace %s: %v", b.namespace.Name, err)
	}
	if _, err := admin.CoreV1().ServiceAccounts(b.serviceAccount.Namespace).Create(ctx, b.serviceAccount, strict); err != nil {
		t.Fatalf("create ServiceAccount %s: %v", b.serviceAccount.Name, err)
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, b.clusterRole, strict); err != nil {
		t.Fatalf("create ClusterRole %s: %v", b.clusterRole.Name, err)
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, b.binding, strict); err != nil {
		t.Fatalf("create ClusterRoleBinding %s: %v", b.binding.Name, err)
	}
	// The RBAC authorizer reads roles and bindings through informers: wait
	// for the binding to reach it.
	waitCtx, cancel := context.WithTimeout(ctx, rbacWait)
	defer cancel()
	for {
		_, err := sa.CoreV1().Services("").List(waitCtx, metav1.ListOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsForbidden(err) || waitCtx.Err() != nil {
			t.Fatalf("list services as %s after the binding: %v", user, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	allowed := []check{
		{"list services", func(ctx context.Context, cs kubernetes.Interface) error {
			_, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"watch services", func(ctx context.Context, cs kubernetes.Interface) error {
			return watchOnce(cs.CoreV1().Services("").Watch(ctx, fromNow(ctx, admin.CoreV1().Services("").List, metav1.ListOptions{})))
		}},
		{"list endpointslices", func(ctx context.Context, cs kubernetes.Interface) error {
			_, err := cs.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"watch endpointslices", func(ctx context.Context, cs kubernetes.Interface) error {
			return watchOnce(cs.DiscoveryV1().EndpointSlices("").Watch(ctx, fromNow(ctx, admin.DiscoveryV1().EndpointSlices("").List, metav1.ListOptions{})))
		}},
		{"list own node", func(ctx context.Context, cs kubernetes.Interface) error {
			_, err := cs.CoreV1().Nodes().List(ctx, nodeSelector)
			return err
		}},
		{"watch own node", func(ctx context.Context, cs kubernetes.Interface) error {
			return watchOnce(cs.CoreV1().Nodes().Watch(ctx, fromNow(ctx, admin.CoreV1().Nodes().List, nodeSelector)))
		}},
	}
	forbidden := []check{
		{"create service", func(ctx context.Context, cs kubernetes.Interface) error {
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "intruder"},
				Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
			}
			_, err := cs.CoreV1().Services(metav1.NamespaceDefault).Create(ctx, svc, metav1.CreateOptions{})
			return err
		}},
		{"get service", func(ctx context.Context, cs kubernetes.Interface) error {
			// Informers never get single objects.
			_, err := cs.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
			return err
		}},
		{"list secrets", func(ctx context.Context, cs kubernetes.Interface) error {
			_, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"get secret", func(ctx context.Context, cs kubernetes.Interface) error {
			_, err := cs.CoreV1().Secrets(b.serviceAccount.Namespace).Get(ctx, "any", metav1.GetOptions{})
			return err
		}},
		{"list pods", func(ctx context.Context, cs kubernetes.Interface) error {
			_, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"update node", func(ctx context.Context, cs kubernetes.Interface) error {
			_, err := cs.CoreV1().Nodes().Update(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.UpdateOptions{})
			return err
		}},
		{"create event", func(ctx context.Context, cs kubernetes.Interface) error {
			// control records no Events, so the role grants none.
			ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "xdpgate.1"}, InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: node}}
			_, err := cs.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{})
			return err
		}},
	}
	refused := false
	for _, c := range allowed {
		t.Run("allowed/"+c.name, func(t *testing.T) {
			if err := c.do(t.Context(), sa); err != nil {
				refused = true
				t.Errorf("%s as %s: %v, want allowed", c.name, user, err)
			}
		})
	}
	for _, c := range forbidden {
		t.Run("forbidden/"+c.name, func(t *testing.T) {
			if err := c.do(t.Context(), sa); !apierrors.IsForbidden(err) {
				t.Errorf("%s as %s: err = %v, want Forbidden", c.name, user, err)
			}
		})
	}

	t.Run("server validation", func(t *testing.T) {
		// The rest of the manifests: the API server's validation and
		// admission (Pod Security among them) accept them. No controller
		// runs under kubetest, so the DaemonSet starts nothing.
		if _, err := admin.CoreV1().ConfigMaps(b.configMap.Namespace).Create(t.Context(), b.configMap, strict); err != nil {
			t.Errorf("create ConfigMap %s: %v", b.configMap.Name, err)
		}
		if _, err := admin.AppsV1().DaemonSets(b.daemonSet.Namespace).Create(t.Context(), b.daemonSet, strict); err != nil {
			t.Errorf("create DaemonSet %s: %v", b.daemonSet.Name, err)
		}
	})

	t.Run("KubeSource", func(t *testing.T) {
		if refused {
			// The informers would never sync; the failures above say why.
			t.Skip("a request the informers make was refused")
		}
		testKubeSourceAs(t, admin, sa, node)
	})
}

// testKubeSourceAs runs control's cluster source with client cs (the
// ServiceAccount) and waits for snapshots with a Service that existed before
// it started (list) and one created afterwards (watch); admin creates the
// objects.
func testKubeSourceAs(t *testing.T, admin, cs kubernetes.Interface, node string) {
	ctx := t.Context()
	ns := fmt.Sprintf("xdpgate-rbac-%d", time.Now().UnixNano()%1e9)
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.10"}}
	if _, err := admin.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	createService(t, admin, ns, "before", "198.19.0.1")

	ctrl, err := control.New(control.Config{
		Build:       control.BuildOptions{NodeName: node},
		HealthzAddr: control.Disabled, MetricsAddr: control.Disabled,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	published := make(chan struct{}, 1)
	ctrl.Subscribe(func(*snapshot.Snapshot) {
		select {
		case published <- struct{}{}:
		default:
		}
	})
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ctrl.Run(runCtx, &control.KubeSource{Client: cs, NodeName: node, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control Run as the ServiceAccount: %v", err)
		}
	}()
	// waitFor waits for a snapshot in which ns/name forwards to endpoint.
	waitFor := func(name, endpoint string) {
		t.Helper()
		timeout := time.NewTimer(rbacWait)
		defer timeout.Stop()
		for {
			if s := ctrl.Current(); s != nil && forwardsTo(s, ns, name, endpoint) {
				return
			}
			select {
			case <-published:
			case err := <-done:
				done <- err // for the deferred check
				t.Fatalf("control Run as the ServiceAccount ended while waiting for %s/%s: %v", ns, name, err)
			case <-timeout.C:
				t.Fatalf("no snapshot with %s/%s -> %s after %v as the ServiceAccount; last: %v", ns, name, endpoint, rbacWait, describe(ctrl.Current()))
			}
		}
	}
	waitFor("before", "198.19.0.1:8080")
	createService(t, admin, ns, "after", "198.19.0.2")
	waitFor("after", "198.19.0.2:8080")
}

// createService creates a ClusterIP Service ns/name on port 80 and its
// EndpointSlice with one ready endpoint ip:8080, as the API server's
// EndpointSlice controller would (none runs under kubetest).
func createService(t *testing.T, admin kubernetes.Interface, ns, name, ip string) {
	t.Helper()
	ctx := t.Context()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	if _, err := admin.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Service %s/%s: %v", ns, name, err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080)), Protocol: new(corev1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true)}}},
	}
	if _, err := admin.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create EndpointSlice %s/%s: %v", ns, slice.Name, err)
	}
}

// forwardsTo reports whether s has a port of ns/name whose cluster chain
// holds endpoint ("ip:port").
func forwardsTo(s *snapshot.Snapshot, ns, name, endpoint string) bool {
	for i := range s.ServicePorts {
		sp := &s.ServicePorts[i]
		if sp.Namespace != ns || sp.Name != name {
			continue
		}
		for _, j := range sp.Cluster {
			if sp.Endpoints[j].AddrPort().String() == endpoint {
				return true
			}
		}
	}
	return false
}

// describe lists a snapshot's service ports for a failure message.
func describe(s *snapshot.Snapshot) string {
	if s == nil {
		return "none published (caches never synced: is list or watch forbidden?)"
	}
	var keys []string
	for i := range s.ServicePorts {
		keys = append(keys, s.ServicePorts[i].Key())
	}
	return fmt.Sprintf("generation %d, service ports %q", s.Generation, keys)
}
