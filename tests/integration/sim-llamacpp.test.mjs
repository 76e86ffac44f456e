// harmonic-sim as llama.cpp's llama-server (--api llamacpp / host.api):
// loading 503, /props, /slots, /metrics, the OpenAI routes in llama's
// shapes, slots (-np) with the server's deferred queue, faults, router
// mode, and the openai npm client straight against the sim.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startSim, postJson, lines, sleep, writeTemp } from './lib/harness.mjs';

// One model: a plain `llama-server -m`.  Loads for 2 s (speed 1).
const SINGLE = writeTemp('llama-single.conf', `
host = { name = "llama1"; api = "llamacpp"; num_parallel = 4; default_predict = 2000; };
models = (
  { name = "qwen-tiny"; base_gb = 1.0; kv_gb = 0.1; prompt_rate = 1000.0; load_time = 2.0;
    embedding_length = 8; levels = [ 1, 2 ]; rates = [ 20.0, 30.0 ]; }
);
`);

// Several models: router mode.  The api comes from the command line here.
const ROUTER = writeTemp('llama-router.conf', `
host = { name = "llama2"; num_parallel = 1; default_predict = 2000; };
models = (
  { name = "alpha"; load_time = 0.0; levels = [ 1 ]; rates = [ 20.0 ]; },
  { name = "beta"; load_time = 0.0; embeddings = false; levels = [ 1 ]; rates = [ 20.0 ]; }
);
`);

const WEATHER = [{ type: 'function', function: { name: 'get_weather', description: 'weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];

/** Run a POST to completion; SSE events parsed (data: lines), or the JSON body. */
async function call(url, path, body) {
  const res = await postJson(url + path, body);
  const out = { status: res.status, headers: res.headers, events: [], raw: '' };
  if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    for await (const line of lines(res)) {
      out.raw += line + '\n';
      if (line.startsWith('data: ')) out.events.push(line === 'data: [DONE]' ? '[DONE]' : JSON.parse(line.slice(6)));
    }
  } else {
    out.raw = await res.text();
    out.json = JSON.parse(out.raw);
  }
  return out;
}

/** Prometheus text into {name: value}. */
async function metrics(url, query = '') {
  const r = await fetch(`${url}/metrics${query}`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const m = {};
  for (const line of (await r.text()).split('\n'))
    if (line && !line.startsWith('#')) { const [k, v] = line.split(' '); m[k] = Number(v); }
  return m;
}

async function simStats(url) {
  return (await fetch(`${url}/_sim/stats`)).json();
}

async function waitFor(pred, what, limitMs = 30000) {
  const t0 = Date.now();
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() - t0 > limitMs) assert.fail(`never: ${what}`);
    await sleep(10);
  }
}

async function startLoaded(opts) {
  const sim = await startSim(opts);
  await waitFor(async () => (await fetch(`${sim.url}/health`)).status === 200, 'health 200');
  return sim;
}

test('loading: /health and the rest answer 503 "Loading model", the model lists answer; then 200', async () => {
  // speed 0.4: 5 s of loading, room for the checks below on a slow machine.
  const sim = await startSim({ profile: SINGLE, speed: 0.4 });
  try {
    const h = await fetch(`${sim.url}/health`);
    assert.equal(h.status, 503);
    assert.equal(h.headers.get('server'), 'llama.cpp');
    assert.deepEqual(await h.json(), { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } });
    for (const p of ['/v1/health', '/props', '/slots', '/metrics', '/nope'])
      assert.equal((await fetch(sim.url + p)).status, 503, p);
    const post = await postJson(`${sim.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(post.status, 503);
    assert.equal((await post.json()).error.type, 'unavailable_error');
    const models = await (await fetch(`${sim.url}/v1/models`)).json();
    assert.equal(models.data[0].id, 'qwen-tiny');
    assert.equal(models.data[0].meta, null);
    assert.equal(models.models[0].name, 'qwen-tiny');
    assert.equal((await fetch(`${sim.url}/models`)).status, 200);

    await waitFor(async () => (await fetch(`${sim.url}/health`)).status === 200, 'health 200');
    assert.deepEqual(await (await fetch(`${sim.url}/v1/health`)).json(), { status: 'ok' });
    assert.equal(typeof (await (await fetch(`${sim.url}/v1/models`)).json()).data[0].meta.n_embd, 'number');
    const props = await (await fetch(`${sim.url}/props?model=anything`)).json();
    assert.equal(props.total_slots, 4);
    assert.equal(props.default_generation_settings.n_ctx, 2048);
    assert.equal(props.model_alias, 'qwen-tiny');
    assert.equal(typeof props.model_path, 'string');
    assert.equal(typeof props.build_info, 'string');
    const nf = await fetch(`${sim.url}/nope`);
    assert.equal(nf.status, 404);
    assert.deepEqual(await nf.json(), { error: { message: 'File Not Found', type: 'not_found_error', code: 404 } });
    const bad = await postJson(`${sim.url}/v1/chat/completions`, '{"messages": [');
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.type, 'invalid_request_error');
  } finally {
    await sim.stop();
  }
});

test('chat, completions and embeddings in llama-server\'s shapes; tool calls stream in pieces', async () => {
  const sim = await startLoaded({ profile: SINGLE, speed: 50 });
  try {
    const msgs = [{ role: 'user', content: 'hello there' }];
    // Streaming with include_usage: role delta, text, finish chunk, usage chunk with timings, [DONE].
    let r = await call(sim.url, '/v1/chat/completions', { model: 'whatever', messages: msgs, max_tokens: 5, stream: true,
      stream_options: { include_usage: true } });
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1), '[DONE]');
    const ev = r.events.slice(0, -1);
    assert.deepEqual(ev[0].choices[0].delta, { role: 'assistant', content: null });
    assert.equal(ev[0].object, 'chat.completion.chunk');
    assert.equal(ev[0].model, 'whatever');
    assert.match(ev[0].id, /^chatcmpl-[A-Za-z0-9]{32}$/);
    const text = ev.slice(1).map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.ok(text.length > 0);
    const fin = ev.at(-2), last = ev.at(-1);
    assert.equal(fin.choices[0].finish_reason, 'length');
    assert.deepEqual(fin.choices[0].delta, {});
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 5);
    assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + 5);
    assert.equal(last.usage.prompt_tokens_details.cached_tokens, 0);
    assert.equal(last.timings.predicted_n, 5);
    assert.equal(last.timings.cache_n + last.timings.prompt_n, last.usage.prompt_tokens);
    assert.ok(last.timings.prompt_ms > 0 && last.timings.predicted_ms > 0);
    assert.ok(ev.every((c) => c.id === ev[0].id));

    // Without include_usage: no usage anywhere, timings on the finish chunk.
    r = await call(sim.url, '/v1/chat/completions', { messages: msgs, n_predict: 3, stream: true });
    assert.ok(r.events.slice(0, -1).every((c) => c.usage === undefined));
    assert.equal(r.events.at(-2).choices[0].finish_reason, 'length');
    assert.equal(r.events.at(-2).timings.predicted_n, 3);
    assert.equal(r.events.at(-2).model, 'qwen-tiny');      // no model in the request: the alias

    // Non-stream: usage and timings; a limit past the natural answer ends with "stop".
    r = await call(sim.url, '/v1/chat/completions', { model: 'm', messages: msgs, max_tokens: 4 });
    assert.equal(r.json.object, 'chat.completion');
    assert.equal(r.json.choices[0].message.role, 'assistant');
    assert.equal(r.json.choices[0].finish_reason, 'length');
    assert.deepEqual(Object.keys(r.json.usage), ['completion_tokens', 'prompt_tokens', 'total_tokens', 'prompt_tokens_details']);
    assert.equal(r.json.usage.completion_tokens, 4);
    assert.equal(r.json.timings.predicted_n, 4);

    // response_format json_object: the content is a JSON object.
    r = await call(sim.url, '/v1/chat/completions', { messages: msgs, max_tokens: 6, response_format: { type: 'json_object' } });
    assert.equal(typeof JSON.parse(r.json.choices[0].message.content), 'object');
    r = await call(sim.url, '/v1/chat/completions', { messages: msgs, response_format: { type: 'yaml' } });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /response_format type must be one of/);

    // Completions: stream (final chunk carries usage and timings) and not.
    r = await call(sim.url, '/v1/completions', { prompt: 'once upon', max_tokens: 3, stream: true });
    assert.equal(r.events.at(-1), '[DONE]');
    const cl = r.events.at(-2);
    assert.equal(cl.object, 'text_completion');
    assert.equal(cl.choices[0].finish_reason, 'length');
    assert.equal(cl.choices[0].text, '');
    assert.equal(cl.usage.completion_tokens, 3);
    assert.equal(cl.timings.predicted_n, 3);
    r = await call(sim.url, '/v1/completions', { prompt: 'once upon', max_tokens: 2 });
    assert.equal(r.json.choices[0].logprobs, null);
    assert.equal(r.json.usage.completion_tokens, 2);

    // Embeddings.
    r = await call(sim.url, '/v1/embeddings', { input: ['a', 'b'] });
    assert.equal(r.json.object, 'list');
    assert.equal(r.json.data.length, 2);
    assert.equal(r.json.data[1].index, 1);
    assert.equal(r.json.data[0].embedding.length, 8);
    r = await call(sim.url, '/v1/embeddings', { input: '' });
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { error: { code: 400, message: 'Input content cannot be empty', type: 'invalid_request_error' } });

    // A tool call: header {index,id,type,function{name,arguments:""}}, then argument pieces.
    r = await call(sim.url, '/v1/chat/completions', { stream: true, tools: WEATHER,
      messages: [{ role: 'user', content: 'get_weather for `Paris` please' }] });
    const deltas = r.events.slice(0, -1).map((c) => c.choices[0]?.delta).filter((d) => d?.tool_calls);
    const head = deltas[0].tool_calls[0];
    assert.equal(head.index, 0);
    assert.equal(head.type, 'function');
    assert.match(head.id, /./);
    assert.deepEqual(head.function, { name: 'get_weather', arguments: '' });
    assert.ok(deltas.length > 2, 'arguments in several pieces');
    const args = deltas.slice(1).map((d) => d.tool_calls[0].function.arguments).join('');
    assert.deepEqual(JSON.parse(args), { city: 'Paris' });
    assert.equal(r.events.at(-2).choices[0].finish_reason, 'tool_calls');
    r = await call(sim.url, '/v1/chat/completions', { tools: WEATHER, messages: [{ role: 'user', content: 'get_weather `Oslo`' }] });
    assert.equal(r.json.choices[0].finish_reason, 'tool_calls');
    assert.equal(r.json.choices[0].message.content, null);
    assert.deepEqual(JSON.parse(r.json.choices[0].message.tool_calls[0].function.arguments), { city: 'Oslo' });
  } finally {
    await sim.stop();
  }
});

test('-np 2: two streams run, two wait deferred with no headers, a deferred disconnect leaves the queue', async (t) => {
  // Profile num_parallel 4; --np wins.  At 20 tok/s a 2000-token stream
  // holds its slot far longer than this test runs.
  const sim = await startLoaded({ profile: SINGLE, speed: 1, args: ['--np', '2'] });
  const body = (n) => ({ messages: [{ role: 'user', content: 'x' }], max_tokens: n, stream: true });
  try {
    assert.equal((await (await fetch(`${sim.url}/props`)).json()).total_slots, 2);
    const ctl = [0, 1, 2, 3, 4].map(() => new AbortController());
    const headers = [false, false, false, false, false];
    const start = (i, n) => postJson(`${sim.url}/v1/chat/completions`, body(n), {}, ctl[i].signal)
      .then((res) => { headers[i] = true; return res; });
    const running = [start(0, 2000), start(1, 2000)];
    await waitFor(async () => (await metrics(sim.url))['llamacpp:requests_processing'] === 2, 'two processing');
    const deferred = [start(2, 3), start(3, 3)];
    deferred.forEach((p) => p.catch(() => {}));
    const m = await waitFor(async () => { const x = await metrics(sim.url); return x['llamacpp:requests_deferred'] === 2 && x; }, 'two deferred');
    assert.equal(m['llamacpp:requests_processing'], 2);
    const slots = await (await fetch(`${sim.url}/slots`)).json();
    assert.equal(slots.length, 2);
    assert.equal(slots.filter((s) => s.is_processing).length, 2);
    assert.ok(slots.every((s) => typeof s.id_task === 'number' && typeof s.n_ctx === 'number'));
    // A fifth waits too, then its client leaves: it leaves the queue.
    const fifth = start(4, 3);
    fifth.catch(() => {});
    await waitFor(async () => (await simStats(sim.url)).models['qwen-tiny:latest'].deferred_now === 3, 'three deferred');
    ctl[4].abort();
    await waitFor(async () => (await metrics(sim.url))['llamacpp:requests_deferred'] === 2, 'the fifth left the queue');
    const s = (await simStats(sim.url)).models['qwen-tiny:latest'];
    assert.equal(s.busy_now, 2);
    assert.equal(s.max_deferred, 3);
    assert.ok(s.disconnects >= 1);
    assert.deepEqual(headers.slice(2), [false, false, false], 'deferred requests got no headers');

    // The running streams have started; ending one frees a slot for the next in line.
    const a = await running[0];
    assert.equal(a.status, 200);
    ctl[0].abort();
    const c = await deferred[0];
    assert.equal(c.status, 200);
    assert.equal(headers[3], false, 'the last in line still waits');
    let text = '';
    for await (const line of lines(c)) text += line + '\n';
    assert.match(text, /"finish_reason":"length"/);
    assert.match(text, /data: \[DONE\]/);
    ctl[1].abort();
    const d = await deferred[1];
    for await (const line of lines(d)) text += line;
    await waitFor(async () => { const x = await metrics(sim.url); return x['llamacpp:requests_processing'] === 0 && x['llamacpp:requests_deferred'] === 0; }, 'idle');
    const idle = await (await fetch(`${sim.url}/slots`)).json();
    assert.equal(idle.filter((x) => x.is_processing).length, 0);
    const after = await metrics(sim.url);
    assert.ok(after['llamacpp:tokens_predicted_total'] >= 6);
    assert.ok(after['llamacpp:prompt_tokens_total'] > 0);
    await postJson(`${sim.url}/_sim/reset`, {});
    assert.equal((await simStats(sim.url)).models['qwen-tiny:latest'].max_deferred, 0);
    t.diagnostic(`metrics after: ${JSON.stringify(after)}`);
  } finally {
    await sim.stop();
  }
});

test('faults in llama\'s shapes: fail before the first byte, an error event mid-stream without [DONE], a cut', async () => {
  const sim = await startLoaded({ profile: SINGLE, speed: 50 });
  const req = { messages: [{ role: 'user', content: 'x' }], max_tokens: 8, stream: true };
  try {
    await postJson(`${sim.url}/_sim/fault`, { mode: 'fail', status: 500, message: 'boom' });
    let r = await call(sim.url, '/v1/chat/completions', req);
    assert.equal(r.status, 500);
    assert.deepEqual(r.json, { error: { code: 500, message: 'boom', type: 'server_error' } });

    await postJson(`${sim.url}/_sim/fault`, { mode: 'error', after_tokens: 2, message: 'Compute error.' });
    r = await call(sim.url, '/v1/chat/completions', req);
    assert.equal(r.status, 200);
    assert.deepEqual(r.events.at(-1), { error: { code: 500, message: 'Compute error.', type: 'server_error' } });
    assert.ok(!r.raw.includes('[DONE]'));

    await postJson(`${sim.url}/_sim/fault`, { mode: 'close', after_tokens: 2 });
    await assert.rejects(call(sim.url, '/v1/chat/completions', req));
  } finally {
    await sim.stop();
  }
});

test('router mode: POSTs route by model, GETs by ?model=, each model has its own slots', async () => {
  const sim = await startLoaded({ profile: ROUTER, speed: 1, args: ['--api', 'llamacpp'] });
  try {
    const models = await (await fetch(`${sim.url}/v1/models`)).json();
    assert.deepEqual(models.data.map((m) => m.id), ['alpha', 'beta']);
    let r = await call(sim.url, '/v1/chat/completions', { model: 'gamma', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.status, 404);
    assert.deepEqual(r.json, { error: { code: 404, message: 'model not found', type: 'not_found_error' } });
    r = await call(sim.url, '/v1/embeddings', { model: 'beta', input: 'x' });
    assert.equal(r.status, 501);
    assert.equal(r.json.error.type, 'not_supported_error');
    r = await call(sim.url, '/v1/embeddings', { model: 'alpha', input: 'x' });
    assert.equal(r.status, 200);
    assert.equal(r.json.model, 'alpha');
    assert.equal((await fetch(`${sim.url}/slots?model=gamma`)).status, 404);

    const ctl = new AbortController();
    const res = await postJson(`${sim.url}/v1/chat/completions`, { model: 'beta', messages: [{ role: 'user', content: 'x' }],
      max_tokens: 2000, stream: true }, {}, ctl.signal);
    assert.equal(res.status, 200);
    const busy = async (q) => (await (await fetch(`${sim.url}/slots${q}`)).json()).filter((s) => s.is_processing).length;
    assert.equal(await busy('?model=beta'), 1);
    assert.equal(await busy('?model=alpha'), 0);
    assert.equal(await busy(''), 0);                   // no ?model=: the first model
    assert.equal((await metrics(sim.url, '?model=beta'))['llamacpp:requests_processing'], 1);
    assert.equal((await metrics(sim.url, '?model=alpha'))['llamacpp:requests_processing'], 0);
    assert.equal((await (await fetch(`${sim.url}/props?model=beta`)).json()).model_alias, 'beta');
    ctl.abort();
    await waitFor(async () => (await busy('?model=beta')) === 0, 'beta idle');
  } finally {
    await sim.stop();
  }
});

test('the openai npm client chats with the sim directly', async () => {
  const sim = await startLoaded({ profile: SINGLE, speed: 50 });
  try {
    const client = new OpenAI({ baseURL: `${sim.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'qwen-tiny', messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 5, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.equal(chunks.at(-1).usage.completion_tokens, 5);
    const c = await client.chat.completions.create({ model: 'qwen-tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
    assert.equal(c.usage.completion_tokens, 3);
    const emb = await client.embeddings.create({ model: 'qwen-tiny', input: 'hello' });
    assert.equal(emb.data[0].embedding.length, 8);
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['qwen-tiny']);
  } finally {
    await sim.stop();
  }
});
