package dataplane

// The XDP classifier is compiled with clang and embedded by bpf2go. The
// generated classifier_bpfe{l,b}.go and .o files are committed; `make
// generate` (go generate ./dataplane/...) rebuilds them and needs clang, llvm
// and libbpf-dev.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel,bpfeb -no-global-types classifier bpf/classifier.c
