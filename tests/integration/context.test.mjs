// Pinned context against option-less dialects (issue 15, item 8): requests
// on /v1/chat/completions, /v1/messages and /v1/responses carry no options,
// so a host whose default context differs from the pinned num_ctx reloads
// the model at every switch between them and /api/*.  harmonicd reads the
// loaded context from /api/ps, counts mismatches and the reloads it sees
// between probes, warns once naming the host and the setting to change,
// and shows it all in /stats and /metrics.  A scripted fake Ollama stands
// for the host, so the test decides what /api/ps says at each probe.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startSim, startDaemon, daemonConfig, getJson, sleep } from './lib/harness.mjs';

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

  test('harmonic-sim: its /api/ps context against a different pin', async () => {
    // The dgx-spark profile loads at num_ctx 2048 (its defaults).
    const sim = await startSim({ speed: 20 });
    cleanup.push(() => sim.stop());
    const hd = await startDaemon(config(sim.url, [['executive', 4096]]));
    cleanup.push(() => hd.stop());
    const s = await until(async () => { const x = await getJson(hd.url + '/stats'); return x.hosts[0].context_advice ? x : null; });
    assert.equal(placement(s, 'executive').context.loaded, 2048);
    assert.match(s.hosts[0].context_advice, /OLLAMA_CONTEXT_LENGTH=4096/);
  });
});
