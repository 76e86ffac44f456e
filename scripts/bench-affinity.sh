#!/usr/bin/env bash
# The prompt-cache affinity benchmark of issue 17: one seeded workload of
# agents holding multi-turn conversations (a shared ~2,000-token system
# prompt with tools, ~400 new tokens a turn, think time between turns),
# played through harmonicd in front of two replicas of one model, first with
# `routing = "least_loaded"`, then with `routing = "affinity"` (fresh sims
# and a fresh harmonicd for each).  Prints both side by side and the verdict
# on issue 17's targets; exits 0 only when all are met.
#
# The replicas: two harmonic-sim processes with the DGX Spark profile
# (etc/sim/dgx-spark.conf, its qwen3:8b: prompt_rate 1400 tok/s, the
# report's decode curve), each configured as harmonicd asks a host to be:
# OLLAMA_NUM_PARALLEL equal to the placement's slots (--np 12: 12 slots,
# each holding one sequence's prompt cache; 12 is the demo's slot count for
# an 8B-class model on the Spark), placed in harmonicd with parallel 12
# each, num_ctx 8192.  The agents start over the first 20 s (a fleet being
# brought up), so the first turns do not all evaluate the shared system
# prompt cold at the same instant (--start-spread 2 shows that case).  The driver is scripts/bench-affinity.mjs.
#
# Usage: scripts/bench-affinity.sh [--seed N] [--speed N] [--agents N]
#        [--turns N] [--svg FILE] [--json FILE] [--record] [--build DIR]
#   --speed N   the sims' clock (and the think time) N times faster (default 4);
#               figures are converted back to simulated seconds
#   --record    also write the plot to docs/bench-affinity.svg (unless --svg)
#   --slots N   each replica's slots, in harmonicd and on the sim (default 12)
#   --start-spread S  the agents' first turns start over S seconds (default 20)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
seed=1
speed=4
agents=24
turns=6
spread=20
svg=
json=
record=no
build=build
slots=12
while [ $# -gt 0 ]; do
	case $1 in
	--seed) seed=$2; shift 2 ;;
	--speed) speed=$2; shift 2 ;;
	--agents) agents=$2; shift 2 ;;
	--turns) turns=$2; shift 2 ;;
	--slots) slots=$2; shift 2 ;;
	--start-spread) spread=$2; shift 2 ;;
	--svg) svg=$2; shift 2 ;;
	--json) json=$2; shift 2 ;;
	--record) record=yes; shift ;;
	--build) build=$2; shift 2 ;;
	*) echo "usage: $0 [--seed N] [--speed N] [--agents N] [--turns N] [--slots N] [--start-spread S] [--svg FILE] [--json FILE] [--record] [--build DIR]" >&2; exit 64 ;;
	esac
done
[ -n "$svg" ] || [ "$record" = no ] || svg=$top/docs/bench-affinity.svg
"$top/scripts/deps.sh" --build
command -v node > /dev/null || { echo "node is needed (the driver)" >&2; exit 1; }
make -C "$top" --no-print-directory -s all
case $build in /*) B=$build ;; *) B=$top/$build ;; esac
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_http() { for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "not ready: $1" >&2; exit 1; }
# Both replicas have loaded the model (harmonicd's warm-up) and nothing runs.
wait_loaded() {
	for _ in $(seq 600); do
		if curl -s "$1/_sim/stats" | node -e '
let s = ""; process.stdin.on("data", (d) => s += d).on("end", () => {
  const m = JSON.parse(s).models["qwen3:8b"];
  process.exit(m && m.loaded && m.in_flight === 0 ? 0 : 1);
});'; then return 0; fi
		sleep 0.1
	done
	echo "model not loaded on $1" >&2; exit 1
}

stop_stack() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }

run_policy() { # $1 = routing
	local s1 s2 hd
	s1=$(port); s2=$(port); hd=$(port)
	for s in $s1 $s2; do
		"$B/harmonic-sim" --listen 127.0.0.1:$s --profile "$top/etc/sim/dgx-spark.conf" --speed "$speed" --np "$slots" --log-level error &
		pids+=($!)
	done
	cat > "$work/hd.conf" <<CONF
listen = "127.0.0.1:$hd";
log_level = "warn";
routing = "$1";
hosts = ( { name = "replica-a"; url = "http://127.0.0.1:$s1"; memory_gb = 128.0; num_parallel = $slots; },
          { name = "replica-b"; url = "http://127.0.0.1:$s2"; memory_gb = 128.0; num_parallel = $slots; } );
tiers = ( { name = "agents"; queue_depth = 10000; } );
models = ( { name = "qwen3:8b"; tier = "agents"; base_gb = 5.2; kv_gb = 0.5; num_ctx = 8192; keep_alive = -1;
             placements = ( { host = "replica-a"; parallel = $slots; }, { host = "replica-b"; parallel = $slots; } ); } );
CONF
	"$B/harmonicd" -c "$work/hd.conf" &
	pids+=($!)
	wait_http "http://127.0.0.1:$s1/api/version"
	wait_http "http://127.0.0.1:$s2/api/version"
	wait_http "http://127.0.0.1:$hd/healthz"
	wait_loaded "http://127.0.0.1:$s1"
	wait_loaded "http://127.0.0.1:$s2"
	# Count only the workload: not the warm-ups' (empty) prompts.
	curl -s -X POST -o /dev/null "http://127.0.0.1:$s1/_sim/stats/reset"
	curl -s -X POST -o /dev/null "http://127.0.0.1:$s2/_sim/stats/reset"
	echo "== $1: playing the workload" >&2
	node "$top/scripts/bench-affinity.mjs" run --url "http://127.0.0.1:$hd" \
		--sims "http://127.0.0.1:$s1,http://127.0.0.1:$s2" --seed "$seed" --speed "$speed" \
		--agents "$agents" --turns "$turns" --start-spread "$spread" --slots "$slots" --out "$work/$1.json"
	stop_stack
}

run_policy least_loaded
run_policy affinity
node "$top/scripts/bench-affinity.mjs" report --runs "least_loaded=$work/least_loaded.json,affinity=$work/affinity.json" \
	--seed "$seed" ${svg:+--svg "$svg"} ${json:+--json "$json"}
