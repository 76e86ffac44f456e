// harmonic-sim's prompt cache (SPEC 9; docs/sim.md "Prompt cache"): each
// slot keeps the tokens of the last sequence it processed, a request takes
// the free slot with the longest common prefix, and only the rest of its
// prompt is evaluated.  Ground truth is /_sim/stats (prompt_tokens_evaluated,
// prompt_tokens_cached) and the X-Sim-Cached-Tokens header; the Ollama
// answers keep prompt_eval_count = the whole prompt and show the cache only
// as a shorter prompt_eval_duration.  Durations compared here are the sim's
// simulated ones (deterministic), not wall-clock measurements.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSim, postJson, lines, getJson, writeTemp } from './lib/harness.mjs';

const MODEL = 'm';
const PROFILE = `
host = { name = "cache"; num_parallel = 2; max_queue = 16; default_predict = 32; context_length = 65536; };
defaults = { keep_alive = "5m"; };
models = (
  { name = "${MODEL}"; base_gb = 1.0; kv_gb = 0.1; prompt_rate = 2000.0; load_time = 0.0;
    levels = [ 1, 2 ]; rates = [ 400.0, 700.0 ]; }
);
`;

let sim;
before(async () => { sim = await startSim({ profile: writeTemp('sim-cache.conf', PROFILE), speed: 20 }); });
after(async () => { assert.equal(await sim?.stop(), 0); });

/** n deterministic words drawn by a little LCG from seed. */
function words(n, seed) {
  const vocab = ['alpha', 'beta', 'gamma', 'delta', 'kernel', 'cache', 'token', 'slot', 'prefix', 'model',
    'queue', 'tier', 'agent', 'host', 'budget', 'stream', 'prompt', 'answer', 'context', 'latency'];
  let x = seed >>> 0;
  const out = [];
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out.push(vocab[x % vocab.length]);
  }
  return out.join(' ');
}

/** One /api/chat; stream or not.  Returns the cached-token header, the
 * final chunk (or body) and the answer's text. */
async function chat(messages, stream, extra = {}) {
  const res = await postJson(`${sim.url}/api/chat`, { model: MODEL, messages, stream, ...extra });
  assert.equal(res.status, 200);
  const cached = Number(res.headers.get('x-sim-cached-tokens'));
  assert.ok(Number.isInteger(cached), 'X-Sim-Cached-Tokens is sent');
  let final, content = '';
  if (stream) {
    for await (const line of lines(res)) {
      if (!line) continue;
      final = JSON.parse(line);
      content += final.message?.content ?? '';
    }
  } else {
    final = await res.json();
    content = final.message.content;
  }
  assert.equal(final.done, true);
  // Only Ollama's fields: the cache shows as nothing but a shorter duration.
  for (const k of Object.keys(final))
    assert.ok(['model', 'created_at', 'message', 'done', 'done_reason', 'total_duration', 'load_duration',
      'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration'].includes(k), `Ollama field ${k}`);
  return { cached, final, content };
}

async function counters() {
  const s = await getJson(`${sim.url}/_sim/stats`);
  const m = s.models[`${MODEL}:latest`];
  assert.equal(s.totals.prompt_tokens_evaluated, m.prompt_tokens_evaluated);
  assert.equal(s.totals.prompt_tokens_cached, m.prompt_tokens_cached);
  return { evaluated: m.prompt_tokens_evaluated, cached: m.prompt_tokens_cached };
}

/** Unload the model: its slots' caches are gone with it. */
async function unload() {
  const res = await postJson(`${sim.url}/api/chat`, { model: MODEL, messages: [], keep_alive: 0 });
  assert.equal(res.status, 200);
  await res.json();
}

const tokensOf = (text) => Math.ceil(Buffer.byteLength(text) / 4);      // the sim's count

test('a growing conversation is evaluated only from where the cache ends', async () => {
  await unload();
  assert.equal((await postJson(`${sim.url}/_sim/stats/reset`, {})).status, 200);
  assert.deepEqual(await counters(), { evaluated: 0, cached: 0 });

  const messages = [{ role: 'system', content: words(2000, 1) }];
  const turns = [];
  for (let k = 1; k <= 6; k++) {
    const user = words(400, 100 + k);
    messages.push({ role: 'user', content: user });
    const before = await counters();
    const r = await chat(messages, k % 2 === 0);
    const after = await counters();
    const evaluated = after.evaluated - before.evaluated, cached = after.cached - before.cached;
    turns.push(r);
    console.log(`turn ${k}: prompt ${r.final.prompt_eval_count} tokens, cached ${cached}, evaluated ${evaluated}, ` +
      `prompt_eval_duration ${(r.final.prompt_eval_duration / 1e6).toFixed(1)} ms (simulated)`);

    assert.equal(r.cached, cached, 'the header agrees with /_sim/stats');
    assert.equal(evaluated + cached, r.final.prompt_eval_count, 'prompt_eval_count is the whole prompt');
    if (k === 1) {
      assert.equal(cached, 0, 'a fresh load has nothing cached');
    } else {
      const prev = turns[k - 2];
      assert.ok(cached >= prev.final.prompt_eval_count,
        `turn ${k} reuses the whole previous prompt and its answer (${cached} >= ${prev.final.prompt_eval_count})`);
      assert.ok(evaluated >= tokensOf(user) && evaluated <= tokensOf(user) + 16,
        `turn ${k} evaluates about the new message only (${evaluated} vs ${tokensOf(user)})`);
      assert.ok(r.final.prompt_eval_count > prev.final.prompt_eval_count + tokensOf(user));
    }
    messages.push({ role: 'assistant', content: r.content });
  }

  // The same prompt as turn 2, cold (the model reloaded: caches empty).
  await unload();
  const turn2 = messages.slice(0, 4);
  const before = await counters();
  const cold = await chat(turn2, false);
  const after = await counters();
  assert.equal(cold.cached, 0);
  assert.equal(after.cached - before.cached, 0);
  assert.equal(cold.final.prompt_eval_count, turns[1].final.prompt_eval_count);
  assert.equal(after.evaluated - before.evaluated, cold.final.prompt_eval_count);
  const warm = turns[1].final.prompt_eval_duration, coldNs = cold.final.prompt_eval_duration;
  console.log(`turn 2 prompt_eval_duration: ${(warm / 1e6).toFixed(1)} ms warm, ${(coldNs / 1e6).toFixed(1)} ms cold (simulated)`);
  assert.ok(warm * 5 < coldNs, `a cached prefix makes prompt evaluation much shorter (${warm} vs ${coldNs} ns)`);
  // Repeating exactly that prompt: all of it cached but one token.
  const again = await chat(turn2, true);
  assert.equal(again.cached, cold.final.prompt_eval_count - 1);
  assert.equal(again.final.prompt_eval_count, cold.final.prompt_eval_count);
  // A reload for another context starts with empty caches too.
  const reloaded = await chat(turn2, false, { options: { num_ctx: 32768 } });
  assert.equal(reloaded.cached, 0);
  assert.equal((await getJson(`${sim.url}/_sim/stats`)).models[`${MODEL}:latest`].context_reloads, 1);
});

test('two conversations in parallel on a 2-slot model each keep their own slot', async () => {
  await unload();
  await postJson(`${sim.url}/_sim/reset`, {}).then((r) => r.json());
  assert.deepEqual(await counters(), { evaluated: 0, cached: 0 });
  const convs = [
    [{ role: 'system', content: words(1200, 7) }],
    [{ role: 'system', content: words(1200, 8) }],
  ];
  const prev = [0, 0];
  for (let k = 1; k <= 4; k++) {
    for (const [i, c] of convs.entries()) c.push({ role: 'user', content: words(300, 1000 * i + k) });
    const results = await Promise.all(convs.map((c, i) => chat(c, (k + i) % 2 === 0)));
    for (const [i, r] of results.entries()) {
      console.log(`turn ${k} conversation ${i}: prompt ${r.final.prompt_eval_count}, cached ${r.cached}`);
      if (k === 1)
        assert.equal(r.cached, 0);
      else
        assert.ok(r.cached >= prev[i], `conversation ${i} turn ${k} finds its own history (${r.cached} >= ${prev[i]})`);
      prev[i] = r.final.prompt_eval_count;
      convs[i].push({ role: 'assistant', content: r.content });
    }
  }
  const s = await getJson(`${sim.url}/_sim/stats`);
  assert.equal(s.models[`${MODEL}:latest`].max_in_flight, 2, 'the conversations ran side by side');
});
