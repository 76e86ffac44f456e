// scripts/check-layers.sh: passes on the tree, and fails, naming the edge,
// when a copy of the tree gains an upward include, a cycle inside a layer,
// a module in no layer, or a daemon module including a program's header.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, run, tmpDir } from './lib/harness.mjs';

const SCRIPT = path.join(ROOT, 'scripts/check-layers.sh');

/** A copy of what the checker reads: daemon/, include/, docs/architecture.md. */
function copyTree() {
  const dir = tmpDir('layers-');
  for (const d of ['daemon', 'include']) fs.cpSync(path.join(ROOT, d), path.join(dir, d), { recursive: true });
  fs.mkdirSync(path.join(dir, 'docs'));
  fs.copyFileSync(path.join(ROOT, 'docs/architecture.md'), path.join(dir, 'docs/architecture.md'));
  return dir;
}

function addInclude(dir, file, header) {
  const f = path.join(dir, file);
  fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace(/(#include "[^"]+"\n)/, `$1#include "${header}"\n`));
}

test('the tree passes', async () => {
  const r = await run(SCRIPT, []);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /no cycle/);
});

test('an upward include fails with the offending edge', async () => {
  const dir = copyTree();
  addInclude(dir, 'daemon/sched.c', 'upstream.h');
  const r = await run(SCRIPT, [dir]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /daemon\/sched\.c includes upstream\.h: sched \(layer 2\) -> upstream \(layer 3\) points up/);
});

test('a cycle inside one layer fails and is printed', async () => {
  const dir = copyTree();
  addInclude(dir, 'daemon/request.c', 'relay.h'); // relay already includes request
  const r = await run(SCRIPT, [dir]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /include cycle: .*relay.*request|include cycle: .*request.*relay/);
});

test('a module in no layer fails', async () => {
  const dir = copyTree();
  fs.writeFileSync(path.join(dir, 'daemon/newthing.c'), '#include "log.h"\n');
  const r = await run(SCRIPT, [dir]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /module newthing is in no layer/);
});

test('a daemon module may not include a program header', async () => {
  const dir = copyTree();
  addInclude(dir, 'daemon/http.c', 'sim_engine.h');
  const r = await run(SCRIPT, [dir]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /daemon\/http\.c includes sim_engine\.h, which is in no layer/);
});

test('a cycle between a program\'s own files fails', async () => {
  const dir = copyTree();
  addInclude(dir, 'daemon/sim/sim_engine.c', 'sim_wire.h'); // sim_wire.h includes sim_engine.h
  const r = await run(SCRIPT, [dir]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /include cycle: harmonic-sim:/);
});
