#!/usr/bin/env bash
# Regenerates docs/benchmarks.md and docs/bench-*.svg: the seed report's
# tables next to the same tables measured by `harmonicctl bench` against
# harmonic-sim with the shipped profiles, every model and level the report
# lists, and a direct-vs-harmonicd comparison.  Checks that every measured
# level is within 10% of the report and says so; exits 1 if one is not.
#
# The sims run --speed N times faster than real time; bench gets
# --speed-divisor N, so its rates are in the simulated (report's) time base.
#
# Usage: scripts/bench-report.sh [--build DIR] [--speed N] [--trials N] [--out DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=build
speed=100
trials=3
out=docs
tolerance=10        # percent
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$2; shift 2 ;;
	--speed) speed=$2; shift 2 ;;
	--trials) trials=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) echo "usage: $0 [--build DIR] [--speed N] [--trials N] [--out DIR]" >&2; exit 64 ;;
	esac
done
ctl=$build/harmonicctl
for p in "$ctl" "$build/harmonic-sim" "$build/harmonicd"; do
	[ -x "$p" ] || { echo "bench-report: $p missing; run make first" >&2; exit 1; }
done

# The seed report's tables (sections 3.1 and 3.2): group|levels|model|rates,
# "-" where the report has no number.  "~120" is the report's own wording.
report_data() {
	cat <<'EOF'
dgx-small|1,2,4,8,12,16,20,24,32|qwen3:4b|21.7 35.9 35.2 119.4 151.1 222.9 258.6 266.5 308.2
dgx-small|1,2,4,8,12,16,20,24,32|executive|69.9 104.7 164.3 230.5 265.2 334.1 263.8 279.3 -
dgx-small|1,2,4,8,12,16,20,24,32|operator|63.3 93.9 146.9 210.6 241.0 263.1 249.3 269.0 285.3
dgx-medium|1,2,4,8,12,16,20,24|qwen3:8b|35.8 60.3 109.2 170.8 216.4 285.3 206.8 219.7
dgx-medium|1,2,4,8,12,16,20,24|technical_director|34.9 61.5 100.0 161.7 173.1 248.2 188.5 211.7
dgx-medium|1,2,4,8,12,16,20,24|research_director|34.4 62.3 105.1 166.1 206.0 252.6 188.1 213.5
dgx-medium|1,2,4,8,12,16,20,24|creative_director|36.1 62.7 101.3 165.6 209.2 250.4 189.5 214.1
dgx-large|1,2,4,8,12,16|qwen3:14b|20.0 32.4 58.1 85.3 104.6 ~120
evo-x2|1,2,4,8,12,16,20|qwen3:4b|27.7 39.1 54.2 69.3 222.6 163.4 -
EOF
}
group_title() {
	case $1 in
	dgx-small) echo "DGX Spark (GB10): small models (~2.5 GB)" ;;
	dgx-medium) echo "DGX Spark (GB10): medium models (~5 GB)" ;;
	dgx-large) echo "DGX Spark (GB10): large models (~9 GB)" ;;
	evo-x2) echo "Evo-X2 (Ryzen AI MAX+ 395, 92 GB GPU)" ;;
	esac
}
group_profile() {
	case $1 in
	dgx-*) echo etc/sim/dgx-spark.conf ;;
	evo-x2) echo etc/sim/evo-x2.conf ;;
	esac
}

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

wait_http() {   # url
	for _ in $(seq 1 100); do
		curl --noproxy "*" -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench-report: $1 did not answer" >&2
	return 1
}

declare -A sim_url
start_sim() {   # profile
	local port
	port=$(free_port)
	"$build/harmonic-sim" --listen "127.0.0.1:$port" --profile "$1" \
	    --speed "$speed" --log-level warn &
	pids+=($!)
	sim_url[$1]="http://127.0.0.1:$port"
	wait_http "${sim_url[$1]}/api/version"
}

# Median aggregate tok/s per model and level from bench's CSV (one row per
# trial; trials that completed nothing are skipped, as bench does).
medians() {     # csv
	awk -F, 'NR > 1 && $7 > 0 { v[$1 "|" $4] = v[$1 "|" $4] " " $11 }
	END {
		for (k in v) {
			n = split(substr(v[k], 2), a, " ")
			for (i = 2; i <= n; i++)        # insertion sort, n is small
				for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
					t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
				}
			m = n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
			printf "%s|%.1f\n", k, m
		}
	}' "$1"
}

# The markdown for one group: the report's table, the measured table (bench's
# own stdout table) and measured/report per level.  Appends "fail" lines for
# levels out of tolerance to $tmp/fails and counts checks in $tmp/checks.
group_markdown() {  # group
	local g=$1 levels
	levels=$(report_data | awk -F'|' -v g="$g" '$1 == g { print $2; exit }')
	echo "### $(group_title "$g")"
	echo
	echo "Report:"
	echo
	report_data | awk -F'|' -v g="$g" -v levels="$levels" '
	BEGIN { n = split(levels, L, ",")
		printf "| Model |"; for (i = 1; i <= n; i++) printf " %sx |", L[i]; print " **Peak** |"
		printf "|-------|"; for (i = 1; i <= n; i++) printf "-----|"; print "----------|" }
	$1 == g { split($4, r, " "); best = 0
		for (i = 1; i <= n; i++) { x = r[i]; sub(/^~/, "", x)
			if (r[i] != "-" && x + 0 > best) { best = x + 0; at = i } }
		printf "| %s |", $3
		for (i = 1; i <= n; i++) printf (i == at ? " **%s** |" : " %s |"), r[i]
		printf " %sx |\n", L[at] }'
	echo
	echo "Measured (\`harmonicctl bench\`, harmonic-sim \`$(group_profile "$g")\`):"
	echo
	awk 'NF == 0 { exit } { print }' "$tmp/$g.out"
	echo
	echo "Measured / report (within ${tolerance}% is ok):"
	echo
	{ medians "$tmp/$g.csv" | sed 's/^/M|/'; report_data | sed 's/^/R|/'; } |
	awk -F'|' -v g="$g" -v levels="$levels" -v tol="$tolerance" \
	    -v fails="$tmp/fails" -v checks="$tmp/checks" '
	BEGIN { n = split(levels, L, ",") }
	$1 == "M" { m[$2 "|" $3] = $4; next }
	$1 == "R" && $2 == g { rows[++nr] = $4; rates[nr] = $5 }
	END {
		printf "| Model |"; for (i = 1; i <= n; i++) printf " %sx |", L[i]; print ""
		printf "|-------|"; for (i = 1; i <= n; i++) printf "-----|"; print ""
		for (k = 1; k <= nr; k++) {
			split(rates[k], r, " ")
			printf "| %s |", rows[k]
			for (i = 1; i <= n; i++) {
				x = r[i]; sub(/^~/, "", x); got = m[rows[k] "|" L[i]]
				if (r[i] == "-") {
					printf " (%s, not in the report) |", got == "" ? "-" : got
					continue
				}
				print "check" >> checks
				if (got == "") {
					printf " missing |"
					print g " " rows[k] " " L[i] "x: no measurement" >> fails
					continue
				}
				ratio = 100 * got / x
				ok = ratio >= 100 - tol && ratio <= 100 + tol
				printf " %.1f%%%s |", ratio, ok ? "" : " **out**"
				if (!ok)
					printf "%s %s %sx: %s vs report %s (%.1f%%)\n", g, rows[k], L[i], got, r[i], ratio >> fails
			}
			print ""
		}
	}'
	echo
	echo "![$(group_title "$g")](bench-$g.svg)"
	echo
	echo "<details><summary>Per-level detail (medians of $trials trials; TTFT in simulated ms)</summary>"
	echo
	awk 'NF == 0 { n++; next } n == 1 { print }' "$tmp/$g.out"
	echo
	echo "</details>"
	echo
}

: >"$tmp/fails"
: >"$tmp/checks"
mkdir -p "$out"
for g in dgx-small dgx-medium dgx-large evo-x2; do
	profile=$(group_profile "$g")
	[ -n "${sim_url[$profile]:-}" ] || start_sim "$profile"
	levels=$(report_data | awk -F'|' -v g="$g" '$1 == g { print $2; exit }')
	models=()
	while read -r m; do models+=(-m "$m"); done < <(report_data | awk -F'|' -v g="$g" '$1 == g { print $3 }')
	echo "bench-report: $(group_title "$g") at --speed $speed" >&2
	"$ctl" bench -u "${sim_url[$profile]}" "${models[@]}" -p "$levels" -t "$trials" \
	    --warmup --speed-divisor "$speed" --csv "$tmp/$g.csv" --json "$tmp/$g.json" \
	    --svg "$out/bench-$g.svg" --title "$(group_title "$g") — harmonic-sim" >"$tmp/$g.out"
done

# Direct against the sim versus through harmonicd in front of it, same run.
hd_port=$(free_port)
cat >"$tmp/harmonicd.conf" <<EOF
listen = "127.0.0.1:$hd_port";
health_interval = 1.0;
hosts = ( { name = "sparky"; url = "${sim_url[etc/sim/dgx-spark.conf]}"; memory_gb = 128.0; num_parallel = 64; } );
tiers = ( { name = "executive"; weight = 8; }, { name = "directors"; weight = 4; } );
models = (
  { name = "executive"; tier = "executive"; base_gb = 2.5; kv_gb = 0.3; placements = ( { host = "sparky"; parallel = 32; } ); },
  { name = "qwen3:8b"; tier = "directors"; base_gb = 5.2; kv_gb = 0.5; placements = ( { host = "sparky"; parallel = 32; } ); }
);
EOF
"$build/harmonicd" -c "$tmp/harmonicd.conf" 2>"$tmp/harmonicd.log" &
pids+=($!)
wait_http "http://127.0.0.1:$hd_port/healthz" || { cat "$tmp/harmonicd.log" >&2; exit 1; }
echo "bench-report: direct vs through harmonicd at --speed $speed" >&2
"$ctl" bench -u "${sim_url[etc/sim/dgx-spark.conf]}" --through "http://127.0.0.1:$hd_port" \
    -m executive -m qwen3:8b -p 1,4,8,16,24 -t "$trials" --warmup --speed-divisor "$speed" \
    --svg "$out/bench-through.svg" --title "Direct vs through harmonicd — harmonic-sim DGX Spark" \
    >"$tmp/through.out"

for g in dgx-small dgx-medium dgx-large evo-x2; do
	group_markdown "$g" >"$tmp/$g.md"
done
nchecks=$(wc -l <"$tmp/checks")
nfails=$(wc -l <"$tmp/fails")
if [ "$nfails" -eq 0 ]; then
	verdict="All $nchecks measured levels are within ${tolerance}% of the report."
else
	verdict="$nfails of $nchecks measured levels are more than ${tolerance}% off the report."
fi

{
	cat <<EOF
# Benchmarks

The seed report's measurements (aggregate tokens/s at 1x to 32x parallel
requests, three trials each) next to the same benchmark run by
\`harmonicctl bench\` against \`harmonic-sim\` with the shipped profiles.
Generated by \`scripts/bench-report.sh\` (harmonic-sim \`--speed $speed\`,
\`-t $trials\`, \`--warmup\`, the report's prompt and \`num_ctx\` 2048, no
\`num_predict\`, so each request generates the profile's 128 tokens);
regenerate with:

    make && scripts/bench-report.sh

**$verdict**

The sims are calibrated on the report, so this page checks the whole chain
(the simulator's timing model, bench's burst timing and token parsing, the
medians) rather than the hardware: on a real host, run the same command
against Ollama (see *Running it* below).

The sims run $speed times faster than real time. \`--speed-divisor $speed\`
tells bench to divide its wall-clock rates by $speed and to multiply its
latencies by $speed, so every number below is in the report's time base.
Per-request tok/s comes from the backend's own \`eval_duration\`, which
harmonic-sim already reports in simulated time, so it is not divided.
A fixed wall-clock cost (connection set-up, the last byte's trip) is
multiplied too, which is why measured rates sit slightly below the report
at short bursts; a lower \`--speed\` shrinks that bias.

EOF
	for g in dgx-small dgx-medium dgx-large evo-x2; do
		cat "$tmp/$g.md"
	done
	if [ "$nfails" -gt 0 ]; then
		echo "Out of tolerance:"
		echo
		sed 's/^/- /' "$tmp/fails"
		echo
	fi
	cat <<EOF
## Direct against the host versus through harmonicd

\`--through URL2\` runs every burst twice, alternating trial by trial,
directly against \`-u URL\` and through harmonicd at URL2, and prints the
ratio per level.  Here harmonicd fronts the DGX Spark sim with 32 slots
per model (\`parallel = 32\`), so it never queues at these levels:

    harmonicctl bench -u http://sim:port --through http://harmonicd:port \\
        -m executive -m qwen3:8b -p 1,4,8,16,24 -t $trials --warmup --speed-divisor $speed

EOF
	awk 'NF == 0 { n++; next } n == 2 { print }' "$tmp/through.out"
	cat <<EOF

At \`--speed $speed\`, harmonicd's own added latency is multiplied by $speed
in these numbers, so the ratios are a pessimistic view of the proxy's cost.

![Direct vs through harmonicd](bench-through.svg)

## Reading the curve and picking \`parallel\`

- **Aggregate tok/s** (the y axis) is what the box delivers to everyone
  at once: the sum of \`eval_count\` over the wall time of a burst of n
  identical requests.  **Per-request tok/s** is what one user sees; it
  falls as n grows, because the n streams share the memory bandwidth.
- **The peak** (bold in the tables, the ringed point in the plots) is the
  level past which more concurrency no longer buys throughput.  In the
  report, on the DGX Spark, executive peaks at 16x (334 tok/s) and falls to 264 at 20x;
  the 8b models peak at 16x too; qwen3:4b and operator still climb at 32x.
  On the Evo-X2, qwen3:4b peaks sharply at 12x and loses a quarter by 16x.
- **Pick \`parallel\` at the peak, or a step below it** if interactive
  latency matters more than throughput: just under the peak costs little
  aggregate throughput and gives each request more speed (see the
  per-request column in the details).  Past the peak, extra slots cost
  memory and per-request speed and buy no throughput.
  Requests beyond \`parallel\` wait in harmonicd's tier queue, where their
  priority still counts, rather than inside Ollama.
- **Check the memory**: every slot holds a KV cache, so a placement costs
  \`base_gb + parallel * kv_gb\` (the report's section 5.1).  executive at
  16x: 2.5 + 16 x 0.3 = 7.3 GB; qwen3:8b at 16x: 5.2 + 16 x 0.5 = 13.2 GB;
  qwen3:14b at 16x: 9.3 + 16 x 0.8 = 22.1 GB.  Add up the placements of a
  host and keep them within \`memory_gb - reserve_gb\`:
  \`harmonicctl check harmonicd.conf\` prints that budget per host (see
  [configuration.md](configuration.md)).  If the peak does not fit, take
  the highest level that does.
- Set the host's \`OLLAMA_NUM_PARALLEL\` (\`num_parallel\` in harmonicd's
  config) at least as high as the placements' slots, or Ollama queues the
  extra requests silently.
- Rerun the benchmark on your own box: the curve depends on the hardware,
  the Ollama version, \`num_ctx\` and the output length.  Three trials and
  the median absorb most noise; look at the trial range in the details
  before trusting a single bump (the report's flat qwen3:4b step from 2x
  to 4x on the DGX and its 12x spike on the Evo-X2 are the kind of bump
  worth a second run on your own box).

## Running it

    harmonicctl bench -u http://127.0.0.1:11434 -m qwen3:4b -m qwen3:8b \\
        --warmup --csv bench.csv --json bench.json --svg bench.svg

Defaults follow the report: levels 1,2,4,8,12,16,20,24,32, 3 trials, the
prompt "/nothink Explain quantum computing briefly", \`num_ctx\` 2048.
\`--num-predict N\` fixes the output length.  A progress bar goes to
stderr (one line per level when stderr is not a terminal; \`-q\` silences
it).  stdout gets the report-format table (one row per model, the peak in
bold and its level in the last column), then a per-level table with the
trial range, per-request tok/s, time to first token p50/p95 and errors,
and with \`--through\` the ratio table.  The CSV has one row per trial;
the JSON has the medians, every trial and every request (status,
\`eval_count\`, \`eval_duration\`, time to first token, error).  The exit
status is 0, 64 for a usage error, and 1 when a model completed no request
at any level or an output file could not be written.
EOF
} >"$out/benchmarks.md"

echo "bench-report: wrote $out/benchmarks.md and $out/bench-*.svg" >&2
echo "bench-report: $verdict"
[ "$nfails" -eq 0 ]
