#!/bin/sh
# Install the Debian packages that building and testing harmonicd need.
# Silent and a no-op when everything is present; runs apt-get update only
# when something must be installed.  `--build` limits it to what building
# and running need (`make run`); extra package names may be passed as
# arguments (e.g. scripts/deps.sh haproxy wrk for the benchmarks).
set -eu

build="gcc make pkg-config libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev
libconfig-dev libsystemd-dev libcmocka-dev curl"
# The tests also use: systemd-analyze and systemd-socket-activate, python3
# (a NOTIFY_SOCKET receiver), promtool, Chromium (the dashboard test),
# clang with libFuzzer, valgrind.
tests="systemd python3 prometheus chromium clang libclang-rt-14-dev valgrind"
need_node=yes
if [ "${1:-}" = "--build" ]; then
	shift
	pkgs="$build $*"
	need_node=no
else
	pkgs="$build $tests $*"
fi

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
# Node runs the integration tests; accept any node/npm already on PATH.
if [ $need_node = yes ]; then
	command -v node >/dev/null 2>&1 || missing="$missing nodejs"
	command -v npm >/dev/null 2>&1 || missing="$missing npm"
fi

[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
