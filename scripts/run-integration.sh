#!/bin/sh
# Run the black-box integration tests (node's test runner) against the
# programs in BUILD.  Installs the test's npm packages on first use.
set -eu
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top/tests/integration"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
	npm ci --no-audit --no-fund --loglevel=error >/dev/null
	touch node_modules
fi
export HARMONIC_BUILD="$top/$build"
# The connection tests hold 10k sockets from one node process: lift the soft
# open-file limit as far as the hard one allows (the daemon raises its own).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# One file at a time: the tests measure throughput and share 2 cores.
node --test --test-concurrency=1 --test-reporter=spec ${HARMONIC_TESTS:-*.test.mjs} 2>&1 | tee /tmp/harmonic-it.$$ |
	grep -vE '^\s*$' | grep -vE '^ℹ (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ' || true
pass=$(sed -n 's/^ℹ pass \([0-9]*\)/\1/p' /tmp/harmonic-it.$$ | tail -1)
fail=$(sed -n 's/^ℹ fail \([0-9]*\)/\1/p' /tmp/harmonic-it.$$ | tail -1)
grep -E '^ℹ (tests|pass|fail) ' /tmp/harmonic-it.$$ || true
rm -f /tmp/harmonic-it.$$
echo "integration ($build): ${pass:-0} passed, ${fail:-0} failed"
[ -n "${HARMONIC_COUNTS:-}" ] && echo "${pass:-0} ${fail:-1}" >> "$HARMONIC_COUNTS"
[ "${fail:-1}" -eq 0 ] && [ "${pass:-0}" -gt 0 ]
