package kubetest_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/xdpgate/xdpgate/internal/kubetest"
)

// ExampleNew shares one Env between the tests of a package from TestMain,
// where there is no testing.TB to skip: a missing binary is reported and
// the tests are skipped by hand unless the environment requires them.
// Single tests use Start(t) instead.
func ExampleNew() {
	// In a real package this is func TestMain(m *testing.M).
	env, err := kubetest.New(context.Background(), kubetest.Opts{})
	if errors.Is(err, kubetest.ErrAPIServerNotFound) || errors.Is(err, kubetest.ErrEtcdNotFound) {
		fmt.Fprintln(os.Stderr, err)
		if kubetest.Required() {
			os.Exit(1)
		}
		os.Exit(0) // skip the package
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	svc, err := env.Client.CoreV1().Services(metav1.NamespaceDefault).Get(context.Background(), "kubernetes", metav1.GetOptions{})
	if err == nil {
		fmt.Println(svc.Spec.ClusterIP)
	}
	// code := m.Run()
	if err := env.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	// os.Exit(code)
}
