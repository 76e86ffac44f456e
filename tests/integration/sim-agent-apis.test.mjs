// harmonic-sim's agent APIs, POST /v1/messages (Anthropic) and POST
// /v1/responses (OpenAI Responses), against reference/agent-apis.md: bodies,
// SSE event order, usage equal to /api/chat's counting, ids, error shapes,
// mid-stream failures, the tool rule's round trip, slots and /_sim/stats;
// then the official @anthropic-ai/sdk and openai clients.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { startSim, postJson, writeTemp, sleep } from './lib/harness.mjs';

let sim;
before(async () => { sim = await startSim({ speed: 50 }); });
after(async () => { assert.equal(await sim.stop(), 0); });

const MODEL = 'qwen3:4b';
const WEATHER = { name: 'get_weather', description: 'Current weather', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
const FN_WEATHER = { type: 'function', name: WEATHER.name, description: WEATHER.description, parameters: WEATHER.input_schema };
const CHAT_WEATHER = { type: 'function', function: { name: WEATHER.name, description: WEATHER.description, parameters: WEATHER.input_schema } };

/** Split an SSE body into {event, data}; every event must be exactly "event: N\ndata: J\n\n". */
function parseSse(raw) {
  const events = [];
  for (const block of raw.split('\n\n').slice(0, -1)) {
    const m = /^event: ([^\n]+)\ndata: ([^\n]+)$/.exec(block);
    assert.ok(m, `malformed SSE block: ${JSON.stringify(block)}`);
    const data = JSON.parse(m[2]);
    events.push({ event: m[1], data, json: m[2] });
  }
  return events;
}

/** POST and read the whole answer: {status, headers, text, json | events}. */
async function call(path, body, url = sim.url) {
  const res = await postJson(url + path, body);
  const text = await res.text();
  const out = { status: res.status, headers: res.headers, text };
  if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) out.events = parseSse(text);
  else out.json = JSON.parse(text);
  return out;
}

/** The same conversation through /api/chat (non-stream): the sim's ground truth. */
async function chat(messages, numPredict, extra = {}) {
  const r = await call('/api/chat', { model: MODEL, messages, stream: false, options: numPredict === undefined ? {} : { num_predict: numPredict }, ...extra });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

const stats = async (url = sim.url) => (await fetch(`${url}/_sim/stats`)).json();
const fault = async (spec, url = sim.url) => assert.equal((await postJson(`${url}/_sim/fault`, spec)).status, 200);

/** Keys of every object (recursively) in sorted order, as Go writes maps. */
function assertSortedKeys(v, where = '$') {
  if (Array.isArray(v)) return v.forEach((x, i) => assertSortedKeys(x, `${where}[${i}]`));
  if (v === null || typeof v !== 'object') return;
  const keys = Object.keys(v);
  assert.deepEqual(keys, [...keys].sort(), `keys of ${where} not sorted`);
  for (const k of keys) assertSortedKeys(v[k], `${where}.${k}`);
}

test('/v1/messages non-stream: Anthropic body, ids, usage equal to /api/chat, model echoed', async () => {
  const body = { model: 'Qwen3:4B', max_tokens: 5, system: 'You are terse.', messages: [{ role: 'user', content: 'hello there' }] };
  const r = await call('/v1/messages', body);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.ok(r.text.endsWith('}\n'));
  const m = r.json;
  assert.deepEqual(Object.keys(m), ['id', 'type', 'role', 'model', 'content', 'stop_reason', 'usage']);
  assert.match(m.id, /^msg_[0-9a-f]{24}$/);
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.equal(m.model, 'Qwen3:4B');
  assert.equal(m.stop_reason, 'max_tokens');
  assert.equal(m.content.length, 1);
  assert.deepEqual(Object.keys(m.content[0]), ['type', 'text']);
  assert.deepEqual(Object.keys(m.usage), ['input_tokens', 'output_tokens']);

  const truth = await chat([{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'hello there' }], 5);
  assert.equal(m.usage.input_tokens, truth.prompt_eval_count);
  assert.equal(m.usage.output_tokens, truth.eval_count);
  assert.equal(m.content[0].text, truth.message.content);

  // System as text blocks, content as blocks: the same chat inside.
  const blocks = await call('/v1/messages', { ...body, system: [{ type: 'text', text: 'You are terse.', cache_control: { type: 'ephemeral' } }], messages: [{ role: 'user', content: [{ type: 'text', text: 'hello there' }] }] });
  assert.deepEqual(blocks.json.usage, m.usage);
  assert.equal(blocks.json.content[0].text, m.content[0].text);
  assert.notEqual(blocks.json.id, m.id);

  // max_tokens is a cap: past default_predict the answer ends on its own.
  const long = await call('/v1/messages', { ...body, max_tokens: 32000 });
  assert.equal(long.json.stop_reason, 'end_turn');
  assert.equal(long.json.usage.output_tokens, 128);
  assert.equal(long.json.usage.output_tokens, (await chat([{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'hello there' }])).eval_count);
});

test('/v1/messages stream: event order, estimate in message_start, real counts in message_delta', async () => {
  const messages = [{ role: 'user', content: 'Explain quantum computing briefly' }];
  const r = await call('/v1/messages', { model: MODEL, max_tokens: 6, stream: true, system: 'Be brief.', messages });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/event-stream');
  assert.equal(r.headers.get('cache-control'), 'no-cache');
  const names = r.events.map((e) => e.event);
  assert.deepEqual(names, ['message_start', 'content_block_start', ...Array(6).fill('content_block_delta'), 'content_block_stop', 'message_delta', 'message_stop']);
  for (const e of r.events) assert.equal(e.data.type, e.event);

  const start = r.events[0].data.message;
  assert.deepEqual(Object.keys(start), ['id', 'type', 'role', 'model', 'content', 'usage']);
  assert.match(start.id, /^msg_[0-9a-f]{24}$/);
  assert.deepEqual(start.content, []);
  // Ollama's estimate: bytes of system, roles and texts over 4.
  const bytes = 'Be brief.'.length + 'user'.length + messages[0].content.length;
  assert.deepEqual(start.usage, { input_tokens: Math.floor(bytes / 4), output_tokens: 0 });

  assert.deepEqual(r.events[1].data, { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  const deltas = r.events.filter((e) => e.event === 'content_block_delta');
  for (const d of deltas) {
    assert.equal(d.data.index, 0);
    assert.deepEqual(Object.keys(d.data.delta), ['type', 'text']);
    assert.equal(d.data.delta.type, 'text_delta');
  }
  assert.deepEqual(r.events.at(-3).data, { type: 'content_block_stop', index: 0 });
  const delta = r.events.at(-2).data;
  assert.deepEqual(delta.delta, { stop_reason: 'max_tokens' });
  const truth = await chat([{ role: 'system', content: 'Be brief.' }, ...messages], 6);
  assert.deepEqual(delta.usage, { input_tokens: truth.prompt_eval_count, output_tokens: truth.eval_count });
  assert.equal(deltas.map((d) => d.data.delta.text).join(''), truth.message.content);
  assert.ok(r.text.endsWith('event: message_stop\ndata: {"type":"message_stop"}\n\n'));
});

test('/v1/responses non-stream and stream: response object, sequence numbers, usage equal to /api/chat', async () => {
  const body = { model: 'QWEN3:4b', instructions: 'Be brief.', input: 'Explain quantum computing briefly', max_output_tokens: 4, temperature: 0.5 };
  const r = await call('/v1/responses', body);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.ok(r.text.endsWith('}\n'));
  const o = r.json;
  assert.deepEqual(Object.keys(o), ['id', 'object', 'created_at', 'completed_at', 'status', 'incomplete_details', 'model',
    'previous_response_id', 'instructions', 'output', 'error', 'tools', 'tool_choice', 'truncation', 'parallel_tool_calls',
    'text', 'top_p', 'presence_penalty', 'frequency_penalty', 'top_logprobs', 'temperature', 'reasoning', 'usage',
    'max_output_tokens', 'max_tool_calls', 'store', 'background', 'service_tier', 'metadata', 'safety_identifier', 'prompt_cache_key']);
  assert.match(o.id, /^resp_\d+$/);
  assert.equal(o.object, 'response');
  assert.equal(o.status, 'completed');
  assert.equal(o.model, 'QWEN3:4b');
  assert.equal(o.instructions, 'Be brief.');
  assert.equal(o.temperature, 0.5);
  assert.equal(o.top_p, 1);
  assert.equal(o.max_output_tokens, 4);
  assert.deepEqual(o.text, { format: { type: 'text' } });
  assert.ok(o.completed_at >= o.created_at);
  assert.equal(o.output.length, 1);
  const item = o.output[0];
  assert.match(item.id, /^msg_\d+$/);
  assert.deepEqual({ ...item, id: 0, content: 0 }, { id: 0, type: 'message', status: 'completed', role: 'assistant', content: 0 });
  assert.deepEqual(Object.keys(item.content[0]), ['type', 'text', 'annotations', 'logprobs']);

  const truth = await chat([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: body.input }], 4);
  assert.deepEqual(o.usage, { input_tokens: truth.prompt_eval_count, output_tokens: truth.eval_count,
    total_tokens: truth.prompt_eval_count + truth.eval_count, input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 } });
  assert.equal(item.content[0].text, truth.message.content);

  const s = await call('/v1/responses', { ...body, stream: true });
  assert.equal(s.headers.get('content-type'), 'text/event-stream');
  assert.equal(s.headers.get('cache-control'), 'no-cache');
  assert.deepEqual(s.events.map((e) => e.event), ['response.created', 'response.in_progress', 'response.output_item.added',
    'response.content_part.added', ...Array(4).fill('response.output_text.delta'), 'response.output_text.done',
    'response.content_part.done', 'response.output_item.done', 'response.completed']);
  s.events.forEach((e, i) => {
    assert.equal(e.data.type, e.event);
    assert.equal(e.data.sequence_number, i);
    assertSortedKeys(e.data);
  });
  const [created, progress] = [s.events[0].data.response, s.events[1].data.response];
  for (const x of [created, progress]) {
    assert.equal(x.status, 'in_progress');
    assert.equal(x.usage, null);
    assert.equal(x.completed_at, null);
    assert.deepEqual(x.output, []);
  }
  const itemId = s.events[2].data.item.id;
  assert.deepEqual(s.events[2].data.item, { content: [], id: itemId, role: 'assistant', status: 'in_progress', type: 'message' });
  const text = s.events.filter((e) => e.event === 'response.output_text.delta').map((e) => e.data.delta).join('');
  assert.equal(text, truth.message.content);
  assert.equal(s.events.at(-4).data.text, text);
  const done = s.events.at(-1).data.response;
  assert.equal(done.status, 'completed');
  assert.equal(done.id, created.id);
  assert.deepEqual(done.usage, o.usage);
  assert.deepEqual(done.output, [{ content: [{ annotations: [], logprobs: [], text, type: 'output_text' }], id: itemId, role: 'assistant', status: 'completed', type: 'message' }]);

  // Input items instead of a string: the same chat inside.
  const items = await call('/v1/responses', { ...body, input: [{ role: 'user', content: [{ type: 'input_text', text: body.input }] }] });
  assert.deepEqual(items.json.usage, o.usage);
});

test('errors before the first byte, in each API\'s shape', async () => {
  const anth = async (body, status, type, message) => {
    const r = await call('/v1/messages', body);
    assert.equal(r.status, status, r.text);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.deepEqual(Object.keys(r.json), ['type', 'error', 'request_id']);
    assert.equal(r.json.type, 'error');
    assert.deepEqual(r.json.error, { type, message });
    assert.match(r.json.request_id, /^req_[0-9a-f]{24}$/);
    return r;
  };
  const resp = async (body, status, type, message) => {
    const r = await call('/v1/responses', body);
    assert.equal(r.status, status, r.text);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.deepEqual(r.json, { error: { message, type, param: null, code: null } });
    return r;
  };
  const msgs = [{ role: 'user', content: 'hi' }];
  await anth('', 400, 'invalid_request_error', 'EOF');
  await anth('{"model":', 400, 'invalid_request_error', 'unexpected EOF');
  assert.match((await call('/v1/messages', '{oops')).json.error.message, /^invalid character/);
  await anth({ max_tokens: 5, messages: msgs }, 400, 'invalid_request_error', 'model is required');
  await anth({ model: MODEL, messages: msgs }, 400, 'invalid_request_error', 'max_tokens is required and must be positive');
  await anth({ model: MODEL, max_tokens: 0, messages: msgs }, 400, 'invalid_request_error', 'max_tokens is required and must be positive');
  await anth({ model: MODEL, max_tokens: 5 }, 400, 'invalid_request_error', 'messages is required');
  await anth({ model: MODEL, max_tokens: 5, messages: [] }, 400, 'invalid_request_error', 'messages is required');
  await anth({ model: MODEL, max_tokens: '5', messages: msgs }, 400, 'invalid_request_error', 'json: cannot unmarshal string into Go struct field MessagesRequest.max_tokens of type int');
  await anth({ model: 'nope', max_tokens: 5, messages: msgs }, 404, 'not_found_error', "model 'nope' not found");
  await anth({ model: MODEL, max_tokens: 5, messages: [{ role: 'assistant', content: [{ type: 'tool_use', name: 'x' }] }] }, 400, 'invalid_request_error', "tool_use block missing required 'id' field");
  await anth({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'http://x' } }] }] }, 400, 'invalid_request_error', 'invalid image source type: url. Only base64 images are supported.');

  await resp('', 400, 'invalid_request_error', 'EOF');
  await resp({ input: 'hi' }, 400, 'invalid_request_error', 'model is required');
  await resp({ model: 'nope', input: 'hi' }, 404, 'not_found_error', "model 'nope' not found");
  await resp({ model: MODEL, input: 5 }, 400, 'invalid_request_error', 'input must be a string or array: json: cannot unmarshal number into Go value of type []json.RawMessage');
  await resp({ model: MODEL, input: [{ type: 'mystery' }] }, 400, 'invalid_request_error', 'input[0]: unknown input item type: "mystery"');
  await resp({ model: MODEL, input: [{ content: 'x' }] }, 400, 'invalid_request_error', "input[0]: input item missing required 'type' field");
  await resp({ model: MODEL, input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'f' }] }] }, 400, 'invalid_request_error', 'file inputs are not currently supported');
  await resp({ model: MODEL, input: 'x', reasoning: { effort: 'huge' } }, 400, 'invalid_request_error', 'invalid reasoning value: "huge" (must be "minimal", "low", "medium", "high", "xhigh", "ultra", "max", or "none")');

  // Busy (an armed fault, as Ollama's full queue) and a runner failure, stream requests keep no-cache.
  await fault({ mode: 'busy', count: 2 });
  const busy = await anth({ model: MODEL, max_tokens: 5, stream: true, messages: msgs }, 503, 'overloaded_error', 'server busy, please try again.  maximum pending requests exceeded');
  assert.equal(busy.headers.get('cache-control'), 'no-cache');
  await resp({ model: MODEL, input: 'hi' }, 503, 'api_error', 'server busy, please try again.  maximum pending requests exceeded');
  await fault({ mode: 'fail', count: 2, message: 'llama runner process has terminated: exit status 2' });
  await anth({ model: MODEL, max_tokens: 5, messages: msgs }, 500, 'api_error', 'llama runner process has terminated: exit status 2');
  await resp({ model: MODEL, input: 'hi', stream: true }, 500, 'api_error', 'llama runner process has terminated: exit status 2');

  for (const path of ['/v1/messages', '/v1/responses']) {
    const g = await fetch(sim.url + path);
    assert.equal(g.status, 405);
    assert.equal(await g.text(), '405 method not allowed');
  }
  const ct = await postJson(`${sim.url}/v1/messages/count_tokens`, { model: MODEL, messages: msgs });
  assert.equal(ct.status, 404);
  assert.equal(await ct.text(), '404 page not found');
});

test('a failure mid-stream: "error" ends the stream without terminal events, "close" cuts it', async () => {
  const before = (await stats()).totals.failed;
  await fault({ mode: 'error', after_tokens: 2, count: 2 });
  const m = await call('/v1/messages', { model: MODEL, max_tokens: 6, stream: true, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(m.status, 200);
  assert.deepEqual(m.events.map((e) => e.event), ['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta']);
  const r = await call('/v1/responses', { model: MODEL, max_output_tokens: 6, stream: true, input: 'hi' });
  assert.deepEqual(r.events.map((e) => e.event), ['response.created', 'response.in_progress', 'response.output_item.added',
    'response.content_part.added', 'response.output_text.delta', 'response.output_text.delta']);

  for (const [path, body] of [['/v1/messages', { model: MODEL, max_tokens: 6, stream: true, messages: [{ role: 'user', content: 'hi' }] }],
    ['/v1/responses', { model: MODEL, max_output_tokens: 6, stream: true, input: 'hi' }]]) {
    await fault({ mode: 'close', after_tokens: 2 });
    const res = await postJson(sim.url + path, body);
    assert.equal(res.status, 200);
    await assert.rejects(res.text(), /terminated/);
  }
  assert.equal((await stats()).totals.failed, before + 4);
});

test('tool round trip on /v1/messages: tool_use, then text with end_turn after the tool_result', async () => {
  const user = { role: 'user', content: 'What is the get_weather for `Paris`?' };
  const one = await call('/v1/messages', { model: MODEL, max_tokens: 1024, tools: [WEATHER], messages: [user] });
  assert.equal(one.status, 200, one.text);
  assert.equal(one.json.stop_reason, 'tool_use');
  assert.equal(one.json.content.length, 1);
  const use = one.json.content[0];
  assert.deepEqual(Object.keys(use), ['type', 'id', 'name', 'input']);
  assert.match(use.id, /^call_[a-z0-9]{8}$/);
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { city: 'Paris' });
  // The same conversation on /api/chat calls the same tool with the same counts.
  const truth = await chat([user], 1024, { tools: [CHAT_WEATHER] });
  assert.deepEqual(truth.message.tool_calls.map((c) => c.function), [{ index: 0, name: 'get_weather', arguments: { city: 'Paris' } }]);
  assert.deepEqual(one.json.usage, { input_tokens: truth.prompt_eval_count, output_tokens: truth.eval_count });

  // Streamed: message_start, one tool_use block of three events, message_delta, message_stop.
  const s = await call('/v1/messages', { model: MODEL, max_tokens: 1024, stream: true, tools: [WEATHER], messages: [user] });
  assert.deepEqual(s.events.map((e) => e.event), ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
  const block = s.events[1].data.content_block;
  assert.deepEqual({ ...block, id: 0 }, { type: 'tool_use', id: 0, name: 'get_weather', input: {} });
  assert.deepEqual(s.events[2].data.delta, { type: 'input_json_delta', partial_json: '{"city":"Paris"}' });
  assert.deepEqual(s.events[4].data, { type: 'message_delta', delta: { stop_reason: 'tool_use' }, usage: one.json.usage });

  const two = await call('/v1/messages', { model: MODEL, max_tokens: 1024, tools: [WEATHER], messages: [user,
    { role: 'assistant', content: one.json.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }, { type: 'text', text: 'get_weather said that.' }] }] });
  assert.equal(two.status, 200, two.text);
  assert.equal(two.json.stop_reason, 'end_turn');
  assert.equal(two.json.content[0].type, 'text');
  assert.ok(two.json.usage.input_tokens > one.json.usage.input_tokens);

  // tool_choice: "none" never calls, a named tool is called without being mentioned.
  const none = await call('/v1/messages', { model: MODEL, max_tokens: 8, tools: [WEATHER], tool_choice: { type: 'none' }, messages: [user] });
  assert.equal(none.json.stop_reason, 'max_tokens');
  const forced = await call('/v1/messages', { model: MODEL, max_tokens: 64, tools: [WEATHER], tool_choice: { type: 'tool', name: 'get_weather' }, messages: [{ role: 'user', content: 'hello' }] });
  assert.deepEqual(forced.json.content.map((c) => [c.type, c.name, c.input]), [['tool_use', 'get_weather', { city: '' }]]);
  // Claude Code's <system-reminder> text does not name tools; arguments are Go-escaped JSON.
  const bash = { name: 'Bash', input_schema: { type: 'object', properties: { command: { type: 'string' }, timeout: { type: 'number' } }, required: ['command'] } };
  const cc = await call('/v1/messages', { model: MODEL, max_tokens: 32000, stream: true, tools: [WEATHER, bash], messages: [{ role: 'user', content: [
    { type: 'text', text: '<system-reminder>Remember get_weather exists.</system-reminder>' }, { type: 'text', text: 'Run `echo a && echo b` with Bash' }] }] });
  assert.equal(cc.events[1].data.content_block.name, 'Bash');
  // Go's encoder escapes & inside the arguments JSON, which is then itself a string.
  assert.ok(cc.text.includes('"partial_json":"{\\"command\\":\\"echo a \\\\u0026\\\\u0026 echo b\\"}"'), cc.text);
  assert.deepEqual(JSON.parse(cc.events[2].data.delta.partial_json), { command: 'echo a && echo b' });
});

test('tool round trip on /v1/responses: function_call, then a message after function_call_output', async () => {
  const shell = { type: 'function', name: 'shell', description: 'Run a command', parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } } }, required: ['command'] } };
  const input = [{ role: 'user', content: 'Use the shell to run `echo hi`' }];
  const one = await call('/v1/responses', { model: MODEL, tools: [shell, FN_WEATHER], input });
  assert.equal(one.status, 200, one.text);
  assert.equal(one.json.output.length, 1);
  const fc = one.json.output[0];
  assert.deepEqual(Object.keys(fc), ['id', 'type', 'status', 'call_id', 'name', 'arguments']);
  assert.equal(fc.id, `fc_${one.json.id}_0`);
  assert.match(fc.call_id, /^call_[a-z0-9]{8}$/);
  assert.deepEqual({ type: fc.type, status: fc.status, name: fc.name, args: JSON.parse(fc.arguments) }, { type: 'function_call', status: 'completed', name: 'shell', args: { command: ['echo', 'hi'] } });
  assert.deepEqual(one.json.tools[0], { type: 'function', name: 'shell', description: 'Run a command', strict: null, parameters: shell.parameters });

  const s = await call('/v1/responses', { model: MODEL, tools: [shell, FN_WEATHER], input, stream: true });
  assert.deepEqual(s.events.map((e) => e.event), ['response.created', 'response.in_progress', 'response.output_item.added',
    'response.function_call_arguments.delta', 'response.function_call_arguments.done', 'response.output_item.done', 'response.completed']);
  s.events.forEach((e, i) => assert.equal(e.data.sequence_number, i));
  const added = s.events[2].data.item;
  assert.match(added.id, /^fc_\d+_0$/);
  assert.deepEqual({ ...added, id: 0, call_id: 0 }, { arguments: '', call_id: 0, id: 0, name: 'shell', status: 'in_progress', type: 'function_call' });
  assert.equal(s.events[3].data.delta, '{"command":["echo","hi"]}');
  assert.deepEqual(s.events.at(-1).data.response.output, [{ ...added, status: 'completed', arguments: '{"command":["echo","hi"]}' }]);
  assert.deepEqual(s.events.at(-1).data.response.usage, one.json.usage);

  const two = await call('/v1/responses', { model: MODEL, tools: [shell], input: [...input,
    { type: 'function_call', call_id: fc.call_id, name: fc.name, arguments: fc.arguments },
    { type: 'function_call_output', call_id: fc.call_id, output: 'hi\n' }] });
  assert.equal(two.status, 200, two.text);
  assert.equal(two.json.output[0].type, 'message');
  assert.ok(two.json.output[0].content[0].text.length > 0);
  const truth = await chat([input[0], { role: 'assistant', content: '', tool_calls: [{ id: fc.call_id, function: { index: 0, name: 'shell', arguments: { command: ['echo', 'hi'] } } }] },
    { role: 'tool', content: 'hi\n', tool_call_id: fc.call_id }], undefined, { tools: [{ type: 'function', function: { name: 'shell', description: 'Run a command', parameters: shell.parameters } }] });
  assert.equal(two.json.usage.input_tokens, truth.prompt_eval_count);
  assert.equal(two.json.usage.output_tokens, truth.eval_count);

  const forced = await call('/v1/responses', { model: MODEL, tools: [shell, FN_WEATHER], tool_choice: { type: 'function', name: 'get_weather' }, input: 'hello' });
  assert.equal(forced.json.output[0].name, 'get_weather');
  const required = await call('/v1/responses', { model: MODEL, tools: [shell, FN_WEATHER], tool_choice: 'required', input: 'hello' });
  assert.equal(required.json.output[0].name, 'shell');
});

test('the tool rule on /api/chat and /v1/chat/completions; a Responses request without input', async () => {
  const messages = [{ role: 'user', content: 'get_weather for `Lima`' }];
  const native = await postJson(`${sim.url}/api/chat`, { model: MODEL, tools: [CHAT_WEATHER], messages });
  const lines = (await native.text()).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.equal(lines[0].done, false);
  assert.match(lines[0].message.tool_calls[0].id, /^call_[a-z0-9]{8}$/);
  assert.deepEqual(lines[0].message.tool_calls[0].function, { index: 0, name: 'get_weather', arguments: { city: 'Lima' } });
  assert.equal(lines[1].done_reason, 'stop');

  const v1 = await postJson(`${sim.url}/v1/chat/completions`, { model: MODEL, tools: [CHAT_WEATHER], messages, stream: true });
  const chunks = (await v1.text()).split('\n\n').filter((b) => b.startsWith('data: {')).map((b) => JSON.parse(b.slice(6)));
  const tc = chunks[0].choices[0].delta.tool_calls[0];
  assert.deepEqual({ ...tc, id: 0 }, { id: 0, index: 0, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lima"}' } });
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'tool_calls');
  const full = await call('/v1/chat/completions', { model: MODEL, tools: [CHAT_WEATHER], messages: [...messages,
    { role: 'assistant', content: '', tool_calls: [{ id: tc.id, type: 'function', function: tc.function }] }, { role: 'tool', tool_call_id: tc.id, content: '20C' }] });
  assert.equal(full.json.choices[0].finish_reason, 'stop');
  assert.equal(full.json.choices[0].message.tool_calls, undefined);

  const empty = await call('/v1/responses', { model: MODEL });
  assert.deepEqual(empty.json.usage, { input_tokens: 0, output_tokens: 0, total_tokens: 0, input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 } });
  assert.equal(empty.json.output[0].content[0].text, '');
});

test('slots: agent requests share num_parallel with chat, wait beyond it, and count in /_sim/stats', async () => {
  const profile = writeTemp('two-slots.conf', `host = { name = "two"; num_parallel = 2; max_queue = 8; default_predict = 16; };
defaults = { keep_alive = "5m"; };
models = ( { name = "m"; base_gb = 1.0; kv_gb = 0.1; prompt_rate = 1000.0; load_time = 0.0; levels = [ 1, 2 ]; rates = [ 40.0, 80.0 ]; } );
`);
  const s2 = await startSim({ profile, speed: 4 });
  try {
    const reqs = [
      ['/v1/messages', { model: 'm', max_tokens: 1000, stream: true, messages: [{ role: 'user', content: 'one' }] }],
      ['/v1/responses', { model: 'm', stream: true, input: 'two' }],
      ['/v1/messages', { model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'three' }] }],
      ['/v1/responses', { model: 'm', max_output_tokens: 12, input: 'four' }],
      ['/api/chat', { model: 'm', stream: false, messages: [{ role: 'user', content: 'five' }] }],
    ];
    const t0 = performance.now();
    const out = await Promise.all(reqs.map(async ([path, body]) => {
      const r = await call(path, body, s2.url);
      assert.equal(r.status, 200, r.text);
      return { ms: performance.now() - t0, r };
    }));
    const tokens = out.map(({ r }) => {
      if (r.events) {
        const last = r.events.at(-1).data;
        return last.type === 'message_stop' ? r.events.at(-2).data.usage.output_tokens : last.response.usage.output_tokens;
      }
      return r.json.usage?.output_tokens ?? r.json.eval_count;
    });
    assert.deepEqual(tokens, [16, 16, 10, 12, 16]);
    const st = await stats(s2.url);
    assert.equal(st.models['m:latest'].max_in_flight, 2);
    assert.equal(st.totals.served, 5);
    assert.equal(st.totals.tokens, tokens.reduce((a, b) => a + b, 0));
    assert.equal(st.totals.in_flight, 0);
    // Three waves of two slots: the last answer waited for two others.
    assert.ok(Math.max(...out.map((o) => o.ms)) > 1.5 * Math.min(...out.map((o) => o.ms)));

    // A client that leaves mid-stream frees its slot at once.
    const ctl = new AbortController();
    const res = await postJson(`${s2.url}/v1/messages`, { model: 'm', max_tokens: 1000, stream: true, messages: [{ role: 'user', content: 'x' }] }, {}, ctl.signal);
    const reader = res.body.getReader();
    await reader.read();
    ctl.abort();
    for (let i = 0; i < 200 && (await stats(s2.url)).totals.in_flight !== 0; i++) await sleep(5);
    const after = await stats(s2.url);
    assert.equal(after.totals.in_flight, 0);
    assert.equal(after.totals.disconnects, 1);
  } finally {
    assert.equal(await s2.stop(), 0);
  }
});

test('@anthropic-ai/sdk: messages.create, messages.stream, a tool round trip, a mid-stream failure', async () => {
  const client = new Anthropic({ baseURL: sim.url, apiKey: 'unused', maxRetries: 0 });
  const msg = await client.messages.create({ model: MODEL, max_tokens: 7, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(msg.stop_reason, 'max_tokens');
  assert.equal(msg.usage.output_tokens, 7);

  const stream = client.messages.stream({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
  let text = '';
  stream.on('text', (t) => { text += t; });
  const final = await stream.finalMessage();
  assert.equal(final.content[0].text, text);
  assert.equal(text, msg.content[0].text.split(' ').slice(0, 5).join(' '));
  assert.equal(final.usage.output_tokens, 5);
  assert.equal(final.usage.input_tokens, msg.usage.input_tokens);

  const messages = [{ role: 'user', content: 'Call get_weather for `Oslo`' }];
  const ts = client.messages.stream({ model: MODEL, max_tokens: 4096, tools: [WEATHER], messages });
  const one = await ts.finalMessage();
  assert.equal(one.stop_reason, 'tool_use');
  const use = one.content.find((c) => c.type === 'tool_use');
  assert.deepEqual(use.input, { city: 'Oslo' });
  const two = await client.messages.create({ model: MODEL, max_tokens: 4096, tools: [WEATHER], messages: [...messages,
    { role: 'assistant', content: one.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'cold' }] }] });
  assert.equal(two.stop_reason, 'end_turn');
  assert.equal(two.content[0].type, 'text');

  await fault({ mode: 'busy' });
  await assert.rejects(client.messages.create({ model: MODEL, max_tokens: 5, messages }), (e) => e.status === 503 && e.error?.error?.type === 'overloaded_error');
  await assert.rejects(client.messages.create({ model: 'nope', max_tokens: 5, messages }), (e) => e.status === 404);
  await fault({ mode: 'error', after_tokens: 2 });
  await assert.rejects(client.messages.stream({ model: MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }).finalMessage(),
    /stream ended without producing a Message with role=assistant/);
});

test('openai sdk: responses.create, responses.stream, a tool round trip', async () => {
  const client = new OpenAI({ baseURL: `${sim.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const r = await client.responses.create({ model: MODEL, input: 'hi', max_output_tokens: 6 });
  assert.equal(r.status, 'completed');
  assert.equal(r.usage.output_tokens, 6);
  assert.equal(r.output_text.split(' ').length, 6);

  const stream = client.responses.stream({ model: MODEL, input: 'hi', max_output_tokens: 6 });
  let text = '';
  for await (const ev of stream) if (ev.type === 'response.output_text.delta') text += ev.delta;
  const final = await stream.finalResponse();
  assert.equal(final.status, 'completed');
  assert.equal(final.output[0].content[0].text, text);
  assert.equal(text, r.output_text);
  assert.deepEqual(final.usage, r.usage);

  const tools = [FN_WEATHER];
  const input = [{ role: 'user', content: 'get_weather in `Rome`' }];
  const one = await client.responses.create({ model: MODEL, tools, input });
  const call1 = one.output[0];
  assert.equal(call1.type, 'function_call');
  assert.deepEqual(JSON.parse(call1.arguments), { city: 'Rome' });
  const two = await client.responses.create({ model: MODEL, tools, input: [...input, call1, { type: 'function_call_output', call_id: call1.call_id, output: 'warm' }] });
  assert.equal(two.output[0].type, 'message');
  assert.ok(two.output_text.length > 0);

  await assert.rejects(client.responses.create({ model: 'nope', input: 'x' }), (e) => e.status === 404);
});
