// The routing core through the real harmonicd in front of real harmonic-sim
// processes on loopback.  Ground truth comes from the sim's own counters
// (/_sim/stats), not from harmonicd.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startSim, startDaemon, daemonConfig, generate, getJson, postJson, lines, sleep } from './lib/harness.mjs';

const SPEED = 20;
const gen = (model, n = 20, extra = {}) => ({ model, prompt: 'hello', options: { num_predict: n }, ...extra });
const simModel = async (sim, name) => (await getJson(sim.url + '/_sim/stats')).models[name.includes(':') ? name : name + ':latest'];
// Time bounds in this file keep at least 10x headroom over what the 2-core
// test machine measures with nothing else running, also under valgrind
// (make check-valgrind runs this file); each timed test prints its figure.
// Waits for a state are ceilings that end as soon as the state is reached.
const WAIT_MS = 30000;

/** Poll pred until it holds; returns the elapsed ms, fails after ms. */
const waitFor = async (what, pred, ms = WAIT_MS) => {
  const t0 = Date.now();
  for (;;) {
    if (await pred()) return Date.now() - t0;
    if (Date.now() - t0 > ms) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
};
const placementOf = async (hd, model) => (await getJson(hd.url + '/stats')).models.find((m) => m.name === model);

// Wait until the daemon's warm-up loads have finished on the sim.
const waitWarm = async (sim, names) => {
  const t0 = Date.now();
  while (Date.now() - t0 < WAIT_MS) {
    const s = await getJson(sim.url + '/_sim/stats');
    if (names.every((n) => { const m = s.models[n.includes(':') ? n : n + ':latest']; return m.loaded && m.in_flight === 0; })) return;
    await sleep(20);
  }
  throw new Error('warm-up did not finish');
};
const fault = (sim, spec) => postJson(sim.url + '/_sim/fault', spec).then((r) => r.json());

describe('slot limits and queueing', () => {
  let sim, hd;
  before(async () => {
    sim = await startSim({ speed: SPEED });
    hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'sparky', url: sim.url, max_parallel: 4 }],
      models: [
        { name: 'qwen3:8b', tier: 'directors', placements: [{ host: 'sparky', parallel: 3 }] },
        { name: 'technical_director', tier: 'directors', placements: [{ host: 'sparky', parallel: 3 }] },
        { name: 'executive', tier: 'executive', placements: [{ host: 'sparky', parallel: 1 }] },
      ],
    }));
  });
  after(async () => { assert.equal(await hd.stop(), 0); assert.equal(await sim.stop(), 0); });

  test('parallel = 3: 20 concurrent streams, the sim never sees more than 3, all complete', async () => {
    await waitWarm(sim, ['qwen3:8b', 'technical_director', 'executive']);
    await postJson(sim.url + '/_sim/stats/reset', {});
    const results = await Promise.all(Array.from({ length: 20 }, () => generate(hd.url, gen('qwen3:8b', 30))));
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal(r.final.done, true);
      assert.equal(r.final.eval_count, 30);
      assert.equal(r.headers.get('x-harmonic-host'), 'sparky');
      assert.match(r.headers.get('x-harmonic-queue-ms'), /^\d+$/);
      assert.equal(r.headers.get('x-accel-buffering'), 'no');
      assert.ok(!r.blank && !r.bad, 'clean NDJSON');
    }
    const m = await simModel(sim, 'qwen3:8b');
    assert.equal(m.max_in_flight, 3);
    assert.equal(m.served, 20);
    const stats = await getJson(hd.url + '/stats');
    const p = stats.models.find((x) => x.name === 'qwen3:8b').placements[0];
    assert.equal(p.in_flight, 0);
    assert.equal(stats.totals.eval_tokens >= 600, true);
  });

  test("a host's max_parallel caps the sum over its models", async (t) => {
    let peak = 0, done = false, samples = 0;
    const poll = (async () => {
      while (!done) {
        const s = await getJson(sim.url + '/_sim/stats');
        peak = Math.max(peak, s.totals.in_flight);
        samples++;
        await sleep(5);
      }
    })();
    const reqs = [];
    // Long enough (~1.5 s) for the poll to see the host full many times
    // over, even when a loaded machine stretches each poll.
    for (let i = 0; i < 10; i++) {
      reqs.push(generate(hd.url, gen('qwen3:8b', 200)));
      reqs.push(generate(hd.url, gen('technical_director', 200)));
    }
    const results = await Promise.all(reqs);
    done = true;
    await poll;
    t.diagnostic(`peak ${peak} in flight at the sim over ${samples} samples`);
    assert.ok(results.every((r) => r.status === 200 && r.final.done));
    assert.ok(peak >= 3, `load reached the host (peak ${peak})`);
    assert.ok(peak <= 4, `sim saw ${peak} > max_parallel 4`);
  });

  // The target is 200 ms; measured here with nothing else running: 6 ms,
  // under valgrind 41 ms.  The verdict keeps over 10x the valgrind figure
  // (and stays far below the ~70 s the stream would take to end by itself).
  const DISCONNECT_MAX_MS = 2000;
  test('a disconnect mid-stream reaches the sim (target 200 ms) and the slot is reused', async (t) => {
    const before = (await simModel(sim, 'executive')).disconnects;
    const ctl = new AbortController();
    const res = await postJson(hd.url + '/api/generate', gen('executive', 100000), {}, ctl.signal);
    const it = lines(res);
    await it.next();
    await it.next();
    const t0 = Date.now();
    ctl.abort();
    let seen = -1;
    while (Date.now() - t0 < DISCONNECT_MAX_MS) {
      const m = await simModel(sim, 'executive');
      if (m.disconnects > before) { seen = Date.now() - t0; break; }
      await sleep(5);
    }
    t.diagnostic(`disconnect seen by the sim after ${seen} ms (target 200 ms)`);
    assert.ok(seen >= 0 && seen < DISCONNECT_MAX_MS, `disconnect seen after ${seen} ms`);
    const r = await generate(hd.url, gen('executive', 5)); // parallel 1: the slot is free again
    assert.equal(r.status, 200);
    assert.equal(r.final.done, true);
  });

  test('a request queued and then abandoned never reaches the sim', async () => {
    await postJson(sim.url + '/_sim/stats/reset', {});
    const before = await simModel(sim, 'executive');
    // The first request holds the only slot for ~1.4 s; the second is
    // abandoned once the daemon shows it queued (tens of ms after it starts).
    const first = generate(hd.url, gen('executive', 2000));
    await waitFor('the first request in the slot', async () => (await placementOf(hd, 'executive')).placements[0].in_flight === 1);
    const ctl = new AbortController();
    const queued = postJson(hd.url + '/api/generate', gen('executive', 5), {}, ctl.signal).catch((e) => e);
    await waitFor('the second request queued', async () => (await placementOf(hd, 'executive')).queued === 1);
    ctl.abort();
    await queued;
    const r = await first;
    assert.equal(r.final.done, true);
    await sleep(100);
    const after = await simModel(sim, 'executive');
    assert.equal(after.served - before.served, 1, 'only the first request was served');
    assert.equal(after.in_flight, 0);
    const stats = await getJson(hd.url + '/stats');
    assert.ok(stats.totals.cancelled >= 1);
  });
});

describe('weighted fair sharing', () => {
  let sim, hd;
  before(async () => {
    sim = await startSim({ speed: 20 });
    hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'sparky', url: sim.url, max_parallel: 1 }],
      tiers: [{ name: 'high', weight: 8, queue_depth: 1000 }, { name: 'low', weight: 1, queue_depth: 1000 }],
      models: [
        { name: 'executive', tier: 'high', placements: [{ host: 'sparky', parallel: 1 }] },
        { name: 'operator', tier: 'low', placements: [{ host: 'sparky', parallel: 1 }] },
      ],
    }));
  });
  after(async () => { assert.equal(await hd.stop(), 0); assert.equal(await sim.stop(), 0); });

  test('two tiers flooding one slot share it 8:1 and the low tier still completes', async (t) => {
    let stop = false;
    const done = { executive: 0, operator: 0 };
    const client = async (model) => {
      while (!stop) {
        const r = await generate(hd.url, gen(model, 20));
        if (r.status === 200) done[model]++;
      }
    };
    const clients = [];
    // The backend must be the bottleneck (each request ~15 ms), or the
    // queues are empty and shares just follow arrivals.  The share is not a
    // wall-clock figure: stride scheduling picks every dispatch in virtual
    // time, so it holds however slow the machine is while both queues stay
    // non-empty (11 of each tier's 12 clients wait at any moment).  Measured
    // 240:30 idle, under CPU load, ASan and valgrind alike.
    for (let i = 0; i < 12; i++) clients.push(client('executive'), client('operator'));
    while (done.executive + done.operator < 270) await sleep(20);
    // Read the dispatch shares while both queues are still full.
    const s = await getJson(hd.url + '/stats');
    stop = true;
    await Promise.all(clients);
    const hi = s.tiers.find((t) => t.name === 'high').completed;
    const lo = s.tiers.find((t) => t.name === 'low').completed;
    assert.ok(lo > 0, 'low tier completes');
    const ratio = hi / lo;
    t.diagnostic(`share ${hi}:${lo} = ${ratio.toFixed(2)}`);
    assert.ok(ratio > 8 * 0.85 && ratio < 8 * 1.15, `share ${hi}:${lo} = ${ratio.toFixed(2)}`);
  });
});

describe('errors, faults and replicas', () => {
  let simA, simB, hd;
  before(async () => {
    simA = await startSim({ speed: SPEED });
    simB = await startSim({ speed: SPEED });
    hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'a', url: simA.url }, { name: 'b', url: simB.url }],
      tiers: [{ name: 'executive', weight: 8, queue_depth: 2 }, { name: 'directors', weight: 4 }],
      // queue_timeout is long here so that a queued request waits however
      // slow the machine is; the queue_timeout test has its own daemon.
      extra: 'max_body = 4096;\nqueue_timeout = 60.0;',
      models: [
        { name: 'qwen3:8b', tier: 'directors', placements: [{ host: 'a', parallel: 2 }, { host: 'b', parallel: 2 }] },
        { name: 'solo', ollama: 'qwen3:4b', tier: 'directors', placements: [{ host: 'a', parallel: 1 }] },
        { name: 'executive', tier: 'executive', placements: [{ host: 'a', parallel: 1 }] },
      ],
    }));
  });
  after(async () => { assert.equal(await hd.stop(), 0); assert.equal(await simA.stop(), 0); assert.equal(await simB.stop(), 0); });

  test('client errors use Ollama shapes and codes', async () => {
    let r = await postJson(hd.url + '/api/generate', { model: 'nope', prompt: 'x' });
    assert.equal(r.status, 404);
    assert.deepEqual(await r.json(), { error: "model 'nope' not found" });
    r = await postJson(hd.url + '/api/chat', '{"model": ');
    assert.equal(r.status, 400);
    assert.ok((await r.json()).error);
    r = await fetch(hd.url + '/api/chat', { method: 'POST' });
    assert.equal(r.status, 400);
    assert.deepEqual(await r.json(), { error: 'missing request body' });
    r = await fetch(hd.url + '/api/chat');
    assert.equal(r.status, 405);
    assert.equal(await r.text(), '405 method not allowed');
    r = await fetch(hd.url + '/api/nothing');
    assert.equal(r.status, 404);
    assert.equal(await r.text(), '404 page not found');
    r = await postJson(hd.url + '/api/generate', { model: 'qwen3:8b', prompt: 'x'.repeat(5000) });
    assert.equal(r.status, 413);
    r = await postJson(hd.url + '/v1/chat/completions', { model: 'nope', messages: [] });
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.type, 'not_found_error');
    r = await postJson(hd.url + '/api/generate', { model: 'QWEN3:8B', prompt: 'x', stream: false, options: { num_predict: 3 } });
    assert.equal(r.status, 200, 'case-insensitive model names');
    assert.equal((await r.json()).done, true);
  });

  // "At once": the error text tells the full-queue (or every-host-down)
  // answer from a queue_timeout one; the time bound only has to tell it from
  // waiting for a slot.  Measured: 1-3 ms, also under valgrind.
  const AT_ONCE_MS = 1000;
  test('a full tier queue answers 503 at once with Retry-After', async (t) => {
    // The only slot is held by a request the sim never answers (until the
    // client leaves); two more fill the queue (depth 2).
    await fault(simA, { mode: 'hang', count: 1, model: 'executive' });
    const holdCtl = new AbortController();
    const hold = postJson(hd.url + '/api/generate', gen('executive', 2), {}, holdCtl.signal).catch((e) => e);
    await waitFor('the slot held', async () => (await placementOf(hd, 'executive')).placements[0].in_flight === 1);
    const waiting = [generate(hd.url, gen('executive', 2)), generate(hd.url, gen('executive', 2))];
    await waitFor('two queued', async () => (await placementOf(hd, 'executive')).queued === 2);
    const t0 = Date.now();
    const r = await postJson(hd.url + '/api/generate', gen('executive', 2));
    const ms = Date.now() - t0;
    t.diagnostic(`503 after ${ms} ms`);
    assert.equal(r.status, 503);
    assert.match(r.headers.get('retry-after'), /^\d+$/);
    assert.equal((await r.json()).error, 'server busy, please try again.  maximum pending requests exceeded');
    assert.ok(ms < AT_ONCE_MS, `answered after ${ms} ms`);
    holdCtl.abort();
    await hold;
    for (const w of await Promise.all(waiting)) {
      assert.equal(w.status, 200, 'the queued requests are served once the slot frees');
      assert.equal(w.final.done, true);
    }
  });

  test('failure before the first byte is retried once on the other replica', async () => {
    await fault(simA, { mode: 'fail', count: 10, status: 500 });
    await fault(simB, { mode: 'fail', count: 1, status: 500 });
    const results = await Promise.all(Array.from({ length: 4 }, () => generate(hd.url, gen('qwen3:8b', 5))));
    await postJson(simA.url + '/_sim/reset', {});
    await postJson(simB.url + '/_sim/reset', {});
    // Each request fails at most once per host; all but at most one get through on b.
    const ok = results.filter((r) => r.status === 200);
    assert.ok(ok.length >= 3, `${ok.length} of 4 succeeded`);
    for (const r of ok) assert.equal(r.headers.get('x-harmonic-host'), 'b');
    for (const r of results.filter((x) => x.status !== 200)) assert.equal(r.status, 502);
  });

  test('failure before the first byte with no other placement is a 502', async () => {
    await fault(simA, { mode: 'fail', count: 1, status: 500, model: 'qwen3:4b' });
    const r = await postJson(hd.url + '/api/generate', gen('solo', 5));
    assert.equal(r.status, 502);
    assert.match((await r.json()).error, /failed before the first byte/);
  });

  test('a backend dying mid-stream ends the stream with one error line', async () => {
    await fault(simA, { mode: 'close', count: 1, after_tokens: 3, model: 'qwen3:4b' });
    const r = await generate(hd.url, gen('solo', 50));
    assert.equal(r.status, 200);
    const last = r.lines.at(-1);
    assert.ok(last.error, 'last line is an error');
    assert.equal(Object.keys(last).length, 1);
    assert.ok(!r.lines.some((l) => l.done));
    const stats = await getJson(hd.url + '/stats');
    assert.equal(stats.models.find((m) => m.name === 'solo').placements[0].in_flight, 0);
  });

  test('a backend 503 puts the request back in the queue; it completes', async () => {
    await fault(simA, { mode: 'busy', count: 1, model: 'qwen3:4b' });
    const r = await generate(hd.url, gen('solo', 5));
    assert.equal(r.status, 200);
    assert.equal(r.final.done, true);
  });

  test('a host that goes down gets no requests; all hosts down is 503 at once', async (t) => {
    // Waits for the health probes (health_interval 0.2 s) end as soon as
    // the daemon's view changes; each is printed.
    const hostUp = async (name) => (await getJson(hd.url + '/stats')).hosts.find((h) => h.name === name).up;
    await simB.stop();
    t.diagnostic(`b seen down after ${await waitFor('b down', async () => !(await hostUp('b')))} ms`);
    const rs = await Promise.all(Array.from({ length: 4 }, () => generate(hd.url, gen('qwen3:8b', 3))));
    for (const r of rs) {
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-harmonic-host'), 'a');
    }
    await simA.stop();
    t.diagnostic(`a seen down after ${await waitFor('a down', async () => !(await hostUp('a')))} ms`);
    const t2 = Date.now();
    const r = await postJson(hd.url + '/api/generate', gen('qwen3:8b', 3));
    const ms = Date.now() - t2;
    t.diagnostic(`503 after ${ms} ms with every host down`);
    assert.equal(r.status, 503);
    assert.ok(r.headers.get('retry-after'));
    assert.match((await r.json()).error, /every host serving this model is down/);
    assert.ok(ms < AT_ONCE_MS, `answered after ${ms} ms`);
    const rz = await fetch(hd.url + '/readyz');
    assert.equal(rz.status, 503);
    // It comes back: restart a sim on the same port.
    simA = await startSim({ speed: SPEED, port: simA.port });
    t.diagnostic(`a seen up after ${await waitFor('a up', () => hostUp('a'))} ms`);
    const back = await generate(hd.url, gen('qwen3:8b', 3));
    assert.equal(back.status, 200);
    // Warmed on return: the sim gets the placed models loaded.
    const warm = await waitFor('executive warmed on a', async () =>
      (await getJson(simA.url + '/api/ps')).models.some((m) => m.name.startsWith('executive')));
    t.diagnostic(`executive resident on a ${warm} ms after the first answer`);
    simB = await startSim({ speed: SPEED, port: simB.port });
  });
});

describe('queue_timeout', () => {
  let sim, hd;
  before(async () => {
    sim = await startSim({ speed: SPEED });
    hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'a', url: sim.url }],
      extra: 'queue_timeout = 0.5;',
      models: [{ name: 'solo', ollama: 'qwen3:4b', tier: 'directors', placements: [{ host: 'a', parallel: 1 }] }],
    }));
  });
  after(async () => { assert.equal(await hd.stop(), 0); assert.equal(await sim.stop(), 0); });

  test('queue_timeout gives 503 with Retry-After', async (t) => {
    await waitWarm(sim, ['qwen3:4b']);
    // The slot is held by a request the sim never answers, so the second
    // one waits out queue_timeout however slow the machine is.
    await fault(sim, { mode: 'hang', count: 1, model: 'qwen3:4b' });
    const ctl = new AbortController();
    const hold = postJson(hd.url + '/api/generate', gen('solo', 2), {}, ctl.signal).catch((e) => e);
    await waitFor('the slot held', async () => (await placementOf(hd, 'solo')).placements[0].in_flight === 1);
    const t0 = Date.now();
    const r = await postJson(hd.url + '/api/generate', gen('solo', 2));
    const ms = Date.now() - t0;
    t.diagnostic(`503 after ${ms} ms (queue_timeout 0.5 s)`);
    assert.equal(r.status, 503);
    assert.ok(r.headers.get('retry-after'));
    assert.match((await r.json()).error, /queue_timeout/);
    assert.ok(ms >= 450, `answered after ${ms} ms, before queue_timeout`);
    ctl.abort();
    await hold;
  });
});
