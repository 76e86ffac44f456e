// The systemd units: scripts/check-units.sh renders systemd/harmonicd.service
// and harmonicd.socket against the built daemon, requires a silent
// `systemd-analyze verify` and an exposure of at most 2.0 from
// `systemd-analyze security --offline=true`.  The directives the daemon's
// systemd integration relies on are checked here too, and the man pages
// are rendered with groff when it is installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BUILD, ROOT, run } from './lib/harness.mjs';

const unit = (name) => fs.readFileSync(path.join(ROOT, 'systemd', name), 'utf8');
/** Values of KEY= in a unit's text, in order (comments skipped). */
const values = (text, key) => text.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));

test('check-units.sh: verify is clean and security exposure is at most 2.0', async () => {
  const r = await run(path.join(ROOT, 'scripts/check-units.sh'), [path.relative(ROOT, BUILD)], { cwd: ROOT });
  assert.equal(r.code, 0, `check-units.sh exited ${r.code}\n${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /systemd-analyze verify: clean/);
  const m = r.stdout.match(/security: exposure ([0-9.]+)/);
  assert.ok(m, `no score in:\n${r.stdout}`);
  const score = Number(m[1]);
  assert.ok(score <= 2.0, `exposure ${score} > 2.0`);
  console.log(`# systemd-analyze security exposure: ${score}`);
});

test('harmonicd.service: notify, watchdog, reload, restart, identity', () => {
  const s = unit('harmonicd.service');
  const one = (key) => { const v = values(s, key); assert.equal(v.length, 1, `${key}= set once`); return v[0]; };
  assert.equal(one('Type'), 'notify');
  assert.equal(one('NotifyAccess'), 'main');
  assert.equal(one('ExecStart'), '@SBINDIR@/harmonicd -c /etc/harmonicd/harmonicd.conf');
  assert.deepEqual(values(s, 'ExecReload').at(-1), '/bin/kill -HUP $MAINPID');
  assert.equal(one('WatchdogSec'), '30s');
  assert.equal(one('Restart'), 'on-failure');
  assert.equal(one('DynamicUser'), 'yes');
  assert.equal(one('RuntimeDirectory'), 'harmonicd');
  assert.equal(one('ConfigurationDirectory'), 'harmonicd');
  assert.equal(one('LimitNOFILE'), '65536');
  // SIGTERM drains for shutdown_grace (30 s by default) before exiting.
  const stop = one('TimeoutStopSec');
  assert.match(stop, /^\d+s$/);
  assert.ok(parseInt(stop, 10) > 30, `TimeoutStopSec=${stop} must exceed the 30 s shutdown_grace`);
  // Config errors (78) and usage errors (64) must not loop restarts.
  assert.deepEqual(one('RestartPreventExitStatus').split(/\s+/).sort(), ['64', '78']);
  // The daemon must reach LAN hosts: no IP allow list, no private network.
  assert.equal(values(s, 'IPAddressDeny').length, 0);
  assert.equal(values(s, 'PrivateNetwork').length, 0);
  assert.equal(one('RestrictAddressFamilies'), 'AF_INET AF_INET6 AF_UNIX');
});

test('harmonicd.socket: loopback listener for harmonicd.service', () => {
  const s = unit('harmonicd.socket');
  assert.deepEqual(values(s, 'ListenStream'), ['127.0.0.1:11435']);
  // One service for all connections: the daemon accepts them itself.
  assert.equal(values(s, 'Accept').filter((v) => v !== 'no').length, 0);
  assert.equal(values(s, 'Service').length, 0, 'the socket activates harmonicd.service by name');
  assert.deepEqual(values(s, 'WantedBy'), ['sockets.target']);
});

const groff = spawnSync('groff', ['--version'], { stdio: 'ignore' }).status === 0;
const pages = ['harmonicd.8', 'harmonicd.conf.5', 'harmonicctl.1', 'harmonic-sim.1'];

test('man pages render without warnings', { skip: groff ? false : 'groff is not installed' }, async () => {
  for (const page of pages) {
    const file = path.join(ROOT, 'docs/man', page);
    assert.ok(fs.existsSync(file), `${page} exists`);
    const r = await run('groff', ['-man', '-Tutf8', '-ww', '-z', file], { env: { ...process.env, LC_ALL: 'C.UTF-8' } });
    assert.equal(r.code, 0, `${page}: groff exited ${r.code}`);
    assert.equal(r.stderr, '', `${page}: groff warnings:\n${r.stderr}`);
  }
});
