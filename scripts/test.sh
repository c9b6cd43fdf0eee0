#!/usr/bin/env bash
# The whole test suite: ./scripts/test.sh
#
# Installs what a fresh Debian machine lacks (when run as root: a C
# compiler, OpenSSL 3 headers, the openssl tool, iproute2, a JDK for
# interop/), then
# runs vet, the builds without cgo and without DHE, and the race-enabled
# tests of every package, the interop runs against the real binary
# included. Fails loudly when something it needs is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v gcc >/dev/null || missing+=(gcc)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
command -v openssl >/dev/null || missing+=(openssl) # drives the DHE test client
# ip and ss make the network namespaces in which client's tests cut a TCP path.
{ command -v ip >/dev/null && command -v ss >/dev/null; } || missing+=(iproute2)
# interop/ compiles and runs a Java client like the deployed ones.
{ command -v javac >/dev/null && command -v java >/dev/null; } || missing+=(openjdk-17-jdk-headless)
if ((${#missing[@]})); then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "installing: ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
	else
		echo "missing: ${missing[*]}; install them (Debian: sudo apt-get install ${missing[*]})" >&2
		exit 1
	fi
fi
command -v go >/dev/null || { echo "Go 1.26 or newer is required (go not on PATH)" >&2; exit 1; }

export CGO_ENABLED=1
echo "== go vet"
go vet ./...
echo "== build without cgo and without DHE"
CGO_ENABLED=0 go build -o /dev/null ./cmd/dtoperator
go build -tags nodhe -o /dev/null ./cmd/dtoperator
echo "== go test -race"
go test -race -count=1 -timeout 30m ./...
