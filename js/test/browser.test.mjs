// The browser build in a real Chromium (Debian's, via playwright-core): WASM loads from the
// package's own URL, fetch streams the relay's frames, connect() resumes after a drop.
import test from 'node:test';
import assert from 'node:assert/strict';
import { serve, launchChromium } from './serve.mjs';
import { pg, pgTime, frames, stream } from './pgwire.mjs';

const T0 = pgTime('2024-01-01T00:00:00Z');
const REL = pg.relation(1, 'public', 't', [{ name: 'id', oid: 23, key: true }, { name: 'v', oid: 25 }]);
const txn = (xid, end, ids) => [frames.msg(pg.begin(BigInt(end) - 8n, T0, xid)), frames.msg(REL), ...ids.map((i) => frames.msg(pg.insert(1, [String(i), `v${i}`]))), frames.msg(pg.commit(BigInt(end) - 8n, BigInt(end), T0))];

test('browser: init(), streaming fetch, resume without duplicates', async (t) => {
  const browser = await launchChromium();
  if (!browser) return t.skip('no /usr/bin/chromium');
  const froms = [];
  const server = await serve({
    relay(req, res, url) {
      froms.push(url.searchParams.get('from'));
      res.writeHead(200, { 'content-type': 'application/x-walcast-frames' });
      if (froms.length === 1) {
        res.end(stream(txn(1, 0x100, [1, 2]), txn(2, 0x200, [3]).slice(0, 2)));
      } else {
        res.write(stream(txn(1, 0x100, [1, 2]), txn(2, 0x200, [3])));
        // Split a frame across writes: the browser must reassemble it.
        const last = stream(txn(3, 0x300, [4])).subarray(12);
        res.write(last.subarray(0, 5));
        setTimeout(() => res.write(last.subarray(5)), 50);
        req.on('close', () => res.end());
      }
    },
  });
  try {
    const page = await browser.newPage();
    const logs = [];
    page.on('console', (m) => logs.push(m.text()));
    page.on('pageerror', (e) => logs.push(String(e)));
    await page.goto(`${server.url}/test/browser/page.html`);
    await page.waitForFunction(() => window.ready === true, null, { timeout: 20000 });
    const out = await page.evaluate(() => window.run(4));
    assert.equal(out.error, undefined, JSON.stringify(out.error) + logs.join('\n'));
    assert.equal(out.isSecureContext, true);
    assert.equal(out.decoderOk, true);
    assert.deepEqual(out.changes.map((c) => [c.new.id, c.new.v, c.endLsn]), [[1, 'v1', '0/100'], [2, 'v2', '0/100'], [3, 'v3', '0/200'], [4, 'v4', '0/300']]);
    assert.deepEqual(froms.slice(0, 2), [null, '0/100']);
  } finally {
    await browser.close();
    await server.close();
  }
});
