#!/bin/sh
# The /stats latency benchmark of issue 5 (p99 < 5 ms under 200 streams):
#   scripts/bench-stats.sh [--seconds N] [--build DIR]
# The figure is also printed by tests/integration/stats.test.mjs; the
# verdict on the target is this script's, for a quiet machine.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
make -C "$top" --no-print-directory -s all
cd "$top/tests/integration" && [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error >/dev/null
exec node "$top/scripts/bench-stats.mjs" "$@"
