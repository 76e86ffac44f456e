// The demo stack of `make run` (scripts/run-demo.sh, etc/demo.conf) is a
// mixed fleet: an Ollama host and a llama-server host.  Started here the
// same way on free ports, and asked what the README and run-demo.sh tell a
// new user to try, on models of both hosts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startSim, startDaemon, getJson, generate, sleep } from './lib/harness.mjs';

const WAIT_MS = 60000;

test('make run\'s demo: a mixed fleet, and the README\'s requests work against both hosts', async () => {
  const sparky = await startSim({ profile: 'etc/sim/dgx-spark.conf', speed: 20 });
  const arcy = await startSim({ profile: 'etc/sim/evo-x2.conf', speed: 20, args: ['--api', 'llamacpp'] });
  const conf = fs.readFileSync(path.join(ROOT, 'etc/demo.conf'), 'utf8');
  assert.match(conf, /name = "arcy"; url = "http:\/\/127\.0\.0\.1:11502"; type = "llamacpp"/);
  assert.match(fs.readFileSync(path.join(ROOT, 'scripts/run-demo.sh'), 'utf8'), /evo-x2\.conf llamacpp/);
  const hd = await startDaemon(conf.replace('127.0.0.1:11435', '127.0.0.1:@PORT@')
    .replace('http://127.0.0.1:11501', sparky.url).replace('http://127.0.0.1:11502', arcy.url));
  try {
    const t0 = Date.now();
    for (;;) {
      const s = await getJson(hd.url + '/stats');
      if (s.hosts.every((h) => h.up) && s.hosts.find((h) => h.name === 'arcy').backend) break;
      assert.ok(Date.now() - t0 < WAIT_MS, 'both hosts up');
      await sleep(50);
    }
    const s = await getJson(hd.url + '/stats');
    assert.deepEqual(s.hosts.map((h) => [h.name, h.type]), [['sparky', 'ollama'], ['arcy', 'llamacpp']]);

    // The lines run-demo.sh prints under "Try:" (and the README tour's).
    const tries = [
      ['/api/generate', { model: 'executive', prompt: 'Explain quantum computing briefly', options: { num_predict: 5 } }],
      ['/api/chat', { model: 'coder', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 5 } }],
      ['/v1/chat/completions', { model: 'technical_director', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }],
    ];
    const demo = fs.readFileSync(path.join(ROOT, 'scripts/run-demo.sh'), 'utf8');
    const seen = new Set();
    for (const [route, body] of tries) {
      assert.ok(demo.includes(`11435${route} -d '{"model":"${body.model}"`), `run-demo.sh suggests ${route} with ${body.model}`);
      // Separate conversations spread over the replicas of a model.
      for (let i = 0; i < 4; i++) {
        const b = structuredClone(body);
        if (b.messages) b.messages[0].content += ` ${i}`; else b.prompt += ` ${i}`;
        const r = await generate(hd.url, b, { path: route });
        assert.equal(r.status, 200, r.text);
        seen.add(r.headers.get('x-harmonic-host'));
        if (route === '/v1/chat/completions') assert.match(r.text, /"completion_tokens":5/);
        else assert.equal(r.final.eval_count, 5);
      }
    }
    assert.deepEqual([...seen].sort(), ['arcy', 'sparky'], 'both hosts answered');
  } finally {
    assert.equal(await hd.stop(), 0);
    await sparky.stop();
    await arcy.stop();
  }
});
