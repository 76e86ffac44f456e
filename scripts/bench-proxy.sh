#!/usr/bin/env bash
# The proxy benchmark of issue 4: the same workloads directly against the
# backend, through harmonicd and through HAProxy (one thread, per-server
# maxconn equal to harmonicd's slots, configured for streaming with
# `option http-no-delay`), in one run, printing ratios.
#   (a) saturation: a fast backend answering 200-line NDJSON streams,
#       64 clients (wrk): requests/s, latency p50/p99, each proxy's CPU;
#   (b) realistic: 256 concurrent streams at ~50 tokens/s each (16 batches
#       of 16, then the two extremes for the record): delivered
#       tokens/s, added per-token latency p50/p99, each proxy's CPU time.
# The verdict judges harmonicd on issue 4's targets and prints HAProxy's
# figures beside it (reported, not judged).
# Usage: scripts/bench-proxy.sh [--seconds N] [--build DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=8
build=build
while [ $# -gt 0 ]; do
	case $1 in
	--seconds) secs=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	*) echo "usage: $0 [--seconds N] [--build DIR]" >&2; exit 64 ;;
	esac
done
"$top/scripts/deps.sh" haproxy wrk
make -C "$top" --no-print-directory -s all
case $build in /*) B=$build ;; *) B=$top/$build ;; esac
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_http() { for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "not ready: $1" >&2; exit 1; }

start_stack() { # $1 = sim speed, $2 = slots
	SIM=$(port); HD=$(port); HA=$(port)
	"$B/harmonic-sim" --listen 127.0.0.1:$SIM --profile "$top/scripts/bench/stream-profile.conf" --speed "$1" --log-level error &
	pids+=($!)
	cat > "$work/hd.conf" <<CONF
listen = "127.0.0.1:$HD";
log_level = "warn";
hosts = ( { name = "bench"; url = "http://127.0.0.1:$SIM"; memory_gb = 1000.0; num_parallel = 256; } );
tiers = ( { name = "all"; queue_depth = 100000; } );
models = ( { name = "bench"; tier = "all"; base_gb = 1.0; kv_gb = 0.1; placements = ( { host = "bench"; parallel = $2; } ); } );
CONF
	"$B/harmonicd" -c "$work/hd.conf" &
	HDPID=$!
	pids+=($HDPID)
	# `option http-no-delay`: HAProxy's default sends with MSG_MORE while a
	# response is unfinished, so the kernel holds small chunks (a token line)
	# for up to ~200 ms waiting for more; streaming needs them sent at once.
	# Nothing else buffers a response here: no compression, no filters, and
	# `option http-buffer-request` (off by default) concerns requests only.
	cat > "$work/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 900s
    timeout server 900s
    timeout queue 900s
    option http-keep-alive
    option http-no-delay
frontend fe
    bind 127.0.0.1:$HA
    default_backend be
backend be
    server sim 127.0.0.1:$SIM maxconn $2
CONF
	haproxy -q -f "$work/haproxy.cfg" &
	HAPID=$!
	pids+=($HAPID)
	wait_http "http://127.0.0.1:$SIM/api/version"
	wait_http "http://127.0.0.1:$HD/healthz"
	wait_http "http://127.0.0.1:$HA/api/version"
	sleep 0.5
}

stop_stack() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"bench","prompt":"hi","options":{"num_predict":200}}'
wrk.headers["Content-Type"] = "application/json"
LUA

hz=$(getconf CLK_TCK)

wrk_run() { # $1 = url, $2 = proxy pid or "" -> "req/s p50 p99 cores"
	local c0=0 c1=0 t0 t1
	[ -z "$2" ] || c0=$(cpu_ticks "$2")
	t0=$(date +%s%N)
	wrk -t1 -c64 -d"${secs}s" --latency -s "$work/post.lua" "$1/api/generate" > "$work/wrk.out"
	t1=$(date +%s%N)
	[ -z "$2" ] || c1=$(cpu_ticks "$2")
	awk -v ticks=$((c1 - c0)) -v hz="$hz" -v ms=$(((t1 - t0) / 1000000)) -v proxy="$2" \
		'/Requests\/sec/ {r=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2}
		END {print r, p50, p99, proxy == "" ? "-" : sprintf("%.3f", ticks / hz / (ms / 1000))}' "$work/wrk.out"
}

echo "== (a) saturation: 200-line NDJSON streams, 64 clients, ${secs}s each (wrk, 1 thread)"
start_stack 10000 64
# Three interleaved rounds, medians: this box is shared and noisy.
for r in 1 2 3; do
	wrk_run "http://127.0.0.1:$SIM" "" >> "$work/a.direct"
	wrk_run "http://127.0.0.1:$HD" "$HDPID" >> "$work/a.hd"
	wrk_run "http://127.0.0.1:$HA" "$HAPID" >> "$work/a.ha"
done
# Medians: of req/s (the row it comes from, for its latencies) and of CPU.
med() { sort -n -k1,1 "$1" | sed -n 2p; }
medcpu() { awk '{print $4}' "$1" | sort -n | sed -n 2p; }
read -r d_rps d_p50 d_p99 _ < <(med "$work/a.direct")
read -r h_rps h_p50 h_p99 _ < <(med "$work/a.hd")
read -r a_rps a_p50 a_p99 _ < <(med "$work/a.ha")
h_cpu=$(medcpu "$work/a.hd")
a_cpu=$(medcpu "$work/a.ha")
printf '%-10s %10s %10s %10s %10s   (median of 3 rounds; cpu = the proxy process, cores)\n' target req/s p50 p99 cpu
printf '%-10s %10s %10s %10s %10s\n' direct "$d_rps" "$d_p50" "$d_p99" - harmonicd "$h_rps" "$h_p50" "$h_p99" "$h_cpu" haproxy "$a_rps" "$a_p50" "$a_p99" "$a_cpu"
# q(): a quotient that stays a number when a starved round completed no
# request (0 req/s; awk would print inf, which is not JSON).
awk -v h="$h_rps" -v d="$d_rps" -v a="$a_rps" -v hc="$h_cpu" -v ac="$a_cpu" -v out="$work/verdict.a" '
	function q(x, y) { return y > 0 ? x / y : 0 }
	BEGIN {
	printf "harmonicd/direct %.3f   harmonicd/haproxy %.3f   haproxy/direct %.3f\n", q(h, d), q(h, a), q(a, d)
	printf "CPU per request: harmonicd %.1f us   haproxy %.1f us\n", q(hc, h) * 1e6, q(ac, a) * 1e6
	printf "{\"ratio\":%.4f,\"hd_rps\":%s,\"ha_rps\":%s,\"hd_us\":%.2f,\"ha_us\":%.2f}\n", q(h, a), h, a, q(hc, h) * 1e6, q(ac, a) * 1e6 > out }'
stop_stack

start_stack 1 256
cc -O2 -std=c11 -Wall -o "$work/streamload" "$top/scripts/bench/streamload.c" $(pkg-config --cflags --libs libcurl)

# $1 = label, $2 = stream groups (streamload.c), $3.. = targets
# (direct harmonicd haproxy).
# A discarded warm-up, then three interleaved rounds; medians per target
# (the per-token delay is sensitive to what else the 2 cores are doing).
# Each proxy's CPU: its ticks (user + system, /proc/PID/stat) over all the
# rounds, divided by the wall time of its own rounds (it idles in the others).
run_b() {
	local label=$1 groups=$2 t url t0 t1 hd_c0 hd_c1 ha_c0 ha_c1 hd_ns=0 ha_ns=0
	shift 2
	rm -f "$work"/b.*
	"$work/streamload" "http://127.0.0.1:$SIM/api/generate" 256 "$secs" 250 "$groups" > /dev/null
	hd_c0=$(cpu_ticks "$HDPID")
	ha_c0=$(cpu_ticks "$HAPID")
	for r in 1 2 3; do
		for t in "$@"; do
			case $t in direct) url=$SIM ;; harmonicd) url=$HD ;; haproxy) url=$HA ;; esac
			t0=$(date +%s%N)
			"$work/streamload" "http://127.0.0.1:$url/api/generate" 256 "$secs" 250 "$groups" >> "$work/b.$t"
			t1=$(date +%s%N)
			case $t in harmonicd) hd_ns=$((hd_ns + t1 - t0)) ;; haproxy) ha_ns=$((ha_ns + t1 - t0)) ;; esac
		done
	done
	hd_c1=$(cpu_ticks "$HDPID")
	ha_c1=$(cpu_ticks "$HAPID")
	node -e '
const fs = require("fs");
const [label, groups, dir, hz, hdTicks, hdWall, haTicks, haWall, ...targets] = process.argv.slice(1);
// Median of the three rounds, field by field.
const med = (file) => {
  const rows = fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const out = {};
  for (const k of Object.keys(rows[0])) out[k] = rows.map((r) => r[k]).sort((x, y) => x - y)[1];
  return out;
};
const M = Object.fromEntries(targets.map((t) => [t, med(`${dir}/b.${t}`)]));
console.log(`== (b) ${label}`);
console.log("target".padEnd(10), "tokens/s".padStart(10), "delay p50".padStart(10), "delay p99".padStart(10), "errors".padStart(7), "(delay = client receive - backend created_at, ms; median of 3 rounds)");
for (const t of targets)
  console.log(t.padEnd(10), M[t].tokens_per_s.toFixed(0).padStart(10), M[t].delay_p50_ms.toFixed(3).padStart(10), M[t].delay_p99_ms.toFixed(3).padStart(10), String(M[t].errors).padStart(7));
const D = M.direct;
const cpu = { harmonicd: [hdTicks, hdWall], haproxy: [haTicks, haWall] };
const v = {};
for (const t of targets.filter((x) => x !== "direct")) {
  const P = M[t];
  const c = Number(cpu[t][0]) / Number(hz) / Number(cpu[t][1]);
  v[t] = { tokens: P.tokens_per_s / D.tokens_per_s, p50: P.delay_p50_ms - D.delay_p50_ms, p99: P.delay_p99_ms - D.delay_p99_ms, cpu: c };
  console.log(`${t}/direct tokens/s ${v[t].tokens.toFixed(3)}   added per-token latency p50 ${v[t].p50.toFixed(3)} ms, p99 ${v[t].p99.toFixed(3)} ms   ${t} CPU ${c.toFixed(3)} cores`);
}
fs.writeFileSync(`${dir}/verdict.b.${groups}`, JSON.stringify(v));
' "$label" "$groups" "$work" "$hz" "$((hd_c1 - hd_c0))" "$(( hd_ns / 1000000 ))e-3" "$((ha_c1 - ha_c0))" "$(( ha_ns / 1000000 ))e-3" "$@"
}

# Realistic: 16 groups of 16 streams, each group one model on one host
# decoding 16 sequences per step (the report's DGX peak), in its own phase.
run_b "realistic: 256 concurrent streams at ~50 tokens/s, ${secs}s each (16 batches of 16)" 16 direct harmonicd haproxy
# The two extremes, reported but not targets: every stream in its own phase
# (most wake-ups per token), and all 256 in lock step (largest bursts).
run_b "every stream in its own phase (not a target)" 256 direct harmonicd haproxy
run_b "all 256 streams in lock step (not a target)" 1 direct harmonicd haproxy

# The targets of issue 4, judged on this run's figures; then HAProxy's
# figures from the same run beside harmonicd's, reported, not judged.
node -e '
const fs = require("fs");
const [dir] = process.argv.slice(1);
const a = JSON.parse(fs.readFileSync(`${dir}/verdict.a`, "utf8"));
const B = JSON.parse(fs.readFileSync(`${dir}/verdict.b.16`, "utf8")); // the realistic shape
const b = B.harmonicd;
const rows = [
  ["(a) requests/s vs HAProxy", a.ratio.toFixed(3), ">= 0.9", a.ratio >= 0.9],
  ["(b) tokens/s vs direct", b.tokens.toFixed(3), ">= 0.99", b.tokens >= 0.99],
  ["(b) added per-token latency p99", `${b.p99.toFixed(3)} ms`, "< 1 ms", b.p99 < 1],
  ["(b) harmonicd CPU", `${b.cpu.toFixed(3)} cores`, "< 0.25", b.cpu < 0.25],
];
console.log("== targets (issue 4)");
for (const [what, got, want, ok] of rows) console.log(what.padEnd(34), got.padStart(12), want.padStart(8), ok ? "met" : "NOT MET");
console.log("== beside HAProxy (option http-no-delay), same run (reported, not judged)");
const h = B.haproxy;
const cmp = [
  ["", "harmonicd", "haproxy"],
  ["(a) requests/s", a.hd_rps.toFixed(0), a.ha_rps.toFixed(0)],
  ["(a) CPU per request", `${a.hd_us.toFixed(1)} us`, `${a.ha_us.toFixed(1)} us`],
  ["(b) tokens/s vs direct", b.tokens.toFixed(3), h.tokens.toFixed(3)],
  ["(b) added per-token latency p50", `${b.p50.toFixed(3)} ms`, `${h.p50.toFixed(3)} ms`],
  ["(b) added per-token latency p99", `${b.p99.toFixed(3)} ms`, `${h.p99.toFixed(3)} ms`],
  ["(b) CPU", `${b.cpu.toFixed(3)} cores`, `${h.cpu.toFixed(3)} cores`],
];
for (const [what, x, y] of cmp) console.log(what.padEnd(34), x.padStart(12), y.padStart(12));
' "$work"
