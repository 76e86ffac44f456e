// Pinned context against option-less dialects (issue 15, item 8): requests
// on /v1/chat/completions, /v1/messages and /v1/responses carry no options,
// so a host whose default context differs from the pinned num_ctx reloads
// the model at every switch between them and /api/*.  harmonicd reads the
// loaded context from /api/ps, counts mismatches and the reloads it sees
// between probes, warns once naming the host and the setting to change,
// and shows it all in /stats and /metrics.  First a scripted fake Ollama
// stands for the host, so the test decides what /api/ps says at each
// probe; then harmonic-sim, which reloads a model whenever a request's
// context differs from the loaded one, is driven end to end.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startSim, startDaemon, daemonConfig, getJson, postJson, writeTemp, sleep } from './lib/harness.mjs';

// A fake Ollama: /api/version, /api/ps from `models` (name -> context
// length, or undefined for an old Ollama that does not report it), and an
// empty-prompt /api/generate for the warm-ups.
async function fakeOllama(models) {
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/api/version') return res.end(JSON.stringify({ version: '0.13.5' }));
      if (req.url === '/api/ps') {
        return res.end(JSON.stringify({ models: Object.entries(models).map(([name, ctx]) => ({
          name, model: name, size: 1e9, digest: 'x', details: {}, expires_at: '2318-01-01T00:00:00Z', size_vram: 1e9,
          ...(ctx === undefined ? {} : { context_length: ctx }),
        })) }));
      }
      if (req.url === '/api/generate') return res.end(JSON.stringify({ model: JSON.parse(body).model, response: '', done: true }));
      res.statusCode = 404;
      res.end('{"error":"not found"}');
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${srv.address().port}`, models, close: () => new Promise((r) => srv.close(r)) };
}

const config = (url, models, extra = '') => daemonConfig({
  hosts: [{ name: 'sparky', url }],
  models: models.map(([name, ctx]) => ({ name, tier: 'executive', placements: [{ host: 'sparky', parallel: 2 }] })),
  extra,
}).replace('health_interval = 0.2;', 'health_interval = 0.05;').replace(/(\{ name = "([^"]+)"; tier = "executive";)/g, (m, all, name) => {
  const ctx = models.find(([n]) => n === name)?.[1];
  return ctx === undefined ? all : `${all} num_ctx = ${ctx};`;
});

const placement = (s, model) => s.models.find((m) => m.name === model).placements[0];
const warnings = (hd) => hd.stderr().split('\n').filter((l) => l.includes('num_ctx pins'));

async function until(pred, ms = 5000) {
  const t0 = Date.now();
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await sleep(20);
  }
}

describe('pinned context against the host default', () => {
  const cleanup = [];
  after(async () => { for (const f of cleanup.reverse()) await f(); });

  test('a loaded context other than the pin: counted, one warning naming the host and the setting, in /stats and /metrics', async () => {
    const host = await fakeOllama({ 'executive:latest': 4096 });
    cleanup.push(host.close);
    const hd = await startDaemon(config(host.url, [['executive', 4096]]));
    cleanup.push(() => hd.stop());
    let s = await until(async () => { const x = await getJson(hd.url + '/stats'); return placement(x, 'executive').context.loaded ? x : null; });
    assert.deepEqual(placement(s, 'executive').context, { pinned: 4096, loaded: 4096, reloads_seen: 0, mismatches: 0 });
    assert.equal(s.hosts[0].context_advice, null);

    // /v1 traffic loaded it at the host's default: a reload, a mismatch.
    host.models['executive:latest'] = 2048;
    s = await until(async () => { const x = await getJson(hd.url + '/stats'); return placement(x, 'executive').context.mismatches > 0 ? x : null; });
    let c = placement(s, 'executive').context;
    assert.equal(c.loaded, 2048);
    assert.equal(c.reloads_seen, 1);
    assert.match(s.hosts[0].context_advice, /^set OLLAMA_CONTEXT_LENGTH=4096 on host "sparky" \(http:\/\/127\.0\.0\.1:\d+\)/);
    await until(() => warnings(hd).length > 0);
    const w = warnings(hd)[0];
    assert.match(w, /host sparky: model executive is loaded with a 2048-token context but num_ctx pins 4096/);
    assert.match(w, /\/v1\/chat\/completions, \/v1\/completions, \/v1\/messages and \/v1\/responses carry no options/);
    assert.match(w, /set OLLAMA_CONTEXT_LENGTH=4096 on host "sparky"/);

    // Back and forth: every switch seen between probes is a reload.
    host.models['executive:latest'] = 4096;
    await until(async () => placement(await getJson(hd.url + '/stats'), 'executive').context.reloads_seen === 2);
    host.models['executive:latest'] = 2048;
    await until(async () => placement(await getJson(hd.url + '/stats'), 'executive').context.reloads_seen === 3);
    // Unloaded (keep_alive ran out) and loaded again: not a reload.
    delete host.models['executive:latest'];
    await until(async () => placement(await getJson(hd.url + '/stats'), 'executive').context.loaded === null);
    host.models['executive:latest'] = 2048;
    await until(async () => placement(await getJson(hd.url + '/stats'), 'executive').context.loaded === 2048);
    await sleep(200);
    s = await getJson(hd.url + '/stats');
    c = placement(s, 'executive').context;
    assert.equal(c.reloads_seen, 3);
    assert.ok(c.mismatches >= 3, `${c.mismatches} mismatches`);
    assert.equal(warnings(hd).length, 1, 'one warning an hour, not one per probe');

    const text = await (await fetch(hd.url + '/metrics')).text();
    assert.match(text, /^harmonic_context_length\{tier="executive",model="executive",host="sparky"\} 2048$/m);
    assert.match(text, /^harmonic_context_reloads_total\{tier="executive",model="executive",host="sparky"\} 3$/m);
    assert.match(text, /^harmonic_context_mismatches_total\{tier="executive",model="executive",host="sparky"\} \d+$/m);
  });

  test('models pinning different contexts on one host: the advice is a Modelfile num_ctx', async () => {
    const host = await fakeOllama({ 'executive:latest': 2048, 'operator:latest': 8192 });
    cleanup.push(host.close);
    const hd = await startDaemon(config(host.url, [['executive', 4096], ['operator', 8192]]));
    cleanup.push(() => hd.stop());
    const s = await until(async () => { const x = await getJson(hd.url + '/stats'); return x.hosts[0].context_advice ? x : null; });
    assert.match(s.hosts[0].context_advice, /pin different num_ctx, so OLLAMA_CONTEXT_LENGTH cannot match them all/);
    assert.match(s.hosts[0].context_advice, /create a variant of executive with PARAMETER num_ctx 4096/);
    assert.equal(placement(s, 'operator').context.mismatches, 0);
    await until(() => warnings(hd).length > 0);
    assert.equal(warnings(hd).filter((l) => l.includes('model operator')).length, 0);
  });

  test('an Ollama that does not report context_length, an unpinned model, num_ctx x num_parallel: nothing is judged', async () => {
    // daemonConfig's hosts have num_parallel = 64.
    const host = await fakeOllama({ 'executive:latest': undefined, 'operator:latest': 1024, 'reporter:latest': 64 * 1024 });
    cleanup.push(host.close);
    const hd = await startDaemon(config(host.url, [['executive', 4096], ['operator', 0], ['reporter', 1024]]));
    cleanup.push(() => hd.stop());
    const s = await until(async () => { const x = await getJson(hd.url + '/stats'); return placement(x, 'operator').context.loaded ? x : null; });
    await sleep(200);
    assert.deepEqual(placement(s, 'executive').context, { pinned: 4096, loaded: null, reloads_seen: 0, mismatches: 0 });
    assert.deepEqual(placement(s, 'operator').context, { pinned: null, loaded: 1024, reloads_seen: 0, mismatches: 0 });
    assert.deepEqual(placement(s, 'reporter').context, { pinned: 1024, loaded: 65536, reloads_seen: 0, mismatches: 0 });
    assert.equal(s.hosts[0].context_advice, null);
    assert.equal(warnings(hd).length, 0);
  });
});

// A profile for the sim's own rules: a host default of 8192 (overridden
// by --context-length below), "plain" without a Modelfile num_ctx and
// "tuned" with one.  One load is 1 s simulated.
const CTX_PROFILE = `host = { name = "ctx"; num_parallel = 4; default_predict = 4; context_length = 8192; };
defaults = { keep_alive = -1; load_time = 1.0; };
models = (
  { name = "plain"; levels = [ 1 ]; rates = [ 50.0 ]; },
  { name = "tuned"; num_ctx = 16384; levels = [ 1 ]; rates = [ 50.0 ]; }
);
`;

const simStats = async (sim, model) => (await getJson(sim.url + '/_sim/stats')).models[model];
const psContext = async (sim, model) => (await getJson(sim.url + '/api/ps')).models.find((m) => m.name === model)?.context_length;
const chat = (url, model, ctx, extra = {}) => postJson(url + '/api/chat', {
  model, messages: [{ role: 'user', content: 'hi' }], stream: false, options: { num_predict: 2, ...(ctx ? { num_ctx: ctx } : {}) }, ...extra,
});
const v1chat = (url, model) => postJson(url + '/v1/chat/completions', { model, max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] });

describe('harmonic-sim: a request at another context reloads the model', () => {
  const cleanup = [];
  after(async () => { for (const f of cleanup.reverse()) await f(); });

  test('default context: --context-length over the profile, a Modelfile num_ctx over both; /api/ps and /_sim/stats report it', async () => {
    const sim = await startSim({ profile: writeTemp('ctx.conf', CTX_PROFILE), speed: 20, args: ['--context-length', '4096'] });
    cleanup.push(() => sim.stop());
    assert.equal((await getJson(sim.url + '/_sim/stats')).context_length, 4096);
    assert.equal((await v1chat(sim.url, 'plain')).status, 200);
    assert.equal(await psContext(sim, 'plain:latest'), 4096);
    assert.equal((await v1chat(sim.url, 'tuned')).status, 200);
    assert.equal(await psContext(sim, 'tuned:latest'), 16384);
    const show = await (await postJson(sim.url + '/api/show', { model: 'tuned' })).json();
    assert.match(show.parameters, /^num_ctx +16384$/m);
    // Native requests at the loaded context, or naming none: no reload.
    assert.equal((await chat(sim.url, 'tuned', 16384)).status, 200);
    assert.equal((await chat(sim.url, 'plain')).status, 200);
    let st = await simStats(sim, 'plain:latest');
    assert.deepEqual([st.loads, st.context_reloads, st.context_length], [1, 0, 4096]);
    // Another num_ctx reloads, counted as a load too.
    const r = await (await chat(sim.url, 'plain', 2048)).json();
    assert.ok(r.load_duration >= 1e9, `load_duration ${r.load_duration}: a whole load`);
    assert.equal(await psContext(sim, 'plain:latest'), 2048);
    st = await simStats(sim, 'plain:latest');
    assert.deepEqual([st.loads, st.context_reloads, st.context_length, st.loaded], [2, 1, 2048, true]);
    assert.equal((await getJson(sim.url + '/_sim/stats')).totals.context_reloads, 1);
    assert.match(sim.stderr(), /plain:latest: reloading with context 2048 \(was 4096\)/);
    assert.equal((await chat(sim.url, 'plain', 'x')).status, 500);
    // Unloaded: not resident, no context; the next load is no reload.
    await postJson(sim.url + '/api/generate', { model: 'plain', keep_alive: 0 });
    st = await simStats(sim, 'plain:latest');
    assert.deepEqual([st.loaded, st.context_length], [false, null]);
    assert.equal((await v1chat(sim.url, 'plain')).status, 200);
    st = await simStats(sim, 'plain:latest');
    assert.deepEqual([st.loads, st.context_reloads, st.context_length], [3, 1, 4096]);
  });

  test('the reload waits for the requests in flight, and later requests queue behind it', async () => {
    const sim = await startSim({ profile: writeTemp('ctx.conf', CTX_PROFILE), speed: 20, args: ['--context-length', '4096'] });
    cleanup.push(() => sim.stop());
    assert.equal((await v1chat(sim.url, 'plain')).status, 200);    // loaded at 4096
    // A holds a slot at 2048 for 1000 simulated seconds (until we drop it).
    await postJson(sim.url + '/_sim/fault', { mode: 'slow', delay_ms: 1e6, model: 'plain' });
    const stop = new AbortController();
    const a = postJson(sim.url + '/api/chat', { model: 'plain', messages: [{ role: 'user', content: 'hi' }],
      options: { num_predict: 2, num_ctx: 2048 } }, {}, stop.signal).then(() => 'answered', (e) => e.name);
    await until(async () => (await simStats(sim, 'plain:latest')).in_flight === 1 && (await psContext(sim, 'plain:latest')) === 2048);
    // B (the default, 4096) waits for A; C (2048, A's context) waits behind B
    // although a slot is free and the model has its context.
    const done = [];
    const b = v1chat(sim.url, 'plain').then((res) => { done.push('B'); return res.json(); });
    await until(async () => (await simStats(sim, 'plain:latest')).queued === 1);
    const c = chat(sim.url, 'plain', 2048).then((res) => { done.push('C'); return res.json(); });
    const st = await until(async () => { const x = await simStats(sim, 'plain:latest'); return x.queued === 2 ? x : null; });
    assert.deepEqual([st.in_flight, st.context_reloads, st.context_length], [1, 1, 2048]);
    await sleep(100);
    assert.deepEqual(done, [], 'nobody passes A');
    // A's client goes away: B reloads at 4096, then C at 2048.
    stop.abort();
    assert.equal(await a, 'AbortError');
    const [rb, rc] = await Promise.all([b, c]);
    assert.deepEqual(done, ['B', 'C']);
    assert.equal(rb.usage.completion_tokens, 2);
    assert.ok(rc.load_duration >= 1e9, `C waited for its own load: ${rc.load_duration}`);
    const end = await simStats(sim, 'plain:latest');
    assert.deepEqual([end.context_reloads, end.context_length, end.queued, end.in_flight], [3, 2048, 0, 0]);
  });
});

// harmonicd in front of harmonic-sim: /api/chat carries the pinned num_ctx,
// /v1/messages, /v1/chat/completions and /v1/responses carry none, so the
// sim runs them at its default context.  After each request the test waits
// until harmonicd's probe has seen the context it left, so that every
// reload falls between two probes.
describe('harmonicd in front of harmonic-sim: native and option-less traffic alternate', () => {
  const cleanup = [];
  after(async () => { for (const f of cleanup.reverse()) await f(); });

  const PIN = 4096;
  const user = [{ role: 'user', content: 'hi' }];
  const optionless = [
    ['/v1/messages', { model: 'executive', max_tokens: 2, messages: user }],
    ['/v1/chat/completions', { model: 'executive', max_tokens: 2, messages: user }],
    ['/v1/responses', { model: 'executive', max_output_tokens: 2, input: 'hi' }],
  ];

  async function stack(simDefault) {
    const sim = await startSim({ speed: 10, args: ['--context-length', String(simDefault)] });
    cleanup.push(() => sim.stop());
    const cfg = daemonConfig({
      hosts: [{ name: 'sparky', url: sim.url }],
      models: [{ name: 'executive', tier: 'executive', keep_alive: -1, placements: [{ host: 'sparky', parallel: 2 }] }],
    }).replace('health_interval = 0.2;', 'health_interval = 0.05;').replace('tier = "executive";', `tier = "executive"; num_ctx = ${PIN};`);
    const hd = await startDaemon(cfg);
    cleanup.push(() => hd.stop());
    // harmonicd's warm-up loads the model at the pin.
    await until(async () => {
      const st = await simStats(sim, 'executive:latest');
      return st.loaded && st.in_flight === 0 && placement(await getJson(hd.url + '/stats'), 'executive').context.loaded === PIN;
    });
    return { sim, hd };
  }

  // One round: each option-less endpoint, then /api/chat, each followed by
  // waiting until harmonicd has seen the context it loaded (when expected).
  async function alternate(sim, hd, seen) {
    for (const [path, body] of optionless) {
      const r = await postJson(hd.url + path, body);
      assert.equal(r.status, 200, `${path}: ${await r.clone().text()}`);
      await r.arrayBuffer();
      if (seen) await until(async () => placement(await getJson(hd.url + '/stats'), 'executive').context.loaded === seen[0]);
      const n = await postJson(hd.url + '/api/chat', { model: 'executive', stream: false, messages: user, options: { num_predict: 2 } });
      assert.equal(n.status, 200);
      await n.arrayBuffer();
      if (seen) await until(async () => placement(await getJson(hd.url + '/stats'), 'executive').context.loaded === seen[1]);
    }
  }

  test('the sim defaults to 2048, the pin is 4096: the sim reloads at every switch, harmonicd counts each and names OLLAMA_CONTEXT_LENGTH=4096', async () => {
    const { sim, hd } = await stack(2048);
    const before = await simStats(sim, 'executive:latest');
    assert.deepEqual([before.loads, before.context_reloads, before.context_length], [1, 0, PIN]);

    await alternate(sim, hd, [2048, PIN]);
    const st = await simStats(sim, 'executive:latest');
    assert.equal(st.context_reloads, 6, 'two reloads per endpoint pair');
    assert.equal(st.loads, 7);
    assert.equal(st.failed, 0);
    assert.equal(sim.stderr().split('\n').filter((l) => l.includes('executive:latest: reloading with context')).length, 6);

    const s = await getJson(hd.url + '/stats');
    const c = placement(s, 'executive').context;
    assert.equal(c.pinned, PIN);
    assert.equal(c.loaded, PIN);
    assert.equal(c.reloads_seen, 6, 'harmonicd saw every reload the sim made');
    assert.ok(c.mismatches >= 3, `${c.mismatches} mismatches`);
    assert.match(s.hosts[0].context_advice, new RegExp(`^set OLLAMA_CONTEXT_LENGTH=${PIN} on host "sparky" \\(${sim.url.replace(/[.]/g, '\\.')}\\)`));
    const w = warnings(hd);
    assert.equal(w.length, 1, 'one warning an hour');
    assert.match(w[0], /host sparky: model executive is loaded with a 2048-token context but num_ctx pins 4096/);
    assert.match(w[0], /set OLLAMA_CONTEXT_LENGTH=4096 on host "sparky"/);
    const text = await (await fetch(hd.url + '/metrics')).text();
    assert.match(text, /^harmonic_context_reloads_total\{tier="executive",model="executive",host="sparky"\} 6$/m);
  });

  test('the sim defaults to the pin: no reload, no mismatch, no advice, no warning', async () => {
    const { sim, hd } = await stack(PIN);
    await alternate(sim, hd, null);
    await sleep(300);   // several probes
    const st = await simStats(sim, 'executive:latest');
    assert.deepEqual([st.loads, st.context_reloads, st.context_length, st.failed], [1, 0, PIN, 0]);
    assert.ok(st.served >= 7, `${st.served} served`);
    const s = await getJson(hd.url + '/stats');
    assert.deepEqual(placement(s, 'executive').context, { pinned: PIN, loaded: PIN, reloads_seen: 0, mismatches: 0 });
    assert.equal(s.hosts[0].context_advice, null);
    assert.equal(warnings(hd).length, 0);
    assert.doesNotMatch(sim.stderr(), /reloading/);
  });
});
