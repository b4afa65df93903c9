#!/usr/bin/env bash
# build-kube-apiserver.sh [OUT]
#
# Builds the real kube-apiserver from hack/kube-apiserver (a separate Go module
# pinning k8s.io/kubernetes) into OUT, by default
# <repo>/.build/kube-apiserver-<version>, where <version> is the
# k8s.io/kubernetes version required by hack/kube-apiserver/go.mod. Does
# nothing when OUT already exists, so it is safe to call on every `make test`.
#
# Needs only Go and the Go module proxy (about 0.6 GB of modules on first use).
# On a 2-core machine the build takes about 3 minutes and 1.8 GB of memory.
# The binary is static (CGO_ENABLED=0), as upstream builds it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
moddir="$here/kube-apiserver"

version="$(awk '($1 == "require" && $2 == "k8s.io/kubernetes") || $1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print ($1 == "require" ? $3 : $2); exit }' "$moddir/go.mod")"
if [[ -z "$version" ]]; then
	echo "build-kube-apiserver: no k8s.io/kubernetes requirement in $moddir/go.mod" >&2
	exit 1
fi
out="${1:-$repo/.build/kube-apiserver-$version}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac

if [[ -x "$out" ]]; then
	echo "build-kube-apiserver: $out exists, nothing to do"
	exit 0
fi
if ! command -v go >/dev/null 2>&1; then
	echo "build-kube-apiserver: go not found in PATH" >&2
	exit 1
fi

mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT

echo "build-kube-apiserver: building k8s.io/kubernetes $version kube-apiserver into $out"
echo "build-kube-apiserver: (takes minutes and about 2 GB of memory on 2 cores)"
start=$SECONDS
# Build the version into the binary as upstream's hack/lib/version.sh does, so
# /version reports it instead of v0.0.0-master.
minor="${version#v1.}"
minor="${minor%%.*}"
ldflags="-s -w"
ldflags+=" -X k8s.io/component-base/version.gitVersion=$version"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
(
	cd "$moddir"
	# Two cores on the machines this runs on: bound parallelism so the
	# build does not starve everything else (and peaks lower in memory).
	GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 GOMAXPROCS="${GOMAXPROCS:-2}" \
		go build -p "${BUILD_PARALLELISM:-2}" -trimpath -buildvcs=false \
		-ldflags="$ldflags" -o "$tmp" .
)
"$tmp" --version
mv -f "$tmp" "$out"
trap - EXIT
echo "build-kube-apiserver: built $out in $((SECONDS - start))s"
