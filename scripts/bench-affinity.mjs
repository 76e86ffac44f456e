// The driver of scripts/bench-affinity.sh (issue 17): a seeded multi-agent,
// multi-turn chat workload through harmonicd, and the report comparing two
// runs of it.
//
//   node bench-affinity.mjs run --url HD --sims URL,URL --seed N --speed N
//        --agents N --turns N --out FILE
//     plays the workload once and writes what it measured (client side, the
//     sims' /_sim/stats and harmonicd's /stats) to FILE as JSON.
//   node bench-affinity.mjs report --runs least_loaded=FILE,affinity=FILE
//        [--svg FILE] [--json FILE] [--speed N]
//     prints the table and the verdict on issue 17's targets; exits 1 when
//     a target is not met.
//
// Times are reported in simulated seconds (real seconds x --speed): the
// sims run their clock --speed times faster, and the think time is scaled
// the same way, so the figures are what the same workload would take at
// real speed.  Ratios do not depend on the conversion.
import fs from 'node:fs';

const MODEL = 'qwen3:8b';
const NUM_PREDICT = 96;
const SYSTEM_BYTES = 5200;   // ~1,300 tokens (bytes/4), plus the tools: ~2,000 in all
const USER_BYTES = 1200;     // ~300 tokens; with the previous answer (~96) ~400 new a turn
const THINK_S = [1.0, 3.0];  // think time between turns, simulated seconds

function args(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--')) throw new Error(`unexpected ${argv[i]}`);
    o[argv[i].slice(2)] = argv[i + 1];
  }
  return o;
}

/** mulberry32: a small seeded PRNG, so the workload is the same for a seed. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Plain words only: the sim calls a tool whose name appears as a whole word
// in the user's text, and the tool names below all have an underscore.
const WORDS = ('the a of to and in that is for it with as on be at by this from or have an not are but ' +
  'module function build test error value request answer file change line branch config parse return ' +
  'check fix update review design memory buffer queue slot cache token prompt model host replica ' +
  'latency budget plan step result output input report metric service client server stream chunk ' +
  'header body field record table index key hash lookup limit spill wait timer event loop handler').split(' ');

function text(r, bytes, head = '') {
  let s = head;
  while (s.length < bytes) s += (s.length ? ' ' : '') + WORDS[Math.floor(r() * WORDS.length)];
  return s;
}

const TOOL_NAMES = ['read_file', 'write_file', 'run_shell', 'search_code', 'list_dir', 'apply_patch',
  'web_fetch', 'ask_user'];

/** The whole workload for a seed: the shared system prompt and tools, and
 * per agent its start offset, user messages and think times. */
export function workload(seed, agents, turns, startSpread = 2.0) {
  const r = rng(seed);
  const system = text(r, SYSTEM_BYTES, 'You are a software engineering agent working in a large repository. ' +
    'Use the tools to inspect and change files; explain each step briefly.');
  const tools = TOOL_NAMES.map((name) => ({
    type: 'function',
    function: {
      name,
      description: text(r, 220),
      parameters: {
        type: 'object',
        properties: { path: { type: 'string', description: text(r, 60) }, arg: { type: 'string', description: text(r, 60) } },
        required: ['path'],
      },
    },
  }));
  const plan = [];
  for (let a = 0; a < agents; a++) {
    plan.push({
      start: r() * startSpread,
      users: Array.from({ length: turns }, (_, t) => text(r, USER_BYTES, `Agent ${a + 1}, task step ${t + 1}:`)),
      think: Array.from({ length: turns }, () => THINK_S[0] + r() * (THINK_S[1] - THINK_S[0])),
    });
  }
  return { system, tools, plan };
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

/** One streamed /api/chat turn: TTFT (first content chunk), the answer, counts. */
async function chatTurn(url, agent, messages, tools) {
  const t0 = performance.now();
  const resp = await fetch(`${url}/api/chat`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Harmonic-Agent': agent },
    body: JSON.stringify({ model: MODEL, messages, tools, stream: true, options: { num_predict: NUM_PREDICT } }),
  });
  const host = resp.headers.get('x-harmonic-host');
  const queue_ms = Number(resp.headers.get('x-harmonic-queue-ms') ?? NaN);
  if (resp.status !== 200) throw new Error(`HTTP ${resp.status}: ${await resp.text()}`);
  let ttft = null, content = '', buf = '', final = null;
  const dec = new TextDecoder();
  for await (const chunk of resp.body) {
    buf += dec.decode(chunk, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const j = JSON.parse(line);
      if (j.error) throw new Error(j.error);
      const c = j.message?.content ?? '';
      if (c && ttft === null) ttft = performance.now() - t0;
      content += c;
      if (j.done) final = j;
    }
  }
  if (!final) throw new Error('stream ended without done');
  return { ttft_ms: ttft, total_ms: performance.now() - t0, host, content, queue_ms,
    eval_count: final.eval_count ?? 0, prompt_eval_count: final.prompt_eval_count ?? 0 };
}

async function runAgent(url, speed, w, a, turns, out) {
  const p = w.plan[a];
  const name = `agent-${String(a + 1).padStart(2, '0')}`;
  const messages = [{ role: 'system', content: w.system }];
  await sleep((p.start * 1000) / speed);
  for (let t = 0; t < turns; t++) {
    messages.push({ role: 'user', content: p.users[t] });
    try {
      const r = await chatTurn(url, name, messages, w.tools);
      out.push({ agent: a, turn: t + 1, ttft_ms: r.ttft_ms, total_ms: r.total_ms, host: r.host, queue_ms: r.queue_ms,
        eval_count: r.eval_count, prompt_eval_count: r.prompt_eval_count });
      messages.push({ role: 'assistant', content: r.content });   // as a client keeps its history
    } catch (e) {
      out.push({ agent: a, turn: t + 1, error: String(e.message ?? e) });
      messages.push({ role: 'assistant', content: '' });
    }
    if (t + 1 < turns) await sleep((p.think[t] * 1000) / speed);
  }
}

const getJson = async (u) => (await fetch(u)).json();

async function run(o) {
  const speed = Number(o.speed), agents = Number(o.agents), turns = Number(o.turns);
  const w = workload(Number(o.seed), agents, turns, Number(o['start-spread'] ?? 2));
  const reqs = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: agents }, (_, a) => runAgent(o.url, speed, w, a, turns, reqs)));
  const wall_ms = performance.now() - t0;
  const sims = await Promise.all(o.sims.split(',').map((u) => getJson(`${u}/_sim/stats`)));
  const hd = await getJson(`${o.url}/stats`);
  const model = hd.models.find((m) => m.name === MODEL);
  const result = {
    speed, agents, turns, slots: Number(o.slots ?? 0), start_spread: Number(o['start-spread'] ?? 2), wall_ms, requests: reqs,
    sims: sims.map((s) => ({ evaluated: s.totals.prompt_tokens_evaluated, cached: s.totals.prompt_tokens_cached })),
    placements: model.placements.map((p) => ({ host: p.host, hits: p.affinity?.hits ?? 0, spills: p.affinity?.spills ?? 0,
      completed: p.completed ?? null, prompt_tokens: p.prompt_tokens, prompt_cached_tokens: p.prompt_cached_tokens })),
    routing: model.routing,
  };
  fs.writeFileSync(o.out, JSON.stringify(result));
}

const pct = (xs, q) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};

/** The figures of one run, in simulated seconds. */
function figures(r) {
  const ok = r.requests.filter((q) => !q.error);
  const k = r.speed / 1000;   // real ms -> simulated s
  const ttft = ok.filter((q) => q.ttft_ms !== null).map((q) => q.ttft_ms * k);
  const perTurn = Array.from({ length: r.turns }, (_, t) =>
    pct(ok.filter((q) => q.turn === t + 1 && q.ttft_ms !== null).map((q) => q.ttft_ms * k), 0.5));
  // A turn after the first that went to the replica of the previous turn.
  let same = 0, later = 0;
  const byAgent = new Map();
  for (const q of ok) (byAgent.get(q.agent) ?? byAgent.set(q.agent, []).get(q.agent)).push(q);
  for (const qs of byAgent.values()) {
    qs.sort((x, y) => x.turn - y.turn);
    for (let i = 1; i < qs.length; i++) { later++; if (qs[i].host === qs[i - 1].host) same++; }
  }
  const tokens = ok.reduce((s, q) => s + q.eval_count, 0);
  const wall = r.wall_ms * k;
  return {
    requests: r.requests.length, errors: r.requests.length - ok.length,
    evaluated: r.sims.reduce((s, x) => s + x.evaluated, 0),
    cached: r.sims.reduce((s, x) => s + x.cached, 0),
    queue_p50: pct(ok.map((q) => q.queue_ms * k).filter(Number.isFinite), 0.5),
    queue_p95: pct(ok.map((q) => q.queue_ms * k).filter(Number.isFinite), 0.95),
    ttft_p50: pct(ttft, 0.5), ttft_p95: pct(ttft, 0.95), ttft_per_turn: perTurn,
    tokens, tokens_per_s: tokens / wall, wall_s: wall,
    hits: r.placements.reduce((s, p) => s + p.hits, 0),
    spills: r.placements.reduce((s, p) => s + p.spills, 0),
    spills_by_host: Object.fromEntries(r.placements.map((p) => [p.host, p.spills])),
    same_replica: later ? same / later : 0,
  };
}

/** TTFT p50 per turn, one line per policy (hand-written SVG). */
function svg(F, names, file, title) {
  const W = 640, H = 380, L = 70, R = 470, T = 50, B = 320;
  const turns = F[names[0]].ttft_per_turn.length;
  const ymaxRaw = Math.max(...names.flatMap((n) => F[n].ttft_per_turn.filter(Number.isFinite)), 0.001) * 1.1;
  const mag = 10 ** Math.floor(Math.log10(ymaxRaw / 5)), f = ymaxRaw / 5 / mag;
  const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  const ymax = Math.ceil(ymaxRaw / step) * step;
  const x = (t) => L + (turns > 1 ? (t - 1) / (turns - 1) : 0.5) * (R - L);
  const y = (v) => B - (v / ymax) * (B - T);
  const colors = ['#d62728', '#1f77b4'];
  const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const o = [];
  o.push('<?xml version="1.0" encoding="UTF-8"?>');
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  o.push('<title>TTFT p50 per turn</title>');
  o.push('<rect width="100%" height="100%" fill="white"/>');
  o.push(`<text x="${L}" y="24" font-size="15" font-weight="bold">${esc(title)}</text>`);
  for (let v = 0; v <= ymax + step / 2; v += step) {
    o.push(`<line x1="${L}" y1="${y(v).toFixed(1)}" x2="${R}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`);
    o.push(`<text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${+v.toFixed(3)}</text>`);
  }
  for (let t = 1; t <= turns; t++) {
    o.push(`<line x1="${x(t).toFixed(1)}" y1="${B}" x2="${x(t).toFixed(1)}" y2="${B + 5}" stroke="#999"/>`);
    o.push(`<text x="${x(t).toFixed(1)}" y="${B + 18}" text-anchor="middle">${t}</text>`);
  }
  o.push(`<line x1="${L}" y1="${B}" x2="${R}" y2="${B}" stroke="#333"/>`);
  o.push(`<line x1="${L}" y1="${T}" x2="${L}" y2="${B}" stroke="#333"/>`);
  o.push(`<text x="${(L + R) / 2}" y="${B + 40}" text-anchor="middle">turn of the conversation</text>`);
  o.push(`<text x="18" y="${(T + B) / 2}" text-anchor="middle" transform="rotate(-90 18 ${(T + B) / 2})">time to first token, p50 (s)</text>`);
  names.forEach((n, i) => {
    const pts = F[n].ttft_per_turn.map((v, t) => [x(t + 1), y(Number.isFinite(v) ? v : 0)]);
    o.push(`<path fill="none" stroke="${colors[i]}" stroke-width="2" d="${pts.map(([px, py], j) => `${j ? 'L' : 'M'}${px.toFixed(1)} ${py.toFixed(1)}`).join(' ')}"><title>${esc(n)}</title></path>`);
    F[n].ttft_per_turn.forEach((v, t) => o.push(`<circle cx="${pts[t][0].toFixed(1)}" cy="${pts[t][1].toFixed(1)}" r="3" fill="${colors[i]}"><title>${esc(n)} turn ${t + 1}: ${Number(v).toFixed(3)} s</title></circle>`));
    const ly = T + 10 + i * 34;
    o.push(`<rect x="${R + 20}" y="${ly - 4}" width="14" height="4" fill="${colors[i]}"/>`);
    o.push(`<text x="${R + 40}" y="${ly}">${esc(n)}</text>`);
    o.push(`<text x="${R + 40}" y="${ly + 14}" font-size="11" fill="#555">p50 ${F[n].ttft_p50.toFixed(3)} s overall</text>`);
  });
  o.push('</svg>');
  fs.writeFileSync(file, o.join('\n') + '\n');
}

function report(o) {
  const runs = Object.fromEntries(o.runs.split(',').map((kv) => kv.split('=')).map(([k, f]) => [k, JSON.parse(fs.readFileSync(f, 'utf8'))]));
  const names = ['least_loaded', 'affinity'];
  const F = Object.fromEntries(names.map((n) => [n, figures(runs[n])]));
  const [l, a] = [F.least_loaded, F.affinity];
  const r0 = runs.affinity;
  console.log(`== prompt-cache affinity: ${r0.agents} agents x ${r0.turns} turns, 2 replicas of ${MODEL} (${r0.slots} slots each), agents starting over ${r0.start_spread} s, --speed ${r0.speed}; times in simulated s`);
  const ratio = (x, y) => (y > 0 ? x / y : NaN);
  const row = (what, x, y, fmt, showRatio = true) =>
    console.log(what.padEnd(34), fmt(x).padStart(12), fmt(y).padStart(12), showRatio ? ratio(y, x).toFixed(3).padStart(9) : ''.padStart(9));
  console.log(''.padEnd(34), 'least_loaded'.padStart(12), 'affinity'.padStart(12), 'ratio'.padStart(9));
  const int = (v) => String(Math.round(v)), s3 = (v) => v.toFixed(3), s1 = (v) => v.toFixed(1), p = (v) => `${(v * 100).toFixed(0)}%`;
  row('requests (errors)', l.requests, a.requests, (v) => `${v} (${v === l.requests ? l.errors : a.errors})`, false);
  row('prompt tokens evaluated (sims)', l.evaluated, a.evaluated, int);
  row('prompt tokens cached (sims)', l.cached, a.cached, int);
  row('TTFT p50 (s)', l.ttft_p50, a.ttft_p50, s3);
  row('TTFT p95 (s)', l.ttft_p95, a.ttft_p95, s3);
  row('harmonicd queue wait p50 (s)', l.queue_p50, a.queue_p50, s3, false);
  row('harmonicd queue wait p95 (s)', l.queue_p95, a.queue_p95, s3, false);
  row('generated tokens/s', l.tokens_per_s, a.tokens_per_s, s1);
  row('wall time (s)', l.wall_s, a.wall_s, s1);
  row('affinity hits', l.hits, a.hits, int, false);
  row('affinity spills', l.spills, a.spills, int, false);
  row('turns on the previous turn\'s replica', l.same_replica, a.same_replica, p, false);
  console.log('TTFT p50 per turn (s):');
  for (const n of names) console.log(`  ${n.padEnd(14)}`, F[n].ttft_per_turn.map((v) => v.toFixed(3)).join('  '));
  const targets = [
    ['prompt tokens evaluated', ratio(a.evaluated, l.evaluated), '<= 0.5x', (v) => v <= 0.5],
    ['TTFT p50', ratio(a.ttft_p50, l.ttft_p50), '<= 0.6x', (v) => v <= 0.6],
    ['generated tokens/s', ratio(a.tokens_per_s, l.tokens_per_s), '>= 0.95x', (v) => v >= 0.95],
    ['wall time', ratio(a.wall_s, l.wall_s), '<= 1.053x', (v) => v <= 1 / 0.95],
  ];
  console.log('== targets (issue 17): affinity against least_loaded');
  let all = true;
  const verdict = {};
  for (const [what, v, want, ok] of targets) {
    const met = Number.isFinite(v) && ok(v) && a.errors === 0 && l.errors === 0;
    all &&= met;
    verdict[what] = { ratio: v, target: want, met };
    console.log(what.padEnd(34), `${v.toFixed(3)}x`.padStart(12), want.padStart(9), met ? 'met' : 'NOT MET');
  }
  console.log(all ? 'all targets met' : 'NOT all targets met');
  if (o.svg) svg(F, names, o.svg, `TTFT p50 per turn: ${r0.agents} agents, 2 replicas, least_loaded vs affinity`);
  if (o.json) fs.writeFileSync(o.json, JSON.stringify({ workload: { agents: r0.agents, turns: r0.turns, speed: r0.speed, seed: Number(o.seed) },
    least_loaded: l, affinity: a, verdict, all_met: all }, null, 2) + '\n');
  process.exitCode = all ? 0 : 1;
}

const [cmd, ...rest] = process.argv.slice(2);
const o = args(rest);
if (cmd === 'run') await run(o);
else if (cmd === 'report') report(o);
else { console.error('usage: bench-affinity.mjs run|report ...'); process.exit(64); }
