// Prompt-cache affinity routing (SPEC 5, docs/routing.md) through the real
// harmonicd in front of two harmonic-sim hosts: a conversation's turns stay
// on one replica, least_loaded spreads them as before, a full affine
// replica makes a turn spill after affinity_wait (counted), a burst sharing
// one system prompt fills both replicas, and a reload keeps the record.
// Nothing here is timed: waits are ceilings that end when the state is reached.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startSim, startDaemon, daemonConfig, generate, getJson, sleep } from './lib/harness.mjs';

const SPEED = 20;
const WAIT_MS = 30000;
const M = 'qwen3:8b';
const SYSTEM = 'You are a careful coding agent. '.repeat(40);

const waitFor = async (what, pred, ms = WAIT_MS) => {
  const t0 = Date.now();
  for (;;) {
    if (await pred()) return;
    if (Date.now() - t0 > ms) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
};
let hdUrl;
const placements = async (hd, model = M) => (await getJson(hd.url + '/stats')).models.find((m) => m.name === model).placements;
const byHost = (pl, host) => pl.find((p) => p.host === host);

/** One conversation: its messages grow by the assistant's answer and a new user message each turn. */
function conversation(id, system = SYSTEM) {
  const messages = [{ role: 'system', content: system }];
  return {
    async turn(hd, { headers = {}, predict = 8 } = {}) {
      messages.push({ role: 'user', content: `conversation ${id}: step ${messages.length}` });
      const r = await generate(hd.url, { model: M, messages, stream: false, options: { num_predict: predict } },
        { path: '/api/chat', headers });
      assert.equal(r.status, 200, r.text);
      messages.push({ role: 'assistant', content: r.final.message.content });
      return r.headers.get('x-harmonic-host');
    },
    /** A long request that continues this conversation (same prefix), aborted by the caller. */
    fork(hd, extra) {
      const ac = new AbortController();
      const body = { model: M, messages: [...messages, { role: 'user', content: `fork ${extra}` }], options: { num_predict: 100000 } };
      const done = generate(hd.url, body, { path: '/api/chat', signal: ac.signal }).catch(() => null);
      return { abort: async () => { ac.abort(); await done; } };
    },
  };
}

/** A long request unrelated to any conversation, aborted by the caller. */
function filler(hd, n) {
  return conversation(`filler-${n}-${Math.random()}`, `filler system ${n} ${Math.random()}`).fork(hd, n);
}

const inFlight = async (hd, host) => byHost(await placements(hd), host).in_flight;

describe('prompt-cache affinity', () => {
  let sparky, arcy;
  const daemons = [];
  const start = async ({ routing = 'affinity', parallel = 2, wait = 0.3, extraModels = [] } = {}) => {
    const hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'sparky', url: sparky.url }, { name: 'arcy', url: arcy.url }],
      models: [{ name: M, tier: 'directors', placements: [{ host: 'sparky', parallel }, { host: 'arcy', parallel }] },
        ...extraModels],
      extra: `routing = "${routing}";\naffinity_wait = ${wait};\nadmin_keys_file = "${keysFile}";`,
    }));
    daemons.push(hd);
    hdUrl = hd.url;
    // Warm-ups hold a slot like requests: wait until they are done.
    await waitFor('warm-up', async () => (await placements(hd)).every((p) => p.in_flight === 0) &&
      (await getJson(sparky.url + '/_sim/stats')).models[M]?.loaded && (await getJson(arcy.url + '/_sim/stats')).models[M]?.loaded);
    return hd;
  };
  let keysFile;

  before(async () => {
    sparky = await startSim({ speed: SPEED });
    arcy = await startSim({ speed: SPEED });
    keysFile = `${fs.mkdtempSync('/tmp/harmonic-aff-')}/admin.keys`;
    fs.writeFileSync(keysFile, 'admin-key\n');
  });
  after(async () => {
    for (const hd of daemons) assert.equal(await hd.stop(), 0);
    assert.equal(await sparky.stop(), 0);
    assert.equal(await arcy.stop(), 0);
  });

  test('both replicas idle: the 6 turns of one conversation land on one replica', async (t) => {
    const hd = await start();
    const c = conversation('idle');
    const hosts = [], cached = [];
    const sims = { sparky, arcy };
    const simCached = async () => Object.fromEntries(await Promise.all(Object.entries(sims).map(async ([n, sim]) =>
      [n, (await getJson(sim.url + '/_sim/stats')).models[M].prompt_tokens_cached])));
    for (let i = 0; i < 6; i++) {
      const before = await simCached();
      const host = await c.turn(hd);
      hosts.push(host);
      cached.push((await simCached())[host] - before[host]);
    }
    t.diagnostic(`hosts: ${hosts.join(' ')}; prompt tokens the sim found cached per turn: ${cached.join(' ')}`);
    assert.ok(hosts.every((h) => h === hosts[0] && (h === 'sparky' || h === 'arcy')), hosts.join(' '));
    // Ground truth from the backend: turns 2-6 continue the cached prefix
    // (at least the system prompt, about 320 tokens, and the earlier turns).
    for (let i = 1; i < 6; i++) assert.ok(cached[i] > 300 && cached[i] > cached[i - 1], `turn ${i + 1}: ${cached.join(' ')}`);
    const p = byHost(await placements(hd), hosts[0]);
    assert.equal(p.affinity.hits, 5, 'turns 2-6 placed by affinity');
    assert.equal(p.affinity.spills, 0);
    const s = await getJson(hd.url + '/stats');
    assert.equal(s.affinity.routing, 'affinity');
    assert.ok(s.affinity.entries >= 7 && s.affinity.bytes <= s.affinity.cap_bytes, JSON.stringify(s.affinity));
    assert.equal(typeof p.prompt_cached_tokens, 'number');
    assert.equal(typeof p.prompt_eval_ms, 'number');
    const metrics = await (await fetch(hd.url + '/metrics')).text();
    assert.match(metrics, new RegExp(`harmonic_affinity_total\\{[^}]*host="${hosts[0]}"[^}]*result="hit"\\} 5\\n`));
    assert.match(metrics, /\nharmonic_affinity_entries \d+\n/);
    assert.match(metrics, /\nharmonic_prompt_cached_tokens_total\{/);
  });

  // One replica carries a long request when each turn arrives: least_loaded
  // sends the turn to the other one, affinity keeps it with its history.
  for (const routing of ['affinity', 'least_loaded']) {
    test(`${routing}: turns while the conversation's replica carries another request`, async (t) => {
      const hd = await start({ routing });
      const c = conversation(`busy-${routing}`);
      const hosts = [await c.turn(hd)];
      for (let i = 1; i < 6; i++) {
        const f = filler(hd, i);
        await waitFor('the filler on a replica', async () => (await placements(hd)).some((p) => p.in_flight === 1));
        const fillerHost = (await placements(hd)).find((p) => p.in_flight === 1).host;
        hosts.push(await c.turn(hd));
        t.diagnostic(`turn ${i + 1}: filler on ${fillerHost}, turn on ${hosts.at(-1)}`);
        await f.abort();
        await waitFor('idle', async () => (await placements(hd)).every((p) => p.in_flight === 0));
      }
      const distinct = new Set(hosts);
      if (routing === 'affinity') {
        assert.equal(distinct.size, 1, hosts.join(' '));
      } else {
        assert.equal(distinct.size, 2, `least_loaded spreads: ${hosts.join(' ')}`);
        const pl = await placements(hd);
        assert.equal(pl[0].affinity.hits + pl[1].affinity.hits, 0);
      }
    });
  }

  test('the affine replica full beyond affinity_wait: the turn spills, counted', async (t) => {
    const hd = await start({ wait: 0.3 });
    const c = conversation('spill');
    const home = await c.turn(hd);
    const other = home === 'sparky' ? 'arcy' : 'sparky';
    // Two forks of the conversation fill its replica (affinity keeps them
    // there), an unrelated request keeps the other one busy but not full.
    const forks = [c.fork(hd, 1)];
    await waitFor('fork 1', async () => (await inFlight(hd, home)) === 1);
    forks.push(c.fork(hd, 2));
    await waitFor('fork 2', async () => (await inFlight(hd, home)) === 2);
    forks.push(filler(hd, 'x'));
    await waitFor('filler', async () => (await inFlight(hd, other)) === 1);
    const before = byHost(await placements(hd), home).affinity.spills;
    const t0 = Date.now();
    const host = await c.turn(hd);
    t.diagnostic(`turn 2 answered by ${host} after ${Date.now() - t0} ms (affinity_wait 300 ms)`);
    assert.equal(host, other);
    assert.equal(byHost(await placements(hd), home).affinity.spills, before + 1);
    for (const f of forks) await f.abort();
  });

  test('a burst of 40 requests sharing one system prompt fills both replicas to their slots', async () => {
    const hd = await start({ parallel: 4 });
    const burst = Array.from({ length: 40 }, (_, i) => conversation(`burst-${i}`).turn(hd, { predict: 30 }));
    const hosts = await Promise.all(burst);
    const pl = await placements(hd);
    assert.equal(byHost(pl, 'sparky').max_in_flight, 4);
    assert.equal(byHost(pl, 'arcy').max_in_flight, 4);
    assert.ok(hosts.includes('sparky') && hosts.includes('arcy'));
    for (const sim of [sparky, arcy]) assert.ok((await getJson(sim.url + '/_sim/stats')).models[M].max_in_flight <= 4);
  });

  test('a reload keeps the record of placements that remain', async (t) => {
    const hd = await start();
    // The conversation starts while sparky is busy: it lives on arcy, the
    // replica least_loaded would not pick when both are idle.
    const f = filler(hd, 'r');
    await waitFor('filler', async () => (await placements(hd)).some((p) => p.in_flight === 1));
    const busy = (await placements(hd)).find((p) => p.in_flight === 1).host;
    const c = conversation('reload');
    const home = await c.turn(hd);
    assert.notEqual(home, busy);
    await f.abort();
    await waitFor('idle', async () => (await placements(hd)).every((p) => p.in_flight === 0));
    const r = await fetch(hd.url + '/admin/reload', { method: 'POST', headers: { authorization: 'Bearer admin-key' } });
    assert.equal(r.status, 200, await r.text());
    await waitFor('the reload', async () => (await getJson(hd.url + '/stats')).reload.reloads === 1);
    const next = await c.turn(hd);
    t.diagnostic(`turn 1 on ${home} (filler on ${busy}); after the reload turn 2 on ${next}`);
    assert.equal(next, home);
    assert.equal(byHost(await placements(hd), home).affinity.hits, 1);
  });
});
