#!/bin/sh
# The chaos soak (issue 8): scripts/soak.sh [--minutes N] [--build DIR] [--json FILE]
# The short form runs in `make check` (tests/integration/soak.test.mjs);
# the long form is for before a release: scripts/soak.sh --minutes 30
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
make -C "$top" --no-print-directory -s all
cd "$top/tests/integration" && [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error >/dev/null
exec node "$top/scripts/soak.mjs" "$@"
