// harmonic-sim as llama.cpp's llama-server (--api llamacpp / host.api):
// loading 503, /props, /slots, /metrics, the OpenAI routes in llama's
// shapes, slots (-np) with the server's deferred queue, faults, router
// mode, and the openai npm client straight against the sim; the agent
// routes (/v1/messages, count_tokens, /v1/responses) with the official
// @anthropic-ai/sdk and openai clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
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
// The same tool for Anthropic (input_schema) and Responses (flat function).
const A_WEATHER = { name: 'get_weather', description: 'weather for a city', input_schema: WEATHER[0].function.parameters };
const R_WEATHER = { type: 'function', name: 'get_weather', description: 'weather for a city', parameters: WEATHER[0].function.parameters };

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
    for (const p of ['/v1/messages', '/v1/messages/count_tokens', '/v1/responses']) {
      const r = await postJson(sim.url + p, { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }], input: 'hi' });
      assert.equal(r.status, 503, p);
      assert.equal((await r.json()).error.message, 'Loading model', p);
    }
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
    // The agent routes route by model too, errors in the route's own shape.
    r = await call(sim.url, '/v1/messages', { model: 'gamma', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.status, 404);
    assert.deepEqual(r.json, { type: 'error', error: { type: 'not_found_error', message: 'model not found' } });
    r = await call(sim.url, '/v1/responses', { model: 'gamma', input: 'x' });
    assert.equal(r.status, 404);
    assert.deepEqual(r.json, { error: { code: 404, message: 'model not found', type: 'not_found_error' } });
    r = await call(sim.url, '/v1/messages', { model: 'alpha', max_tokens: 2, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.json.model, 'alpha');
    assert.equal(r.json.usage.output_tokens, 2);

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

test('/v1/messages and count_tokens with @anthropic-ai/sdk: create, stream, tool use, cache reads, errors', async () => {
  // One slot: a request sent right after the previous answer was read waits
  // for that slot (and its cache) instead of racing its release into another.
  const sim = await startLoaded({ profile: SINGLE, speed: 50, args: ['--np', '1'] });
  try {
    const client = new Anthropic({ baseURL: sim.url, apiKey: 'unused', maxRetries: 0 });
    const messages = [{ role: 'user', content: 'tell me about the sea' }];
    // The prompt count is the sim's, the same whichever route carries the conversation.
    const ref = await call(sim.url, '/v1/chat/completions', { messages, max_tokens: 1 });
    const count = await client.messages.countTokens({ model: 'claude-sim', messages });
    assert.deepEqual(count, { input_tokens: ref.json.usage.prompt_tokens });

    const { data: msg, response } = await client.messages.create({ model: 'claude-sim', max_tokens: 6, messages }).withResponse();
    assert.equal(response.headers.get('server'), 'llama.cpp');
    assert.equal(msg.type, 'message');
    assert.match(msg.id, /^msg_/);
    assert.equal(msg.model, 'claude-sim');               // the request's model, echoed
    assert.equal(msg.stop_reason, 'max_tokens');
    assert.equal(msg.content[0].type, 'text');
    assert.equal(msg.content[0].text.split(' ').length, 6);
    assert.equal(msg.usage.input_tokens, count.input_tokens);
    assert.equal(msg.usage.output_tokens, 6);
    assert.equal(msg.usage.cache_read_input_tokens, Number(response.headers.get('x-sim-cached-tokens')));
    assert.ok(msg.usage.cache_read_input_tokens > 0, 'the chat above left the prompt in a slot');

    const stream = client.messages.stream({ model: 'claude-sim', max_tokens: 5, messages });
    let text = '';
    stream.on('text', (t) => { text += t; });
    const final = await stream.finalMessage();
    assert.equal(final.model, 'claude-sim');
    assert.equal(final.content[0].text, text);
    assert.equal(text, msg.content[0].text.split(' ').slice(0, 5).join(' '));
    assert.equal(final.stop_reason, 'max_tokens');
    assert.equal(final.usage.output_tokens, 5);
    assert.equal(final.usage.input_tokens, count.input_tokens);
    assert.ok(final.usage.cache_read_input_tokens > 0 && final.usage.cache_read_input_tokens <= count.input_tokens);

    // max_tokens is optional on llama-server: the natural answer ends with end_turn.
    let r = await call(sim.url, '/v1/messages', { model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 200);
    assert.equal(r.json.stop_reason, 'end_turn');

    // Tool use by the tool rule, streamed and not; then the round trip ends the turn.
    const tmsgs = [{ role: 'user', content: 'Call get_weather for `Oslo`' }];
    const one = await client.messages.stream({ model: 'claude-sim', max_tokens: 1024, tools: [A_WEATHER], messages: tmsgs }).finalMessage();
    assert.equal(one.stop_reason, 'tool_use');
    const use = one.content.find((c) => c.type === 'tool_use');
    assert.equal(use.name, 'get_weather');
    assert.deepEqual(use.input, { city: 'Oslo' });
    const again = await client.messages.create({ model: 'claude-sim', max_tokens: 1024, tools: [A_WEATHER], messages: tmsgs });
    assert.equal(again.stop_reason, 'tool_use');
    assert.deepEqual(again.content.find((c) => c.type === 'tool_use').input, { city: 'Oslo' });
    // A limit past default_predict (2000): the answer ends naturally.
    const two = await client.messages.create({ model: 'claude-sim', max_tokens: 4096, tools: [A_WEATHER], messages: [...tmsgs,
      { role: 'assistant', content: one.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'cold' }] }] });
    assert.equal(two.stop_reason, 'end_turn');
    assert.equal(two.content[0].type, 'text');

    // Errors in Anthropic's envelope around llama's type.
    r = await call(sim.url, '/v1/messages', { model: 'm', max_tokens: 0, messages });
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens is required and must be positive' } });
    await assert.rejects(client.messages.create({ model: 'm', max_tokens: 5, messages: [] }),
      (e) => e.status === 400 && e.error?.type === 'error' && e.error?.error?.type === 'invalid_request_error');
    await postJson(`${sim.url}/_sim/fault`, { mode: 'fail', status: 500, message: 'boom' });
    r = await call(sim.url, '/v1/messages', { model: 'm', max_tokens: 5, messages });
    assert.equal(r.status, 500);
    assert.deepEqual(r.json, { type: 'error', error: { type: 'server_error', message: 'boom' } });
    // Mid-stream: one `event: error`, then the end; the SDK throws it.
    await postJson(`${sim.url}/_sim/fault`, { mode: 'error', after_tokens: 2, message: 'Compute error.' });
    r = await call(sim.url, '/v1/messages', { model: 'm', max_tokens: 5, stream: true, messages });
    assert.match(r.raw, /event: error\ndata: \{"type":"error","error":\{"type":"server_error","message":"Compute error\."\}\}\n\n$/);
    assert.ok(!r.raw.includes('message_stop'));
    await postJson(`${sim.url}/_sim/fault`, { mode: 'error', after_tokens: 2, message: 'Compute error.' });
    await assert.rejects(client.messages.stream({ model: 'm', max_tokens: 5, messages }).finalMessage(), /Compute error\./);

    // Counted in llama's /metrics like any request.
    assert.ok((await metrics(sim.url))['llamacpp:tokens_predicted_total'] >= 6 + 5);
  } finally {
    await sim.stop();
  }
});

test('/v1/responses with the openai client: create, stream, tool use, usage, errors', async () => {
  const sim = await startLoaded({ profile: SINGLE, speed: 50, args: ['--np', '1'] }); // see the test above
  try {
    const client = new OpenAI({ baseURL: `${sim.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const input = 'tell me about the sea';
    const ref = await call(sim.url, '/v1/chat/completions', { messages: [{ role: 'user', content: input }], max_tokens: 1 });

    const r = await client.responses.create({ model: 'gpt-sim', input, max_output_tokens: 6 });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.equal(r.model, 'gpt-sim');
    assert.equal(r.output[0].type, 'message');
    assert.equal(r.output_text.split(' ').length, 6);
    assert.equal(r.usage.input_tokens, ref.json.usage.prompt_tokens);
    assert.equal(r.usage.output_tokens, 6);
    assert.equal(r.usage.total_tokens, r.usage.input_tokens + 6);
    assert.ok(r.usage.input_tokens_details.cached_tokens > 0, 'the chat above left the prompt in a slot');

    const stream = await client.responses.create({ model: 'gpt-sim', input, max_output_tokens: 6, stream: true });
    const types = [];
    let text = '', done;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.completed') done = ev.response;
    }
    assert.deepEqual([types[0], types[1], types.at(-1)], ['response.created', 'response.in_progress', 'response.completed']);
    assert.equal(text, r.output_text);
    assert.equal(done.model, 'gpt-sim');
    assert.equal(done.output[0].content[0].text, text);
    assert.equal(done.usage.output_tokens, 6);
    assert.equal(done.usage.input_tokens, r.usage.input_tokens);

    // Tool use by the tool rule, streamed and not; then the round trip answers in text.
    const tin = [{ role: 'user', content: 'get_weather in `Rome`' }];
    const one = await client.responses.create({ model: 'gpt-sim', tools: [R_WEATHER], input: tin });
    const call1 = one.output[0];
    assert.equal(call1.type, 'function_call');
    assert.equal(call1.name, 'get_weather');
    assert.deepEqual(JSON.parse(call1.arguments), { city: 'Rome' });
    const ts = await client.responses.create({ model: 'gpt-sim', tools: [R_WEATHER], input: tin, stream: true });
    let args = '', item;
    for await (const ev of ts) {
      if (ev.type === 'response.function_call_arguments.delta') args += ev.delta;
      if (ev.type === 'response.output_item.done') item = ev.item;
    }
    assert.deepEqual(JSON.parse(args), { city: 'Rome' });
    assert.equal(item.type, 'function_call');
    assert.equal(item.name, 'get_weather');
    const two = await client.responses.create({ model: 'gpt-sim', tools: [R_WEATHER],
      input: [...tin, call1, { type: 'function_call_output', call_id: call1.call_id, output: 'warm' }] });
    assert.equal(two.output[0].type, 'message');
    assert.ok(two.output_text.length > 0);

    // Errors in llama's (OpenAI-like) shape; mid-stream an `error` event the client throws.
    const bad = await call(sim.url, '/v1/responses', { model: 'm', input: 5 });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, 400);
    assert.equal(bad.json.error.type, 'invalid_request_error');
    await postJson(`${sim.url}/_sim/fault`, { mode: 'error', after_tokens: 2, message: 'Compute error.' });
    const s = await client.responses.create({ model: 'm', input, max_output_tokens: 6, stream: true });
    await assert.rejects((async () => { for await (const ev of s) void ev; })(), /Compute error\./);
  } finally {
    await sim.stop();
  }
});

test('-np 1: agent requests wait deferred for the slot (no 503, no headers), and leave the line when cancelled', async () => {
  const sim = await startLoaded({ profile: SINGLE, speed: 1, args: ['--np', '1'] });
  try {
    const ctl = [0, 1, 2].map(() => new AbortController());
    const headers = [false, false, false];
    const msg = (i, n) => postJson(`${sim.url}/v1/messages`, { model: 'm', max_tokens: n, stream: true,
      messages: [{ role: 'user', content: 'x' }] }, {}, ctl[i].signal).then((res) => { headers[i] = true; return res; });
    const first = await msg(0, 2000);               // holds the only slot
    assert.equal(first.status, 200);
    const second = msg(1, 3);
    const third = postJson(`${sim.url}/v1/responses`, { model: 'm', max_output_tokens: 3, stream: true, input: 'y' }, {}, ctl[2].signal)
      .then((res) => { headers[2] = true; return res; });
    second.catch(() => {});
    third.catch(() => {});
    await waitFor(async () => (await metrics(sim.url))['llamacpp:requests_deferred'] === 2, 'two deferred');
    assert.deepEqual(headers.slice(1), [false, false], 'deferred requests got no headers');
    ctl[1].abort();                                 // the second leaves the line
    await waitFor(async () => (await metrics(sim.url))['llamacpp:requests_deferred'] === 1, 'one deferred');
    ctl[0].abort();                                 // the slot frees: the third runs
    const t = await third;
    assert.equal(t.status, 200);
    const raw = await t.text();
    assert.match(raw, /event: response\.completed/);
    await waitFor(async () => { const m = await metrics(sim.url); return m['llamacpp:requests_processing'] === 0 && m['llamacpp:requests_deferred'] === 0; }, 'idle');
  } finally {
    await sim.stop();
  }
});
