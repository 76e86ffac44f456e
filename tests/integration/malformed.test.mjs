// A corpus of malformed HTTP requests sent over raw TCP to a real harmonicd
// in front of harmonic-sim: broken request lines, oversized and malformed
// headers, bad chunked encoding, lying Content-Length, invalid UTF-8 and
// JSON, a wrong type for every field harmonicd reads, empty and oversized
// bodies, unknown paths and wrong methods.  Each gets a 4xx (a JSON error
// where the route is a JSON API and the failure is at the JSON level;
// libmicrohttpd answers protocol errors itself, in plain text) or, where
// HTTP says the server must wait for more, no answer and no harm.  After
// the whole corpus the daemon is healthy: /healthz 200, a normal request
// streams, no request left live, and it exits 0 (under valgrind: clean).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startSim, startDaemon, daemonConfig, generate, getJson, sleep } from './lib/harness.mjs';
import { parse } from './lib/raw.mjs';

const VALGRIND = process.env.HARMONIC_VALGRIND === '1';
const MAX_BODY = 4096;
// How long to wait for an answer before calling the request "pending"
// (the cases that rightly pend set their own, shorter, timeoutMs).  The
// slowest answer takes 0.2 s here with nothing else running, 0.4 s under
// valgrind; the ceilings keep over 10x that for a loaded machine.
const WAIT_MS = VALGRIND ? 20000 : 10000;

/*
 * Send data (a string, a Buffer, or an array of pieces sent 20 ms apart) on
 * a fresh connection.  Resolves when a whole response has arrived, the
 * server closed, or timeoutMs passed: {status, headers, body, closed, pending}.
 */
function raw(port, data, { timeoutMs = WAIT_MS } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0), done = false, timer;
    const finish = (closed, pending = false) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...parse(buf), closed, pending });
    };
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const p = parse(buf);
      if (p.complete) finish(false);
    });
    sock.on('error', () => finish(true));
    sock.on('close', () => finish(true));
    timer = setTimeout(() => finish(false, true), timeoutMs);
    sock.on('connect', async () => {
      for (const piece of Array.isArray(data) ? data : [data]) {
        if (done) return;
        sock.write(piece);
        if (Array.isArray(data)) await sleep(20);
      }
    });
  });
}

const req = (method, path, { headers = {}, body } = {}) => {
  const h = { Host: 'localhost', Connection: 'close', ...headers };
  if (body !== undefined && h['Content-Length'] === undefined && h['Transfer-Encoding'] === undefined)
    h['Content-Length'] = Buffer.byteLength(body);
  const head = `${method} ${path} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return body === undefined ? head : Buffer.concat([Buffer.from(head, 'latin1'), Buffer.isBuffer(body) ? body : Buffer.from(body)]);
};
const post = (path, body, headers = {}) => req('POST', path, { headers: { 'Content-Type': 'application/json', ...headers }, body });
const gen = (fields) => post('/api/generate', JSON.stringify({ model: 'qwen3:4b', prompt: 'hi', ...fields }));
const chat = (fields) => post('/api/chat', JSON.stringify({ model: 'qwen3:4b', messages: [{ role: 'user', content: 'hi' }], ...fields }));
const v1 = (fields) => post('/v1/chat/completions', JSON.stringify({ model: 'qwen3:4b', messages: [{ role: 'user', content: 'hi' }], ...fields }));
const chunkedHead = (path = '/api/generate') =>
  `POST ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
const big = (n, ch = 'a') => ch.repeat(n);

// expect: 'json' = 4xx with a JSON {"error"} body; '4xx' = any 4xx;
// 'drop' = a 4xx or a close without answer (libmicrohttpd drops some
// hopeless connections silently); 'pending' = a 4xx, or the server rightly
// waits for bytes that never come (the idle and header timeouts end those);
// 'any' = tolerated either way, the point is that nothing breaks.
// status pins the exact code where it matters.
const corpus = [
  // request line
  { name: 'unknown method on /', data: req('FOO', '/'), expect: '4xx', status: 405 },
  { name: 'unknown method on an API route', data: req('BREW', '/api/generate'), expect: '4xx', status: 405 },
  { name: 'lower-case method', data: req('get', '/healthz'), expect: '4xx', status: 405 },
  { name: 'method with control bytes', data: 'G\x01T /healthz HTTP/1.1\r\nHost: x\r\n\r\n', expect: '4xx' },
  { name: 'request line without version', data: 'GET /healthz\r\n\r\n', expect: '4xx' },
  { name: 'request line with only a method', data: 'GET\r\n\r\n', expect: 'drop' },
  { name: 'binary garbage', data: Buffer.from([0, 1, 2, 3, 0xff, 0xfe, 13, 10, 13, 10]), expect: 'pending', timeoutMs: 800 },
  { name: 'TLS ClientHello on the plain port', data: Buffer.from('16030100a5010000a103035f', 'hex'), expect: 'pending', timeoutMs: 800 },
  { name: 'bad version string', data: 'GET /healthz HTTP/x.y\r\nHost: x\r\n\r\n', expect: '4xx' },
  { name: 'HTTP/1.1 without Host', data: 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n', expect: '4xx', status: 400 },
  { name: 'URL of 40 KiB', data: req('GET', '/' + big(40 * 1024)), expect: '4xx' },
  { name: 'URL with NUL escape', data: req('GET', '/api/tags%00x'), expect: '4xx', status: 404 },
  { name: 'URL path traversal', data: req('GET', '/../../etc/passwd'), expect: '4xx', status: 404 },
  { name: 'absolute-form URL', data: req('GET', 'http://evil.example/healthz'), expect: '4xx', status: 404 },
  // headers
  { name: 'one header of 40 KiB', data: req('GET', '/healthz', { headers: { 'X-Big': big(40 * 1024) } }), expect: '4xx' },
  { name: '4000 small headers', data: `GET /healthz HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 4000 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`, expect: '4xx' },
  { name: 'headers of 40 KiB dribbled in pieces', data: ['POST /api/generate HTTP/1.1\r\nHost: x\r\n', ...Array.from({ length: 10 }, () => `X-Pad: ${big(4096)}\r\n`), '\r\n'], expect: '4xx' },
  { name: 'header line without colon', data: 'GET /healthz HTTP/1.1\r\nHost: x\r\nThisIsNotAHeader\r\n\r\n', expect: '4xx' },
  { name: 'header with space before colon', data: 'GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n', expect: '4xx' },
  // libmicrohttpd 0.9.75 accepts it even in strict mode; harmless, as
  // harmonicd reads only Authorization, Content-Length and X-Harmonic-Agent.
  { name: 'header name with control byte', data: 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX\x01Y: z\r\n\r\n', expect: 'any' },
  { name: 'obsolete header folding', data: 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\nConnection: close\r\n\r\n', expect: 'any' },
  { name: 'bare LF line endings', data: 'GET /nope HTTP/1.1\nHost: x\nConnection: close\n\n', expect: '4xx' },
  // chunked encoding
  { name: 'chunked: bad hex size', data: chunkedHead() + 'zz\r\n{}\r\n0\r\n\r\n', expect: '4xx' },
  { name: 'chunked: missing CRLF after data', data: chunkedHead() + '2\r\n{}XX3\r\nabc\r\n0\r\n\r\n', expect: '4xx' },
  { name: 'chunked: size overflow', data: chunkedHead() + 'ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n', expect: '4xx' },
  { name: 'chunked: size 2^64-1', data: chunkedHead() + 'ffffffffffffffff\r\n{}\r\n', expect: 'pending', timeoutMs: 800 },
  { name: 'chunked: negative size', data: chunkedHead() + '-5\r\n{}\r\n0\r\n\r\n', expect: '4xx' },
  { name: 'chunked: body over max_body', data: chunkedHead() + Array.from({ length: 3 }, () => `800\r\n${big(2048, ' ')}\r\n`).join('') + '0\r\n\r\n', expect: 'json', status: 413 },
  // The excess is read and discarded and 413 is answered at the end of the
  // body, so a client that stops mid-chunk waits (see docs/reliability.md).
  { name: 'chunked: one chunk declared over max_body', data: chunkedHead() + '100000\r\n' + big(8192, ' ') + '\r\n', expect: 'pending', timeoutMs: 800 },
  { name: 'chunked and Content-Length together', data: chunkedHead().replace('\r\n\r\n', '\r\nContent-Length: 5\r\n\r\n') + '2\r\n{}\r\n0\r\n\r\n', expect: '4xx' },
  { name: 'unknown Transfer-Encoding', data: req('POST', '/api/generate', { headers: { 'Transfer-Encoding': 'gzip' }, body: '{}' }), expect: 'pending', timeoutMs: 800 },
  // Content-Length
  { name: 'Content-Length negative', data: req('POST', '/api/generate', { headers: { 'Content-Length': '-1' }, body: '{}' }), expect: '4xx' },
  { name: 'Content-Length not a number', data: req('POST', '/api/generate', { headers: { 'Content-Length': 'abc' }, body: '{}' }), expect: '4xx' },
  { name: 'Content-Length with trailing junk', data: req('POST', '/api/generate', { headers: { 'Content-Length': '2x' }, body: '{}' }), expect: '4xx' },
  { name: 'Content-Length overflowing 64 bits', data: req('POST', '/api/generate', { headers: { 'Content-Length': '99999999999999999999999' }, body: '{}' }), expect: '4xx' },
  { name: 'Content-Length twice, different', data: 'POST /api/generate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\nContent-Length: 4\r\n\r\n{}{}', expect: '4xx' },
  { name: 'Content-Length over max_body', data: req('POST', '/api/generate', { headers: { 'Content-Length': String(MAX_BODY + 1) } }), expect: 'json', status: 413 },
  { name: 'Content-Length over max_body with Expect: 100-continue', data: req('POST', '/api/chat', { headers: { 'Content-Length': '1000000000', Expect: '100-continue' } }), expect: 'json', status: 413 },
  { name: 'Content-Length shorter than the body', data: req('POST', '/api/generate', { headers: { 'Content-Length': '10' }, body: '{"model":"qwen3:4b","prompt":"hi"}' }), expect: 'json', status: 400 },
  { name: 'Content-Length longer than the body', data: req('POST', '/api/generate', { headers: { 'Content-Length': '100' }, body: '{"model":"qwen3:4b"}' }), expect: 'pending', timeoutMs: 800 },
  { name: 'body over max_body with no Content-Length framing (HTTP/1.0 close)', data: `POST /api/generate HTTP/1.0\r\nContent-Length: ${MAX_BODY * 2}\r\n\r\n${big(MAX_BODY * 2, ' ')}`, expect: 'json', status: 413 },
  { name: 'body streamed over max_body', data: [req('POST', '/api/generate', { headers: { 'Content-Length': String(MAX_BODY) } }), big(MAX_BODY / 2, ' '), big(MAX_BODY / 2, ' ')], expect: 'json', status: 400 },
  // body content
  { name: 'empty body', data: req('POST', '/api/generate', { body: '' }), expect: 'json', status: 400 },
  { name: 'no body and no Content-Length', data: req('POST', '/api/chat'), expect: 'json', status: 400 },
  { name: 'invalid UTF-8 in a string', data: post('/api/generate', Buffer.concat([Buffer.from('{"model":"qwen3:4b","prompt":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')])), expect: 'json', status: 400 },
  { name: 'overlong UTF-8 encoding', data: post('/api/chat', Buffer.concat([Buffer.from('{"model":"qwen3:4b","messages":[],"x":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')])), expect: 'json', status: 400 },
  { name: 'UTF-16 surrogate in UTF-8', data: post('/api/generate', Buffer.concat([Buffer.from('{"model":"qwen3:4b","prompt":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')])), expect: 'json', status: 400 },
  { name: 'lone surrogate escape', data: post('/api/generate', '{"model":"qwen3:4b","prompt":"\\ud800"}'), expect: 'json', status: 400 },
  { name: 'NUL escape in the model name', data: post('/api/generate', '{"model":"qwen3:4b\\u0000x","prompt":"hi"}'), expect: 'json', status: 400 },
  { name: 'UTF-8 BOM before the JSON', data: post('/api/generate', '\ufeff{"model":"qwen3:4b"}'), expect: 'json', status: 400 },
  { name: 'truncated JSON', data: post('/api/generate', '{"model":"qwen3:4b","prompt":"hi'), expect: 'json', status: 400 },
  { name: 'trailing garbage after JSON', data: post('/api/generate', '{"model":"qwen3:4b"} xyz'), expect: 'json', status: 400 },
  { name: 'two JSON objects', data: post('/api/generate', '{"model":"qwen3:4b"}{"model":"qwen3:4b"}'), expect: 'json', status: 400 },
  { name: 'single quotes', data: post('/api/generate', "{'model':'qwen3:4b'}"), expect: 'json', status: 400 },
  { name: 'trailing comma', data: post('/api/chat', '{"model":"qwen3:4b",}'), expect: 'json', status: 400 },
  { name: 'NaN literal', data: post('/api/generate', '{"model":"qwen3:4b","options":{"temperature":NaN}}'), expect: 'json', status: 400 },
  // jansson bounds its recursion at 2048 levels; within max_body this is
  // valid JSON, relayed as is (Ollama ignores the unknown member).
  { name: 'deeply nested arrays (2000 levels)', data: post('/api/generate', '{"model":"qwen3:4b","x":' + '['.repeat(2000) + ']'.repeat(2000) + '}'), expect: 'any' },
  { name: 'JSON array body', data: post('/api/generate', '[{"model":"qwen3:4b"}]'), expect: 'json', status: 400 },
  { name: 'JSON string body', data: post('/api/chat', '"qwen3:4b"'), expect: 'json', status: 400 },
  { name: 'JSON null body', data: post('/v1/chat/completions', 'null'), expect: 'json', status: 400 },
  { name: 'form-encoded body', data: post('/api/generate', 'model=qwen3:4b&prompt=hi', { 'Content-Type': 'application/x-www-form-urlencoded' }), expect: 'json', status: 400 },
  { name: 'missing model', data: post('/api/chat', '{"messages":[]}'), expect: 'json', status: 400 },
  { name: 'unknown model', data: gen({ model: 'no-such-model' }), expect: 'json', status: 404 },
  { name: 'model name of 3 KiB', data: gen({ model: big(3000) }), expect: 'json', status: 404 },
  // wrong types, field by field
  ...[['number', 5], ['array', ['qwen3:4b']], ['object', { name: 'qwen3:4b' }], ['null', null], ['bool', true]].flatMap(([w, v]) => [
    { name: `generate: model as ${w}`, data: gen({ model: v }), expect: 'json', status: 400 },
    { name: `v1 chat: model as ${w}`, data: v1({ model: v }), expect: 'json', status: 400 },
  ]),
  ...[['string', 'yes'], ['number', 1], ['object', {}], ['array', [true]]].flatMap(([w, v]) => [
    { name: `generate: stream as ${w}`, data: gen({ stream: v }), expect: 'json', status: 400 },
    { name: `v1 chat: stream as ${w}`, data: v1({ stream: v }), expect: 'json', status: 400 },
  ]),
  ...[['string', 'fast'], ['number', 3], ['array', [1]], ['bool', false]].flatMap(([w, v]) => [
    { name: `generate: options as ${w}`, data: gen({ options: v }), expect: 'json', status: 400 },
    { name: `chat: options as ${w}`, data: chat({ options: v }), expect: 'json', status: 400 },
  ]),
  ...[['number', 7], ['array', ['hi']], ['object', { text: 'hi' }], ['bool', true]].map(([w, v]) =>
    ({ name: `generate: prompt as ${w}`, data: gen({ prompt: v }), expect: 'json', status: 400 })),
  ...[['string', 'hi'], ['number', 1], ['object', { role: 'user' }]].flatMap(([w, v]) => [
    { name: `chat: messages as ${w}`, data: chat({ messages: v }), expect: 'json', status: 400 },
    { name: `v1 chat: messages as ${w}`, data: v1({ messages: v }), expect: 'json', status: 400 },
  ]),
  { name: 'embeddings: prompt as array', data: post('/api/embeddings', '{"model":"qwen3:4b","prompt":["a"]}'), expect: 'json', status: 400 },
  { name: 'show: name as number', data: post('/api/show', '{"name":5}'), expect: 'json', status: 400 },
  // unknown paths and wrong methods
  { name: 'unknown path', data: req('GET', '/api/generatex'), expect: '4xx', status: 404 },
  { name: 'unknown path, POST with body', data: post('/api/v2/generate', '{"model":"qwen3:4b"}'), expect: '4xx', status: 404 },
  { name: 'trailing slash', data: post('/api/generate/', '{"model":"qwen3:4b"}'), expect: '4xx', status: 404 },
  { name: 'GET on a POST route', data: req('GET', '/api/generate'), expect: '4xx', status: 405 },
  { name: 'PUT on a POST route with body', data: req('PUT', '/v1/chat/completions', { body: '{"model":"qwen3:4b"}' }), expect: '4xx', status: 405 },
  { name: 'POST on a GET route', data: post('/healthz', '{}'), expect: '4xx', status: 405 },
  { name: 'DELETE on /stats', data: req('DELETE', '/stats'), expect: '4xx', status: 405 },
  { name: 'OPTIONS on /api/chat', data: req('OPTIONS', '/api/chat'), expect: '4xx', status: 405 },
  { name: 'admin route without admin keys', data: req('POST', '/admin/reload', { body: '' }), expect: 'json', status: 403 },
  { name: 'bad Authorization header', data: req('GET', '/healthz', { headers: { Authorization: 'Bearer ' + big(20000) } }), expect: 'any' },
];

describe('malformed HTTP corpus', () => {
  let sim, hd;
  before(async () => {
    sim = await startSim({ speed: 50 });
    hd = await startDaemon(daemonConfig({
      hosts: [{ name: 'sparky', url: sim.url }],
      extra: `max_body = ${MAX_BODY};`,
      models: [{ name: 'qwen3:4b', tier: 'executive', placements: [{ host: 'sparky', parallel: 2 }] }],
    }));
  });
  after(async () => { assert.equal(await hd.stop(), 0); assert.equal(await sim.stop(), 0); });

  let slowest = { ms: 0 };
  for (const c of corpus) {
    test(c.name, async () => {
      const t0 = Date.now();
      const r = await raw(hd.port, c.data, { timeoutMs: c.timeoutMs });
      if (!r.pending && Date.now() - t0 > slowest.ms) slowest = { ms: Date.now() - t0, name: c.name };
      const what = `${c.name}: got ${r.status ?? (r.pending ? 'no answer (pending)' : 'close without answer')} ${r.body?.slice(0, 200) ?? ''}`;
      assert.equal(hd.proc.exitCode, null, 'harmonicd is still running');
      if (c.expect === 'any') return;
      if (c.expect === 'pending') { assert.ok(r.pending || (r.status >= 400 && r.status < 500), what); return; }
      if (c.expect === 'drop') { assert.ok((r.closed && r.status === null) || (r.status >= 400 && r.status < 500), what); return; }
      assert.ok(r.status >= 400 && r.status < 500, what);
      if (c.status) assert.equal(r.status, c.status, what);
      if (c.expect === 'json') {
        assert.match(r.headers['content-type'] ?? '', /application\/json/, what);
        const j = JSON.parse(r.body);
        const msg = typeof j.error === 'string' ? j.error : j.error?.message;
        assert.equal(typeof msg, 'string', what);
        assert.ok(msg.length > 0, what);
      }
    });
  }

  test('after the corpus: healthy, serving, nothing left live', async (tc) => {
    tc.diagnostic(`slowest answer: ${slowest.ms} ms (${slowest.name}); an answer is waited for up to ${WAIT_MS} ms`);
    assert.equal((await fetch(hd.url + '/healthz')).status, 200);
    const r = await generate(hd.url, { model: 'qwen3:4b', prompt: 'hello', options: { num_predict: 5 } });
    assert.equal(r.status, 200);
    assert.equal(r.final.done, true);
    assert.ok(r.lines.length >= 5);
    const s = await generate(hd.url, { model: 'qwen3:4b', messages: [{ role: 'user', content: 'x' }], stream: false }, { path: '/api/chat' });
    assert.equal(s.status, 200);
    let stats;
    const t0 = Date.now();
    do {
      stats = await getJson(hd.url + '/stats');
      if (stats.live_requests === 0) break;
      await sleep(50);
    } while (Date.now() - t0 < 5000);
    assert.equal(stats.live_requests, 0);
    const t = stats.totals;
    assert.equal(t.completed + t.failed + t.rejected + t.cancelled, t.requests, 'every request counted once');
    assert.equal(stats.in_flight, 0);
    assert.equal(hd.proc.exitCode, null);
  });
});
