// End to end against a live relay: PostgreSQL 15 → `walcast relay` → fetch → WASM → JS objects,
// in Node and in a real Chromium. Skipped (with the reason) when the relay binary or PostgreSQL
// is missing; scripts/build-js.sh plus `cargo build -p walcast-relay` make it run.
import test from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { connect, UNCHANGED_TOAST } from '../dist/node/index.mjs';
import { liveAvailable, startPostgres, startRelay } from './live.mjs';
import { serve, proxyTo, launchChromium } from './serve.mjs';

const missing = liveAvailable();

const SCHEMA = `
  CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int, price numeric, at timestamptz, doc jsonb, big text);
  ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL;
  CREATE TABLE other (id int PRIMARY KEY, v text);`;

// The next n changes, leaving the subscription open (a for-await `break` would close it).
async function take(sub, n, ms = 30000) {
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

test('live relay: Node client sees typed changes, resumes across a relay restart without duplicates', { skip: missing ?? false, timeout: 180000 }, async () => {
  const pg = await startPostgres();
  let relay;
  try {
    pg.psql(SCHEMA);
    relay = await startRelay(pg, { tables: ['public.items'] });
    pg.psql(`INSERT INTO items VALUES (1, 'a', 2, 1.50, '2024-05-06 07:08:09.123+00', '{"k":[1,2]}', repeat('x', 5000))`);
    pg.psql(`UPDATE items SET qty = 3 WHERE id = 1`);
    pg.psql(`INSERT INTO items (id, name) VALUES (9007199254740993, 'big')`);
    pg.psql(`DELETE FROM items WHERE id = 9007199254740993`);
    const ac = new AbortController();
    const sub = connect(relay.url, { tables: ['public.items'], signal: ac.signal, backoff: { initialMs: 50, maxMs: 500 } });
    const first = await take(sub, 4);
    assert.deepEqual(first.map((c) => c.type), ['insert', 'update', 'insert', 'delete']);
    const [ins, upd, big, del] = first;
    assert.equal(ins.relation.table, 'items');
    assert.deepEqual({ ...ins.new, big: ins.new.big.length }, { id: 1, name: 'a', qty: 2, price: '1.50', at: new Date('2024-05-06T07:08:09.123Z'), doc: { k: [1, 2] }, big: 5000 });
    assert.equal(upd.new.qty, 3);
    assert.equal(upd.new.big, UNCHANGED_TOAST);
    assert.equal(big.new.id, '9007199254740993');
    assert.equal(del.key.id, '9007199254740993');
    const position = sub.position;
    assert.equal(position, del.commit.endLsn);

    // Restart the relay (same port, same log) under the live subscription: it reconnects from
    // its position and delivers only the new transaction, exactly once.
    const reconnects = [];
    const sub2 = connect(relay.url, { from: position, tables: ['public.items'], signal: ac.signal, backoff: { initialMs: 100, maxMs: 500 }, onReconnect: (i) => reconnects.push(i.position) });
    pg.psql(`INSERT INTO items (id, name) VALUES (2, 'before restart')`);
    const [before] = await take(sub2, 1);
    assert.equal(before.new.id, 2);
    const { httpPort, dataDir } = relay;
    await relay.stop();
    pg.psql(`INSERT INTO items (id, name) VALUES (3, 'while down')`);
    relay = await startRelay(pg, { tables: ['public.items'], dataDir, httpPort });
    pg.psql(`INSERT INTO items (id, name) VALUES (4, 'after restart')`);
    const after = await take(sub2, 2);
    assert.deepEqual(after.map((c) => c.new.id), [3, 4]);
    assert.ok(reconnects.length >= 1, 'the subscription reconnected');
    assert.equal(reconnects[0], before.commit.endLsn);
    ac.abort();
  } finally {
    await relay?.stop();
    if (relay) rmSync(relay.dataDir, { recursive: true, force: true });
    pg.stop();
  }
});

test('live relay: the demo page in Chromium shows changes as they happen', { skip: missing ?? false, timeout: 180000 }, async (t) => {
  const browser = await launchChromium();
  if (!browser) return t.skip('no /usr/bin/chromium');
  const pg = await startPostgres();
  let relay;
  let server;
  try {
    pg.psql(SCHEMA);
    relay = await startRelay(pg, { tables: ['public.items', 'public.other'] });
    server = await serve({ relay: proxyTo(relay.url) });
    const page = await browser.newPage();
    await page.goto(`${server.url}/demo/index.html?autoconnect`);
    await page.waitForFunction(() => /Connected|changes/.test(document.getElementById('status').textContent), null, { timeout: 20000 });
    pg.psql(`INSERT INTO items (id, name, qty) VALUES (10, 'live', 1); INSERT INTO other VALUES (1, 'x')`);
    pg.psql(`UPDATE items SET qty = 2 WHERE id = 10`);
    await page.waitForFunction(() => window.walcastDemo.changes >= 3, null, { timeout: 30000 });
    const seen = await page.evaluate(() => ({
      tables: [...document.querySelectorAll('section')].map((s) => s.dataset.table).sort(),
      firstRow: [...document.querySelector('section[data-table="public.items"] tbody tr').cells].map((c) => c.textContent),
      error: window.walcastDemo.error,
    }));
    assert.equal(seen.error, null);
    assert.deepEqual(seen.tables, ['public.items', 'public.other']);
    assert.equal(seen.firstRow[0], 'update');
    assert.deepEqual(seen.firstRow.slice(2, 5), ['10', 'live', '2']);
    await page.screenshot({ path: process.env.WALCAST_DEMO_SCREENSHOT ?? '/tmp/walcast-demo.png' });
  } finally {
    await browser.close();
    await server?.close();
    await relay?.stop();
    if (relay) rmSync(relay.dataDir, { recursive: true, force: true });
    pg.stop();
  }
});
