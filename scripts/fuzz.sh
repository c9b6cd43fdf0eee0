#!/usr/bin/env bash
# Runs every fuzz target of the module for a while, one after another, and
# prints one line per target: its package, name, the execs it made and
# whether it found a crasher (kept in that package's testdata/fuzz).
#
#   ./scripts/fuzz.sh            # 5 minutes each (the RELIABILITY.md campaign)
#   FUZZTIME=30s ./scripts/fuzz.sh
#   FUZZPARALLEL=1 ./scripts/fuzz.sh   # one fuzzing worker (default: one per core)
set -uo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5m}
parallel=${FUZZPARALLEL:+-parallel $FUZZPARALLEL}
log=$(mktemp -d)
status=0
for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz'); do
		out="$log/$(echo "$pkg.$target" | tr '/' '_').log"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" $parallel "$pkg" >"$out" 2>&1
		rc=$?
		execs=$(grep -o 'execs: [0-9]*' "$out" | tail -1 | cut -d' ' -f2)
		if [ $rc -eq 0 ]; then
			verdict=ok
		else
			verdict="FAILED (see $out)"
			status=1
		fi
		printf '%-50s %-28s execs=%-12s %s\n' "${pkg#github.com/dtcall/dtcall/}" "$target" "${execs:-?}" "$verdict"
	done
done
exit $status
