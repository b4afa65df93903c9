// Package kubetest starts a real Kubernetes API server, backed by a real etcd,
// on loopback for xdpgate's control-plane integration tests.
//
// It is used only from tests. It is the one package besides control that
// imports client-go: it hands tests a configured client, and nothing in the
// xdpgate binary links it.
//
// # Model
//
// An Env is one etcd and one kube-apiserver process, both children of the
// test binary, listening only on 127.0.0.1 on ports picked free at start:
//
//	test ──client-go (bearer token, HTTPS)──▶ kube-apiserver ──http──▶ etcd
//
// etcd is Debian's /usr/bin/etcd (package etcd-server) with a throwaway data
// directory. kube-apiserver is the upstream binary built from the Go module
// proxy by hack/build-kube-apiserver.sh (`make kube-apiserver`); its path is
// taken from $XDPGATE_KUBE_APISERVER, else <repo>/.build/kube-apiserver-v1.36.3
// where <repo> is found by walking up from the working directory to xdpgate's
// go.mod. The API server runs with token authentication (one user in
// system:masters), AlwaysAllow authorization (Opts.AuthorizationMode), a self-signed serving
// certificate generated into its cert directory, a service-account key pair
// generated with Go's crypto, and Service cluster IPs from ServiceCIDR.
//
// No controller-manager, scheduler or kubelet runs. The API server itself still
// applies defaulting, validation and admission (a ClientIP Service comes back
// with sessionAffinityConfig.clientIP.timeoutSeconds 10800), allocates
// cluster IPs and node ports, and creates the default/kubernetes Service
// (cluster IP 198.18.128.1, without endpoints: the harness turns the endpoint
// reconciler off because the API server's only address is loopback, which
// Endpoints reject). Nothing creates EndpointSlices, and a deleted namespace
// stays Terminating forever (no namespace controller): tests create the
// EndpointSlices they want and use fresh namespace names.
//
// # Lifetime
//
// Start, for one test, registers a cleanup; New and Close serve a TestMain
// that shares one Env between the tests of a package. Close (and the cleanup)
// stops the API server and then etcd, each with SIGTERM and, after
// Opts.StopTimeout, SIGKILL, and deletes the data and certificate
// directories, also when the test failed. On Linux the children also get
// SIGKILL when the test binary dies without cleaning up (a panic, a -timeout
// expiry): see the comment on sysProcAttr.
//
// StopAPIServer and StartAPIServer restart the API server on the same port
// against the same etcd, with the same certificate and token, so clients and
// informers built from Config reconnect by themselves.
//
// # Missing binaries
//
// When the kube-apiserver binary or etcd is missing, Start skips the test
// with a message naming the command that provides it, unless the environment
// requires the API server ($CI is "true" or $XDPGATE_REQUIRE_APISERVER is
// "1", as `make test` sets as root): then the test fails, because a skip
// would hide that the integration tests never ran.
package kubetest
