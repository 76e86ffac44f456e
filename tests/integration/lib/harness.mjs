// Shared helper for integration tests: free ports, temp configs, starting
// and stopping the real programs, waiting for readiness, and an optional
// valgrind wrapper (HARMONIC_VALGRIND=1).  Every process started here is
// killed when the test process exits, so a failing test leaves nothing behind.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BUILD = path.resolve(ROOT, process.env.HARMONIC_BUILD ?? 'build');
export const BIN = {
  harmonicd: path.join(BUILD, 'harmonicd'),
  harmonicctl: path.join(BUILD, 'harmonicctl'),
  sim: path.join(BUILD, 'harmonic-sim'),
};

const live = new Set();
process.on('exit', () => { for (const p of live) try { p.kill('SIGKILL'); } catch { /* gone */ } });

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A fresh temporary directory, removed at exit. */
export function tmpDir(prefix = 'harmonic-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Write text to a new temp file and return its path. */
export function writeTemp(name, text) {
  const file = path.join(tmpDir(), name);
  fs.writeFileSync(file, text);
  return file;
}

/** Run a program to completion; resolves {code, stdout, stderr}. */
export function run(bin, args, opts = {}) {
  return new Promise((resolve) => {
    const p = spawn(bin, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

// Start-up waits.  These are only ceilings for a program that never comes
// up (a crash is noticed at once, see startSim/startDaemon): measured on
// the 2-core test machine with nothing else running, the sim answers after
// 0.1-0.3 s and harmonicd after 0.1-0.6 s, under valgrind 2.2-2.4 s and
// 1.8-4.4 s; the ceilings keep more than 10x over the valgrind figures so
// a loaded machine does not turn a slow start into a failure.
export const START_TIMEOUT_MS = 60000;

/** Poll url until it answers (any status) or timeoutMs passes. */
export async function waitHttp(url, timeoutMs = START_TIMEOUT_MS) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      return r.status;
    } catch (e) { last = e; }
    await sleep(25);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms: ${last}`);
}

/**
 * Start a long-running program.  Returns {proc, stderr(), stop(signal)}.
 * stop() resolves with the exit code; valgrind wrapping is applied when
 * HARMONIC_VALGRIND=1 and opts.valgrind !== false.
 */
export function startProcess(bin, args, opts = {}) {
  let cmd = bin, argv = args;
  if (process.env.HARMONIC_VALGRIND === '1' && opts.valgrind !== false) {
    cmd = 'valgrind';
    argv = ['--quiet', '--error-exitcode=99', '--leak-check=full', '--errors-for-leak-kinds=definite,indirect',
      '--show-leak-kinds=definite,indirect', bin, ...args];
  }
  const proc = spawn(cmd, argv, { env: { ...process.env, ...(opts.env ?? {}) }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let err = '';
  proc.stderr.on('data', (d) => { err += d; if (process.env.HARMONIC_TEST_VERBOSE) process.stderr.write(d); });
  proc.stdout.on('data', (d) => { if (process.env.HARMONIC_TEST_VERBOSE) process.stderr.write(d); });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => { live.delete(proc); resolve(code ?? 128 + (os.constants.signals[signal] ?? 0)); }));
  return {
    proc,
    exited,
    stderr: () => err,
    // The SIGKILL after timeoutMs is a safety net (a killed process fails
    // the caller's exit-code check); harmonicd stops in 0.05-0.3 s here,
    // under valgrind (leak check at exit) in 0.2-0.4 s.
    async stop(signal = 'SIGTERM', timeoutMs = 60000) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Start harmonic-sim with a profile; resolves {url, port, stop, ...}. */
export async function startSim({ profile = 'etc/sim/dgx-spark.conf', speed = 1, args = [], valgrind, port } = {}) {
  port ??= await freePort();
  const p = startProcess(BIN.sim, ['--listen', `127.0.0.1:${port}`, '--profile', path.resolve(ROOT, profile),
    '--speed', String(speed), ...args], { valgrind });
  const url = `http://127.0.0.1:${port}`;
  await Promise.race([
    waitHttp(`${url}/api/version`),
    p.exited.then((code) => { throw new Error(`harmonic-sim exited ${code}: ${p.stderr()}`); }),
  ]);
  return { ...p, url, port };
}

/**
 * Start harmonicd on a config given as text; "@PORT@" in the text is
 * replaced by a free port.  Resolves {url, port, config, stop, ...} once
 * /healthz answers.
 */
export async function startDaemon(configText, { args = [], env, valgrind, ready = '/healthz' } = {}) {
  const port = await freePort();
  const config = writeTemp('harmonicd.conf', configText.replaceAll('@PORT@', String(port)));
  const p = startProcess(BIN.harmonicd, ['-c', config, ...args], { env, valgrind });
  const url = `http://127.0.0.1:${port}`;
  await Promise.race([
    waitHttp(url + ready),
    p.exited.then((code) => { throw new Error(`harmonicd exited ${code}: ${p.stderr()}`); }),
  ]);
  return { ...p, url, port, config };
}

/** Read a fetch Response body as lines (NDJSON / SSE), as they arrive. */
export async function* lines(res) {
  const dec = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
  if (buf.length) yield buf;
}

/** POST JSON and return the fetch Response. */
export function postJson(url, body, headers = {}, signal) {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body), signal });
}

/** GET a URL and parse JSON. */
export async function getJson(url) {
  const r = await fetch(url);
  return r.json();
}

/**
 * Run one request to completion and summarise it: status, headers, the
 * parsed lines (NDJSON) or body, and the final chunk.
 */
export async function generate(base, body, { path = '/api/generate', headers = {}, signal } = {}) {
  const res = await postJson(base + path, body, headers, signal);
  const out = { status: res.status, headers: res.headers, lines: [], text: '' };
  for await (const line of lines(res)) {
    out.text += line + '\n';
    if (line.trim() === '') { out.blank = true; continue; }
    try { out.lines.push(JSON.parse(line)); } catch { out.bad = (out.bad ?? 0) + 1; }
  }
  out.final = out.lines.at(-1);
  return out;
}

/** The config text for harmonicd in front of sims: hosts [{name, url, ...}], models [...]. */
export function daemonConfig({ hosts, tiers, models, extra = '' }) {
  const h = hosts.map((x) => `{ name = "${x.name}"; url = "${x.url}"; memory_gb = ${x.memory_gb ?? 128.0};${x.num_parallel === null ? '' : ` num_parallel = ${x.num_parallel ?? 64};`}${x.max_parallel ? ` max_parallel = ${x.max_parallel};` : ''}${x.type ? ` type = "${x.type}";` : ''} }`).join(',\n  ');
  const t = (tiers ?? [{ name: 'executive', weight: 8 }, { name: 'directors', weight: 4 }, { name: 'specialists', weight: 1 }])
    .map((x) => `{ name = "${x.name}"; weight = ${x.weight ?? 1}; queue_depth = ${x.queue_depth ?? 512};${x.reserve ? ` reserve = ${x.reserve};` : ''} }`).join(',\n  ');
  const m = models.map((x) => `{ name = "${x.name}"; tier = "${x.tier}";${x.ollama ? ` ollama = "${x.ollama}";` : ''}${x.backend_model ? ` backend_model = "${x.backend_model}";` : ''} base_gb = 1.0; kv_gb = 0.1;${x.keep_alive ? ` keep_alive = ${x.keep_alive};` : ''} placements = ( ${x.placements.map((p) => `{ host = "${p.host}"; parallel = ${p.parallel}; }`).join(', ')} ); }`).join(',\n  ');
  return `listen = "127.0.0.1:@PORT@";\nhealth_interval = 0.2;\n${extra}\nhosts = (\n  ${h}\n);\ntiers = (\n  ${t}\n);\nmodels = (\n  ${m}\n);\n`;
}
