package xdpfwd

// The XDP program is compiled with clang and embedded by bpf2go. The
// generated xdpfwd_bpfe{l,b}.go and .o files are committed; `go generate
// ./bench/xdpfwd/...` rebuilds them and needs clang, llvm and libbpf-dev.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel,bpfeb -no-global-types xdpfwd bpf/xdpfwd.c
