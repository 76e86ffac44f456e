// Raw HTTP/1.1 over a TCP socket, for tests that need exact bytes on the
// wire (bad UTF-8, half-sent bodies, keep-alive, trickled heads): one
// connection, whole responses read one at a time, and when the server closed.
import net from 'node:net';
import { sleep } from './harness.mjs';

const SLOW = process.env.HARMONIC_VALGRIND === '1' ? 4 : 1;

/* Parse one response from the start of buf: {status, headers, body, complete, used}. */
export function parse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return { status: null, complete: false, body: '' };
  const head = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(head[0].split(' ')[1]);
  const headers = {};
  for (const l of head.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let rest = buf.subarray(end + 4);
  const start = end + 4;
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    return { status, headers, body: rest.subarray(0, n).toString(), complete: rest.length >= n, used: start + n };
  }
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    let body = '', off = start;
    for (;;) {
      const nl = rest.indexOf('\r\n');
      if (nl < 0) return { status, headers, body, complete: false };
      const n = parseInt(rest.subarray(0, nl).toString(), 16);
      if (n === 0) {
        if (rest.length < nl + 4) return { status, headers, body, complete: false };
        return { status, headers, body, complete: true, used: off + nl + 4 };
      }
      if (rest.length < nl + 2 + n + 2) return { status, headers, body, complete: false };
      body += rest.subarray(nl + 2, nl + 2 + n).toString();
      rest = rest.subarray(nl + 2 + n + 2);
      off += nl + 2 + n + 2;
    }
  }
  return { status, headers, body: rest.toString(), complete: false };
}

/* One client connection: send bytes, read whole responses one at a time,
 * and know when (and whether) the server closed it. */
export class Conn {
  static open(port) {
    return new Promise((resolve, reject) => {
      const c = new Conn();
      c.sock = net.connect(port, '127.0.0.1', () => resolve(c));
      c.sock.once('error', reject);
      c.sock.on('data', (d) => { c.buf = Buffer.concat([c.buf, d]); c.kick(); });
      c.sock.on('end', () => { c.mark(); });
      c.sock.on('close', () => { c.mark(); });
      c.sock.on('error', () => { c.mark(); });
    });
  }
  constructor() { this.buf = Buffer.alloc(0); this.closedAt = 0; this.waiter = null; }
  mark() { if (!this.closedAt) this.closedAt = Date.now(); this.kick(); }
  kick() { if (this.waiter) this.waiter(); }
  get closed() { return this.closedAt !== 0; }
  write(data) { if (!this.sock.destroyed) this.sock.write(data); }
  /* The next whole response, or {status: null, closed: true} / {timeout: true}.
   * The default wait is a ceiling for an answer that comes in milliseconds. */
  response(timeoutMs = 30000 * SLOW) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.waiter = null; resolve({ status: null, timeout: true }); }, timeoutMs);
      const check = () => {
        const p = parse(this.buf);
        if (p.complete) {
          this.buf = this.buf.subarray(p.used);
          clearTimeout(timer);
          this.waiter = null;
          resolve(p);
        } else if (this.closed) {
          clearTimeout(timer);
          this.waiter = null;
          resolve({ ...p, status: p.status, closed: true });
        }
      };
      this.waiter = check;
      check();
    });
  }
  /* Resolves true when the server closes, false after ms. */
  async waitClose(ms) {
    const t0 = Date.now();
    while (!this.closed && Date.now() - t0 < ms) await sleep(20);
    return this.closed;
  }
  destroy() { this.sock.destroy(); }
}

/* One request on a fresh connection (Connection: close). */
export async function once(port, data, timeoutMs) {
  const c = await Conn.open(port);
  c.write(data);
  const r = await c.response(timeoutMs);
  c.destroy();
  return r;
}

