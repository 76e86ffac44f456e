// The reload-race matrix: a configuration reload that takes something away
// (a model, one placement of a two-placement model, a host, a tier with its
// models) while requests for the affected model are in every stage:
//   - 3 mid-body: headers and half the JSON body sent, the rest after the reload;
//   - 3 queued: waiting for a slot;
//   - 3 streaming: holding every slot of the model, chunks already arriving.
// Afterwards the daemon is up, every client got a complete answer (a 404 in
// Ollama's shape where the model is gone, else the answer), and /stats adds
// up: completed + failed + rejected + cancelled == requests, nothing left in
// flight or queued anywhere.  harmonicd runs in front of two harmonic-sim
// hosts at real speed, so that each stream lasts a few seconds.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startSim, startDaemon, getJson, postJson, lines, sleep, tmpDir } from './lib/harness.mjs';
import { Conn } from './lib/raw.mjs';

const VALGRIND = process.env.HARMONIC_VALGRIND === '1';
const SLOW = VALGRIND ? 4 : 1;
const M = 'executive'; // the affected model (a sim profile model)
const BYSTANDER = 'operator'; // never touched by a reload
const STREAM_TOKENS = 150; // ~2-3.5 s at the sim's real speed
const SHORT_TOKENS = 5;

const keysDir = tmpDir();
fs.writeFileSync(path.join(keysDir, 'admin'), 'admin-key\n');

/* A config from {hosts: [{name, url}], tiers: [{name, weight}], models: [{name, tier, placements: {host: parallel}}]}. */
function config({ hosts, tiers, models }) {
  const h = hosts.map((x) => `{ name = "${x.name}"; url = "${x.url}"; memory_gb = 128.0; num_parallel = 64; }`).join(',\n  ');
  const t = tiers.map((x) => `{ name = "${x.name}"; weight = ${x.weight}; queue_depth = 64; }`).join(',\n  ');
  const m = models.map((x) => `{ name = "${x.name}"; tier = "${x.tier}"; base_gb = 1.0; kv_gb = 0.1; placements = ( ${Object.entries(x.placements).map(([host, n]) => `{ host = "${host}"; parallel = ${n}; }`).join(', ')} ); }`).join(',\n  ');
  return `listen = "127.0.0.1:@PORT@";\nhealth_interval = 0.2;\nshutdown_grace = 10.0;\nadmin_keys_file = "${keysDir}/admin";\n` +
    `hosts = (\n  ${h}\n);\ntiers = (\n  ${t}\n);\nmodels = (\n  ${m}\n);\n`;
}

let simA, simB;
before(async () => {
  [simA, simB] = await Promise.all([startSim({ speed: 1 }), startSim({ speed: 1 })]);
});
after(async () => {
  assert.equal(await simA.stop(), 0);
  assert.equal(await simB.stop(), 0);
});

const hostsAB = () => [{ name: 'a', url: simA.url }, { name: 'b', url: simB.url }];
const TIERS = [{ name: 'executive', weight: 8 }, { name: 'directors', weight: 4 }];
const bystander = { name: BYSTANDER, tier: 'directors', placements: { b: 1 } };

// Each case: the config before and after, whether M survives, and how the
// reload is asked for.
const cases = [
  {
    name: 'remove a model',
    before: () => config({ hosts: hostsAB(), tiers: TIERS, models: [{ name: M, tier: 'executive', placements: { a: 3 } }, bystander] }),
    after: () => config({ hosts: hostsAB(), tiers: TIERS, models: [bystander] }),
    removed: true,
    reload: 'SIGHUP',
  },
  {
    name: 'remove one placement of a two-placement model',
    before: () => config({ hosts: hostsAB(), tiers: TIERS, models: [{ name: M, tier: 'executive', placements: { a: 2, b: 1 } }, bystander] }),
    after: () => config({ hosts: hostsAB(), tiers: TIERS, models: [{ name: M, tier: 'executive', placements: { a: 2 } }, bystander] }),
    removed: false,
    reload: 'POST /admin/reload',
  },
  {
    // The first host goes: every later host's index shifts.
    name: 'remove a host',
    before: () => config({ hosts: hostsAB(), tiers: TIERS, models: [{ name: M, tier: 'executive', placements: { a: 2, b: 1 } }, bystander] }),
    after: () => config({ hosts: [{ name: 'b', url: simB.url }], tiers: TIERS, models: [{ name: M, tier: 'executive', placements: { b: 1 } }, bystander] }),
    removed: false,
    reload: 'SIGHUP',
  },
  {
    // The first tier goes with its model: the other tier's index shifts.
    name: 'remove a tier with its models',
    before: () => config({ hosts: hostsAB(), tiers: TIERS, models: [{ name: M, tier: 'executive', placements: { a: 3 } }, bystander] }),
    after: () => config({ hosts: hostsAB(), tiers: [TIERS[1]], models: [bystander] }),
    removed: true,
    reload: 'POST /admin/reload',
  },
];

// Waits for a state end as soon as it is reached; the ceilings keep over
// 10x what the test machine measures with nothing else running (the
// warm-up in settle(): the sim's load_time, 2-3.5 s at speed 1).
const waitFor = async (what, pred, ms = 30000 * SLOW) => {
  const t0 = Date.now();
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
};

/* Every placed model resident on its host (as harmonicd's probes see it),
 * harmonicd's warm-ups done, both sims idle. */
async function settle(hd) {
  await waitFor('models warm and everything idle', async () => {
    const st = await getJson(hd.url + '/stats');
    const warm = st.models.every((m) => m.placements.every((p) =>
      st.hosts.find((h) => h.name === p.host).loaded.some((n) => n === m.name || n === `${m.name}:latest`)));
    if (!warm || st.in_flight !== 0 || st.queued !== 0 || st.live_requests !== 0) return false;
    const [a, b] = await Promise.all([getJson(simA.url + '/_sim/stats'), getJson(simB.url + '/_sim/stats')]);
    return a.totals.in_flight === 0 && b.totals.in_flight === 0 && a.totals.queued === 0 && b.totals.queued === 0;
  }, 60000 * SLOW);
}

/* A streaming generate read to its end; `first` resolves at its first line. */
function startStream(url) {
  let gotFirst;
  const first = new Promise((resolve) => { gotFirst = resolve; });
  const done = (async () => {
    const out = { kind: 'streaming', status: null, text: '', lines: [], bad: [], endedAt: 0 };
    try {
      const res = await postJson(url + '/api/generate', { model: M, prompt: 'tell me', options: { num_predict: STREAM_TOKENS } }, {},
        AbortSignal.timeout(30000 * SLOW));
      out.status = res.status;
      for await (const l of lines(res)) {
        out.text += l + '\n';
        if (l === '') continue;
        try { out.lines.push(JSON.parse(l)); } catch { out.bad.push(l); }
        gotFirst(true);
      }
    } catch (e) {
      out.error = String(e);
    }
    out.endedAt = Date.now();
    gotFirst(false);
    return out;
  })();
  return { first, done };
}

/* A non-streaming generate: {status, body, json}. */
async function queuedRequest(url) {
  const out = { kind: 'queued', status: null, body: '' };
  try {
    const res = await postJson(url + '/api/generate', { model: M, prompt: 'hi', stream: false, options: { num_predict: SHORT_TOKENS } }, {},
      AbortSignal.timeout(30000 * SLOW));
    out.status = res.status;
    out.body = await res.text();
  } catch (e) {
    out.error = String(e);
  }
  return out;
}

/* Headers and half the body now; finish() sends the rest and reads the answer. */
async function midBody(port) {
  const body = Buffer.from(JSON.stringify({ model: M, prompt: 'hi', stream: false, options: { num_predict: SHORT_TOKENS } }));
  const c = await Conn.open(port);
  c.write(`POST /api/generate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
  c.write(body.subarray(0, body.length >> 1));
  return {
    async finish() {
      c.write(body.subarray(body.length >> 1));
      const r = await c.response(30000 * SLOW);
      c.destroy();
      return { kind: 'mid-body', status: r.status, body: r.body ?? '', headers: r.headers, closed: r.closed, timeout: r.timeout };
    },
  };
}

const describeResult = (r) => `${r.kind}: ${r.status ?? (r.error ?? (r.timeout ? 'no answer' : 'closed without an answer'))} ${(r.body ?? r.text ?? '').slice(0, 160)}`;

function ollamaError(r) {
  let j;
  try { j = JSON.parse(r.body); } catch { assert.fail(`${describeResult(r)}: not JSON`); }
  assert.equal(typeof j.error, 'string', `${describeResult(r)}: Ollama's {"error": string}`);
  return j.error;
}

describe('reload while requests are mid-body, queued and streaming', () => {
  for (const c of cases) {
    test(c.name, async (t) => {
      const hd = await startDaemon(c.before());
      try {
        await settle(hd);
        const s0 = await getJson(hd.url + '/stats');

        // 3 streams take every slot of M and are receiving chunks.
        const streams = [startStream(hd.url), startStream(hd.url), startStream(hd.url)];
        assert.deepEqual(await Promise.all(streams.map((s) => s.first)), [true, true, true], 'the three streams started');
        const streamingAt = Date.now();
        // 3 more wait for a slot.
        const queued = [queuedRequest(hd.url), queuedRequest(hd.url), queuedRequest(hd.url)];
        await waitFor('3 queued', async () => (await getJson(hd.url + '/stats')).models.find((m) => m.name === M).queued === 3);
        // 3 are still sending their body.
        const mids = await Promise.all([midBody(hd.port), midBody(hd.port), midBody(hd.port)]);
        await waitFor('9 live requests', async () => (await getJson(hd.url + '/stats')).live_requests === 9);

        fs.writeFileSync(hd.config, c.after().replaceAll('@PORT@', String(hd.port)));
        if (c.reload === 'SIGHUP') {
          hd.proc.kill('SIGHUP');
        } else {
          const r = await fetch(hd.url + '/admin/reload', { method: 'POST', headers: { authorization: 'Bearer admin-key' } });
          assert.equal(r.status, 200, `reload: ${await r.text()}`);
        }
        await waitFor('the reload', async () => (await getJson(hd.url + '/stats')).reload.reloads === 1);
        const reloadedAt = Date.now();
        assert.equal((await getJson(hd.url + '/stats')).reload.failures, 0, 'the new config was accepted');

        const midResults = await Promise.all(mids.map((m) => m.finish()));
        const queuedResults = await Promise.all(queued);
        const streamResults = await Promise.all(streams.map((s) => s.done));
        const all = [...midResults, ...queuedResults, ...streamResults];
        t.diagnostic(all.map((r) => `${r.kind} ${r.status}`).join(', '));
        t.diagnostic(`reload ${reloadedAt - streamingAt} ms after the streams were flowing; they ended ` +
          `${streamResults.map((r) => r.endedAt - reloadedAt).join(', ')} ms after it`);

        await sleep(100);
        assert.equal(hd.proc.signalCode, null, `harmonicd was killed by ${hd.proc.signalCode}; ${all.map(describeResult).join(' | ')}`);
        assert.equal(hd.proc.exitCode, null, `harmonicd exited ${hd.proc.exitCode}`);

        // The streams were really mid-flight at the reload (test precondition):
        // here the reload comes 30-60 ms after they flow and they go on for
        // another 2.0-3.3 s, over 30x the time the steps in between take.
        for (const r of streamResults) assert.ok(r.endedAt > reloadedAt, 'a stream ended before the reload: make it longer');

        for (const r of midResults) {
          if (c.removed) {
            assert.equal(r.status, 404, describeResult(r));
            assert.match(ollamaError(r), /not found/, describeResult(r));
          } else {
            assert.equal(r.status, 200, describeResult(r));
            assert.equal(JSON.parse(r.body).done, true, describeResult(r));
          }
        }
        for (const r of queuedResults) {
          if (c.removed) {
            assert.equal(r.status, 404, describeResult(r));
            assert.match(ollamaError(r), /not found|removed/, describeResult(r));
          } else {
            assert.equal(r.status, 200, describeResult(r));
            assert.equal(JSON.parse(r.body).done, true, describeResult(r));
          }
        }
        for (const r of streamResults) {
          // Finished normally, or ended cleanly with one error line.
          assert.equal(r.status, 200, describeResult(r));
          assert.equal(r.error, undefined, `${describeResult(r)}: the stream broke`);
          assert.deepEqual(r.bad, [], 'every line is JSON');
          const last = r.lines.at(-1);
          assert.ok(last && (last.done === true || typeof last.error === 'string'), `stream ended with ${JSON.stringify(last)}`);
          if (last.done) assert.equal(last.eval_count, STREAM_TOKENS);
        }

        // The bystander is served by the new configuration.
        const by = await postJson(hd.url + '/api/generate', { model: BYSTANDER, prompt: 'hi', stream: false, options: { num_predict: 3 } });
        assert.equal(by.status, 200);
        assert.equal((await by.json()).done, true);
        // And M is gone or served, as the new configuration says.
        const again = await postJson(hd.url + '/api/generate', { model: M, prompt: 'hi', stream: false, options: { num_predict: 3 } });
        assert.equal(again.status, c.removed ? 404 : 200, `${M} after the reload`);
        await again.text();

        // Everything settles and adds up.
        let s;
        await waitFor('no live request', async () => { s = await getJson(hd.url + '/stats'); return s.live_requests === 0; });
        const tot = s.totals;
        assert.equal(tot.requests - s0.totals.requests, 11, '9 racing requests + 2 after the reload');
        assert.equal(tot.completed + tot.failed + tot.rejected + tot.cancelled, tot.requests,
          `totals add up: ${JSON.stringify(tot)}`);
        assert.equal(s.in_flight, 0, 'in_flight');
        assert.equal(s.queued, 0, 'queued');
        for (const h of s.hosts) assert.equal(h.in_flight, 0, `host ${h.name} in_flight`);
        for (const tr of s.tiers) {
          assert.equal(tr.queued, 0, `tier ${tr.name} queued`);
          assert.equal(tr.in_flight, 0, `tier ${tr.name} in_flight`);
        }
        for (const m of s.models) {
          assert.equal(m.queued, 0, `model ${m.name} queued`);
          for (const p of m.placements) assert.equal(p.in_flight, 0, `${m.name} on ${p.host}: in_flight`);
        }
        // No transfer left behind on the backends.
        await waitFor('sims idle', async () => {
          const [a, b] = await Promise.all([getJson(simA.url + '/_sim/stats'), getJson(simB.url + '/_sim/stats')]);
          return a.totals.in_flight === 0 && b.totals.in_flight === 0;
        }, 30000 * SLOW);
        assert.equal(await hd.stop(), 0, 'harmonicd exits 0');
      } finally {
        await hd.stop();
      }
    });
  }
});
