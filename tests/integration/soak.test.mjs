// The chaos soak's short form (scripts/soak.mjs): faults, sim restarts,
// disconnects and reloads under load; every request accounted for once,
// nothing leaked, clean exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ROOT, BUILD, run } from './lib/harness.mjs';

test('chaos soak, short form: zero lost or double-counted requests, zero leaked slots', { timeout: 300000 }, async () => {
  const seconds = BUILD.includes('asan') ? '20' : '25';
  const r = await run(process.execPath, [path.join(ROOT, 'scripts/soak.mjs'), '--seconds', seconds, '--build', BUILD]);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1));
  for (const [name, ok] of Object.entries(summary.checks)) assert.ok(ok, `${name}\n${r.stderr.slice(-2000)}`);
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  // soak.mjs runs on past --seconds until it had this much chaos (a loaded
  // machine restarts sims more slowly): a shortfall is a broken driver.
  assert.ok(summary.faults_injected >= 5 && summary.sim_restarts >= 3 && summary.reloads >= 1, JSON.stringify(summary));
  console.log(`soak: ${summary.sent} requests, ${summary.faults_injected} faults, ${summary.sim_restarts} sim restarts, ` +
    `${summary.reloads} reloads in a ${summary.run_s} s run (${seconds} s asked); settled ${summary.settle_ms} ms after`);
});
