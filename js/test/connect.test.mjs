// connect() against a scripted HTTP relay on 127.0.0.1: resume without gap or duplicate,
// typed resync error, streamed transactions, abort.
import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { connect, ResyncRequiredError, BadRequestError } from '../dist/node/index.mjs';
import { pg, pgTime, frames, stream, STREAM_HEADER } from './pgwire.mjs';

const T0 = pgTime('2024-01-01T00:00:00Z');
const REL = pg.relation(1, 'public', 't', [{ name: 'id', oid: 23, key: true }, { name: 'v', oid: 25 }]);

function txn(xid, endLsn, rows) {
  const lsn = BigInt(endLsn) - 8n;
  return [
    frames.msg(pg.begin(lsn, T0, xid)),
    frames.msg(REL),
    ...rows.map((r) => frames.msg(pg.insert(1, [String(r), `v${r}`]))),
    frames.msg(pg.commit(lsn, BigInt(endLsn), T0)),
  ];
}

/** Serves `script(requestIndex, url)` → { status?, chunks: Uint8Array[], hold?: boolean }. */
async function relay(script) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const i = requests.push(url) - 1;
    const s = script(i, url);
    res.writeHead(s.status ?? 200, { 'content-type': 'application/x-walcast-frames' });
    for (const c of s.chunks ?? []) res.write(c);
    if (!s.hold) res.end();
    else req.on('close', () => res.end());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    requests,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

const fast = { backoff: { initialMs: 1, maxMs: 5 } };

test('resumes from the last delivered commit: no gap, no duplicate', async () => {
  const r = await relay((i) => {
    if (i === 0) {
      // txn 1 complete, txn 2 cut off before its commit, then the connection drops.
      const t2 = txn(11, 0x200, [3, 4]);
      return { chunks: [stream(txn(10, 0x100, [1, 2]), t2.slice(0, 3))] };
    }
    // The relay resends from an older point: txn 1 again must be dropped.
    return { chunks: [stream(txn(10, 0x100, [1, 2]), txn(11, 0x200, [3, 4]), txn(12, 0x300, [5]), frames.heartbeat(0x380n))], hold: true };
  });
  const ac = new AbortController();
  const sub = connect(r.base, { tables: ['public.t'], signal: ac.signal, ...fast });
  const got = [];
  for await (const c of sub) {
    got.push([c.new.id, c.commit.endLsn]);
    if (got.length === 5) break;
  }
  assert.deepEqual(got, [[1, '0/100'], [2, '0/100'], [3, '0/200'], [4, '0/200'], [5, '0/300']]);
  assert.equal(r.requests[0].pathname, '/v1/stream');
  assert.equal(r.requests[0].searchParams.get('tables'), 'public.t');
  assert.equal(r.requests[0].searchParams.get('from'), null);
  assert.equal(r.requests[1].searchParams.get('from'), '0/100');
  assert.equal(sub.position, '0/300');
  assert.equal(r.requests[0].searchParams.get('v'), '3', 'frame version 3 unless told otherwise');
  await r.close();
});

test('frameVersion: 1 and 2 are asked for as told, anything else is a TypeError', async () => {
  const r = await relay(() => ({ chunks: [stream(txn(1, 0x100, [1]))], hold: true }));
  for (const [frameVersion, want] of [[1, null], [2, '2']]) {
    const ac = new AbortController();
    for await (const c of connect(r.base, { frameVersion, signal: ac.signal, ...fast })) {
      assert.equal(c.new.id, 1);
      break;
    }
    assert.equal(r.requests.at(-1).searchParams.get('v'), want);
  }
  assert.throws(() => connect(r.base, { frameVersion: 4 }), TypeError);
  await r.close();
});

test('from= skips transactions already applied; heartbeats advance the resume position', async () => {
  let second;
  const r = await relay((i, url) => {
    if (i === 0) return { chunks: [stream(txn(1, 0x100, [1]), txn(2, 0x200, [2]), frames.heartbeat(0x280n))] };
    second = url;
    return { chunks: [stream(txn(3, 0x300, [3]))], hold: true };
  });
  const got = [];
  for await (const c of connect(r.base, { from: '0/100', ...fast })) {
    got.push(c.new.id);
    if (got.length === 2) break;
  }
  assert.deepEqual(got, [2, 3]);
  assert.equal(second.searchParams.get('from'), '0/280');
  await r.close();
});

test('resync_required surfaces as ResyncRequiredError, bad requests are not retried', async () => {
  const r = await relay((i) => (i === 0 ? { chunks: [stream(frames.end('resync_required', 'slot invalidated'))] } : { status: 400, chunks: [new TextEncoder().encode('unknown table')] }));
  await assert.rejects(async () => {
    for await (const _ of connect(r.base, { from: '1/0', ...fast })) void _;
  }, (e) => e instanceof ResyncRequiredError && e.position === '1/0' && /slot invalidated/.test(e.message));
  await assert.rejects(async () => {
    for await (const _ of connect(r.base, fast)) void _;
  }, BadRequestError);
  await r.close();
});

test('HTTP 410 with the relay\'s JSON error body is a ResyncRequiredError carrying its message', async () => {
  const r = await relay(() => ({ status: 410, chunks: [new TextEncoder().encode('{"code":"resync_required","message":"0/10 is older than the log"}')] }));
  await assert.rejects(async () => {
    for await (const _ of connect(r.base, { from: '0/10', ...fast })) void _;
  }, (e) => e instanceof ResyncRequiredError && e.message === '0/10 is older than the log' && e.position === '0/10');
  assert.equal(r.requests.length, 1);
  await r.close();
});

test('streamed transactions are delivered at stream commit, minus aborted subtransactions', async () => {
  const r = await relay(() => ({
    chunks: [
      stream(
        frames.msg(pg.streamStart(50, true)),
        frames.msg(pg.relation(1, 'public', 't', [{ name: 'id', oid: 23, key: true }, { name: 'v', oid: 25 }], { xid: 50 })),
        frames.msg(pg.insert(1, ['1', 'a'], 50)),
        frames.msg(pg.insert(1, ['2', 'b'], 51)),
        frames.msg(pg.insert(1, ['3', 'c'], 51)),
        frames.msg(pg.streamStop()),
        frames.msg(pg.streamAbort(50, 51)),
        frames.msg(pg.streamStart(60, true)),
        // A relation described inside a streamed transaction is scoped to it: describe it again.
        frames.msg(pg.relation(1, 'public', 't', [{ name: 'id', oid: 23, key: true }, { name: 'v', oid: 25 }], { xid: 60 })),
        frames.msg(pg.insert(1, ['9', 'z'], 60)),
        frames.msg(pg.streamStop()),
        frames.msg(pg.streamAbort(60, 60)),
        frames.msg(pg.streamStart(50, false)),
        frames.msg(pg.insert(1, ['4', 'd'], 50)),
        frames.msg(pg.streamStop()),
        frames.msg(pg.streamCommit(50, 0x500n, 0x508n, T0)),
      ),
    ],
    hold: true,
  }));
  const got = [];
  for await (const c of connect(r.base, fast)) {
    got.push(c.new.id);
    assert.equal(c.commit.endLsn, '0/508');
    if (got.length === 2) break;
  }
  assert.deepEqual(got, [1, 4]);
  await r.close();
});

test('abort ends the iteration quietly, also while waiting to reconnect', async () => {
  const r = await relay(() => ({ status: 503 }));
  const ac = new AbortController();
  const seen = [];
  const sub = connect(r.base, { signal: ac.signal, backoff: { initialMs: 20, maxMs: 40 }, onReconnect: (i) => seen.push(i) });
  setTimeout(() => ac.abort(), 200);
  const got = [];
  for await (const c of sub) got.push(c);
  assert.equal(got.length, 0);
  assert.ok(seen.length >= 2, `expected retries, saw ${seen.length}`);
  assert.ok(seen.every((s) => s.delayMs <= 40));
  assert.ok(r.requests.length >= 2);
  await r.close();
});

test('undecodable bytes are a DecodeError for the consumer, not an endless reconnect loop', async () => {
  const r = await relay(() => ({ chunks: [stream(frames.msg(pg.insert(77, ['1'])))] }));
  await assert.rejects(async () => {
    for await (const _ of connect(r.base, fast)) void _;
  }, /relation 77/);
  assert.equal(r.requests.length, 1);
  await r.close();
});

test('a stream header alone then silence keeps the subscription open until aborted', async () => {
  const r = await relay(() => ({ chunks: [STREAM_HEADER], hold: true }));
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  const t = Date.now();
  for await (const _ of connect(r.base, { signal: ac.signal, ...fast })) void _;
  assert.ok(Date.now() - t >= 90);
  assert.equal(r.requests.length, 1);
  await r.close();
});
