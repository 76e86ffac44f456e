// `make install` into a temporary DESTDIR: binaries, configuration, units and
// man pages land where Debian puts them (PREFIX=/usr), the units point at
// the installed daemon, the installed default configuration is valid, a
// second install keeps an edited configuration, and `make uninstall`
// removes everything but the configuration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BUILD, ROOT, run, tmpDir } from './lib/harness.mjs';

// BUILD keeps the nested make on the tree under test (build/ or build-asan/;
// MAKEFLAGS from a `make check-asan` run carries SANITIZE along).
const make = (target, vars) => run('make', ['-s', target, `BUILD=${path.relative(ROOT, BUILD)}`,
  ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)], { cwd: ROOT });

const mode = (file) => fs.statSync(file).mode & 0o7777;

const FILES = {
  'usr/sbin/harmonicd': 0o755,
  'usr/bin/harmonicctl': 0o755,
  'usr/bin/harmonic-sim': 0o755,
  'etc/harmonicd/harmonicd.conf': 0o644,
  'usr/share/harmonicd/examples/dgx-spark.conf': 0o644,
  'usr/share/harmonicd/examples/evo-x2.conf': 0o644,
  'usr/share/harmonicd/sim/dgx-spark.conf': 0o644,
  'usr/share/harmonicd/sim/evo-x2.conf': 0o644,
  'usr/lib/systemd/system/harmonicd.service': 0o644,
  'usr/lib/systemd/system/harmonicd.socket': 0o644,
  'usr/share/man/man8/harmonicd.8': 0o644,
  'usr/share/man/man5/harmonicd.conf.5': 0o644,
  'usr/share/man/man1/harmonicctl.1': 0o644,
  'usr/share/man/man1/harmonic-sim.1': 0o644,
};

test('make install PREFIX=/usr: the Debian layout', async () => {
  const dest = tmpDir('harmonic-install-');
  const r = await make('install', { DESTDIR: dest, PREFIX: '/usr' });
  assert.equal(r.code, 0, `make install exited ${r.code}\n${r.stderr}`);

  for (const [rel, want] of Object.entries(FILES)) {
    const file = path.join(dest, rel);
    assert.ok(fs.existsSync(file), `${rel} installed`);
    assert.equal(mode(file).toString(8), want.toString(8), `${rel} mode`);
  }
  for (const u of ['harmonicd.service', 'harmonicd.socket']) {
    const text = fs.readFileSync(path.join(dest, 'usr/lib/systemd/system', u), 'utf8');
    assert.doesNotMatch(text, /@[A-Z_]+@/, `${u}: placeholders substituted`);
  }
  const svc = fs.readFileSync(path.join(dest, 'usr/lib/systemd/system/harmonicd.service'), 'utf8');
  assert.match(svc, /^ExecStart=\/usr\/sbin\/harmonicd -c \/etc\/harmonicd\/harmonicd\.conf$/m);

  // The installed daemon accepts the installed default configuration.
  const chk = await run(path.join(dest, 'usr/sbin/harmonicd'),
    ['--check', '-c', path.join(dest, 'etc/harmonicd/harmonicd.conf')]);
  assert.equal(chk.code, 0, `harmonicd --check on the installed config: ${chk.stderr}`);
  assert.match(chk.stdout, /configuration OK/);

  // An upgrade (a second install) keeps the administrator's configuration.
  const conf = path.join(dest, 'etc/harmonicd/harmonicd.conf');
  fs.appendFileSync(conf, '# edited by the administrator\n');
  const again = await make('install', { DESTDIR: dest, PREFIX: '/usr' });
  assert.equal(again.code, 0, again.stderr);
  assert.match(fs.readFileSync(conf, 'utf8'), /# edited by the administrator\n$/);

  // uninstall removes programs, data, units and man pages; the
  // configuration stays, as a Debian remove (not purge) leaves it.
  const un = await make('uninstall', { DESTDIR: dest, PREFIX: '/usr' });
  assert.equal(un.code, 0, un.stderr);
  for (const rel of Object.keys(FILES)) {
    if (rel.startsWith('etc/')) assert.ok(fs.existsSync(path.join(dest, rel)), `${rel} kept`);
    else assert.ok(!fs.existsSync(path.join(dest, rel)), `${rel} removed`);
  }
});

test('make install with the default PREFIX=/usr/local', async () => {
  const dest = tmpDir('harmonic-install-');
  const r = await make('install', { DESTDIR: dest });
  assert.equal(r.code, 0, `make install exited ${r.code}\n${r.stderr}`);
  for (const rel of ['usr/local/sbin/harmonicd', 'usr/local/bin/harmonicctl', 'etc/harmonicd/harmonicd.conf',
    'usr/local/lib/systemd/system/harmonicd.socket', 'usr/local/share/man/man8/harmonicd.8']) {
    assert.ok(fs.existsSync(path.join(dest, rel)), `${rel} installed`);
  }
  const svc = fs.readFileSync(path.join(dest, 'usr/local/lib/systemd/system/harmonicd.service'), 'utf8');
  assert.match(svc, /^ExecStart=\/usr\/local\/sbin\/harmonicd /m);
});
