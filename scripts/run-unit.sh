#!/bin/sh
# Run every cmocka unit test binary given; print each runner's summary and a
# closing "N passed, N failed" line over all of them.
build=$1; shift
passed=0; failed=0
for t in "$@"; do
	out=$("$t" 2>&1); rc=$?
	# Lines starting with "# " are figures a test measured (printed, not judged).
	printf '%s\n' "$out" | grep -E '^\[  (PASSED|FAILED)  \]|^\[  FAILED  \]|^\[  ERROR   \]|^# ' | sed "s|^|$(basename "$t"): |"
	p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | head -1)
	f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | head -1)
	passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
	if [ $rc -ne 0 ]; then
		printf '%s\n' "$out" | grep -E 'FAILED|ERROR|error|Sanitizer' | head -20
		[ "${f:-0}" -eq 0 ] && failed=$((failed + 1))
	fi
done
echo "unit ($build): $passed passed, $failed failed"
[ -n "${HARMONIC_COUNTS:-}" ] && echo "$passed $failed" >> "$HARMONIC_COUNTS"
[ "$failed" -eq 0 ]
