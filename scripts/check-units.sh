#!/bin/sh
# Check the systemd units offline (systemd need not be PID 1):
#   systemd-analyze verify      must print nothing at all: unknown keys and
#                               bad values are warnings that keep rc 0;
#   systemd-analyze security    must rate harmonicd.service 2.0 or lower.
# The units are rendered into a temporary directory with @SBINDIR@ set to
# BUILD (default build/), because verify needs ExecStart= to exist, and
# the man pages of Documentation= are looked up in docs/man.
# Usage: scripts/check-units.sh [BUILD]
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$top/${1:-build}" 2>/dev/null && pwd) || {
	echo "check-units: no build directory ${1:-build} (run make first)" >&2
	exit 1
}
max=20	# exposure x 10, as --threshold takes it: 2.0

if [ ! -x "$build/harmonicd" ]; then
	echo "check-units: $build/harmonicd is missing (run make first)" >&2
	exit 1
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "check-units: systemd-analyze not found (scripts/deps.sh installs systemd)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/harmonic-units.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

for u in "$top"/systemd/*.service "$top"/systemd/*.socket; do
	sed "s|@SBINDIR@|$build|g" "$u" > "$tmp/$(basename "$u")"
done
if grep -n '@[A-Z]*@' "$tmp"/*.service "$tmp"/*.socket; then
	echo "check-units: placeholders that make install does not substitute" >&2
	exit 1
fi

# Documentation=man:... entries: point man at our pages, or skip the check
# where man is not installed.
man=--man=no
if command -v man >/dev/null 2>&1; then
	for s in 1 5 8; do
		mkdir -p "$tmp/man/man$s"
		cp "$top"/docs/man/*.$s "$tmp/man/man$s/" 2>/dev/null || true
	done
	MANPATH=$tmp/man
	export MANPATH
	man=--man=yes
fi

status=0
if ! (cd "$tmp" && systemd-analyze verify "$man" ./*.service ./*.socket) >"$tmp/verify.out" 2>&1 ||
	[ -s "$tmp/verify.out" ]; then
	echo "check-units: systemd-analyze verify is not clean:" >&2
	cat "$tmp/verify.out" >&2
	status=1
else
	echo "check-units: systemd-analyze verify: clean"
fi

rc=0
(cd "$tmp" && systemd-analyze security --offline=true --threshold=$max --no-pager \
	./harmonicd.service) >"$tmp/security.out" 2>&1 || rc=$?
score=$(sed -n 's/.*Overall exposure level for harmonicd\.service: \([0-9.]*\).*/\1/p' "$tmp/security.out")
if [ -z "$score" ]; then
	echo "check-units: systemd-analyze security printed no score (rc $rc):" >&2
	cat "$tmp/security.out" >&2
	exit 1
fi
if [ "$rc" -ne 0 ]; then
	grep '^✗' "$tmp/security.out" >&2 || true
	echo "check-units: security exposure $score is above 2.0" >&2
	status=1
else
	echo "check-units: systemd-analyze security: exposure $score (at most 2.0)"
fi
exit $status
