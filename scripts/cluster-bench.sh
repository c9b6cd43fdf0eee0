#!/usr/bin/env bash
# Same-node versus cross-node calls on a two-node cluster (BENCHMARKS.md,
# "Calls across nodes"): a real nats-server and two dtoperator nodes on
# loopback; dtload runs CALLS calls with both parties on node a (same
# node), then with callers on a and callees on b (cross-node), ROUNDS
# times alternating, and prints p99 one-way latency and the CPU of the
# nodes (summed) and of nats-server.
#
#   ./scripts/cluster-bench.sh                 # 100 calls, 3 rounds, tcp
#   CALLS=200 ROUNDS=5 TRANSPORT=quic ./scripts/cluster-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${CALLS:-100}
rounds=${ROUNDS:-3}
tr=${TRANSPORT:-tcp}
duration=${DURATION:-20s}
w=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$w"
}
trap cleanup EXIT

go build -o "$w/dtoperator" ./cmd/dtoperator
go build -o "$w/dtload" ./cmd/dtload
go build -o "$w/nats-server" github.com/nats-io/nats-server/v2
"$w/dtload" users --count $((2 * calls + 10)) --out "$w/users" >/dev/null

"$w/nats-server" -a 127.0.0.1 -p 24222 -js -sd "$w/nats" >"$w/nats.log" 2>&1 &
pids+=($!)
nats=$!
sleep 1
start_node() { # name command-port media-port [more flags]
	mkdir -p "$w/data-$1"
	"$w/dtoperator" --users "$w/users" --listen 127.0.0.1 --command "$2" --media "$3" --quic "$2" \
		--data "$w/data-$1" --quic_max_conns_per_source 100000 --log_level warn \
		--nats nats://127.0.0.1:24222 --node "$1" "${@:4}" >"$w/$1.log" 2>&1 &
	pids+=($!)
}
start_node a 25991 26014
a=$!
sleep 2 # a generates the certificate; b serves the same one (one name, one pin)
start_node b 27991 28014 --public "$w/data-a/cert.pem" --private "$w/data-a/key.pem"
b=$!
sleep 2

common=(--pin "$w/data-a/cert.pem" --accounts "$w/users.accounts" --calls "$calls" --ramp 5s
	--duration "$duration" --transport "$tr" -q)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; } # utime+stime, clock ticks
hz=$(getconf CLK_TCK)
run() { # label servers...
	local label=$1 servers=$2 json="$w/$1.json"
	local n0 n1
	n0=$(cpu $nats)
	"$w/dtload" run --server "$servers" --server-pid "$a,$b" --json "$json" "${common[@]}" >"$w/$label.out" || true # a failed call is in the figures
	n1=$(cpu $nats)
	python3 - "$json" "$label" "$(((n1 - n0) * 100 / hz))" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
lat, srv = r["latency_ms"], r["server_process"]
print(f"{sys.argv[2]:<11} p50 {lat['p50']:.2f} ms  p99 {lat['p99']:.2f} ms  loss {r['loss_pct']:.3f} %  "
      f"calls ok {r['calls_ok']}/{r['calls']}  nodes CPU {srv['cpu_pct']:.1f} % of a core  "
      f"nats-server CPU {int(sys.argv[3]) / r['elapsed_s']:.1f} % of a core (whole run)")
EOF
}
echo "$calls calls, $tr, $duration each, $rounds rounds (node a pid $a, node b pid $b, nats-server pid $nats)"
for i in $(seq "$rounds"); do
	run same-node 127.0.0.1:25991:26014:25991
	run cross-node 127.0.0.1:25991:26014:25991,127.0.0.1:27991:28014:27991
done
