package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/xdpgate/xdpgate/internal/kubetest"
	"github.com/xdpgate/xdpgate/internal/testnet"
)

// relayAPIServer makes the API server (listening on the host's loopback)
// reachable at addr inside ns: a TCP relay whose listening socket lives in
// ns and whose upstream connections are made from the host. Clients inside
// the topology reach a real kube-apiserver at an endpoint address, through
// the gateway's managed interface, with TLS end to end.
func relayAPIServer(t *testing.T, ns *testnet.NS, addr netip.AddrPort, upstream string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }); err != nil {
		t.Fatalf("relay listen %s: %v", addr, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if conns == nil {
			return false // closing
		}
		conns = append(conns, c)
		return true
	}
	conns = []net.Conn{}
	wg.Go(func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.DialTimeout("tcp", upstream, 3*time.Second)
			if err != nil {
				down.Close()
				continue
			}
			if !track(down) || !track(up) {
				down.Close()
				up.Close()
				return
			}
			wg.Go(func() { io.Copy(up, down); up.Close() })
			wg.Go(func() { io.Copy(down, up); down.Close() })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
}

// httpsIn returns a client whose connections are made from inside ns
// (TLS verification off: the serving certificate is self-signed).
func httpsIn(ns *testnet.NS) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
				err = ns.Do(func() (err error) {
					var d net.Dialer
					c, err = d.DialContext(ctx, network, addr)
					return err
				})
				return c, err
			},
		},
	}
}

// readyz GETs https://addr/readyz with the token and returns the body.
func readyz(c *http.Client, addr netip.AddrPort, token string) (string, error) {
	req, err := http.NewRequest("GET", "https://"+addr.String()+"/readyz", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// createService creates a ClusterIP Service with one TCP port and an
// EndpointSlice naming ep, and returns the ClusterIP the API server gave it.
func createService(t *testing.T, cs kubernetes.Interface, name string, port int32, ep netip.AddrPort) netip.Addr {
	t.Helper()
	ctx := context.Background()
	svc, err := cs.CoreV1().Services("default").Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "p", Port: port, Protocol: v1.ProtocolTCP,
			TargetPort: intstr.FromInt32(int32(ep.Port()))}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service %s: %v", name, err)
	}
	ready, epPort, proto, pname := true, int32(ep.Port()), v1.ProtocolTCP, "p"
	_, err = cs.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &epPort, Protocol: &proto}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ep.Addr().String()},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create endpointslice %s: %v", name, err)
	}
	return netip.MustParseAddr(svc.Spec.ClusterIP)
}

// TestPrivAPIServerBehindTheGateway: xdpgate runs from a real
// kube-apiserver that is itself the endpoint of a Service xdpgate serves,
// reached through a managed interface, as the API server is the endpoint of
// default/kubernetes on every cluster. xdpgate's own watch connection and
// the node's own requests to the API server's address keep working while
// clients reach the API server through the Service.
func TestPrivAPIServerBehindTheGateway(t *testing.T) {
	w := newWorld(t, 1, 2, 1)
	env := kubetest.Start(t)
	apiAddr := netip.AddrPortFrom(endpoint4(0), 6443)
	relayAPIServer(t, w.b, apiAddr, strings.TrimPrefix(env.APIServerURL, "https://"))

	w.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: %q}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, apiAddr, env.Token)
	if err := os.WriteFile(w.kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	vip := createService(t, env.Client, "apiserver", 443, apiAddr)
	w.start()

	client := httpsIn(w.c)
	waitOK := func(what string, fn func() error) {
		t.Helper()
		if err := within(context.Background(), 60*time.Second, fn); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// Clients reach the API server through the Service.
	waitOK("client to the API server through its Service", func() error {
		body, err := readyz(client, netip.AddrPortFrom(vip, 443), env.Token)
		if err == nil && body != "ok" {
			err = fmt.Errorf("readyz = %q", body)
		}
		return err
	})
	// The node itself (the kubelet, say) reaches the API server's own
	// address, which is now a Service endpoint.
	if body, err := readyz(httpsIn(w.g), apiAddr, env.Token); err != nil || body != "ok" {
		t.Errorf("the node's own request to the API server at %s: %q, %v", apiAddr, body, err)
	}
	// xdpgate's own watch, opened before the Service was programmed, still
	// delivers: a Service created now is served.
	web := createService(t, env.Client, "web", 80, netip.AddrPortFrom(endpoint4(1), 8080))
	waitOK("a Service created after the API server's own was programmed", func() error {
		r, err := w.tcpQuery(client4(0), ap(web, 80))
		if err == nil && r.endpoint != endpoint4(1) {
			err = fmt.Errorf("answered by %v", r.endpoint)
		}
		return err
	})
	if body, err := readyz(client, netip.AddrPortFrom(vip, 443), env.Token); err != nil || body != "ok" {
		t.Errorf("client to the API server through its Service, at the end: %q, %v", body, err)
	}
	w.alive()
}
