// Bootstrap end to end in Node (docs/bootstrap.md): connect(url, { bootstrap: true }) first
// yields every row as of one consistent point (inserts with bootstrap: true), then the changes
// after it; applying both gives exactly the table. Skipped like live.test.mjs when the relay
// binary or PostgreSQL is missing.
import test from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { connect } from '../dist/node/index.mjs';
import { liveAvailable, startPostgres, startRelay } from './live.mjs';

const missing = liveAvailable();

test('bootstrap: image rows, then live changes, end equal to the table', { skip: missing ?? false, timeout: 180000 }, async () => {
  const pg = await startPostgres();
  let relay;
  const ac = new AbortController();
  try {
    pg.psql(`CREATE TABLE items (id int PRIMARY KEY, name text, qty int);
             INSERT INTO items SELECT i, 'n' || i, i FROM generate_series(1, 500) i;`);
    relay = await startRelay(pg, { tables: ['public.items'] });
    // Changes after the relay's slot (and so after its initial image) was created.
    pg.psql(`UPDATE items SET qty = -1 WHERE id <= 10; DELETE FROM items WHERE id > 490; INSERT INTO items VALUES (1000, 'late', 1)`);
    const sub = connect(relay.url, { bootstrap: true, signal: ac.signal, backoff: { initialMs: 50, maxMs: 500 } });
    const rows = new Map();
    let bootRows = 0;
    let liveAfterBoot = 0;
    const want = new Map(
      pg
        .psql('SELECT id, name, qty FROM items ORDER BY id')
        .trim()
        .split('\n')
        .map((l) => l.split('|'))
        .map(([id, name, qty]) => [Number(id), { id: Number(id), name, qty: Number(qty) }]),
    );
    const deadline = Date.now() + 60000;
    for await (const c of sub) {
      if (c.bootstrap) {
        assert.equal(liveAfterBoot, 0, 'a bootstrap row after live changes');
        assert.equal(c.commit, null);
        bootRows++;
      } else {
        liveAfterBoot++;
        assert.ok(c.commit?.endLsn, 'a live change carries its commit');
      }
      if (c.type === 'delete') rows.delete(c.key.id);
      else rows.set(c.new.id, { ...c.new });
      const same = rows.size === want.size && [...want].every(([k, v]) => JSON.stringify(rows.get(k)) === JSON.stringify(v));
      if (same) break;
      if (Date.now() > deadline) throw new Error(`not converged: ${rows.size} rows, want ${want.size}`);
    }
    assert.equal(bootRows, 500, 'the image holds the 500 rows of the slot creation');
    assert.equal(liveAfterBoot, 10 + 10 + 1, 'then the 21 changes made after it');
    assert.ok(sub.position, 'the position is set after the image');
  } finally {
    ac.abort();
    await relay?.stop();
    if (relay) rmSync(relay.dataDir, { recursive: true, force: true });
    pg.stop();
  }
});
