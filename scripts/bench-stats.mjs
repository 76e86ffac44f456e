// The /stats latency benchmark (issue 5's target: p99 < 5 ms under 200
// streams).  The same load as tests/integration/stats.test.mjs: harmonicd in
// front of two harmonic-sim hosts (the DGX Spark and Evo-X2 profiles at
// --speed 2), 200 closed-loop streaming clients on four models, /stats
// polled at 10 Hz; bursts of sequential GETs timed by curl itself over a
// 10 s window, so the node process driving the streams does not inflate
// the figures.  Prints p50/p99/max and the verdict; the test suite only
// prints the figure (a loaded machine must not fail `make check`).
// Run it on a quiet machine: scripts/bench-stats.sh [--seconds N] [--build DIR]
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const seconds = Number(opt('--seconds', '10'));
const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.env.HARMONIC_BUILD = path.resolve(top, opt('--build', process.env.HARMONIC_BUILD ?? 'build'));
const { startSim, startDaemon, getJson, postJson, lines, run, sleep } = await import(path.join(top, 'tests/integration/lib/harness.mjs'));

const TARGET_P99_MS = 5;
const SPEED = 2;
const STREAMS = 200;
const PREDICT = 60;
const MODELS = [['executive', 'executive'], ['qwen3:8b', 'directors'], ['operator', 'specialists'], ['qwen3:4b', 'specialists']];
const PER_PLACEMENT = 25;

const sparky = await startSim({ speed: SPEED });
const arcy = await startSim({ profile: 'etc/sim/evo-x2.conf', speed: SPEED });
const pl = `( { host = "sparky"; parallel = ${PER_PLACEMENT}; }, { host = "arcy"; parallel = ${PER_PLACEMENT}; } )`;
const hd = await startDaemon(`listen = "127.0.0.1:@PORT@";
log_level = "warn";
health_interval = 0.2;
hosts = (
  { name = "sparky"; url = "${sparky.url}"; memory_gb = 128.0; num_parallel = 64; max_parallel = 100; },
  { name = "arcy"; url = "${arcy.url}"; memory_gb = 128.0; num_parallel = 64; max_parallel = 100; }
);
tiers = (
  { name = "executive"; weight = 8; queue_depth = 512; },
  { name = "directors"; weight = 4; queue_depth = 512; },
  { name = "specialists"; weight = 1; queue_depth = 512; }
);
models = (
  ${MODELS.map(([m, t]) => `{ name = "${m}"; tier = "${t}"; base_gb = 1.0; kv_gb = 0.1; placements = ${pl}; }`).join(',\n  ')}
);
`);

try {
  // Every placement resident before the load starts.
  const w0 = Date.now();
  while (Date.now() - w0 < 60000) {
    const s = await getJson(hd.url + '/stats');
    if (s.hosts.every((h) => h.up && h.loaded.length === MODELS.length) && s.in_flight === 0) break;
    await sleep(50);
  }

  let running = true, tokens = 0, failed = 0;
  const worker = async (i) => {
    const model = MODELS[i % MODELS.length][0];
    while (running) {
      try {
        const res = await postJson(hd.url + '/api/generate', { model, prompt: `worker ${i}`, options: { num_predict: PREDICT } });
        if (res.status !== 200) { failed++; await res.arrayBuffer(); continue; }
        for await (const line of lines(res)) if (line.trim()) tokens++;
      } catch { failed++; }
    }
  };
  const pool = Promise.all(Array.from({ length: STREAMS }, (_, i) => worker(i)));
  await sleep(4000); // ramp-up: every stream open
  const poll10 = setInterval(() => { fetch(hd.url + '/stats').then((r) => r.arrayBuffer()).catch(() => {}); }, 100);
  const t0 = Date.now(), tok0 = tokens, ms = [];
  let bad = 0;
  while (Date.now() - t0 < seconds * 1000) {
    const a = ['-s', '-w', '%{http_code} %{time_total}\\n'];
    for (let i = 0; i < 250; i++) a.push('-o', '/dev/null', hd.url + '/stats');
    const r = await run('curl', a);
    for (const l of r.stdout.trim().split('\n')) {
      const [code, t] = l.split(' ');
      if (code !== '200') bad++; else ms.push(Number(t) * 1000);
    }
    await sleep(250);
  }
  const wall = (Date.now() - t0) / 1000;
  const rate = (tokens - tok0) / wall;
  const inFlight = (await getJson(hd.url + '/stats')).in_flight;
  clearInterval(poll10);
  running = false;
  await pool;

  ms.sort((a, b) => a - b);
  const pct = (q) => ms[Math.min(ms.length - 1, Math.ceil(q * ms.length) - 1)];
  const p99 = pct(0.99);
  console.log(`load: ${STREAMS} streams, ${inFlight} in flight, ${rate.toFixed(0)} tokens/s relayed, ${failed} client failures`);
  console.log(`/stats: ${ms.length} GETs over ${wall.toFixed(1)} s (${bad} not 200): p50 ${pct(0.5).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${ms.at(-1).toFixed(2)} ms`);
  console.log('== target (issue 5)');
  console.log(`/stats p99 under ${STREAMS} streams`.padEnd(34), `${p99.toFixed(2)} ms`.padStart(12), `< ${TARGET_P99_MS} ms`.padStart(8),
    p99 < TARGET_P99_MS && bad === 0 ? 'met' : 'NOT MET');
} finally {
  await hd.stop();
  await sparky.stop();
  await arcy.stop();
}
