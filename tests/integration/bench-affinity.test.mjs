// scripts/bench-affinity.sh end to end with a tiny workload (2 agents x 2
// turns): it must play it under both policies without an error, print the
// side-by-side table and a verdict on the four targets of issue 17, and
// write its JSON summary and SVG plot.  The figures are for the script's
// own runs (docs/performance.md), not asserted here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BUILD, ROOT, run, tmpDir } from './lib/harness.mjs';

test('bench-affinity.sh plays both policies and prints the verdict', { timeout: 300000 }, async () => {
  const dir = tmpDir('harmonic-bench-aff-');
  const json = path.join(dir, 'out.json'), svg = path.join(dir, 'out.svg');
  const r = await run(path.join(ROOT, 'scripts/bench-affinity.sh'),
    ['--agents', '2', '--turns', '2', '--speed', '10', '--json', json, '--svg', svg, '--build', BUILD]);
  assert.ok(r.code === 0 || r.code === 1, `exit ${r.code}: ${r.stderr}`);
  const out = r.stdout;
  assert.match(out, /^requests \(errors\)\s+4 \(0\)\s+4 \(0\)/m, out);
  assert.match(out, /^prompt tokens evaluated \(sims\)\s+\d+\s+\d+/m);
  assert.match(out, /^affinity hits\s+0\s+2\s*$/m, out);   // turn 2 of each conversation
  const verdict = out.split(/^== targets \(issue 17\).*$/m)[1];
  assert.ok(verdict, out);
  const judged = verdict.trim().split('\n').filter((l) => /x\s+[<>]= [0-9.]+x (met|NOT MET)$/.test(l));
  assert.equal(judged.length, 4, verdict);
  assert.match(verdict, /^(all targets met|NOT all targets met)$/m);
  assert.equal(r.code === 0, /^all targets met$/m.test(verdict));
  const summary = JSON.parse(fs.readFileSync(json, 'utf8'));
  assert.equal(summary.affinity.requests, 4);
  assert.equal(Object.keys(summary.verdict).length, 4);
  assert.match(fs.readFileSync(svg, 'utf8'), /^<\?xml[\s\S]*<svg [\s\S]*<\/svg>\n$/);
});
