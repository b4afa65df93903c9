# xdpgate build and test entry points. `make test` is the README's test
# command and what CI runs (as root, on a fresh Debian machine with Go).

GO        ?= go
GOFLAGS   ?= -mod=readonly
export GOFLAGS

KUBE_VERSION   := v1.36.3
KUBE_APISERVER := $(CURDIR)/.build/kube-apiserver-$(KUBE_VERSION)
export XDPGATE_KUBE_APISERVER := $(KUBE_APISERVER)

# As root (CI), privileged and API-server tests must run: a skip is a failure.
ifeq ($(shell id -u),0)
export XDPGATE_REQUIRE_PRIV      := 1
export XDPGATE_REQUIRE_APISERVER := 1
endif

FUZZTIME ?= 60s
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
IMAGE ?= localhost/xdpgate:latest

.PHONY: all build image demo bench test test-unit deps kube-apiserver lint fuzz generate clean

all: build

## build: the product, bin/xdpgate, and the benchmark rig, bin/xdpgate-bench.
build:
	$(GO) build -o bin/xdpgate ./cmd/xdpgate
	$(GO) build -o bin/xdpgate-bench ./cmd/xdpgate-bench

## image: the container image localhost/xdpgate:latest, from the static
## binary, with buildah from scratch (no registry needed); see
## deploy/Containerfile for the multi-stage build with a registry.
image: deps
	bash hack/build-image.sh $(IMAGE)

## demo: the README's first command. As root: namespaces, backends, the
## gateway dataplane and live traffic for DEMO_FLAGS (default 30 s), then
## everything is removed.
demo: deps build
	./bin/xdpgate demo $(DEMO_FLAGS)

## bench: the benchmark rig (as root, ~10 min): every scenario against
## xdpgate, kube-proxy's nftables and iptables rulesets in the kernel, and the
## raw AF_XDP forwarder, side by side. bin/xdpgate-bench measures the
## bin/xdpgate built next to it. The report goes to bench/results/ (latest.md,
## latest.json, latest/*.svg, replaced by every run); each run's own files and
## the CPU profiles go to bench/results/runs/ (not committed). BENCH_FLAGS are
## passed through, e.g. BENCH_FLAGS="--scenarios udp64-1k-flows --duration 3s".
bench: deps build
	./bin/xdpgate-bench $(BENCH_FLAGS)

## test: every test the project has (unit, -race, fuzz seeds, privileged
## network-namespace tests, real kube-apiserver integration tests).
test: deps kube-apiserver
	$(GO) vet ./...
	$(GO) test -race -short -count=1 -timeout 25m ./...

## test-unit: the tests that need neither root nor the API server.
test-unit:
	$(GO) test -short -count=1 ./nat/... ./maglev/... ./conntrack/... ./affinity/... ./snapshot/... ./pipeline/...

deps:
	@bash hack/install-deps.sh

kube-apiserver: $(KUBE_APISERVER)

$(KUBE_APISERVER):
	bash hack/build-kube-apiserver.sh $@

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOFLAGS= $(GO) run $(STATICCHECK) ./...

## fuzz: run every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

## generate: rebuild the eBPF objects (needs clang, llvm, libbpf-dev).
generate:
	$(GO) generate ./dataplane/... ./bench/...

clean:
	rm -rf bin .build
