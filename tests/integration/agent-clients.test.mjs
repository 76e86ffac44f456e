// The clients agents are built on, through harmonicd in front of
// harmonic-sim (issue 15): the Anthropic SDK on /v1/messages (create,
// stream, a tool round trip, x-api-key and a Bearer token, Claude Code's
// ?beta=true path), the openai package on /v1/responses (create, stream, a
// tool round trip), and two Ollama clients, @langchain/ollama's ChatOllama
// (invoke, stream, tools) and the Vercel AI SDK with ollama-ai-provider-v2
// (generateText, streamText, tools).  Ground truth comes from the backend:
// the same request sent straight to a second, identical sim gives the same
// text and usage; /_sim/stats (served, tokens, max_in_flight, disconnects)
// equals harmonicd's /stats totals; slot limits hold at the backend on the
// new endpoints; a client that aborts mid-stream frees its slot.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { ChatOllama } from '@langchain/ollama';
import { tool as lcTool } from '@langchain/core/tools';
import { HumanMessage, ToolMessage } from '@langchain/core/messages';
import { generateText, streamText, tool as aiTool, stepCountIs } from 'ai';
import { createOllama } from 'ollama-ai-provider-v2';
import { z } from 'zod';
import { startSim, startDaemon, daemonConfig, getJson, postJson, sleep, tmpDir, writeTemp } from './lib/harness.mjs';

// One host, three models.  Rates are per simulated second; --speed 10 runs
// the clock ten times faster.  default_predict 24 is every answer's natural
// length (max_tokens is a cap on the agent APIs).
const PROFILE = `host = { name = "agents"; num_parallel = 64; max_queue = 512; default_predict = 24; };
defaults = { keep_alive = "1h"; };
models = (
  { name = "qwen3:4b"; base_gb = 2.5; kv_gb = 0.3; prompt_rate = 4000.0; load_time = 0.0;
    levels = [ 1, 2, 4, 8 ]; rates = [ 40.0, 76.0, 140.0, 250.0 ]; },
  { name = "qwen3:14b"; base_gb = 9.3; kv_gb = 0.8; prompt_rate = 2000.0; load_time = 0.0;
    levels = [ 1, 2, 4 ]; rates = [ 10.0, 19.0, 34.0 ]; },
  { name = "slow:1b"; base_gb = 1.0; kv_gb = 0.1; prompt_rate = 2000.0; load_time = 0.0;
    levels = [ 1 ]; rates = [ 1.0 ]; }
);
`;
const SPEED = 10;

// Named keys: each client runs as its own agent in /stats.
const KEYS = {
  claude: 'sk-it-claude-7Q2mX9',
  codex: 'sk-it-codex-4Lp0Zr',
  langchain: 'sk-it-langchain-Vb81Kd',
  vercel: 'sk-it-vercel-Hh3nT6',
  burst: 'sk-it-burst-0Jw5Ee',
};
const TOTALS = ['requests', 'completed', 'failed', 'rejected', 'cancelled', 'prompt_tokens', 'eval_tokens'];

let sim, twin, hd;
before(async () => {
  const profile = writeTemp('agents.conf', PROFILE);
  sim = await startSim({ profile, speed: SPEED });
  twin = await startSim({ profile, speed: SPEED });   // the same answers, for direct comparison
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'keys'), Object.entries(KEYS).map(([name, key]) => `${name}  ${key}\n`).join(''));
  hd = await startDaemon(daemonConfig({
    hosts: [{ name: 'a', url: sim.url }],
    models: [
      { name: 'executive', ollama: 'qwen3:4b', tier: 'executive', keep_alive: -1, placements: [{ host: 'a', parallel: 4 }] },
      { name: 'coder', ollama: 'qwen3:14b', tier: 'specialists', keep_alive: -1, placements: [{ host: 'a', parallel: 2 }] },
      { name: 'slowpoke', ollama: 'slow:1b', tier: 'specialists', keep_alive: -1, placements: [{ host: 'a', parallel: 1 }] },
    ],
    extra: `api_keys_file = "${dir}/keys";\nqueue_timeout = 120.0;`,
  }));
  // harmonicd preloads its models at start (the sim counts a load as served):
  // wait until all three are resident, then start the backend's counters at 0.
  for (let i = 0; i < 400; i++) {
    const s = await getJson(`${sim.url}/_sim/stats`);
    if (['qwen3:4b', 'qwen3:14b', 'slow:1b'].every((m) => s.models[m]?.loaded) && s.totals.in_flight === 0) break;
    await sleep(25);
  }
  assert.equal((await fetch(`${sim.url}/_sim/stats/reset`, { method: 'POST' })).status, 200);
  const s = await getJson(hd.url + '/stats');
  assert.equal(s.totals.requests, 0, 'no request reached harmonicd before the tests');
});
after(async () => {
  if (hd) assert.equal(await hd.stop(), 0);
  if (sim) assert.equal(await sim.stop(), 0);
  if (twin) assert.equal(await twin.stop(), 0);
});

const simStats = (url = sim.url) => getJson(`${url}/_sim/stats`);
const hdStats = () => getJson(hd.url + '/stats');
const placement = (s, model) => s.models.find((m) => m.name === model).placements[0];

/** Both sides' counters now. */
async function snap() {
  const [h, b] = await Promise.all([hdStats(), simStats()]);
  return { hd: h, sim: b };
}

/** Wait until nothing is in flight at harmonicd and at the backend. */
async function settle() {
  for (let i = 0; i < 1000; i++) {
    const { hd: h, sim: b } = await snap();
    if (h.in_flight === 0 && h.queued === 0 && b.totals.in_flight === 0 && b.totals.queued === 0) return;
    await sleep(10);
  }
  assert.fail('requests still in flight after 10 s');
}

/**
 * The backend's ground truth against harmonicd's totals between two
 * snapshots: answers served = completed, tokens emitted = eval tokens,
 * disconnects = cancelled, failures = failed.
 */
function sameCounts(a, b, where) {
  const hd = (f) => b.hd.totals[f] - a.hd.totals[f];
  const sm = (f) => b.sim.totals[f] - a.sim.totals[f];
  assert.equal(hd('completed'), sm('served'), `${where}: harmonicd completed vs sim served`);
  if (sm('disconnects') === 0) assert.equal(hd('eval_tokens'), sm('tokens'), `${where}: harmonicd eval_tokens vs sim tokens`);
  assert.equal(hd('cancelled'), sm('disconnects'), `${where}: harmonicd cancelled vs sim disconnects`);
  assert.equal(hd('failed'), sm('failed'), `${where}: harmonicd failed vs sim failed`);
  return { completed: hd('completed'), eval: hd('eval_tokens'), prompt: hd('prompt_tokens'), requests: hd('requests'), cancelled: hd('cancelled'),
    simTokens: sm('tokens') };
}

const WEATHER = { name: 'get_weather', description: 'Current weather in a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
const FN_WEATHER = { type: 'function', name: WEATHER.name, description: WEATHER.description, parameters: WEATHER.input_schema };

test('@anthropic-ai/sdk: streamed text and usage equal the sim\'s; create, beta path, tool round trip; totals equal the backend\'s', async () => {
  const a = await snap();
  const client = new Anthropic({ baseURL: hd.url, apiKey: KEYS.claude, maxRetries: 0 });      // sends x-api-key
  const direct = new Anthropic({ baseURL: twin.url, apiKey: 'unused', maxRetries: 0 });
  let prompt = 0, output = 0;
  const count = (m) => { prompt += m.usage.input_tokens; output += m.usage.output_tokens; return m; };

  // messages.stream: the text events and the final message, through harmonicd and straight from the sim.
  const body = { max_tokens: 12, system: 'You are terse.', messages: [{ role: 'user', content: 'Explain quantum computing briefly' }] };
  const viaHd = client.messages.stream({ model: 'executive', ...body });
  const texts = [];
  viaHd.on('text', (t) => texts.push(t));
  const got = count(await viaHd.finalMessage());
  const viaSim = direct.messages.stream({ model: 'qwen3:4b', ...body });
  const simTexts = [];
  viaSim.on('text', (t) => simTexts.push(t));
  const want = await viaSim.finalMessage();
  assert.deepEqual(texts, simTexts, 'the same text deltas, one per token');
  assert.equal(texts.length, 12);
  assert.deepEqual(got.content, want.content);
  assert.deepEqual(got.usage, want.usage);
  assert.equal(got.usage.output_tokens, 12);
  assert.equal(got.stop_reason, 'max_tokens');
  assert.equal(got.model, 'executive', 'the model is echoed as the client sent it');
  assert.equal(got.content[0].text, texts.join(''));

  // messages.create, non-stream: the same body as the sim's.
  const made = count(await client.messages.create({ model: 'executive', ...body }));
  const made0 = await direct.messages.create({ model: 'qwen3:4b', ...body });
  assert.deepEqual({ ...made, id: 0, model: 0 }, { ...made0, id: 0, model: 0 });

  // An auth token (Authorization: Bearer), as Claude Code sends with ANTHROPIC_AUTH_TOKEN, on the
  // beta path Claude Code calls (/v1/messages?beta=true), with a system message appended inside
  // messages as Claude Code does; max_tokens past default_predict ends the turn.
  const cc = new Anthropic({ baseURL: hd.url, authToken: KEYS.claude, apiKey: null, maxRetries: 0 });
  const beta = count(await cc.beta.messages.create({ model: 'executive', max_tokens: 8192,
    messages: [{ role: 'user', content: 'hello' }, { role: 'system', content: 'Be brief.' }] }));
  assert.equal(beta.stop_reason, 'end_turn');
  assert.equal(beta.usage.output_tokens, 24);

  // A tool round trip: the streamed tool_use, then the tool_result, then text.
  const messages = [{ role: 'user', content: 'Call get_weather for `Oslo`' }];
  const one = count(await client.messages.stream({ model: 'executive', max_tokens: 4096, tools: [WEATHER], messages }).finalMessage());
  assert.equal(one.stop_reason, 'tool_use');
  const use = one.content.find((c) => c.type === 'tool_use');
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { city: 'Oslo' });
  const two = count(await client.messages.create({ model: 'executive', max_tokens: 4096, tools: [WEATHER], messages: [...messages,
    { role: 'assistant', content: one.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'cold, 2 C' }] }] }));
  assert.equal(two.stop_reason, 'end_turn');
  assert.equal(two.content[0].type, 'text');
  assert.ok(two.usage.input_tokens > one.usage.input_tokens);

  await settle();
  const d = sameCounts(a, await snap(), 'anthropic');
  assert.deepEqual([d.requests, d.completed, d.cancelled], [5, 5, 0]);
  assert.equal(d.eval, output, 'eval tokens = the output_tokens the client saw');
  assert.equal(d.prompt, prompt, 'prompt tokens = the input_tokens the client saw');
});

test('a wrong x-api-key gets 401 in Anthropic\'s error shape, the right one works; the Ollama and OpenAI routes say 401 in theirs', async () => {
  const a = await snap();
  const wrong = new Anthropic({ baseURL: hd.url, apiKey: 'sk-it-wrong', maxRetries: 0 });
  const req = { model: 'executive', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] };
  for (const call of [() => wrong.messages.create(req), () => wrong.messages.stream(req).finalMessage(), () => wrong.beta.messages.create(req)]) {
    await assert.rejects(call(), (e) => {
      assert.ok(e instanceof Anthropic.AuthenticationError, `${e}`);
      assert.equal(e.status, 401);
      assert.equal(e.error.type, 'error');
      assert.equal(e.error.error.type, 'authentication_error');
      assert.equal(typeof e.error.error.message, 'string');
      return true;
    });
  }
  // The raw answer: Anthropic's shape, JSON.
  const raw = await postJson(hd.url + '/v1/messages', req, { 'x-api-key': 'sk-it-wrong', 'anthropic-version': '2023-06-01' });
  assert.equal(raw.status, 401);
  assert.match(raw.headers.get('content-type'), /^application\/json/);
  const body = await raw.json();
  assert.deepEqual(Object.keys(body), ['type', 'error']);
  assert.deepEqual(Object.keys(body.error), ['type', 'message']);
  const none = await postJson(hd.url + '/v1/messages', req, { 'anthropic-version': '2023-06-01' });
  assert.equal(none.status, 401);
  assert.equal((await none.json()).error.type, 'authentication_error');
  // A key is a whole value: a prefix or an extension of a right one is wrong.
  for (const k of [KEYS.claude.slice(0, -1), `${KEYS.claude}x`]) {
    const r = await postJson(hd.url + '/v1/messages', req, { 'x-api-key': k });
    assert.equal(r.status, 401);
    await r.arrayBuffer();
  }

  const right = await new Anthropic({ baseURL: hd.url, apiKey: KEYS.claude, maxRetries: 0 }).messages.create(req);
  assert.equal(right.usage.output_tokens, 4);

  const oa = new OpenAI({ baseURL: `${hd.url}/v1`, apiKey: 'sk-it-wrong', maxRetries: 0 });
  await assert.rejects(oa.responses.create({ model: 'executive', input: 'hi' }), (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError, `${e}`);
    assert.equal(e.status, 401);
    assert.equal(typeof e.error.message, 'string');
    return true;
  });
  const lc = new ChatOllama({ baseUrl: hd.url, model: 'executive', headers: { authorization: 'Bearer sk-it-wrong' } });
  await assert.rejects(lc.invoke('hi'), (e) => e.status_code === 401 && e.error === 'missing or wrong API key');

  // 401s reach nothing: only the right request counted, at harmonicd and at the backend.
  await settle();
  const d = sameCounts(a, await snap(), 'auth');
  assert.deepEqual([d.requests, d.completed, d.eval], [1, 1, 4]);
});

test('openai: responses.create, responses.stream (equal to the sim\'s), a function_call round trip; totals equal the backend\'s', async () => {
  const a = await snap();
  const client = new OpenAI({ baseURL: `${hd.url}/v1`, apiKey: KEYS.codex, maxRetries: 0 });
  const direct = new OpenAI({ baseURL: `${twin.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  let prompt = 0, output = 0;
  const count = (r) => { prompt += r.usage.input_tokens; output += r.usage.output_tokens; return r; };

  const body = { instructions: 'Be brief.', input: 'Explain quantum computing briefly', max_output_tokens: 9 };
  const r = count(await client.responses.create({ model: 'executive', ...body }));
  const r0 = await direct.responses.create({ model: 'qwen3:4b', ...body });
  assert.equal(r.status, 'completed');
  assert.equal(r.model, 'executive');
  assert.equal(r.output_text, r0.output_text);
  assert.deepEqual(r.usage, r0.usage);
  assert.equal(r.usage.output_tokens, 9);

  const stream = client.responses.stream({ model: 'executive', ...body });
  const deltas = [];
  const seq = [];
  for await (const ev of stream) {
    seq.push(ev.sequence_number);
    if (ev.type === 'response.output_text.delta') deltas.push(ev.delta);
  }
  const final = count(await stream.finalResponse());
  assert.equal(final.status, 'completed');
  assert.equal(deltas.length, 9);
  assert.equal(deltas.join(''), r0.output_text);
  assert.deepEqual(seq, seq.map((_, i) => i), 'sequence numbers relayed unchanged');
  assert.deepEqual(final.usage, r0.usage);

  // Tool round trip: function_call, then function_call_output, then a message.
  const input = [{ role: 'user', content: 'get_weather in `Rome`' }];
  const one = count(await client.responses.stream({ model: 'executive', tools: [FN_WEATHER], input }).finalResponse());
  const fc = one.output[0];
  assert.equal(fc.type, 'function_call');
  assert.equal(fc.name, 'get_weather');
  assert.deepEqual(JSON.parse(fc.arguments), { city: 'Rome' });
  const two = count(await client.responses.create({ model: 'executive', tools: [FN_WEATHER],
    input: [...input, fc, { type: 'function_call_output', call_id: fc.call_id, output: 'warm, 24 C' }] }));
  assert.equal(two.output[0].type, 'message');
  assert.ok(two.output_text.length > 0);

  await assert.rejects(client.responses.create({ model: 'nope', input: 'x' }), (e) => e.status === 404);

  await settle();
  const d = sameCounts(a, await snap(), 'responses');
  assert.deepEqual([d.requests, d.completed], [5, 4], 'the unknown model is counted as a rejection and never reaches the backend');
  assert.equal(d.eval, output);
  assert.equal(d.prompt, prompt);
});

test('@langchain/ollama ChatOllama: invoke, stream, a tool round trip on /api/chat; totals equal the backend\'s', async () => {
  const a = await snap();
  const headers = { authorization: `Bearer ${KEYS.langchain}` };
  const llm = new ChatOllama({ baseUrl: hd.url, model: 'coder', numPredict: 7, headers });
  const direct = new ChatOllama({ baseUrl: twin.url, model: 'qwen3:14b', numPredict: 7 });
  let prompt = 0, output = 0;
  const count = (m) => { prompt += m.usage_metadata.input_tokens; output += m.usage_metadata.output_tokens; return m; };

  const msg = count(await llm.invoke('Explain quantum computing briefly'));
  const msg0 = await direct.invoke('Explain quantum computing briefly');
  assert.equal(msg.content, msg0.content);
  assert.deepEqual(msg.usage_metadata, msg0.usage_metadata);
  assert.equal(msg.usage_metadata.output_tokens, 7);
  assert.equal(msg.response_metadata.done_reason, 'length');

  let text = '', last, chunks = 0;
  for await (const chunk of await llm.stream('Explain quantum computing briefly')) {
    text += chunk.content;
    chunks++;
    last = last ? last.concat(chunk) : chunk;
  }
  assert.equal(text, msg0.content);
  assert.ok(chunks >= 7);
  count(last);
  assert.equal(last.usage_metadata.output_tokens, 7);

  const getWeather = lcTool(async ({ city }) => `cold in ${city}`, {
    name: 'get_weather', description: 'Current weather in a city', schema: z.object({ city: z.string() }),
  });
  const withTools = new ChatOllama({ baseUrl: hd.url, model: 'coder', headers }).bindTools([getWeather]);
  const human = new HumanMessage('Call get_weather for `Lima`');
  const ai = count(await withTools.invoke([human]));
  assert.equal(ai.tool_calls.length, 1);
  assert.equal(ai.tool_calls[0].name, 'get_weather');
  assert.deepEqual(ai.tool_calls[0].args, { city: 'Lima' });
  const result = await getWeather.invoke(ai.tool_calls[0]);
  assert.ok(result instanceof ToolMessage);
  const answer = count(await withTools.invoke([human, ai, result]));
  assert.equal(answer.tool_calls.length, 0);
  assert.ok(answer.content.length > 0);

  await settle();
  const d = sameCounts(a, await snap(), 'langchain');
  assert.deepEqual([d.requests, d.completed], [4, 4]);
  assert.equal(d.eval, output);
  assert.equal(d.prompt, prompt);
});

test('Vercel AI SDK (ai + ollama-ai-provider-v2): generateText, streamText, a tool loop; totals equal the backend\'s', async () => {
  const a = await snap();
  const ollama = createOllama({ baseURL: `${hd.url}/api`, headers: { authorization: `Bearer ${KEYS.vercel}` } });
  const ollama0 = createOllama({ baseURL: `${twin.url}/api` });
  // The provider sends maxOutputTokens as a top-level max_output_tokens, which Ollama's /api/chat
  // ignores; num_predict goes through providerOptions.
  const providerOptions = { ollama: { options: { num_predict: 8 } } };
  let prompt = 0, output = 0;
  const count = (u) => { prompt += u.inputTokens; output += u.outputTokens; return u; };

  const g = await generateText({ model: ollama('executive'), prompt: 'Explain quantum computing briefly', providerOptions });
  const g0 = await generateText({ model: ollama0('qwen3:4b'), prompt: 'Explain quantum computing briefly', providerOptions });
  count(g.usage);
  assert.equal(g.text, g0.text);
  assert.equal(g.usage.outputTokens, 8);
  assert.equal(g.usage.inputTokens, g0.usage.inputTokens);
  assert.equal(g.finishReason, 'length');

  const s = streamText({ model: ollama('executive'), system: 'Be brief.', prompt: 'Explain quantum computing briefly', providerOptions });
  const parts = [];
  for await (const t of s.textStream) parts.push(t);
  const usage = count(await s.usage);
  assert.equal(parts.length, 8);
  assert.equal(usage.outputTokens, 8);
  assert.equal(parts.join(''), await s.text);

  // A tool loop: the model calls get_weather, the SDK runs it and sends the result back.
  const calls = [];
  const loop = await generateText({
    model: ollama('executive'),
    prompt: 'Use get_weather for `Quito`',
    tools: { get_weather: aiTool({ description: 'Current weather in a city', inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => { calls.push(city); return `mild in ${city}`; } }) },
    stopWhen: stepCountIs(3),
  });
  assert.deepEqual(calls, ['Quito']);
  assert.equal(loop.steps.length, 2);
  assert.equal(loop.steps[0].finishReason, 'tool-calls');
  assert.equal(loop.steps[1].finishReason, 'stop');
  assert.ok(loop.text.length > 0);
  count(loop.totalUsage);

  await settle();
  const d = sameCounts(a, await snap(), 'vercel');
  assert.deepEqual([d.requests, d.completed], [4, 4]);
  assert.equal(d.eval, output);
  assert.equal(d.prompt, prompt);
});

test('10 concurrent /v1/messages streams with parallel = 2: never more than 2 at the backend, all complete, counts exact', async () => {
  const a = await snap();
  assert.equal(placement(a.hd, 'coder').parallel, 2);
  const client = new Anthropic({ baseURL: hd.url, apiKey: KEYS.burst, maxRetries: 0 });
  // Sample both sides while the burst runs.
  let done = false, maxHd = 0, maxSim = 0, queuedSeen = 0, simQueued = 0, samples = 0;
  const sampler = (async () => {
    while (!done) {
      const { hd: h, sim: b } = await snap();
      maxHd = Math.max(maxHd, placement(h, 'coder').in_flight);
      maxSim = Math.max(maxSim, b.models['qwen3:14b'].in_flight);
      queuedSeen = Math.max(queuedSeen, h.models.find((m) => m.name === 'coder').queued);
      simQueued = Math.max(simQueued, b.models['qwen3:14b'].queued);
      samples++;
      await sleep(5);
    }
  })();
  const results = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
    const st = client.messages.stream({ model: 'coder', max_tokens: 16, messages: [{ role: 'user', content: `stream ${i}` }] });
    let n = 0;
    st.on('text', () => { n++; });
    const m = await st.finalMessage();
    return { m, n };
  }));
  done = true;
  await sampler;
  for (const { m, n } of results) {
    assert.equal(m.stop_reason, 'max_tokens');
    assert.equal(m.usage.output_tokens, 16);
    assert.equal(n, 16);
  }
  await settle();
  const b = await snap();
  assert.ok(samples > 0);
  assert.ok(maxHd <= 2 && maxSim <= 2, `in flight: harmonicd ${maxHd}, backend ${maxSim}`);
  assert.equal(b.sim.models['qwen3:14b'].max_in_flight, 2, 'the backend\'s own maximum: the two slots, used');
  assert.equal(placement(b.hd, 'coder').max_in_flight, 2);
  assert.ok(queuedSeen > 0, 'the other streams waited in harmonicd\'s queue');
  assert.equal(simQueued, 0, 'nothing waited at the backend');
  const d = sameCounts(a, b, 'burst');
  assert.deepEqual([d.requests, d.completed, d.eval], [10, 10, 160]);
  assert.equal(d.prompt, results.reduce((x, { m }) => x + m.usage.input_tokens, 0));
});

test('slots hold on a mixed burst: Responses, Messages, ChatOllama and streamText on one 2-slot model', async () => {
  const a = await snap();
  const oa = new OpenAI({ baseURL: `${hd.url}/v1`, apiKey: KEYS.burst, maxRetries: 0 });
  const an = new Anthropic({ baseURL: hd.url, apiKey: KEYS.burst, maxRetries: 0 });
  const lc = new ChatOllama({ baseUrl: hd.url, model: 'coder', numPredict: 6, headers: { authorization: `Bearer ${KEYS.burst}` } });
  const vc = createOllama({ baseURL: `${hd.url}/api`, headers: { authorization: `Bearer ${KEYS.burst}` } });
  const jobs = [];
  for (let i = 0; i < 3; i++) {
    jobs.push((async () => (await oa.responses.stream({ model: 'coder', input: `r${i}`, max_output_tokens: 6 }).finalResponse()).usage.output_tokens)());
    jobs.push((async () => (await an.messages.stream({ model: 'coder', max_tokens: 6, messages: [{ role: 'user', content: `m${i}` }] }).finalMessage()).usage.output_tokens)());
  }
  for (let i = 0; i < 2; i++) {
    jobs.push((async () => { let last; for await (const c of await lc.stream(`l${i}`)) last = last ? last.concat(c) : c; return last.usage_metadata.output_tokens; })());
    jobs.push((async () => { const s = streamText({ model: vc('coder'), prompt: `v${i}`, providerOptions: { ollama: { options: { num_predict: 6 } } } }); for await (const _ of s.textStream) { /* drain */ } return (await s.usage).outputTokens; })());
  }
  const tokens = await Promise.all(jobs);
  assert.deepEqual(tokens, Array(10).fill(6));
  await settle();
  const b = await snap();
  assert.equal(b.sim.models['qwen3:14b'].max_in_flight, 2);
  const d = sameCounts(a, b, 'mixed burst');
  assert.deepEqual([d.requests, d.completed, d.eval], [10, 10, 60]);
});

let abortedTokens = 0;
test('a client that aborts mid-stream frees its slot: the backend request ends, the next one runs, counted as cancelled', async () => {
  const a = await snap();
  assert.equal(placement(a.hd, 'slowpoke').parallel, 1);
  const an = new Anthropic({ baseURL: hd.url, apiKey: KEYS.claude, maxRetries: 0 });
  const oa = new OpenAI({ baseURL: `${hd.url}/v1`, apiKey: KEYS.codex, maxRetries: 0 });

  // slow:1b makes a token per simulated second: 24 tokens take 2.4 s here.
  // Each aborted stream holds the one slot; a request queued behind it gets
  // the slot once the stream is aborted.
  const runs = [
    ['anthropic', async (onFirst) => {
      const st = an.messages.stream({ model: 'slowpoke', max_tokens: 1000, messages: [{ role: 'user', content: 'long' }] });
      st.once('text', () => onFirst(() => st.abort()));
      await assert.rejects(st.finalMessage(), (e) => e instanceof Anthropic.APIUserAbortError);
    }, () => an.messages.create({ model: 'slowpoke', max_tokens: 2, messages: [{ role: 'user', content: 'next' }] }).then((m) => m.usage.output_tokens)],
    ['responses', async (onFirst) => {
      const st = oa.responses.stream({ model: 'slowpoke', input: 'long' });
      await assert.rejects((async () => {
        for await (const ev of st) if (ev.type === 'response.output_text.delta') onFirst(() => st.abort());
      })(), (e) => e instanceof OpenAI.APIUserAbortError);
    }, () => oa.responses.create({ model: 'slowpoke', input: 'next', max_output_tokens: 2 }).then((r) => r.usage.output_tokens)],
  ];
  const queuedFor = async (model) => (await hdStats()).models.find((x) => x.name === model).queued;
  for (const [name, longRun, next] of runs) {
    let follower, aborted;
    await longRun((abort) => {
      if (follower) return;
      follower = next();
      // Abort once the follower waits in harmonicd's queue for the one slot.
      aborted = (async () => {
        for (let i = 0; i < 1000 && await queuedFor('slowpoke') === 0; i++) await sleep(2);
        abort();
      })();
    });
    await aborted;
    // The follower waited behind the long stream (one slot) and now completes.
    assert.equal(await follower, 2, name);
    await settle();
  }
  const b = await snap();
  const m = b.sim.models['slow:1b'], m0 = a.sim.models['slow:1b'];
  assert.equal(m.max_in_flight, 1, 'never more than the one slot at the backend');
  assert.equal(m.disconnects - m0.disconnects, 2, 'both long streams were aborted at the backend, not run to the end');
  assert.equal(m.served - m0.served, 2);
  assert.equal(placement(b.hd, 'slowpoke').in_flight, 0);
  const d = sameCounts(a, b, 'abort');
  assert.deepEqual([d.requests, d.completed, d.cancelled, d.eval], [4, 2, 2, 4]);
  // The backend also counts the tokens it emitted to the two aborted streams
  // (at least the one each client read, far fewer than their 24);
  // harmonicd's eval_tokens count completed answers only.
  abortedTokens = m.tokens - m0.tokens - 4;
  assert.ok(abortedTokens >= 2 && abortedTokens < 24, `tokens emitted to the aborted streams: ${abortedTokens}`);
});

test('/stats: totals equal the backend\'s since the start, and each client is its own agent', async () => {
  await settle();
  const { hd: s, sim: b } = await snap();
  // The backend's counters started at 0 with harmonicd's, before the first test.
  assert.equal(s.totals.completed, b.totals.served, 'completed = served');
  assert.equal(s.totals.eval_tokens + abortedTokens, b.totals.tokens, 'eval tokens = tokens emitted, but for those of aborted streams');
  assert.equal(s.totals.cancelled, b.totals.disconnects, 'cancelled = disconnects');
  assert.equal(s.totals.failed, b.totals.failed);
  assert.equal(b.totals.rejected, 0);
  for (const f of TOTALS) {
    assert.equal(s.agents.reduce((x, ag) => x + ag[f], 0), s.totals[f], `sum of agents' ${f}`);
  }
  const names = s.agents.map((ag) => ag.name);
  for (const n of ['claude', 'codex', 'langchain', 'vercel', 'burst']) assert.ok(names.includes(n), `agent ${n} in ${names}`);
  assert.ok(!names.includes('anonymous'), 'every request came with a named key');
  const byName = Object.fromEntries(s.agents.map((ag) => [ag.name, ag]));
  assert.equal(byName.burst.requests, 20);
  assert.equal(byName.burst.completed, 20);
  assert.equal(byName.langchain.completed, 4);
  assert.equal(byName.vercel.completed, 4);
  assert.equal(s.totals.completed + s.totals.failed + s.totals.rejected + s.totals.cancelled, s.totals.requests);
  assert.equal(s.totals.failed, 0);
  assert.equal(s.totals.rejected, 1);
  assert.equal(s.live_requests, 0);
  assert.equal(s.backend_transfers, 0);
});
