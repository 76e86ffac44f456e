// scripts/bench-proxy.sh end to end, briefly (1 s per round): it must run
// all three targets in every case, relay 256 concurrent streams through
// harmonicd and HAProxy without one error, report both proxies' CPU, and
// end with the verdict on issue 4's targets and HAProxy's figures beside
// harmonicd's.  The figures themselves are for the script's own runs on a quiet
// machine (docs/performance.md), not for a test on shared cores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { BUILD, ROOT, run } from './lib/harness.mjs';

test('bench-proxy.sh measures direct, harmonicd and HAProxy and prints the verdict', { timeout: 300000 }, async () => {
  const r = await run(path.join(ROOT, 'scripts/bench-proxy.sh'), ['--seconds', '1', '--build', BUILD]);
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout;

  // (a): a req/s figure for each target, and the ratios.
  for (const t of ['direct', 'harmonicd', 'haproxy']) {
    const m = out.match(new RegExp(`^${t}\\s+([0-9.]+)\\s+[0-9.]+(?:us|ms|s)\\s`, 'm'));
    assert.ok(m && Number(m[1]) > 0, `(a) ${t} req/s in:\n${out}`);
  }
  assert.match(out, /harmonicd\/haproxy [0-9.]+/);
  assert.match(out, /^CPU per request: harmonicd [0-9.]+ us\s+haproxy [0-9.]+ us$/m);

  // (b), in its three shapes: tokens flowed and no stream failed.
  const sections = out.split(/^== \(b\) /m).slice(1);
  assert.equal(sections.length, 3, out);
  assert.match(sections[0], /^realistic: .*16 batches of 16/);
  for (const sec of sections) {
    const rows = [...sec.matchAll(/^(direct|harmonicd|haproxy)\s+(\d+)\s+(-?[0-9.]+)\s+(-?[0-9.]+)\s+(\d+)$/gm)];
    assert.equal(rows.length, 3, sec);
    for (const [, target, tokensPerS, , , errors] of rows) {
      assert.ok(Number(tokensPerS) > 1000, `${target}: ${tokensPerS} tokens/s`);
      assert.equal(Number(errors), 0, `${target}: stream errors`);
    }
    assert.match(sec, /harmonicd CPU [0-9.]+ cores/);
    assert.match(sec, /haproxy CPU [0-9.]+ cores/);
  }

  // The verdict: four targets, each judged.
  const verdict = out.split(/^== targets \(issue 4\)$/m)[1];
  assert.ok(verdict, out);
  const judged = verdict.trim().split('\n').filter((l) => / (met|NOT MET)$/.test(l));
  assert.equal(judged.length, 4, verdict);
  // HAProxy beside harmonicd: reported, not judged.
  const beside = out.split(/^== beside HAProxy .*$/m)[1];
  assert.ok(beside, out);
  assert.match(beside, /^\(b\) added per-token latency p99\s+[0-9.-]+ ms\s+[0-9.-]+ ms$/m);
  assert.match(beside, /^\(b\) CPU\s+[0-9.]+ cores\s+[0-9.]+ cores$/m);
});
