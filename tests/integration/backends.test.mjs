// Backend kinds (SPEC 10): harmonicd in front of harmonic-sim in
// llama-server mode (--api llamacpp), with the official clients.  Ground
// truth comes from the sim: its own answers to the same request asked
// directly, and its counters (/_sim/stats, /metrics, /slots).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { startSim, startDaemon, daemonConfig, getJson, postJson, generate, lines, sleep } from './lib/harness.mjs';

const WAIT_MS = 30000;
const waitFor = async (what, pred, ms = WAIT_MS) => {
  const t0 = Date.now();
  for (;;) {
    if (await pred()) return;
    if (Date.now() - t0 > ms) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
};
const llamaSim = (opts = {}) => startSim({ profile: 'etc/sim/evo-x2.conf', speed: opts.speed ?? 50,
  args: ['--api', 'llamacpp', ...(opts.args ?? [])] });
const hostOf = async (hd, name) => (await getJson(hd.url + '/stats')).hosts.find((h) => h.name === name);
const placementOf = async (hd, model, host) => (await getJson(hd.url + '/stats')).models
  .find((m) => m.name === model).placements.find((p) => p.host === host);
const simModel = async (sim, name) => {
  const s = await getJson(sim.url + '/_sim/stats');
  return s.models[name] ?? s.models[name + ':latest'];
};

// What the sim itself answers to a chat, asked directly (non-stream): the
// text and usage harmonicd's translation must reproduce.
const direct = async (sim, model, messages, maxTokens) => {
  const r = await postJson(sim.url + '/v1/chat/completions', { model, messages, max_tokens: maxTokens });
  assert.equal(r.status, 200);
  return r.json();
};

describe('Ollama clients on a llama-server host', () => {
  let sim, hd;
  before(async () => {
    sim = await llamaSim();
    hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'arcy', url: sim.url, type: 'llamacpp', num_parallel: null }],
      models: [
        { name: 'executive', tier: 'executive', placements: [{ host: 'arcy', parallel: 4 }] },
        { name: 'helper', backend_model: 'operator', tier: 'directors', placements: [{ host: 'arcy', parallel: 2 }] },
      ],
    }));
    await waitFor('arcy up and probed', async () => (await hostOf(hd, 'arcy')).backend?.slots > 0);
  });
  after(async () => { assert.equal(await hd.stop(), 0); assert.equal(await sim.stop(), 0); });

  test('ollama-js chat stream: the sim\'s text, done: true, exact counts from its usage', async () => {
    const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello there' }];
    const want = await direct(sim, 'executive', messages, 9);
    const ollama = new Ollama({ host: hd.url });
    let text = '', final, parts = 0;
    for await (const part of await ollama.chat({ model: 'executive', messages, stream: true, options: { num_predict: 9 } })) {
      assert.equal(part.model, 'executive');
      text += part.message.content;
      parts++;
      if (part.done) final = part;
    }
    assert.ok(parts > 2, 'streamed in pieces');
    assert.equal(text, want.choices[0].message.content);
    assert.equal(final.done, true);
    assert.equal(final.done_reason, 'length');
    assert.equal(final.eval_count, want.usage.completion_tokens);
    assert.equal(final.prompt_eval_count, want.usage.prompt_tokens);
    assert.ok(final.total_duration > 0 && final.eval_duration > 0);
  });

  test('chat and generate, streaming and not; a renamed model; counts in /stats', async () => {
    const ollama = new Ollama({ host: hd.url });
    const before = (await getJson(hd.url + '/stats')).totals;
    const chat = await ollama.chat({ model: 'helper', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 4 } });
    assert.equal(chat.done, true);
    assert.equal(chat.model, 'helper');
    assert.equal(chat.eval_count, 4);
    assert.equal(chat.message.role, 'assistant');
    const want = await direct(sim, 'operator', [{ role: 'user', content: 'hi' }], 4);
    assert.equal(chat.message.content, want.choices[0].message.content);

    let streamed = 0, final;
    for await (const part of await ollama.generate({ model: 'executive', prompt: 'x', stream: true, options: { num_predict: 6 } })) {
      if (!part.done) streamed += part.response.length > 0 ? 1 : 0;
      else final = part;
    }
    assert.ok(streamed >= 1);
    assert.equal(final.eval_count, 6);
    const g = await ollama.generate({ model: 'executive', prompt: 'x', system: 'terse', options: { num_predict: 3 } });
    assert.equal(g.done, true);
    assert.equal(g.eval_count, 3);
    assert.ok(g.response.length > 0);
    const raw = await ollama.generate({ model: 'executive', prompt: 'x', raw: true, options: { num_predict: 2 } });
    assert.equal(raw.eval_count, 2);

    const after = (await getJson(hd.url + '/stats')).totals;
    assert.equal(after.eval_tokens - before.eval_tokens, 4 + 6 + 3 + 2);
    assert.equal(after.completed - before.completed, 4);
  });

  test('tools: a streamed tool call comes back as Ollama tool_calls with object arguments', async () => {
    const ollama = new Ollama({ host: hd.url });
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
    const messages = [{ role: 'user', content: 'Please call get_weather for Paris' }];
    const want = await postJson(sim.url + '/v1/chat/completions', { model: 'executive', messages, tools }).then((r) => r.json());
    const call = want.choices[0].message.tool_calls?.[0];
    assert.ok(call, 'the sim answers this prompt with a tool call');
    const res = await ollama.chat({ model: 'executive', messages, tools });
    assert.equal(res.message.tool_calls.length, 1);
    assert.equal(res.message.tool_calls[0].function.name, call.function.name);
    assert.deepEqual(res.message.tool_calls[0].function.arguments, JSON.parse(call.function.arguments));
    let streamedCall;
    for await (const part of await ollama.chat({ model: 'executive', messages, tools, stream: true })) {
      if (part.message.tool_calls) streamedCall = part.message.tool_calls[0];
    }
    assert.deepEqual(streamedCall.function.arguments, JSON.parse(call.function.arguments));
    // The history of a tool round goes back translated and is accepted.
    const next = await ollama.chat({ model: 'executive', tools, options: { num_predict: 3 }, messages: [...messages,
      { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
      { role: 'tool', tool_name: 'get_weather', content: '18 C' }] });
    assert.equal(next.done, true);
  });

  test('format: JSON mode and a JSON schema reach the server as response_format', async () => {
    const ollama = new Ollama({ host: hd.url });
    const j = await ollama.chat({ model: 'executive', messages: [{ role: 'user', content: 'a user as JSON' }], format: 'json' });
    assert.equal(typeof JSON.parse(j.message.content), 'object', j.message.content);
    const schema = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] };
    const g = await ollama.generate({ model: 'executive', prompt: 'a user as JSON', format: schema });
    assert.equal(typeof JSON.parse(g.response), 'object', g.response);
  });

  test('embed, embeddings and show', async () => {
    const ollama = new Ollama({ host: hd.url });
    const e = await ollama.embed({ model: 'executive', input: ['a', 'b'] });
    assert.equal(e.embeddings.length, 2);
    assert.ok(e.embeddings[0].length > 0 && typeof e.embeddings[0][0] === 'number');
    const old = await postJson(hd.url + '/api/embeddings', { model: 'executive', prompt: 'a' }).then((r) => r.json());
    assert.ok(Array.isArray(old.embedding) && old.embedding.length === e.embeddings[0].length);
    const show = await ollama.show({ model: 'executive' });
    assert.equal(typeof show.model_info, 'object');
    assert.ok(show.model_info['llama.context_length'] > 0, 'the context from /props');
  });

  test('the openai client passes through to llama-server', async () => {
    const client = new OpenAI({ baseURL: `${hd.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const chunks = [];
    for await (const c of await client.chat.completions.create({ model: 'helper', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, stream: true, stream_options: { include_usage: true } })) chunks.push(c);
    assert.equal(chunks.at(-1).usage.completion_tokens, 5);
    assert.ok(chunks.every((c) => c.model === 'helper'), 'the model is echoed as the client named it');
    const r = await client.chat.completions.create({ model: 'executive', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
    assert.equal(r.usage.completion_tokens, 3);
  });

  test('/stats shows the backend\'s own load view per host', async () => {
    const h = await hostOf(hd, 'arcy');
    assert.equal(h.type, 'llamacpp');
    assert.equal(h.up, true);
    assert.ok(h.backend.slots > 0);
    assert.equal(typeof h.backend.busy, 'number');
    assert.ok(h.loaded.length > 0, 'loaded lists the /v1/models ids');
    const metrics = await fetch(hd.url + '/metrics').then((r) => r.text());
    assert.match(metrics, /^harmonic_backend_slots\{tier="executive",model="executive",host="arcy"\} \d+$/m);
    assert.match(metrics, /^harmonic_backend_busy\{tier="executive",model="executive",host="arcy"\} \d+$/m);
  });
});

describe('a model with an Ollama replica and a llama-server replica', () => {
  let ollamaSim, llama, hd;
  before(async () => {
    ollamaSim = await startSim({ speed: 50 });
    llama = await llamaSim();
    hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'sparky', url: ollamaSim.url }, { name: 'arcy', url: llama.url, type: 'llamacpp' }],
      models: [{ name: 'executive', tier: 'executive', placements: [{ host: 'sparky', parallel: 2 }, { host: 'arcy', parallel: 2 }] }],
    }));
    await waitFor('arcy probed', async () => (await hostOf(hd, 'arcy')).backend?.slots > 0);
  });
  after(async () => { assert.equal(await hd.stop(), 0); await ollamaSim.stop(); await llama.stop(); });

  test('both replicas serve, every answer is Ollama-shaped with exact counts', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () =>
      generate(hd.url, { model: 'executive', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 100 } }, { path: '/api/chat' })));
    const hosts = new Set();
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal(r.final.done, true);
      assert.equal(r.final.eval_count, 100);
      assert.equal(r.headers.get('content-type'), 'application/x-ndjson', 'NDJSON whichever host answered');
      hosts.add(r.headers.get('x-harmonic-host'));
    }
    assert.deepEqual([...hosts].sort(), ['arcy', 'sparky']);
    const s = await getJson(hd.url + '/stats');
    const pl = s.models[0].placements;
    assert.ok(pl.every((p) => p.completed > 0 && p.max_in_flight <= 2));
    assert.equal(s.totals.eval_tokens, 8 * 100);
  });
});

describe('slots and the backend\'s own load', () => {
  let sim, hd;
  before(async () => {
    sim = await llamaSim({ speed: 5, args: ['--np', '4'] });
    hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'arcy', url: sim.url, type: 'llamacpp', num_parallel: 4 }],
      models: [{ name: 'executive', tier: 'executive', placements: [{ host: 'arcy', parallel: 4 }] }],
    }));
    await waitFor('arcy probed', async () => (await hostOf(hd, 'arcy')).backend?.slots === 4);
  });
  after(async () => { assert.equal(await hd.stop(), 0); assert.equal(await sim.stop(), 0); });

  test('2 of 4 slots taken outside harmonicd: 20 streams never make the server queue, all complete', async () => {
    await postJson(sim.url + '/_sim/stats/reset', {});
    // Two long streams straight to the server, bypassing harmonicd.
    const ctl = new AbortController();
    const outside = [0, 1].map(() => postJson(sim.url + '/v1/chat/completions',
      { model: 'executive', messages: [{ role: 'user', content: 'long' }], max_tokens: 100000, stream: true }, {}, ctl.signal)
      .then(async (r) => { for await (const _ of lines(r)); }).catch(() => {}));
    await waitFor('the outside load seen by a probe', async () => (await placementOf(hd, 'executive', 'arcy')).backend?.outside === 2);
    assert.equal((await placementOf(hd, 'executive', 'arcy')).limit, 2);
    const results = await Promise.all(Array.from({ length: 20 }, () =>
      generate(hd.url, { model: 'executive', prompt: 'x', options: { num_predict: 8 } })));
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal(r.final.eval_count, 8);
    }
    const m = await simModel(sim, 'executive');
    assert.equal(m.max_deferred, 0, 'the server never queued a request');
    const p = await placementOf(hd, 'executive', 'arcy');
    assert.ok(p.max_in_flight <= 2, `harmonicd kept to the 2 free slots (max ${p.max_in_flight})`);
    ctl.abort();
    await Promise.all(outside);
    await waitFor('the outside load gone', async () => (await placementOf(hd, 'executive', 'arcy')).backend?.outside === 0);
    assert.equal((await placementOf(hd, 'executive', 'arcy')).limit, 4);
  });

  test('a client abort frees the slot and aborts the backend request', async () => {
    const ctl = new AbortController();
    const res = await postJson(hd.url + '/api/generate', { model: 'executive', prompt: 'x', options: { num_predict: 100000 } }, {}, ctl.signal);
    const it = lines(res);
    await it.next();
    await waitFor('the request busy on the server', async () => (await simModel(sim, 'executive')).busy_now === 1);
    ctl.abort();
    await waitFor('the slot freed in harmonicd', async () => (await placementOf(hd, 'executive', 'arcy')).in_flight === 0);
    await waitFor('the server slot freed', async () => (await simModel(sim, 'executive')).busy_now === 0);
    const s = await getJson(hd.url + '/stats');
    assert.ok(s.totals.cancelled >= 1);
  });

  test('faults before and after the first byte come back in Ollama\'s shape', async () => {
    await postJson(sim.url + '/_sim/fault', { mode: 'fail', count: 1, status: 500, message: 'boom' });
    const r = await generate(hd.url, { model: 'executive', prompt: 'x', options: { num_predict: 4 } });
    assert.equal(r.status, 502);
    assert.match(r.final.error, /boom/);
    await postJson(sim.url + '/_sim/fault', { mode: 'close', after_tokens: 3 });
    const cut = await generate(hd.url, { model: 'executive', prompt: 'x', options: { num_predict: 50 } });
    assert.equal(cut.status, 200);
    assert.equal(typeof cut.final.error, 'string', 'the stream ends with an error line');
    await postJson(sim.url + '/_sim/fault', { mode: 'fail', count: 1, status: 400, message: 'the request exceeds the available context size' });
    const bad = await generate(hd.url, { model: 'executive', prompt: 'x', options: { num_predict: 4 } });
    assert.equal(bad.status, 400);
    assert.match(bad.final.error, /context size/);
    const s = await getJson(hd.url + '/stats');
    assert.equal(s.hosts[0].in_flight, 0);
  });
});

describe('a llama-server that is still loading its model', () => {
  test('gets no traffic until /health says it is up', async () => {
    // speed 0.5: the profile's 7.5 s load lasts 15 s, ample time to look
    // at the loading state even when the programs start slowly.
    const sim = await llamaSim({ speed: 0.5, args: ['--np', '2'] });
    const hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'arcy', url: sim.url, type: 'llamacpp' }],
      models: [{ name: 'executive', tier: 'executive', placements: [{ host: 'arcy', parallel: 2 }] }],
      extra: 'queue_timeout = 60.0;',
    }));
    try {
      const health = await fetch(sim.url + '/health');
      await health.arrayBuffer();
      assert.equal(health.status, 503, 'the sim is still loading its model');
      await waitFor('arcy marked down', async () => (await hostOf(hd, 'arcy')).up === false);
      const r = await generate(hd.url, { model: 'executive', prompt: 'x', options: { num_predict: 2 } });
      assert.equal(r.status, 503);
      assert.match(r.final.error, /every host serving this model is down/, 'harmonicd answered, not the loading server');
      await waitFor('arcy up', async () => (await hostOf(hd, 'arcy')).up === true, 60000);
      const ok = await generate(hd.url, { model: 'executive', prompt: 'x', options: { num_predict: 2 } });
      assert.equal(ok.status, 200);
      const p = await placementOf(hd, 'executive', 'arcy');
      assert.equal(p.completed, 1, 'one request reached the server, after it was up');
      assert.equal(p.failed, 0, 'none got its "Loading model" 503');
      assert.equal((await simModel(sim, 'executive')).served, 1);
    } finally {
      assert.equal(await hd.stop(), 0);
      await sim.stop();
    }
  });
});

describe('an OpenAI-compatible host (type "openai")', () => {
  let sim, hd;
  before(async () => {
    // llama-server's API is OpenAI-compatible; as a generic host only /v1 is used.
    sim = await llamaSim();
    hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'vbox', url: sim.url, type: 'openai' }],
      models: [
        { name: 'executive', tier: 'executive', placements: [{ host: 'vbox', parallel: 2 }] },
        { name: 'ghost', backend_model: 'not-served', tier: 'directors', placements: [{ host: 'vbox', parallel: 2 }] },
      ],
      extra: 'queue_timeout = 1.0;',
    }));
    await waitFor('vbox up with its model list', async () => (await hostOf(hd, 'vbox')).loaded.length > 0);
  });
  after(async () => { assert.equal(await hd.stop(), 0); assert.equal(await sim.stop(), 0); });

  test('Ollama clients are translated; a model the server does not list takes no traffic', async () => {
    const ollama = new Ollama({ host: hd.url });
    const r = await ollama.chat({ model: 'executive', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 5, repeat_penalty: 1.1 } });
    assert.equal(r.eval_count, 5);
    assert.equal(r.done, true);
    const h = await hostOf(hd, 'vbox');
    assert.equal(h.type, 'openai');
    assert.ok(h.loaded.includes('executive'));
    const ghost = await placementOf(hd, 'ghost', 'vbox');
    assert.equal(ghost.served, false);
    assert.equal(ghost.limit, 0);
    const g = await generate(hd.url, { model: 'ghost', prompt: 'x', options: { num_predict: 2 } });
    assert.equal(g.status, 503, 'it waits for a slot that never comes, then 503 at its queue_timeout');
    assert.equal((await simModel(sim, 'executive')).served >= 1, true);
  });
});

describe('llama-server slots against num_parallel', () => {
  test('a different -np is warned about, naming both numbers, and harmonicd keeps to the server\'s slots', async () => {
    const sim = await llamaSim({ args: ['--np', '2'] });
    const hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'arcy', url: sim.url, type: 'llamacpp', num_parallel: 4 }],
      models: [{ name: 'executive', tier: 'executive', placements: [{ host: 'arcy', parallel: 4 }] }],
    }));
    try {
      await waitFor('the slots read from the server', async () => (await placementOf(hd, 'executive', 'arcy')).backend?.slots === 2);
      assert.equal((await placementOf(hd, 'executive', 'arcy')).limit, 2);
      await waitFor('the warning', async () => /llama-server has 2 slots .* but num_parallel is 4: set num_parallel = 2/.test(hd.stderr()));
      const results = await Promise.all(Array.from({ length: 6 }, () =>
        generate(hd.url, { model: 'executive', prompt: 'x', options: { num_predict: 10 } })));
      assert.ok(results.every((r) => r.status === 200 && r.final.eval_count === 10));
      assert.equal((await simModel(sim, 'executive')).max_deferred, 0, 'the server never queued a request');
    } finally {
      assert.equal(await hd.stop(), 0);
      await sim.stop();
    }
  });
});

describe('shutdown with probes in flight', () => {
  test('a load-view probe the server never answers is released at exit (no leak: exit 0 under ASan and valgrind)', async () => {
    // A llama-server that is up but never answers its load view.
    const http = await import('node:http');
    const held = [];
    const srv = http.createServer((req, res) => {
      if (req.url === '/health') { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"status":"ok"}'); return; }
      held.push(res); // /slots, /metrics, /props, /v1/models: no answer
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${srv.address().port}`;
    const hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'arcy', url, type: 'llamacpp' }],
      models: [{ name: 'executive', tier: 'executive', placements: [{ host: 'arcy', parallel: 2 }] }],
    }));
    try {
      await waitFor('load-view probes sent', async () => held.length >= 3);
    } finally {
      assert.equal(await hd.stop(), 0);
      for (const res of held) res.destroy();
      srv.close();
    }
  });
});
