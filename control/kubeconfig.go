package control

import (
	"errors"
	"fmt"
	"log/slog"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UserAgent is the User-Agent xdpgate sends to the API server, so that its
// requests are told apart from kube-proxy's in audit logs and API priority
// and fairness.
const UserAgent = "xdpgate"

// ErrNoClusterConfig reports that no API server credentials were given and
// the process does not run in a pod.
var ErrNoClusterConfig = errors.New("not running in a cluster (KUBERNETES_SERVICE_HOST unset): give --manifests, --kubeconfig or --master")

// NewKubeSourceFromConfig builds a KubeSource for this node from, in order:
//
//   - the kubeconfig file when kubeconfig is set (its current context),
//     with master, when set, replacing the cluster's server;
//   - else the pod's service account (rest.InClusterConfig), with master,
//     when set, replacing the in-cluster address but keeping the token and
//     CA;
//   - else, outside a pod, master alone without credentials (an
//     unauthenticated endpoint such as kubectl proxy), as kube-proxy does
//     with only --master.
//
// With none of them it returns an error wrapping ErrNoClusterConfig. It
// makes no network connection: an unreachable server shows up when the
// source runs.
func NewKubeSourceFromConfig(kubeconfig, master, nodeName string, log *slog.Logger) (*KubeSource, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg, how, err := restConfig(kubeconfig, master)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	log.Info("API server client", "server", cfg.Host, "credentials", how)
	return &KubeSource{Client: cs, NodeName: nodeName, Logger: log}, nil
}

// restConfig resolves the client configuration as NewKubeSourceFromConfig
// documents; how names the credential source for the log.
func restConfig(kubeconfig, master string) (cfg *rest.Config, how string, err error) {
	switch {
	case kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags(master, kubeconfig)
		if err != nil {
			return nil, "", fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		how = "kubeconfig " + kubeconfig
	default:
		cfg, err = rest.InClusterConfig()
		switch {
		case err == nil:
			how = "in-cluster service account"
			if master != "" {
				cfg.Host = master
			}
		case errors.Is(err, rest.ErrNotInCluster) && master != "":
			cfg, how = &rest.Config{Host: master}, "none (--master only)"
		case errors.Is(err, rest.ErrNotInCluster):
			return nil, "", ErrNoClusterConfig
		default:
			// In a pod, but the service account token or CA is not
			// mounted (e.g. automountServiceAccountToken: false).
			return nil, "", fmt.Errorf("in-cluster config: %w", err)
		}
	}
	cfg.UserAgent = UserAgent
	return cfg, how, nil
}
