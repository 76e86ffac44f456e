// Real clients against harmonic-sim: the official ollama and openai npm
// packages and curl, plus the wire details clients rely on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { startSim, postJson, lines, run } from './lib/harness.mjs';

let sim;
before(async () => { sim = await startSim({ speed: 50 }); });
after(async () => { assert.equal(await sim.stop(), 0); });

test('ollama npm client: chat streaming, generate, list, show, embed, ps', async () => {
  const ollama = new Ollama({ host: sim.url });
  let text = '', final;
  for await (const part of await ollama.chat({ model: 'executive', messages: [{ role: 'user', content: 'hi' }], stream: true, options: { num_predict: 12 } })) {
    text += part.message.content;
    if (part.done) final = part;
  }
  assert.equal(final.done_reason, 'length');
  assert.equal(final.eval_count, 12);
  assert.equal(final.model, 'executive');
  assert.ok(final.total_duration >= final.eval_duration && final.eval_duration > 0);
  assert.ok(text.split(' ').length >= 10);

  const g = await ollama.generate({ model: 'qwen3:8b', prompt: 'Explain quantum computing briefly' });
  assert.equal(g.done, true);
  assert.equal(g.done_reason, 'stop');
  assert.equal(g.eval_count, 128);          // default when num_predict is absent
  const again = await ollama.generate({ model: 'qwen3:8b', prompt: 'Explain quantum computing briefly' });
  assert.equal(again.response, g.response);  // deterministic

  const list = await ollama.list();
  const names = list.models.map((m) => m.name);
  for (const n of ['qwen3:4b', 'qwen3:8b', 'qwen3:14b', 'executive:latest', 'creative_director:latest']) assert.ok(names.includes(n), n);
  assert.match(list.models[0].digest, /^[0-9a-f]{64}$/);

  const show = await ollama.show({ model: 'qwen3:8b' });
  assert.equal(typeof show.model_info, 'object');
  assert.ok(show.capabilities.includes('completion'));

  const e = await ollama.embed({ model: 'qwen3:4b', input: ['a', 'b'] });
  assert.equal(e.embeddings.length, 2);
  assert.equal(e.embeddings[0].length, 2560);
  const norm = Math.hypot(...e.embeddings[0]);
  assert.ok(Math.abs(norm - 1) < 1e-3);

  const ps = await ollama.ps();
  const exec = ps.models.find((m) => m.name === 'executive:latest');
  assert.ok(exec);
  assert.equal(exec.size, Math.round((2.5 + 64 * 0.3) * 2 ** 30));   // base + num_parallel * kv
  assert.equal(exec.size_vram, exec.size);
});

test('openai npm client: streaming with usage, non-stream, models, embeddings', async () => {
  const client = new OpenAI({ baseURL: `${sim.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const stream = await client.chat.completions.create({ model: 'operator', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const finish = chunks.find((c) => c.choices[0]?.finish_reason);
  assert.equal(finish.choices[0].finish_reason, 'length');
  const usage = chunks.at(-1);
  assert.deepEqual(usage.choices, []);
  assert.equal(usage.usage.completion_tokens, 5);

  const full = await client.chat.completions.create({ model: 'operator', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
  assert.equal(full.object, 'chat.completion');
  assert.equal(full.usage.completion_tokens, 4);
  assert.match(full.id, /^chatcmpl-\d+$/);

  const models = await client.models.list();
  assert.ok(models.data.some((m) => m.id === 'qwen3:8b'));
  const emb = await client.embeddings.create({ model: 'qwen3:4b', input: 'hello' });
  assert.equal(emb.data[0].embedding.length, 2560);
  await assert.rejects(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 404);

  const comp = await client.completions.create({ model: 'qwen3:4b', prompt: 'hi', max_tokens: 3 });
  assert.equal(comp.object, 'text_completion');
  assert.equal(comp.usage.completion_tokens, 3);
});

test('curl: NDJSON stream with Ollama\'s fields, form-encoded body accepted', async () => {
  const r = await run('curl', ['-sS', '-N', `${sim.url}/api/generate`, '-d', '{"model":"qwen3:4b","prompt":"hi","options":{"num_predict":4}}']);
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout.split('\n');
  assert.equal(out.at(-1), '');
  const objs = out.slice(0, -1).map((l) => JSON.parse(l));
  assert.equal(objs.length, 5);
  for (const o of objs.slice(0, 4)) {
    assert.deepEqual(Object.keys(o), ['model', 'created_at', 'response', 'done']);
    assert.match(o.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/);
  }
  const last = objs[4];
  assert.equal(last.done, true);
  for (const k of ['total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration'])
    assert.ok(Number.isInteger(last[k]) && last[k] > 0, k);
  const head = await run('curl', ['-sS', '-I', `${sim.url}/`]);
  assert.match(head.stdout, /^HTTP\/1.1 200/);
});

test('wire details: load/unload, errors, defaults, non-stream framing', async () => {
  const j = async (path, body) => { const r = await postJson(sim.url + path, body); return { status: r.status, text: await r.text() }; };
  let r = await j('/api/generate', { model: 'qwen3:14b' });
  assert.equal(JSON.parse(r.text).done_reason, 'load');
  r = await j('/api/chat', { model: 'coder', messages: [] });
  assert.deepEqual(JSON.parse(r.text).message, { role: 'assistant', content: '' });
  assert.equal(JSON.parse(r.text).done_reason, 'load');
  assert.ok((await (await fetch(`${sim.url}/api/ps`)).json()).models.some((m) => m.name === 'qwen3:14b'));
  r = await j('/api/generate', { model: 'qwen3:14b', keep_alive: 0 });
  assert.equal(JSON.parse(r.text).done_reason, 'unload');
  assert.ok(!(await (await fetch(`${sim.url}/api/ps`)).json()).models.some((m) => m.name === 'qwen3:14b'));

  r = await j('/api/generate', { model: 'qwen3:4b', prompt: 'x', stream: false, options: { num_predict: 2 } });
  assert.ok(!r.text.endsWith('\n'));
  assert.equal(JSON.parse(r.text).eval_count, 2);

  assert.deepEqual(await j('/api/generate', { model: 'Missing', prompt: 'x' }), { status: 404, text: '{"error":"model \'Missing\' not found"}' });
  assert.deepEqual(await j('/api/embed', { model: 'm', input: 'x' }), { status: 404, text: '{"error":"model \\"m\\" not found, try pulling it first"}' });
  assert.deepEqual(await j('/api/chat', { messages: [] }), { status: 400, text: '{"error":"model is required"}' });
  assert.equal((await j('/api/generate', '{oops')).status, 400);
  assert.deepEqual(await j('/api/generate', ''), { status: 400, text: '{"error":"missing request body"}' });
  assert.deepEqual(await j('/api/generate', { model: 'qwen3:4b', prompt: 'x', keep_alive: '300' }), { status: 400, text: '{"error":"time: missing unit in duration \\"300\\""}' });
  const g = await fetch(`${sim.url}/api/chat`);
  assert.equal(g.status, 405);
  assert.equal(await g.text(), '405 method not allowed');
  const nf = await fetch(`${sim.url}/api/nope`);
  assert.equal(nf.status, 404);
  assert.equal(await nf.text(), '404 page not found');
  assert.equal(await (await fetch(`${sim.url}/`)).text(), 'Ollama is running');

  // Case-insensitive names with an implied :latest, echoed as sent.
  r = await j('/api/generate', { model: 'EXECUTIVE:Latest', prompt: 'x', stream: false, options: { num_predict: 1 } });
  assert.equal(JSON.parse(r.text).model, 'EXECUTIVE:Latest');
  // /v1 defaults to non-stream; legacy embeddings shape.
  r = await j('/v1/chat/completions', { model: 'qwen3:4b', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 });
  assert.equal(JSON.parse(r.text).object, 'chat.completion');
  r = await j('/api/embeddings', { model: 'qwen3:4b', prompt: 'x' });
  assert.deepEqual(Object.keys(JSON.parse(r.text)), ['embedding']);
  r = await j('/v1/chat/completions', { model: 'qwen3:4b', messages: [] });
  assert.equal(JSON.parse(r.text).error.type, 'invalid_request_error');
});
