// Connection-level defences: 10k idle clients held, a slowloris client cut
// after header_timeout, a cap on concurrent connections that refuses the
// extra ones cleanly, and the daemon healthy through all of it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startSim, startDaemon, daemonConfig, generate, getJson, sleep } from './lib/harness.mjs';

let sim;
before(async () => { sim = await startSim({ speed: 20 }); });
after(async () => { await sim.stop(); });

const cfg = (extra) => daemonConfig({
  hosts: [{ name: 'a', url: sim.url }], extra,
  models: [{ name: 'executive', tier: 'executive', placements: [{ host: 'a', parallel: 4 }] }],
});
const gen = { model: 'executive', prompt: 'x', options: { num_predict: 3 } };

function connect(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

test('10k idle client connections are held; the daemon keeps serving', { timeout: 300000 }, async (t) => {
  const hd = await startDaemon(cfg('max_connections = 12000;'));
  const socks = [];
  const closed = { n: 0 };
  try {
    for (let i = 0; i < 10000; i += 500) {
      const batch = await Promise.all(Array.from({ length: 500 }, () => connect(hd.port)));
      for (const s of batch) { s.on('close', () => closed.n++); s.on('error', () => {}); socks.push(s); }
    }
    await sleep(500);
    const r = await generate(hd.url, gen);
    assert.equal(r.status, 200);
    assert.equal(r.final.eval_count, 3);
    const st = await getJson(hd.url + '/stats');
    assert.ok(st.connections.open >= 10000, `open connections ${st.connections.open}`);
    assert.equal(closed.n, 0, 'no idle connection dropped');
    assert.match(hd.stderr(), /open file limit/);
  } finally {
    for (const s of socks) s.destroy();
  }
  // The daemon must see all 10k closes: 44-160 ms measured here with
  // nothing else running (the old fixed 300 ms sleep was under 10x that);
  // the wait allows 30 s.
  const t0 = Date.now();
  let open;
  while ((open = (await getJson(hd.url + '/stats')).connections.open) > 2 && Date.now() - t0 < 30000) await sleep(50);
  t.diagnostic(`10k closes seen after ${Date.now() - t0} ms`);
  assert.ok(open <= 2, `${open} connections still open 30 s after the clients closed them`);
  assert.equal(await hd.stop(), 0);
});

// The cut comes after header_timeout (1 s) plus the sweep's granularity:
// 2.0 s measured here with nothing else running.  The lower bound is the
// property (not before header_timeout); the upper one only has to tell
// "cut" from "never cut" and keeps over 10x the idle figure.
const SLOWLORIS_MAX_MS = 25000;
test('a slowloris client is cut after header_timeout while others are served', async (t) => {
  const hd = await startDaemon(cfg('header_timeout = 1.0;'));
  const s = await connect(hd.port);
  let closedAt = 0;
  s.on('close', () => { closedAt = Date.now(); });
  s.on('error', () => {});
  const t0 = Date.now();
  s.write('POST /api/generate HTTP/1.1\r\nHost: x\r\n');
  const drip = setInterval(() => { if (!s.destroyed) s.write('X'); }, 200); // a header that never ends
  const r = await generate(hd.url, gen);
  assert.equal(r.status, 200);
  while (!closedAt && Date.now() - t0 < SLOWLORIS_MAX_MS + 1000) await sleep(50);
  clearInterval(drip);
  assert.ok(closedAt, 'the slow client was disconnected');
  t.diagnostic(`slowloris cut after ${closedAt - t0} ms (header_timeout 1 s)`);
  assert.ok(closedAt - t0 >= 900 && closedAt - t0 < SLOWLORIS_MAX_MS, `cut after ${closedAt - t0} ms`);
  assert.ok((await getJson(hd.url + '/stats')).connections.slow_cut >= 1);
  assert.equal(await hd.stop(), 0);
});

test('past max_connections new clients are refused cleanly; the held ones keep working', async () => {
  const hd = await startDaemon(cfg('max_connections = 20;'));
  const held = [];
  for (let i = 0; i < 19; i++) { const s = await connect(hd.port); s.on('error', () => {}); held.push(s); }
  await sleep(200);
  // One slot left: the 21st connection onwards is closed by the server.
  const extra = [];
  for (let i = 0; i < 5; i++) {
    const s = await connect(hd.port).catch(() => null);
    if (s) { s.on('error', () => {}); extra.push(s); }
  }
  const answers = await Promise.all(extra.map((s) => new Promise((resolve) => {
    let data = '';
    s.on('data', (d) => { data += d; });
    s.on('close', () => resolve(data));
    setTimeout(() => resolve(null), 2000);
  })));
  const refused = answers.filter((a) => a !== null && a.startsWith('HTTP/1.1 503'));
  assert.ok(refused.length >= 4, `refused with 503: ${refused.length} of 5`);
  assert.match(refused[0], /Retry-After: 1/);
  assert.match(refused[0], /too many connections/);
  // A held connection still gets an answer.
  const res = await new Promise((resolve) => {
    let data = '';
    held[0].on('data', (d) => { data += d; if (data.includes('\r\n\r\n')) resolve(data); });
    held[0].write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  });
  assert.match(res, /^HTTP\/1\.1 200/);
  for (const s of held) s.destroy();
  // /stats needs a free connection: until the daemon has seen the held ones
  // close it answers 503 (milliseconds here; up to 30 s allowed).
  const t0 = Date.now();
  let st;
  for (;;) {
    try { st = await getJson(hd.url + '/stats'); break; } catch (e) {
      if (Date.now() - t0 > 30000) throw e;
      await sleep(50);
    }
  }
  assert.ok(st.connections.refused >= 4);
  const r = await generate(hd.url, gen);
  assert.equal(r.status, 200);
  assert.equal(await hd.stop(), 0);
});
