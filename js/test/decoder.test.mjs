import test from 'node:test';
import assert from 'node:assert/strict';
import { Decoder, DecodeError, UNCHANGED_TOAST } from '../dist/node/index.mjs';
import { readFileSync } from 'node:fs';
import { pg, pgTime, frame, frames, stream, fromHexLine } from './pgwire.mjs';

const T0 = pgTime('2024-05-06T07:08:09.123Z');
const COLS = [
  { name: 'id', oid: 20, key: true },
  { name: 'name', oid: 25 },
  { name: 'n', oid: 23 },
  { name: 'price', oid: 1700 },
  { name: 'ok', oid: 16 },
  { name: 'at', oid: 1184 },
  { name: 'doc', oid: 3802 },
  { name: 'weird col', oid: 1043 },
];

function relation() {
  return pg.relation(16384, 'public', 'items', COLS);
}

test('decodes a transaction of typed rows from raw pgoutput messages', () => {
  const d = new Decoder();
  const ev = d.decodeMessages([
    pg.begin(0x16b374d848n, T0, 777),
    relation(),
    pg.insert(16384, ['1', 'héllo 😀', '-5', '12.3400', 't', '2024-05-06 07:08:09.123456+00', '{"a":[1,2]}', 'x']),
    pg.commit(0x16b374d848n, 0x16b374d900n, T0),
  ]);
  assert.deepEqual(ev.map((e) => e.type), ['begin', 'relation', 'insert', 'commit']);
  assert.equal(ev[0].finalLsn, '16/B374D848');
  assert.equal(ev[0].xid, 777);
  assert.equal(ev[0].commitTime.toISOString(), '2024-05-06T07:08:09.123Z');
  assert.equal(ev[3].endLsn, '16/B374D900');
  const row = ev[2].new;
  assert.deepEqual({ ...row }, {
    id: 1,
    name: 'héllo 😀',
    n: -5,
    price: '12.3400',
    ok: true,
    at: new Date('2024-05-06T07:08:09.123Z'),
    doc: { a: [1, 2] },
    'weird col': 'x',
  });
  assert.deepEqual(Object.keys(row), COLS.map((c) => c.name));
  assert.equal(ev[2].relation.schema, 'public');
  assert.equal(ev[2].relation.table, 'items');
  assert.equal(ev[2].relation.columns[0].key, true);
  assert.equal(ev[2].relation.replicaIdentity, 'default');
});

test('int8 option: number when safe else exact string, bigint, string', () => {
  const msgs = [relation(), pg.insert(16384, ['9007199254740993', null, null, null, null, null, null, null]), pg.insert(16384, ['-42', null, null, null, null, null, null, null])];
  const pick = (opts) => new Decoder(opts).decodeMessages(msgs).filter((e) => e.type === 'insert').map((e) => e.new.id);
  assert.deepEqual(pick({}), ['9007199254740993', -42]);
  assert.deepEqual(pick({ int8: 'bigint' }), [9007199254740993n, -42n]);
  assert.deepEqual(pick({ int8: 'string' }), ['9007199254740993', '-42']);
  assert.throws(() => new Decoder({ int8: 'float' }), TypeError);
});

test('timestamps: string form keeps microseconds as PostgreSQL prints them', () => {
  const d = new Decoder({ timestamps: 'string', numeric: 'number' });
  const [, ins] = d.decodeMessages([relation(), pg.insert(16384, ['1', null, null, '-0.5', 'f', '1999-12-31 23:59:59.00005+00', null, null])]);
  assert.equal(ins.new.at, '1999-12-31T23:59:59.00005+00:00');
  assert.equal(ins.new.price, -0.5);
  assert.equal(ins.new.ok, false);
  assert.equal(ins.new.name, null);
});

test('unchanged TOAST is a distinct marker, never null; key tuples leave other columns undefined', () => {
  const d = new Decoder();
  const [, upd, del] = d.decodeMessages([
    relation(),
    pg.update(16384, ['1', pg.TOAST, null, null, null, null, null, null], { old: ['1', null, null, null, null, null, null, null], oldKind: 'K' }),
    pg.delete(16384, ['1', null, null, null, null, null, null, null]),
  ]);
  assert.equal(upd.new.name, UNCHANGED_TOAST);
  assert.notEqual(upd.new.name, null);
  assert.equal(upd.new.n, null);
  assert.equal(upd.old, null);
  assert.equal(upd.key.id, 1);
  assert.equal(upd.key.name, undefined);
  assert.equal(del.type, 'delete');
  assert.equal(del.key.id, 1);
  assert.equal(del.new, null);
  assert.equal(JSON.stringify(UNCHANGED_TOAST), '{"$walcast":"unchanged_toast"}');
});

test('frame stream split at every byte decodes identically, with heartbeats, resets and end', () => {
  const bytes = stream(
    frames.msg(pg.begin(0x100n, T0, 5)),
    frames.msg(relation()),
    frames.msg(pg.insert(16384, ['7', 'a', '1', '1', 't', '2000-01-01 00:00:00+00', 'null', 'z'])),
    frames.msg(pg.commit(0x100n, 0x180n, T0)),
    frames.heartbeat(0x180n),
    frames.reset(),
    frame('?', 9n, Uint8Array.of(1, 2, 3)), // unknown kind: skipped
    frames.end('shutdown', 'bye'),
  );
  const whole = new Decoder().push(bytes);
  assert.deepEqual(whole.map((e) => e.type), ['begin', 'relation', 'insert', 'commit', 'heartbeat', 'reset', 'end']);
  assert.equal(whole[4].lsn, '0/180');
  assert.deepEqual(whole[6], { type: 'end', code: 'shutdown', message: 'bye' });
  const d = new Decoder();
  const split = [];
  for (let i = 0; i < bytes.length; i++) split.push(...d.push(bytes.subarray(i, i + 1)));
  assert.deepEqual(split.map((e) => JSON.stringify(e)), whole.map((e) => JSON.stringify(e)));
});


test('corrupt input is a DecodeError, not a crash', () => {
  const good = stream(frames.msg(pg.begin(1n, T0, 1)));
  const bad = good.slice();
  bad[bad.length - 1] ^= 0xff;
  assert.throws(() => new Decoder().push(bad), (e) => e instanceof DecodeError && /checksum/.test(e.message));
  assert.throws(() => new Decoder().push(new TextEncoder().encode('HTTP/1.1 200 OK')), DecodeError);
  assert.throws(() => new Decoder().decodeMessage(pg.insert(99, ['1'])), /relation/);
  assert.throws(() => new Decoder().decodeMessage(Uint8Array.of(0x42, 1, 2)), /ends early/);
});

test('WASM decode errors carry the kind, the offset and the native message text', () => {
  // The messages are walcast-decoder's Display texts for the same inputs (`walcast decode` of the
  // lone message). Offsets of raw messages count from the first byte of the message they are
  // in; with several, the text and `messageIndex` say which.
  const begin = Uint8Array.of(0x42, ...new Array(20).fill(0));
  const cases = [
    [() => new Decoder().decodeMessage(Uint8Array.of(0x42, 1, 2)), 'Truncated', 1, 0, 'input ends early: 6 more byte(s) needed at byte 1 (in Begin final LSN)'],
    [() => new Decoder().decodeMessage(Uint8Array.of(0x5a)), 'UnknownMessageTag', 0, 0, "unknown pgoutput message tag 'Z' at byte 0 (in message tag)"],
    [() => new Decoder().decodeMessage(Uint8Array.of(10)), 'UnknownMessageTag', 0, 0, "unknown pgoutput message tag '\\n' at byte 0 (in message tag)"],
    [() => new Decoder().messagesToJsonLines([Uint8Array.of(0xad)]), 'UnknownMessageTag', 0, 0, "unknown pgoutput message tag '\\u{ad}' at byte 0 (in message tag)"],
    [() => new Decoder().decodeMessages([begin, Uint8Array.of(0x42, 1, 2)]), 'Truncated', 1, 1, 'input ends early: 6 more byte(s) needed at byte 1 (in Begin final LSN) (message 1 of 2)'],
    [() => new Decoder().messagesToMsgpack([begin, begin, Uint8Array.of(0x5a)]), 'UnknownMessageTag', 0, 2, "unknown pgoutput message tag 'Z' at byte 0 (in message tag) (message 2 of 3)"],
    [() => new Decoder().push(new TextEncoder().encode('HTTP/1.1 200 OK')), 'Unexpected', 0, undefined, 'unexpected byte 72, expected walcast magic "WALCAST\\0" at byte 0 (in stream header)'],
  ];
  for (const [fn, kind, offset, messageIndex, message] of cases) {
    assert.throws(fn, (e) => {
      assert.ok(e instanceof DecodeError, String(e));
      assert.deepEqual({ kind: e.kind, offset: e.offset, messageIndex: e.messageIndex, message: e.message }, { kind, offset, messageIndex, message });
      return true;
    });
  }
});

test('streamed transactions, truncate and logical messages', () => {
  const d = new Decoder();
  const ev = d.decodeMessages([
    pg.streamStart(900, true),
    pg.relation(16384, 'public', 'items', COLS, { xid: 900 }),
    pg.insert(16384, ['1', null, null, null, null, null, null, null], 900),
    pg.truncate([16384], 3, 900),
    pg.message('ctx', new TextEncoder().encode('{"req":1}'), { xid: 900, lsn: 5n }),
    pg.streamStop(),
    pg.streamAbort(900, 901),
    pg.streamCommit(900, 0x10n, 0x20n, T0),
  ]);
  assert.deepEqual(ev.map((e) => e.type), ['streamStart', 'relation', 'insert', 'truncate', 'message', 'streamStop', 'streamAbort', 'streamCommit']);
  assert.equal(ev[2].xid, 900);
  assert.equal(ev[3].cascade, true);
  assert.equal(ev[3].restartIdentity, true);
  assert.equal(ev[3].relations[0].table, 'items');
  assert.equal(new TextDecoder().decode(ev[4].content), '{"req":1}');
  assert.equal(ev[4].prefix, 'ctx');
  assert.equal(ev[6].subxid, 901);
  assert.equal(ev[7].endLsn, '0/20');
});

test('column names are data, never code or prototypes', () => {
  const cols = [{ name: '__proto__', oid: 25 }, { name: 'a"b\\c', oid: 23 }, { name: '}); throw 1; ({', oid: 23 }, { name: 'constructor', oid: 25 }];
  const [, ins] = new Decoder().decodeMessages([pg.relation(5, 'weird schema', '1-table', cols), pg.insert(5, ['p', '1', '2', 'c'])]);
  // A plain object: the column named __proto__ is an own field and left the prototype alone.
  assert.equal(Object.getPrototypeOf(ins.new), Object.prototype);
  assert.deepEqual(Object.keys(ins.new), cols.map((c) => c.name));
  assert.equal(ins.new['__proto__'], 'p');
  assert.equal(ins.new['a"b\\c'], 1);
  assert.equal(ins.new['}); throw 1; ({'], 2);
  assert.equal(ins.new.constructor, 'c');
});

test('without eval (CSP) the fallback row reader gives the same rows', () => {
  // Every row shape of the typed capture (NULLs, TOAST, arrays, every type), decoded with the
  // generated readers and with `new Function` refused as under a strict CSP.
  const file = new URL('../../tests/fixtures/types_text.hex', import.meta.url);
  const msgs = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map(fromHexLine);
  const show = (events) => events.map((e) => JSON.stringify(e, (k, v) => (typeof v === 'bigint' ? `${v}n` : v)));
  const want = show(new Decoder().decodeMessages(msgs));
  const saved = globalThis.Function;
  globalThis.Function = function () {
    throw new EvalError('refused by Content-Security-Policy');
  };
  let got;
  try {
    got = show(new Decoder().decodeMessages(msgs));
  } finally {
    globalThis.Function = saved;
  }
  assert.deepEqual(got, want);
});

test('a kept value does not keep its chunk alive', async () => {
  // V8 makes a long substring a slice of its parent: a row value that were a substring of the
  // chunk's string would keep that whole string alive. Keep one 17-character email per chunk of
  // the narrow7 capture and measure the heap (in a child process, for --expose-gc).
  const { execFileSync } = await import('node:child_process');
  const script = `
    import { Decoder } from ${JSON.stringify(new URL('../dist/node/index.mjs', import.meta.url).href)};
    import { narrow7 } from ${JSON.stringify(new URL('../bench/input.mjs', import.meta.url).href)};
    const { framed } = narrow7(100000);
    const d = new Decoder();
    const kept = [];
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let o = 0; o < framed.length; o += 65536) {
      const ins = d.push(framed.subarray(o, o + 65536)).find((e) => e.type === 'insert');
      if (ins) kept.push(ins.new.email);
    }
    gc();
    console.log(JSON.stringify({ kept: kept.length, grew: process.memoryUsage().heapUsed - before }));`;
  const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' }));
  assert.ok(out.kept > 200, `kept ${out.kept}`);
  // Slices of the chunk strings kept ~14 KB per email; own strings take tens of bytes.
  assert.ok(out.grew / out.kept < 1024, `${out.grew} bytes for ${out.kept} kept strings`);
});
