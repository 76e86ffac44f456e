// Keys and agents (issue 15, item 4): x-api-key is accepted wherever
// "Authorization: Bearer" is; a request's agent is its X-Harmonic-Agent
// header, else the name of the key it used, else "anonymous"; /stats
// attributes every request of a mixed run to the right agent and the
// per-agent sums equal the totals (also mid-run, for queued and in
// flight); /metrics has per-agent series with a bounded number of agents;
// keys appear in no log line, even at debug.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, startSim, startDaemon, daemonConfig, generate, getJson, postJson, lines, run, sleep, tmpDir } from './lib/harness.mjs';

const KEYS = {
  coder: 'sk-test-coder-1-SECRET-7f3a',
  reviewer: 'sk-test-reviewer-SECRET-91bc',
  plain: 'sk-test-plain-SECRET-0d2e',
};
const gen = (n, extra = {}) => ({ model: 'executive', prompt: 'hi', options: { num_predict: n }, ...extra });
const bearer = (k) => ({ authorization: `Bearer ${k}` });
const FIELDS = ['requests', 'completed', 'failed', 'rejected', 'cancelled', 'prompt_tokens', 'eval_tokens'];

function keysFile(dir, reviewerName = 'reviewer') {
  fs.writeFileSync(path.join(dir, 'keys'), `# agents: NAME KEY, or a bare KEY\ncoder-1   ${KEYS.coder}\n` +
    `${reviewerName}\t${KEYS.reviewer}\n${KEYS.plain}\n`);
}

// The per-agent sums against the totals, and the gauges against the
// aggregates, in one /stats snapshot.
function checkSums(s, where) {
  for (const f of FIELDS) {
    const sum = s.agents.reduce((a, x) => a + x[f], 0);
    assert.equal(sum, s.totals[f], `${where}: sum of agents' ${f} ${sum} != totals ${s.totals[f]}`);
  }
  // The tiers count requests only (the hosts' in_flight also holds warm-ups).
  assert.equal(s.agents.reduce((a, x) => a + x.in_flight, 0), s.tiers.reduce((a, t) => a + t.in_flight, 0), `${where}: in_flight`);
  assert.equal(s.agents.reduce((a, x) => a + x.queued, 0), s.tiers.reduce((a, t) => a + t.queued, 0), `${where}: queued`);
}

// Header values travel as bytes: send a name's UTF-8 bytes, one per char.
const utf8 = (v) => Buffer.from(v, 'utf8').toString('latin1');
const byName = (s) => Object.fromEntries(s.agents.map((a) => [a.name, a]));

describe('keys and agents', () => {
  let sim, hd, dir;
  before(async () => {
    // Slow enough that requests wait for the two slots while /stats is read.
    sim = await startSim({ speed: 4 });
    dir = tmpDir();
    keysFile(dir);
    hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'a', url: sim.url }],
      models: [{ name: 'executive', tier: 'executive', placements: [{ host: 'a', parallel: 2 }] }],
      extra: `api_keys_file = "${dir}/keys";\nlog_level = "debug";\nmax_body = 65536;\nqueue_timeout = 60.0;`,
    }));
  });
  after(async () => {
    if (hd) assert.equal(await hd.stop(), 0);
    await sim?.stop();
  });

  test('a wrong key gets 401 (Bearer or x-api-key); the right x-api-key works', async () => {
    let r = await postJson(hd.url + '/v1/messages', { model: 'executive', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] },
      { 'x-api-key': 'sk-wrong-key', 'anthropic-version': '2023-06-01' });
    assert.equal(r.status, 401);
    const body = await r.json();
    assert.equal(body.type, 'error', `Anthropic's error shape: ${JSON.stringify(body)}`);
    assert.equal(body.error.type, 'authentication_error');
    r = await postJson(hd.url + '/api/generate', gen(2), { 'x-api-key': 'sk-wrong-key' });
    assert.equal(r.status, 401);
    await r.arrayBuffer();
    r = await postJson(hd.url + '/api/generate', gen(2), { 'x-api-key': `${KEYS.coder}x` });
    assert.equal(r.status, 401);
    await r.arrayBuffer();
    r = await postJson(hd.url + '/api/generate', gen(2), bearer('sk-wrong-key'));
    assert.equal(r.status, 401);
    await r.arrayBuffer();
    r = await postJson(hd.url + '/api/generate', gen(3, { stream: false }), { 'x-api-key': KEYS.reviewer });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).eval_count, 3);
    r = await fetch(hd.url + '/v1/models', { headers: { 'x-api-key': KEYS.plain } });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    // 401s got past nothing: no request was counted for them.
    const s = await getJson(hd.url + '/stats');
    assert.equal(s.totals.requests, 1);
    assert.deepEqual(s.agents.map((a) => [a.name, a.requests, a.completed, a.eval_tokens]), [['reviewer', 1, 1, 3]]);
    checkSums(s, 'after the 401s');
  });

  test('a mixed run: every request attributed, sums equal totals at every instant', async () => {
    const want = {}; // agent -> {requests, completed, rejected, cancelled, eval_tokens}
    const add = (name, k, n = 1) => { want[name] ??= {}; want[name][k] = (want[name][k] ?? 0) + n; };
    const before0 = byName(await getJson(hd.url + '/stats'));
    const jobs = [];
    const stream = (name, headers, n, p = '/api/generate') => {
      add(name, 'requests');
      jobs.push(generate(hd.url, p === '/api/generate' ? gen(n) : { model: 'executive', stream: true, max_tokens: n,
        messages: [{ role: 'user', content: 'hi' }], stream_options: { include_usage: true } }, { path: p, headers }).then((r) => {
        assert.equal(r.status, 200, `${name}: ${r.text}`);
        add(name, 'completed');
        return r;
      }));
    };
    for (let i = 0; i < 4; i++) {
      stream('planner', { ...bearer(KEYS.plain), 'x-harmonic-agent': 'planner' }, 20 + i);  // header beats a plain key
      stream('planner', { ...bearer(KEYS.coder), 'x-harmonic-agent': 'planner' }, 10);      // and a named one
      stream('coder-1', bearer(KEYS.coder), 15);                                              // key name, Bearer
      stream('reviewer', { 'x-api-key': KEYS.reviewer }, 12);                                 // key name, x-api-key
      stream('anonymous', bearer(KEYS.plain), 8);                                             // a key without a name
      stream('agent-ü ✓', { 'x-api-key': KEYS.plain, 'x-harmonic-agent': utf8('agent-ü ✓') }, 9); // UTF-8 names
    }
    stream('reviewer', { 'x-api-key': KEYS.reviewer }, 7, '/v1/chat/completions');
    // Rejections: 413 before a request object exists, an unknown model
    // after the body, both counted for their agent.
    add('big', 'requests'); add('big', 'rejected');
    jobs.push(postJson(hd.url + '/api/generate', { ...gen(1), prompt: 'x'.repeat(70000) },
      { ...bearer(KEYS.plain), 'x-harmonic-agent': 'big' }).then(async (r) => { assert.equal(r.status, 413); await r.arrayBuffer(); }));
    add('coder-1', 'requests'); add('coder-1', 'rejected');
    jobs.push(postJson(hd.url + '/api/generate', { model: 'no-such-model', prompt: 'x' }, bearer(KEYS.coder))
      .then(async (r) => { assert.equal(r.status, 404); await r.arrayBuffer(); }));
    // A client that leaves mid-stream.
    add('quitter', 'requests'); add('quitter', 'cancelled');
    jobs.push((async () => {
      const ac = new AbortController();
      const r = await postJson(hd.url + '/api/generate', gen(5000), { ...bearer(KEYS.plain), 'x-harmonic-agent': 'quitter' }, ac.signal);
      assert.equal(r.status, 200);
      try { for await (const l of lines(r)) { if (l.trim()) break; } } catch { /* aborted */ }
      ac.abort();
    })());

    // Mid-run snapshots: gauges per agent add up to the aggregates.
    let sampled = 0, busy = false;
    const done = Promise.allSettled(jobs);
    let finished = false;
    done.then(() => { finished = true; });
    while (!finished) {
      const s = await getJson(hd.url + '/stats');
      checkSums(s, `snapshot ${sampled}`);
      if (s.queued > 0 && s.in_flight > 0) busy = true;
      sampled++;
      await sleep(5);
    }
    for (const r of await done) if (r.status === 'rejected') throw r.reason;
    assert.ok(busy, 'some snapshot saw requests both queued and in flight');
    const results = await Promise.all(jobs.filter(Boolean));
    void results;

    // Let the cancellation land, then compare.
    let s;
    for (let t = 0; t < 200; t++) {
      s = await getJson(hd.url + '/stats');
      if (s.live_requests === 0 && s.in_flight === 0) break;
      await sleep(25);
    }
    assert.equal(s.live_requests, 0);
    checkSums(s, 'at the end');
    const got = byName(s);
    for (const [name, w] of Object.entries(want)) {
      const a = got[name], b = before0[name] ?? {};
      assert.ok(a, `agent ${name} in /stats`);
      for (const k of ['requests', 'completed', 'rejected', 'cancelled'])
        assert.equal(a[k] - (b[k] ?? 0), w[k] ?? 0, `${name}.${k}`);
      assert.equal(a.failed - (b.failed ?? 0), 0, `${name}.failed`);
      assert.equal(a.in_flight, 0);
      assert.equal(a.queued, 0);
      assert.equal(typeof a.tokens_per_s['10s'], 'number');
    }
    // Tokens: the backend's eval_count of every completed answer.
    assert.equal(got.planner.eval_tokens, (20 + 21 + 22 + 23) + 4 * 10);
    assert.equal(got['coder-1'].eval_tokens, 4 * 15);
    assert.equal(got.anonymous.eval_tokens, 4 * 8);
    assert.equal(got['agent-ü ✓'].eval_tokens, 4 * 9);
    assert.equal(got.reviewer.eval_tokens - (before0.reviewer?.eval_tokens ?? 0), 4 * 12 + 7);
    assert.ok(got.planner.prompt_tokens > 0);
    assert.ok(got.planner.tokens_per_s['10s'] > 0, 'the live rate counts per agent');
    assert.equal(got.quitter.eval_tokens, 0);
    assert.equal(got.other, undefined, 'no overflow below the cap');
  });

  test('/metrics: per-agent series, label values escaped', async () => {
    await generate(hd.url, gen(2), { headers: { ...bearer(KEYS.plain), 'x-harmonic-agent': 'say "hi" \\o/' } });
    const text = await (await fetch(hd.url + '/metrics')).text();
    const s = await getJson(hd.url + '/stats');
    const series = new Map();
    for (const l of text.split('\n')) {
      const m = /^(\S+\{.*\}|\S+) (\S+)$/.exec(l);
      if (m && !l.startsWith('#')) series.set(m[1], Number(m[2]));
    }
    for (const a of s.agents) {
      const lv = a.name.replaceAll('\\', '\\\\').replaceAll('"', '\\"');
      assert.equal(series.get(`harmonic_agent_requests_received_total{agent="${lv}"}`), a.requests, a.name);
      assert.equal(series.get(`harmonic_agent_requests_total{agent="${lv}",outcome="completed"}`), a.completed, a.name);
      assert.equal(series.get(`harmonic_agent_tokens_total{agent="${lv}",kind="eval"}`), a.eval_tokens, a.name);
      assert.equal(series.get(`harmonic_agent_in_flight{agent="${lv}"}`), 0, a.name);
    }
    assert.ok(series.has('harmonic_agent_requests_received_total{agent="say \\"hi\\" \\\\o/"}'));
    for (const fam of ['harmonic_agent_requests_received_total', 'harmonic_agent_requests_total', 'harmonic_agent_tokens_total',
      'harmonic_agent_streamed_tokens_total', 'harmonic_agent_in_flight', 'harmonic_agent_queued'])
      assert.ok(text.includes(`# TYPE ${fam} `), fam);
    const promtool = await run('sh', ['-c', 'command -v promtool']);
    if (promtool.code === 0) {
      const file = path.join(tmpDir(), 'metrics.txt');
      fs.writeFileSync(file, text);
      const r = await run('sh', ['-c', `promtool check metrics < ${file}`]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
  });

  test('harmonicctl stats and the dashboard show the busiest agents', async () => {
    const r = await run(BIN.harmonicctl, ['stats', '-u', hd.url]);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout.split('\n');
    const head = out.findIndex((l) => /^AGENT +IN FLIGHT +QUEUED +TOK\/S 10S +REQUESTS/.test(l));
    assert.ok(head > 0, r.stdout);
    const rows = out.slice(head + 1).filter((l) => l.trim() && !l.startsWith('('));
    assert.ok(rows.length >= 5 && rows.length <= 10, `${rows.length} agent rows`);
    assert.ok(rows.some((l) => /^coder-1 +0 +0 /.test(l)), r.stdout);
    const page = await (await fetch(hd.url + '/dashboard')).text();
    assert.ok(page.includes("id='agents'") && page.includes('Busiest agents'));
  });

  test('a reload keeps the table and applies renamed keys; the cap holds; no key in any log line', async () => {
    const s0 = await getJson(hd.url + '/stats');
    keysFile(dir, 'reviewer-2');
    hd.proc.kill('SIGHUP');
    for (let t = 0; t < 100; t++) {
      if ((await getJson(hd.url + '/stats')).reload.reloads > s0.reload.reloads) break;
      await sleep(20);
    }
    const r = await postJson(hd.url + '/api/generate', gen(2, { stream: false }), { 'x-api-key': KEYS.reviewer });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    let s = await getJson(hd.url + '/stats');
    assert.equal(byName(s)['reviewer-2'].completed, 1);
    assert.equal(byName(s).reviewer.completed, byName(s0).reviewer.completed, 'kept across the reload');
    checkSums(s, 'after the reload');

    // 80 more names: the table stops at 64, the rest count as "other".
    const named = s.agents.length;
    for (let i = 0; i < 80; i += 8)
      await Promise.all(Array.from({ length: 8 }, async (_, k) => {
        const x = await postJson(hd.url + '/api/generate', gen(1, { stream: false }),
          { ...bearer(KEYS.plain), 'x-harmonic-agent': `bulk-${i + k}` });
        assert.equal(x.status, 200);
        await x.arrayBuffer();
      }));
    s = await getJson(hd.url + '/stats');
    assert.equal(s.agents.length, 65, '64 named agents and "other"');
    assert.equal(s.agents.at(-1).name, 'other');
    assert.equal(s.agents.at(-1).requests, 80 - (64 - named));
    checkSums(s, 'past the cap');
    const text = await (await fetch(hd.url + '/metrics')).text();
    assert.equal(text.split('\n').filter((l) => l.startsWith('harmonic_agent_requests_received_total{')).length, 65);

    const stats = JSON.stringify(s) + text;
    const logs = hd.stderr();
    assert.ok(logs.includes('debug') || logs.length > 1000, 'the daemon logged at debug');
    for (const k of Object.values(KEYS)) {
      assert.ok(!logs.includes(k) && !logs.includes(k.slice(0, 16)), `key ${k.slice(0, 8)}... in the log`);
      assert.ok(!stats.includes(k), 'key in /stats or /metrics');
    }
    assert.ok(!logs.includes('sk-wrong-key'), 'a wrong key is not logged either');
  });
});
