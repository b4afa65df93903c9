#!/usr/bin/env bash
# build-image.sh [TAG]
#
# Builds the xdpgate container image from the locally built static binary,
# with Debian's buildah, from scratch: no base image, no registry. This is
# what `make image` and the container e2e test run; deploy/Containerfile is
# the multi-stage build for users with a registry (it pulls a Go builder and
# a distroless base, which these machines cannot).
#
# The image holds /xdpgate only; its entrypoint and default command are the
# DaemonSet's (deploy/daemonset.yaml): /xdpgate run --config=/etc/xdpgate/config.yaml.
#
# BUILDAH_ROOT and BUILDAH_RUNROOT select the storage (default: buildah's);
# BUILDAH_DRIVER the storage driver (default: buildah's).
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-localhost/xdpgate:latest}"
out=.build/image
mkdir -p "$out"
# Static (no libc in the image) and without the symbol table and DWARF
# (a third of the size; panics still print file:line).
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/xdpgate" ./cmd/xdpgate

store=()
[[ -n "${BUILDAH_ROOT:-}" ]] && store+=(--root "$BUILDAH_ROOT")
[[ -n "${BUILDAH_RUNROOT:-}" ]] && store+=(--runroot "$BUILDAH_RUNROOT")
[[ -n "${BUILDAH_DRIVER:-}" ]] && store+=(--storage-driver "$BUILDAH_DRIVER")

ctr=$(buildah "${store[@]}" from scratch)
trap 'buildah "${store[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah "${store[@]}" copy --chmod 0755 "$ctr" "$out/xdpgate" /xdpgate >/dev/null
buildah "${store[@]}" config \
	--entrypoint '["/xdpgate"]' --cmd 'run --config=/etc/xdpgate/config.yaml' \
	--label org.opencontainers.image.title=xdpgate \
	--label org.opencontainers.image.source=deploy/Containerfile \
	"$ctr"
buildah "${store[@]}" commit -q "$ctr" "$tag" >/dev/null
echo "build-image: $tag ($(du -h "$out/xdpgate" | cut -f1) binary)"
