// Load generator for scripts/bench-proxy.sh case (b): N concurrent
// streaming requests for D seconds (each stream restarts when it ends).
// For every token line it records receive time minus the backend's
// created_at (harmonic-sim stamps real wall time), so comparing runs
// against the backend directly and through a proxy gives the latency the
// proxy adds per token.  Prints one JSON object.
const [url, conc = '256', secs = '15', predict = '250'] = process.argv.slice(2);
const N = Number(conc), D = Number(secs) * 1000;
const body = JSON.stringify({ model: 'bench', prompt: 'hi', options: { num_predict: Number(predict) } });
const delays = [];
let tokens = 0, errors = 0, streams = 0;
const t0 = Date.now();
const end = t0 + D;

function createdMs(line) {
  const i = line.indexOf('"created_at":"');
  if (i < 0) return NaN;
  const s = line.slice(i + 14, line.indexOf('"', i + 14));
  // RFC 3339 with up to 9 fraction digits: keep microseconds.
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(s);
  if (!m) return NaN;
  const frac = (m[2] ?? '').padEnd(6, '0').slice(0, 6);
  return Date.parse(m[1] + 'Z') + Number(frac) / 1000;
}

async function worker() {
  while (Date.now() < end) {
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      if (res.status !== 200) { errors++; await res.arrayBuffer(); continue; }
      streams++;
      const dec = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body) {
        const now = performance.timeOrigin + performance.now();
        buf += dec.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.includes('"done":false')) {
            tokens++;
            const c = createdMs(line);
            if (!Number.isNaN(c) && now < end) delays.push(now - c);
          }
        }
        if (Date.now() >= end) break;
      }
    } catch { errors++; }
  }
}

await Promise.all(Array.from({ length: N }, worker));
delays.sort((a, b) => a - b);
const q = (p) => delays.length ? delays[Math.min(delays.length - 1, Math.floor(p * delays.length))] : 0;
const wall = (Date.now() - t0) / 1000;
console.log(JSON.stringify({ tokens, tokens_per_s: tokens / wall, delay_p50_ms: q(0.5), delay_p99_ms: q(0.99), errors, streams }));
