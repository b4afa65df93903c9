package sink

// The XDP sink is compiled with clang and embedded by bpf2go. The generated
// sink_bpfe{l,b}.go and .o files are committed; `go generate ./bench/sink/...`
// rebuilds them and needs clang, llvm and libbpf-dev. -mcpu=v3 is for the
// compare-and-swap on a client's moved flag (kernel 5.12+).
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target bpfel,bpfeb -no-global-types sink bpf/sink.c
