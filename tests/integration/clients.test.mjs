// The official ollama and openai npm clients through harmonicd, with
// harmonic-sim behind it: a drop-in front must be invisible to them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { startSim, startDaemon, daemonConfig, getJson } from './lib/harness.mjs';

let sim, hd;
before(async () => {
  sim = await startSim({ speed: 50 });
  hd = await startDaemon(daemonConfig({
    hosts: [{ name: 'sparky', url: sim.url }],
    models: [
      { name: 'executive', tier: 'executive', keep_alive: '"30m"', placements: [{ host: 'sparky', parallel: 4 }] },
      { name: 'operator', tier: 'executive', placements: [{ host: 'sparky', parallel: 4 }] },
      { name: 'qwen3:8b', tier: 'directors', placements: [{ host: 'sparky', parallel: 4 }] },
      // A role name mapped onto a backend tag.
      { name: 'thinker', ollama: 'qwen3:4b', tier: 'specialists', placements: [{ host: 'sparky', parallel: 2 }] },
    ],
  }));
});
after(async () => { assert.equal(await hd.stop(), 0); assert.equal(await sim.stop(), 0); });

test('ollama client: chat streaming and not, generate streaming and not, list, show, embed', async () => {
  const ollama = new Ollama({ host: hd.url });
  let text = '', final;
  for await (const part of await ollama.chat({ model: 'executive', messages: [{ role: 'user', content: 'hi' }], stream: true, options: { num_predict: 12 } })) {
    text += part.message.content;
    if (part.done) final = part;
  }
  assert.equal(final.eval_count, 12);
  assert.equal(final.done_reason, 'length');
  assert.ok(text.length > 0);

  const chat = await ollama.chat({ model: 'Executive', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 4 } });
  assert.equal(chat.done, true);
  assert.equal(chat.eval_count, 4);
  assert.equal(chat.model, 'Executive', 'the model is echoed as the client sent it');

  let streamed = 0;
  for await (const part of await ollama.generate({ model: 'qwen3:8b', prompt: 'x', stream: true, options: { num_predict: 6 } })) {
    if (!part.done) streamed++;
  }
  assert.equal(streamed, 6);
  const g = await ollama.generate({ model: 'thinker', prompt: 'x', options: { num_predict: 3 } });
  assert.equal(g.done, true);
  assert.equal(g.model, 'thinker', 'a role mapped to a backend tag is echoed by its name');
  for await (const part of await ollama.chat({ model: 'thinker:latest', messages: [{ role: 'user', content: 'x' }], stream: true, options: { num_predict: 3 } })) {
    assert.equal(part.model, 'thinker:latest');
  }
  assert.equal(g.eval_count, 3);

  const list = await ollama.list();
  const names = list.models.map((m) => m.name).sort();
  assert.deepEqual(names, ['executive:latest', 'operator:latest', 'qwen3:8b', 'thinker:latest']);
  assert.match(list.models[0].digest, /^[0-9a-f]{64}$/);

  const show = await ollama.show({ model: 'qwen3:8b' });
  assert.equal(typeof show.model_info, 'object');
  await assert.rejects(ollama.show({ model: 'nope' }), (e) => e.status_code === 404);

  const e = await ollama.embed({ model: 'qwen3:8b', input: ['a', 'b'] });
  assert.equal(e.embeddings.length, 2);
  await assert.rejects(ollama.chat({ model: 'nope', messages: [] }), (err) => err.status_code === 404);

  const stats = await getJson(hd.url + '/stats');
  assert.ok(stats.totals.eval_tokens >= 12 + 4 + 6 + 3);
});

test('openai client: chat completions streaming with usage and not, completions, models, embeddings', async () => {
  const client = new OpenAI({ baseURL: `${hd.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const stream = await client.chat.completions.create({ model: 'operator', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const usage = chunks.at(-1).usage;
  assert.equal(usage.completion_tokens, 5);

  const renamed = await client.chat.completions.create({ model: 'thinker', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream: true });
  for await (const ch of renamed) assert.equal(ch.model, 'thinker');
  const c = await client.chat.completions.create({ model: 'operator', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
  assert.equal(c.choices[0].message.role, 'assistant');
  assert.equal(c.usage.completion_tokens, 3);

  const comp = await client.completions.create({ model: 'qwen3:8b', prompt: 'x', max_tokens: 2 });
  assert.equal(comp.usage.completion_tokens, 2);

  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id).sort(), ['executive', 'operator', 'qwen3:8b', 'thinker']);

  const emb = await client.embeddings.create({ model: 'qwen3:8b', input: 'hello' });
  assert.equal(emb.data.length, 1);
  await assert.rejects(client.chat.completions.create({ model: 'nope', messages: [] }), (err) => err.status === 404);
});
