#!/usr/bin/env bash
# install-deps.sh
#
# Installs the Debian packages xdpgate's tests need, when they are missing:
# etcd (real API server tests), iproute2, ethtool, nftables, iptables and
# tcpdump (network-namespace tests), openssl, clang, llvm and libbpf-dev
# (eBPF objects), buildah, podman and runc (the container image is built
# and run by the tests), and prometheus (the server and promtool: the shipped
# dashboard and alert rules are evaluated by the tests). Runs `apt-get update`
# once, only when something is missing, then `apt-get install -y`.
# Non-interactive and quiet; prints what it does.
# Needs root (or sudo) and Debian's apt.
set -euo pipefail

# package:command. A package counts as present when dpkg reports it installed
# or, for packages with a command, when the command is in PATH (a machine may
# provide it some other way).
deps=(
	etcd-server:etcd
	iproute2:ip
	ethtool:ethtool
	nftables:nft
	iptables:iptables
	tcpdump:tcpdump
	openssl:openssl
	clang:clang
	llvm:llvm-strip
	libbpf-dev:
	buildah:buildah
	podman:podman
	runc:runc
	prometheus:prometheus
)

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for dep in "${deps[@]}"; do
	pkg="${dep%%:*}"
	cmd="${dep#*:}"
	if [[ -n "$cmd" ]] && command -v "$cmd" >/dev/null 2>&1; then
		continue
	fi
	if installed "$pkg"; then
		continue
	fi
	missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "install-deps: all test dependencies present"
	exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: apt-get not found; install these packages by hand: ${missing[*]}" >&2
	exit 1
fi

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-deps: not root and no sudo; run as root to install: ${missing[*]}" >&2
		exit 1
	fi
	sudo=(sudo)
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt or dpkg (for example unattended-upgrades) instead of failing.
apt_opts=(-qq -o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)

echo "install-deps: apt-get update"
if ! "${sudo[@]}" apt-get "${apt_opts[@]}" update >"$log" 2>&1; then
	cat "$log" >&2
	echo "install-deps: apt-get update failed" >&2
	exit 1
fi
echo "install-deps: apt-get install -y ${missing[*]}"
if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y "${missing[@]}" >"$log" 2>&1; then
	cat "$log" >&2
	echo "install-deps: apt-get install failed" >&2
	exit 1
fi
echo "install-deps: installed ${missing[*]}"
