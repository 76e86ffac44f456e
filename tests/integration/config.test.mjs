// Black-box tests of configuration checking: `harmonicd --check` and
// `harmonicctl check` on the shipped examples, the default config, the good
// and broken corpora under tests/config/, and the command line's exit codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, ROOT, run, tmpDir, writeTemp } from './lib/harness.mjs';

const EX_USAGE = 64;
const EX_CONFIG = 78;
const opts = { cwd: ROOT };
const confs = (dir) => fs.readdirSync(path.join(ROOT, dir)).filter((f) => f.endsWith('.conf')).sort()
  .map((f) => path.join(dir, f));

// The seed report's figures (SPEC section 3).
const EXAMPLES = {
  'etc/examples/dgx-spark.conf': { executive: '14.6', directors: '33.6', specialists: '24.9', total: '73.1' },
  'etc/examples/evo-x2.conf': { executive: '12.2', directors: '27.6', specialists: '12.5', total: '52.3' },
};

function assertBudget(r, figures, what) {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
  for (const [tier, gb] of Object.entries(figures)) {
    assert.match(r.stdout, new RegExp(`^  ${tier}\\s.*\\s${gb.replace('.', '\\.')} GB$`, 'm'), `${what}: ${tier} ${gb} GB`);
  }
  assert.match(r.stdout, /configuration OK\n$/, what);
}

for (const [file, figures] of Object.entries(EXAMPLES)) {
  test(`harmonicd --check -c ${file} prints the report's figures`, async () => {
    assertBudget(await run(BIN.harmonicd, ['--check', '-c', file], opts), figures, file);
  });
  test(`harmonicctl check ${file} prints the same`, async () => {
    const d = await run(BIN.harmonicd, ['--check', '-c', file], opts);
    const c = await run(BIN.harmonicctl, ['check', file], opts);
    assertBudget(c, figures, file);
    assert.equal(c.stdout, d.stdout);
  });
}

test('the installed default etc/harmonicd.conf passes --check within 128 GB', async () => {
  const r = await run(BIN.harmonicd, ['--check', '-c', 'etc/harmonicd.conf'], opts);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '', 'no warnings either');
  assert.match(r.stdout, /host \S+ \(http:\/\/127\.0\.0\.1:11434\): 128\.0 GB memory/);
  assert.match(r.stdout, /configuration OK\n$/);
});

test('the config example in README.md passes --check', async () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.includes('hosts = ('));
  assert.ok(block, 'README.md has a config example');
  const r = await run(BIN.harmonicd, ['--check', '-c', writeTemp('readme.conf', block)], opts);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /configuration OK\n$/);
});

for (const file of confs('tests/config/good')) {
  test(`good config ${file} passes`, async () => {
    const r = await run(BIN.harmonicd, ['--check', '-c', file], opts);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /configuration OK\n$/);
  });
}

const broken = confs('tests/config/broken');
test('the broken corpus holds at least 30 configs', () => {
  assert.ok(broken.length >= 30, `${broken.length} files`);
});

for (const file of broken) {
  test(`broken config ${path.basename(file)} exits 78 naming file and line`, async () => {
    const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
    const line = Number(/^# expect-line: (\d+)$/m.exec(text)[1]);
    const expects = [...text.matchAll(/^# expect: (.*)$/gm)].map((m) => m[1]);
    const r = await run(BIN.harmonicd, ['--check', '-c', file], opts);
    assert.equal(r.code, EX_CONFIG, `exit ${r.code}\n${r.stderr}`);
    assert.equal(r.stdout, '', 'no budget table for a broken config');
    const onLine = r.stderr.split('\n').filter((l) => l.startsWith(`${file}:${line}: `));
    assert.ok(onLine.some((l) => l.includes(expects[0])), `"${file}:${line}: ...${expects[0]}" in\n${r.stderr}`);
    for (const e of expects) assert.ok(r.stderr.includes(e), `"${e}" in\n${r.stderr}`);
  });
}

test('harmonicctl check on a broken config exits 78 too', async () => {
  const file = 'tests/config/broken/dangling-host.conf';
  const r = await run(BIN.harmonicctl, ['check', file], opts);
  assert.equal(r.code, EX_CONFIG);
  assert.match(r.stderr, /dangling-host\.conf:9: .*host "arcy" is not defined in hosts/);
});

test('a missing config file exits 78 naming the file', async () => {
  const r = await run(BIN.harmonicd, ['--check', '-c', '/nonexistent/harmonicd.conf'], opts);
  assert.equal(r.code, EX_CONFIG);
  assert.match(r.stderr, /^\/nonexistent\/harmonicd\.conf:0: cannot read the configuration file: No such file or directory$/m);
});

test('an unreadable config file exits 78', async () => {
  const dir = tmpDir();
  const r = await run(BIN.harmonicd, ['--check', '-c', dir], opts);   // a directory cannot be read as a file
  assert.equal(r.code, EX_CONFIG);
  assert.match(r.stderr, /cannot read the configuration file: Is a directory/);
  if (process.getuid?.() !== 0) {   // root reads mode 000 files
    const file = writeTemp('harmonicd.conf', fs.readFileSync(path.join(ROOT, 'etc/examples/evo-x2.conf')));
    fs.chmodSync(file, 0);
    const p = await run(BIN.harmonicd, ['--check', '-c', file], opts);
    assert.equal(p.code, EX_CONFIG);
    assert.match(p.stderr, /Permission denied/);
  }
});

test('HARMONICD_CONFIG names the config when -c is absent', async () => {
  const env = { ...process.env, HARMONICD_CONFIG: path.join(ROOT, 'etc/examples/evo-x2.conf') };
  const r = await run(BIN.harmonicd, ['--check'], { ...opts, env });
  assertBudget(r, EXAMPLES['etc/examples/evo-x2.conf'], 'HARMONICD_CONFIG');
  // -c wins over the environment.
  const c = await run(BIN.harmonicd, ['--check', '-c', 'etc/examples/dgx-spark.conf'], { ...opts, env });
  assertBudget(c, EXAMPLES['etc/examples/dgx-spark.conf'], '-c over HARMONICD_CONFIG');
  const bad = { ...process.env, HARMONICD_CONFIG: path.join(ROOT, 'tests/config/broken/unknown-top-level.conf') };
  const b = await run(BIN.harmonicd, ['--check'], { ...opts, env: bad });
  assert.equal(b.code, EX_CONFIG);
  assert.match(b.stderr, /unknown-top-level\.conf:4: queue_timout: unknown setting/);
});

test('-V and --version print a version', async () => {
  for (const [bin, flag] of [[BIN.harmonicd, '-V'], [BIN.harmonicd, '--version'], [BIN.harmonicctl, '-V']]) {
    const r = await run(bin, [flag], opts);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^harmonic(d|ctl) \d+\.\d+\.\d+/);
  }
});

test('usage errors exit 64', async () => {
  for (const [bin, args] of [
    [BIN.harmonicd, ['--no-such-option']],
    [BIN.harmonicd, ['--check', '-c']],
    [BIN.harmonicd, ['--check', '-c', 'etc/examples/dgx-spark.conf', 'stray']],
    [BIN.harmonicctl, []],
    [BIN.harmonicctl, ['check']],
  ]) {
    const r = await run(bin, args, opts);
    assert.equal(r.code, EX_USAGE, `${path.basename(bin)} ${args.join(' ')}: exit ${r.code}`);
    assert.match(r.stderr, /usage: /);
  }
});

test('-h prints usage on stdout and exits 0', async () => {
  const r = await run(BIN.harmonicd, ['-h'], opts);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /usage: harmonicd/);
});
