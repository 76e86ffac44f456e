#!/bin/sh
# The embedded demo stack behind `make run`: a mixed fleet of two simulated
# hosts (the seed report's DGX Spark as an Ollama host, its Evo-X2 as a
# llama.cpp llama-server host) and harmonicd on etc/demo.conf.
# Ctrl-C (SIGINT) or SIGTERM stops everything and waits for it.
# Usage: scripts/run-demo.sh [BUILD_DIR]   (default build)
set -u
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
sim="$build/harmonic-sim"
daemon="$build/harmonicd"
pids=""

stop() {
	trap - INT TERM EXIT
	if [ -n "$pids" ]; then
		echo "run-demo: stopping ($pids)"
		kill -TERM $pids 2>/dev/null
		wait $pids 2>/dev/null
	fi
	exit 0
}
trap stop INT TERM EXIT

for p in "$sim" "$daemon"; do
	[ -x "$p" ] || { echo "run-demo: $p missing; run make first" >&2; exit 1; }
done

start_sim() {   # name listen profile api
	"$sim" --listen "$2" --profile "$3" --api "$4" &
	pids="$pids $!"
	for _ in $(seq 1 50); do
		curl -sS -o /dev/null "http://$2/" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "run-demo: simulated host $1 on $2 did not start" >&2
	return 1
}

start_sim sparky 127.0.0.1:11501 etc/sim/dgx-spark.conf ollama || exit 1
start_sim arcy 127.0.0.1:11502 etc/sim/evo-x2.conf llamacpp || exit 1

daemon_ok=0
if "$daemon" --check -c etc/demo.conf >/dev/null; then
	"$daemon" -c etc/demo.conf &
	dpid=$!
	pids="$pids $dpid"
	for _ in $(seq 1 30); do
		if ! kill -0 "$dpid" 2>/dev/null; then
			wait "$dpid"
			echo "run-demo: harmonicd exited with status $? (its serving code may not be finished);" \
			    "the simulated hosts keep running" >&2
			pids=$(echo "$pids" | sed "s/ $dpid//")
			break
		fi
		if curl -fsS http://127.0.0.1:11435/healthz >/dev/null 2>&1; then
			daemon_ok=1
			break
		fi
		sleep 0.2
	done
else
	echo "run-demo: etc/demo.conf does not validate; the simulated hosts keep running" >&2
fi

cat <<MSG

Demo stack:
  sparky  http://127.0.0.1:11501  harmonic-sim as Ollama, DGX Spark profile
  arcy    http://127.0.0.1:11502  harmonic-sim as llama.cpp llama-server, Evo-X2 profile
MSG
if [ "$daemon_ok" = 1 ]; then
	cat <<'MSG'
  harmonicd http://127.0.0.1:11435  (etc/demo.conf)

Try:
  curl http://127.0.0.1:11435/api/generate -d '{"model":"executive","prompt":"Explain quantum computing briefly"}'
  curl http://127.0.0.1:11435/api/chat -d '{"model":"coder","messages":[{"role":"user","content":"hi"}]}'
  curl http://127.0.0.1:11435/v1/chat/completions -d '{"model":"technical_director","messages":[{"role":"user","content":"hi"}]}'
  build/harmonicctl stats --watch                     (live terminal view)
  http://127.0.0.1:11435/dashboard                    (live page in a browser)
  curl http://127.0.0.1:11435/metrics                 (Prometheus)
MSG
else
	cat <<'MSG'
  harmonicd is not running; talk to the simulated hosts directly.

Try:
MSG
fi
cat <<'MSG'
  curl http://127.0.0.1:11501/api/generate -d '{"model":"qwen3:8b","prompt":"Explain quantum computing briefly"}'
  curl http://127.0.0.1:11501/_sim/stats     (per-model in_flight, served, tokens; also :11502)
  curl http://127.0.0.1:11502/slots          (the llama-server host's own slot view)

Ctrl-C stops everything.
MSG

# Wait until a signal arrives (wait returns early on a trapped signal).
while :; do
	wait
	sleep 1
done
