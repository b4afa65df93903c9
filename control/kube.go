package control

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// DefaultResync is the informers' resync period (kube-proxy's
// configSyncPeriod default).
const DefaultResync = 15 * time.Minute

// KubeSource watches Services and EndpointSlices (with kube-proxy's label
// selector: no service.kubernetes.io/service-proxy-name and no
// service.kubernetes.io/headless label) and this node's Node object (field
// selector metadata.name) through client-go shared informers.
//
// Informers relist and rewatch by themselves after API server restarts and
// watch expiry; meanwhile nothing is recorded and the controller keeps
// publishing nothing new, so the dataplane keeps the last snapshot.
type KubeSource struct {
	// Client is the API client.
	Client kubernetes.Interface
	// NodeName is this node's name.
	NodeName string
	// Resync defaults to DefaultResync.
	Resync time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// proxyLabelSelector is kube-proxy's informer selector (server.go).
func proxyLabelSelector() (string, error) {
	noProxyName, err := labels.NewRequirement(LabelServiceProxyName, selection.DoesNotExist, nil)
	if err != nil {
		return "", err
	}
	noHeadless, err := labels.NewRequirement(LabelHeadless, selection.DoesNotExist, nil)
	if err != nil {
		return "", err
	}
	return labels.NewSelector().Add(*noProxyName, *noHeadless).String(), nil
}

// Run implements Source: it starts the informers, waits for their caches
// to sync, calls Synced, and returns when ctx ends.
func (k *KubeSource) Run(ctx context.Context, sink Sink) error {
	log := k.Logger
	if log == nil {
		log = slog.Default()
	}
	resync := k.Resync
	if resync <= 0 {
		resync = DefaultResync
	}
	sel, err := proxyLabelSelector()
	if err != nil {
		return fmt.Errorf("label selector: %w", err)
	}
	factory := informers.NewSharedInformerFactoryWithOptions(k.Client, resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	nodeFactory := informers.NewSharedInformerFactoryWithOptions(k.Client, resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", k.NodeName).String()
		}))

	svcInf := factory.Core().V1().Services().Informer()
	sliceInf := factory.Discovery().V1().EndpointSlices().Informer()
	nodeInf := nodeFactory.Core().V1().Nodes().Informer()

	if _, err := svcInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { upsertAs(obj, sink.UpsertService) },
		UpdateFunc: func(_, obj any) { upsertAs(obj, sink.UpsertService) },
		DeleteFunc: func(obj any) { deleteAs[*v1.Service](obj, sink.DeleteService) },
	}); err != nil {
		return fmt.Errorf("service handler: %w", err)
	}
	if _, err := sliceInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { upsertAs(obj, sink.UpsertEndpointSlice) },
		UpdateFunc: func(_, obj any) { upsertAs(obj, sink.UpsertEndpointSlice) },
		DeleteFunc: func(obj any) { deleteAs[*discoveryv1.EndpointSlice](obj, sink.DeleteEndpointSlice) },
	}); err != nil {
		return fmt.Errorf("endpointslice handler: %w", err)
	}
	if _, err := nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { upsertAs(obj, sink.SetNode) },
		UpdateFunc: func(_, obj any) { upsertAs(obj, sink.SetNode) },
		DeleteFunc: func(any) { sink.SetNode(nil) },
	}); err != nil {
		return fmt.Errorf("node handler: %w", err)
	}

	factory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	defer factory.Shutdown()
	defer nodeFactory.Shutdown()
	log.Info("waiting for informer caches to sync")
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.HasSynced, sliceInf.HasSynced, nodeInf.HasSynced) {
		return ctx.Err()
	}
	log.Info("informer caches synced")
	sink.Synced()
	<-ctx.Done()
	return nil
}

func upsertAs[T any](obj any, f func(T)) {
	if o, ok := obj.(T); ok {
		f(o)
	}
}

func deleteAs[T metav1.Object](obj any, f func(ns, name string)) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if o, ok := obj.(T); ok {
		f(o.GetNamespace(), o.GetName())
	}
}
