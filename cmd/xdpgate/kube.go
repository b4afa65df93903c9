package main

import (
	"fmt"
	"log/slog"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/xdpgate/xdpgate/control"
)

// kubeSource builds the cluster source from a kubeconfig file.
//
// House style keeps client-go inside control; control has no kubeconfig
// constructor yet, so this one function loads the file here. It belongs in
// control (e.g. control.NewKubeSourceFromKubeconfig) once that exists.
func kubeSource(path, nodeName string, log *slog.Logger) (control.Source, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &control.KubeSource{Client: cs, NodeName: nodeName, Logger: log}, nil
}
