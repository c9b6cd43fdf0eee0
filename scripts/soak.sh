#!/usr/bin/env bash
# Soak: CALLS calls (default 100, mixed transports) for DURATION (default
# 30m) against a freshly built dtoperator on loopback, sampling the
# server's goroutines (its /metrics) and RSS every minute. Prints the
# samples and the dtload report; RELIABILITY.md records a run.
#
#   ./scripts/soak.sh                 # 100 calls, 30 minutes
#   CALLS=20 DURATION=2m ./scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${CALLS:-100}
duration=${DURATION:-30m}
dir=$(mktemp -d)
go build -o "$dir/dtoperator" ./cmd/dtoperator
go build -o "$dir/dtload" ./cmd/dtload
"$dir/dtload" users --count $((2 * calls)) --out "$dir/users" >/dev/null
"$dir/dtoperator" --users "$dir/users" --listen 127.0.0.1 --data "$dir/data" \
	--command 29811 --media 29814 --metrics 127.0.0.1:29864 2>"$dir/server.log" &
op=$!
trap 'kill $op 2>/dev/null; wait $op 2>/dev/null' EXIT
timeout 30 sh -c "until grep -qs 'dtoperator ready' $dir/server.log; do sleep 0.1; done"
sample() {
	g=$(curl -s 127.0.0.1:29864/metrics | awk '/^go_goroutines /{print $2}')
	r=$(awk '/^VmRSS:/{print $2}' /proc/$op/status)
	echo "$(date +%H:%M:%S) goroutines=$g rss_kib=$r"
}
sample
(while kill -0 $op 2>/dev/null; do sleep 60; sample; done) &
sampler=$!
"$dir/dtload" run --server 127.0.0.1 --command 29811 --media 29814 --quic 29811 --pin "$dir/data/cert.pem" \
	--accounts "$dir/users.accounts" --calls "$calls" --ramp 30s --duration "$duration" --transport mixed \
	--server-pid $op -q || status=$?
kill $sampler 2>/dev/null || true
sleep 15 # past the handshake and login deadlines
sample
exit ${status:-0}
