#!/bin/sh
# Run one libFuzzer target for a bounded time and print one summary line:
#   fuzz <target>: <execs> execs in <s> s (<rate>/s), cov <edges>, ft <features>, corpus <n>, OK|FAILED
# The seed corpus (tests/fuzz/corpus/<target>) is read-only; new inputs go
# to <build>/corpus/<target>; a crash leaves <build>/crash-* and the log.
set -u
build=$1 target=$2 seconds=${3:-60}
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=$top/$build/fuzz_$target
seeds=$top/tests/fuzz/corpus/$target
work=$top/$build/corpus/$target
log=$top/$build/fuzz_$target.log
case $target in
config) max_len=16384 ;;
*) max_len=65536 ;;
esac
dict=""
[ -f "$top/tests/fuzz/$target.dict" ] && dict="-dict=$top/tests/fuzz/$target.dict"
mkdir -p "$work"
cd "$top/$build" || exit 1
# A config could name files; run where there is nothing to find.
start=$(date +%s)
export LSAN_OPTIONS="suppressions=$top/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# shellcheck disable=SC2086
"$bin" -max_total_time="$seconds" -max_len=$max_len -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$top/$build/" $dict "$work" "$seeds" >"$log" 2>&1
rc=$?
end=$(date +%s)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
last=$(grep -E '^#[0-9]+' "$log" | tail -1)
cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
secs=$((end - start)); [ $secs -gt 0 ] || secs=1
status=OK
[ $rc -eq 0 ] || status="FAILED (rc $rc, see $log)"
if [ -n "${HARMONIC_COUNTS:-}" ]; then
	if [ $rc -eq 0 ]; then echo "1 0"; else echo "0 1"; fi >> "$HARMONIC_COUNTS"
fi
echo "fuzz $target: ${execs:-0} execs in $secs s ($(( ${execs:-0} / secs ))/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, $status"
if [ $rc -ne 0 ]; then
	grep -E 'ERROR|SUMMARY|==[0-9]+==|runtime error|Test unit written' "$log" | head -20
fi
exit $rc
