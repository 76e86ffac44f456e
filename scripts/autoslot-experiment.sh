#!/usr/bin/env bash
# parallel = "auto" vs the best static setting vs Ollama's default of one
# slot, under sustained load above the peak, on harmonic-sim with the
# report's profiles (issue 9, docs/adaptive-slots.md).
#
# For each (profile, model) it starts three sims of the same profile and one
# harmonicd in front of them, with three model names on the same backend
# tag: "<tag>" parallel = "auto" (max_parallel_slots 32) on sim A,
# "<tag>-best" with the report's peak as a fixed parallel on sim B, and
# "<tag>-one" with parallel = 1 on sim C.  CLIENTS closed-loop streaming
# clients per name run for DURATION wall seconds.  Rates come from the sims'
# own token counters, in the report's time base (divided by --speed):
# over the whole run (the auto search included) and over the second half.
#
# Usage: scripts/autoslot-experiment.sh [--build DIR] [--speed N] [--duration S]
#            [--clients N] [--predict N] [--mixed]
#   --mixed  prompts of mixed length (20..2000 words) instead of the report's one
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=build speed=10 duration=60 clients=40 predict=128 mixed=0
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$2; shift 2 ;;
	--speed) speed=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--clients) clients=$2; shift 2 ;;
	--predict) predict=$2; shift 2 ;;
	--mixed) mixed=1; shift ;;
	*) echo "usage: $0 [--build DIR] [--speed N] [--duration S] [--clients N] [--predict N] [--mixed]" >&2; exit 64 ;;
	esac
done
for p in harmonicd harmonic-sim; do
	[ -x "$top/$build/$p" ] || { echo "autoslot-experiment: $build/$p missing; run make first" >&2; exit 1; }
done
command -v node >/dev/null || { echo "autoslot-experiment: node is needed" >&2; exit 1; }

export HARMONIC_BUILD="$top/$build" SPEED=$speed DURATION=$duration CLIENTS=$clients PREDICT=$predict MIXED=$mixed
export HARNESS="$top/tests/integration/lib/harness.mjs"
node --input-type=module - <<'JS'
const { startSim, startDaemon, getJson, postJson, lines, sleep } = await import(process.env.HARNESS);
const SPEED = Number(process.env.SPEED), DURATION = Number(process.env.DURATION) * 1000;
const CLIENTS = Number(process.env.CLIENTS), PREDICT = Number(process.env.PREDICT), MIXED = process.env.MIXED === '1';
const CASES = [
  { host: 'DGX Spark', profile: 'etc/sim/dgx-spark.conf', tag: 'qwen3:8b', best: 16 },
  { host: 'Evo-X2', profile: 'etc/sim/evo-x2.conf', tag: 'qwen3:4b', best: 12 },
];
const words = (n) => Array.from({ length: n }, (_, i) => ['quantum', 'state', 'qubit', 'gate'][i % 4]).join(' ');
let rng = 1;
const prompt = () => {
  if (!MIXED) return 'Explain quantum computing briefly';
  rng = (rng * 1103515245 + 12345) % 2147483648;
  return words(20 + (rng % 1981));
};
async function client(url, model, stop) {
  while (!stop.signal.aborted) {
    try {
      const res = await postJson(url + '/api/generate', { model, prompt: prompt(), options: { num_predict: PREDICT } },
        {}, stop.signal);
      for await (const l of lines(res)) void l;
    } catch { if (!stop.signal.aborted) await sleep(10); }
  }
}
const rows = [];
for (const c of CASES) {
  const names = [c.tag, `${c.tag}-best`, `${c.tag}-one`];
  const sims = await Promise.all(names.map(() => startSim({ profile: c.profile, speed: SPEED })));
  const cfg = `listen = "127.0.0.1:@PORT@";
health_interval = 0.5;
hosts = (${sims.map((s, i) => `{ name = "h${i}"; url = "${s.url}"; memory_gb = 128.0; num_parallel = 64; }`).join(', ')});
tiers = ( { name = "agents"; weight = 1; queue_depth = 1024; } );
models = (
  { name = "${c.tag}"; tier = "agents"; base_gb = 1.0; kv_gb = 0.1; placements = ( { host = "h0"; parallel = "auto"; max_parallel_slots = 32; } ); },
  { name = "${c.tag}-best"; ollama = "${c.tag}"; tier = "agents"; base_gb = 1.0; kv_gb = 0.1; placements = ( { host = "h1"; parallel = ${c.best}; } ); },
  { name = "${c.tag}-one"; ollama = "${c.tag}"; tier = "agents"; base_gb = 1.0; kv_gb = 0.1; placements = ( { host = "h2"; parallel = 1; } ); }
);`;
  const hd = await startDaemon(cfg);
  for (const s of sims)
    while (!(await getJson(s.url + '/_sim/stats')).models[c.tag].loaded) await sleep(20);
  const tokens = () => Promise.all(sims.map(async (s) => (await getJson(s.url + '/_sim/stats')).models[c.tag].tokens));
  const autoState = async () => (await getJson(hd.url + '/stats')).models.find((m) => m.name === c.tag).placements[0].auto;
  const stop = new AbortController();
  const t0 = Date.now(), k0 = await tokens();
  const load = names.flatMap((n) => Array.from({ length: CLIENTS }, () => client(hd.url, n, stop)));
  let settled = null, kHalf = null, tHalf = 0;
  while (Date.now() - t0 < DURATION) {
    await sleep(250);
    const a = await autoState();
    if (settled === null && a.phase === 'holding') settled = { s: (Date.now() - t0) / 1000, limit: a.limit };
    if (kHalf === null && Date.now() - t0 >= DURATION / 2) { kHalf = await tokens(); tHalf = Date.now(); }
  }
  const k1 = await tokens(), t1 = Date.now(), a = await autoState();
  stop.abort();
  await Promise.allSettled(load);
  await hd.stop();
  await Promise.all(sims.map((s) => s.stop()));
  const whole = (i) => (k1[i] - k0[i]) / ((t1 - t0) / 1000 * SPEED);
  const half = (i) => (k1[i] - kHalf[i]) / ((t1 - tHalf) / 1000 * SPEED);
  rows.push([c.host, c.tag, `auto (settled ${settled ? `${settled.s.toFixed(1)} s at ${settled.limit}` : 'never'}, now ${a.limit})`,
    whole(0), half(0), half(0) / half(1)]);
  rows.push([c.host, c.tag, `static ${c.best} (report's peak)`, whole(1), half(1), 1]);
  rows.push([c.host, c.tag, 'static 1 (Ollama default)', whole(2), half(2), half(2) / half(1)]);
}
console.log(`\nharmonic-sim --speed ${SPEED}, ${CLIENTS} closed-loop streaming clients per setting, num_predict ${PREDICT}, ` +
  `${DURATION / 1000} s wall (${DURATION / 1000 * SPEED} s simulated), ${MIXED ? 'mixed prompts (20..2000 words)' : 'the report\'s prompt'}; tok/s in the report's time base\n`);
console.log('| host | model | setting | tok/s, whole run | tok/s, 2nd half | vs best static (2nd half) |');
console.log('| --- | --- | --- | ---: | ---: | ---: |');
for (const r of rows)
  console.log(`| ${r[0]} | ${r[1]} | ${r[2]} | ${r[3].toFixed(1)} | ${r[4].toFixed(1)} | ${(100 * r[5]).toFixed(1)} % |`);
JS
