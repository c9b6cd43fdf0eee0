#!/usr/bin/env bash
# One benchmark campaign for issue 12 (BENCHMARKS.md, "Issue 12, sixth
# round"): dtoperator against the forwarder `dtload baseline`, one
# measurement at a time, a fresh server for each, alternating, ROUNDS
# rounds each. Run it on a quiet machine with nothing else going on; it
# takes about 100 minutes with every part.
#
#   ./scripts/issue12-campaign.sh OUT             # every part, 3 rounds
#   PARTS="idle storm" ./scripts/issue12-campaign.sh OUT
#   DTOPERATOR=/path/to/other/build ./scripts/issue12-campaign.sh OUT
#   PARTS=findmax FINDMAX="quic datagram" ./scripts/issue12-campaign.sh OUT
#   FINDMAX_START=100 ...                        # first find-max step (280 tcp, 160 QUIC)
#
# Parts: cpu (server CPU per call-minute at 200 and 400 tcp calls),
# findmax (tcp, quic and datagram searches, 2 of 3 runs per step),
# idle (RSS per idle user, 2,000 users, tcp and quic), storm (500 calls
# dialed within 1 s, quic and tcp), burst (media p99 at 100 calls with
# and without 10 p=16 logins, plus 5 cheap logins). Each measurement's
# full dtload output is in OUT; OUT/summary holds one line per figure.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: $0 OUT-DIR}
parts=${PARTS:-cpu findmax idle storm burst}
rounds=${ROUNDS:-3}
mkdir -p "$out"
out=$(cd "$out" && pwd)
w=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$w"
}
trap cleanup EXIT

op=${DTOPERATOR:-}
if [ -z "$op" ]; then
	go build -o "$w/dtoperator" ./cmd/dtoperator
	op=$w/dtoperator
fi
go build -o "$w/dtload" ./cmd/dtload
load=$w/dtload
rev=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!scripts' || echo +changes)
cd "$w"
"$load" users --count 4000 --out users4000 >/dev/null
"$load" users --count 20 --prefix cheap --out cheap >/dev/null
# 48 accounts with the sample p=16 hash of "unlucky" (PROTOCOL.md section 5)
H='$s1$0e0810$gSWZo3ioKoQ5I8kCbc8A9A==$v3p1UXAOn9siRjdpgfxb+cDZtqwVobgQ8wZcDKZzT7WxsufEAv8EuhWA/xxAIzLJIp1HaRwbWm28Dz46nSxvZA=='
for i in $(seq -w 1 48); do echo "sample$i $H"; done >p16
for i in $(seq -w 1 48); do echo "sample$i unlucky"; done >p16.accounts
cat users4000 p16 cheap >users

say() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$out/summary"; }
say "campaign: server ${DTOPERATOR:-built from $rev}, dtload from $rev, parts: $parts, rounds: $rounds, load $(cut -d' ' -f1-3 /proc/loadavg)"

# start_op starts a fresh dtoperator; OP is its pid. The first start
# writes data/cert.pem, which the forwarder and dtload use.
start_op() {
	"$op" --users users --listen 127.0.0.1 --command 21991 --media 22014 --quic 21991 --data data \
		--quic_max_conns_per_source 100000 --log_level warn "$@" >>"$out/dtoperator.log" 2>&1 &
	OP=$!
	pids+=("$OP")
}
# start_fwd starts the forwarder; BP is its pid. It returns once the
# forwarder has said it listens: its clients do not retry a refused dial,
# and a probe connection would be paired with a client's.
start_fwd() {
	local lines
	touch "$out/baseline.log"
	lines=$(wc -l <"$out/baseline.log")
	"$load" baseline --listen 127.0.0.1 --cert data/cert.pem --key data/key.pem \
		--command 23991 --quic 23991 >>"$out/baseline.log" 2>&1 &
	BP=$!
	pids+=("$BP")
	for _ in $(seq 100); do
		[ "$(wc -l <"$out/baseline.log")" -gt "$lines" ] && return
		sleep 0.1
	done
	echo "the forwarder did not start: $out/baseline.log" >&2
	exit 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; sleep 2; }
D="--server 127.0.0.1 --command 21991 --media 22014 --quic 21991 --pin data/cert.pem --accounts users4000.accounts"
B="--baseline --server 127.0.0.1 --command 23991 --quic 23991 --pin data/cert.pem"

# The first start makes the certificate the forwarder needs.
start_op
"$load" idle $D --count 1 --hold 0s >/dev/null
stop "$OP"

# measure NAME: runs "$@" against a fresh server of kind $kind (op or
# fwd), output to OUT/NAME, and says the lines matching $pat.
measure() {
	local name=$1 kind=$2
	shift 2
	if [ "$kind" = op ]; then start_op; pid=$OP; else start_fwd; pid=$BP; fi
	"$@" --server-pid "$pid" >"$out/$name" 2>&1 || true
	stop "$pid"
	say "$name: $(grep -E "$pat" "$out/$name" | tr -s ' ' | paste -sd';' -)"
}

for part in $parts; do
	case $part in
	cpu)
		pat='calls  |server  |after ramp|loss  '
		for n in 200 400; do
			for r in $(seq "$rounds"); do
				measure "cpu.$n.dtcall.$r" op "$load" run $D --calls $n --ramp 5s --duration 15s --transport tcp -q
				measure "cpu.$n.fwd.$r" fwd "$load" run $B --calls $n --ramp 5s --duration 15s --transport tcp -q
			done
		done
		;;
	findmax)
		pat='^find-max'
		for t in ${FINDMAX:-tcp quic datagram}; do
			s=${FINDMAX_START:-$(case $t in tcp) echo 280 ;; *) echo 160 ;; esac)}
			for r in $(seq "$rounds"); do
				measure "fm.$t.dtcall.$r" op "$load" run --find-max $D --transport "$t" --ramp 5s --duration 10s --start "$s" --runs 3 -q
				measure "fm.$t.fwd.$r" fwd "$load" run --find-max $B --transport "$t" --ramp 5s --duration 10s --start "$s" --runs 3 -q
			done
		done
		;;
	idle)
		pat='logins  |server  '
		for r in $(seq 2); do
			for t in tcp quic; do
				measure "idle.$t.$r" op "$load" idle $D --count 2000 --parallel 64 --hold 5s --transport "$t"
			done
		done
		;;
	storm)
		pat='calls  |set-ups  |logins  '
		for r in $(seq "$rounds"); do
			for t in quic tcp; do
				measure "storm.$t.$r" op "$load" run $D --calls 500 --ramp 1s --duration 5s --transport "$t" -q
			done
		done
		;;
	burst)
		pat='calls  |latency  |^p16|^cheap'
		for r in $(seq "$rounds"); do
			measure "burst.without.$r" op "$load" run $D --calls 100 --ramp 5s --duration 20s --transport tcp -q
			start_op
			(sleep 9; exec "$load" idle --server 127.0.0.1 --command 21991 --media 22014 --pin data/cert.pem \
				--accounts p16.accounts --count 10 --parallel 10 --hold 0s >"$out/burst.with.$r.p16" 2>&1) &
			p16=$!
			(sleep 10; exec "$load" idle --server 127.0.0.1 --command 21991 --media 22014 --pin data/cert.pem \
				--accounts cheap.accounts --count 5 --parallel 1 --hold 0s >"$out/burst.with.$r.cheap" 2>&1) &
			cheap=$!
			"$load" run $D --calls 100 --ramp 5s --duration 20s --transport tcp -q --server-pid "$OP" \
				>"$out/burst.with.$r" 2>&1 || true
			wait "$p16" "$cheap" || true
			sed 's/^/p16 /' "$out/burst.with.$r.p16" >>"$out/burst.with.$r"
			sed 's/^/cheap /' "$out/burst.with.$r.cheap" >>"$out/burst.with.$r"
			stop "$OP"
			say "burst.with.$r: $(grep -E 'calls  |latency  |logins  ' "$out/burst.with.$r" | tr -s ' ' | paste -sd';' -)"
		done
		;;
	*) echo "unknown part $part" >&2; exit 2 ;;
	esac
done
say "campaign done, load $(cut -d' ' -f1-3 /proc/loadavg)"
