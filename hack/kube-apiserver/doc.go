// Command kube-apiserver is the upstream Kubernetes API server, built from the
// k8s.io/kubernetes module at the version pinned in this directory's go.mod.
// main.go mirrors k8s.io/kubernetes/cmd/kube-apiserver/apiserver.go.
//
// This directory is a separate Go module so that xdpgate's main module never
// depends on k8s.io/kubernetes. k8s.io/kubernetes cannot be `go install`ed
// directly: its go.mod replaces every k8s.io staging module with a local
// directory. This module's go.mod replaces each of them with its published
// version instead (k8s.io/api => k8s.io/api v0.36.3, ...). The replace block
// is generated, never typed: run hack/update-kube-apiserver-mod.sh VERSION to
// regenerate go.mod and go.sum for another Kubernetes version.
//
// The binary exists only for xdpgate's control-plane integration tests
// (package internal/kubetest starts it against a throwaway etcd on loopback).
// Build it with hack/build-kube-apiserver.sh (or `make kube-apiserver`).
package main
