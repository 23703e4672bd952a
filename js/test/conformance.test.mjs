// Conformance on real PostgreSQL captures: for every fixture (one `\x…` hex pgoutput message per
// line), the WASM decoder must print exactly the native JSON lines, and the JS objects built from
// the flat buffers must carry the same values as the native JSON.
//
// Expected output: FILE.expected.jsonl next to the fixture when present (made by the native
// decoder), else the native decoder run now (`cargo run --example fixture_jsonl`).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Decoder, UNCHANGED_TOAST } from '../dist/node/index.mjs';
import { fromHexLine, frames, stream } from './pgwire.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dirs = ['tests/fixtures', 'decoder/tests/fixtures/pg15'].map((d) => join(root, d));
const fixtures = dirs.filter(existsSync).flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.hex')).map((f) => join(d, f)));

// The native reference tool, built once (a `cargo run` per fixture took minutes on a loaded machine).
let tool = null;
function nativeTool() {
  if (!tool) {
    execFileSync('cargo', ['build', '-q', '--offline', '-p', 'walcast-wasm', '--example', 'fixture_jsonl'], { cwd: root, stdio: 'inherit' });
    tool = join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'debug', 'examples', 'fixture_jsonl');
  }
  return tool;
}

function nativeJsonl(file) {
  const expected = file.replace(/\.hex$/, '.expected.jsonl');
  if (existsSync(expected)) return readFileSync(expected, 'utf8');
  return execFileSync(nativeTool(), [file], { encoding: 'utf8', maxBuffer: 1 << 28 });
}

function nativeMsgpackHex(file) {
  return execFileSync(nativeTool(), ['--msgpack', file], { encoding: 'utf8', maxBuffer: 1 << 28 }).trim();
}

const hex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join('');
const snake = (t) => t.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());

// A JS value (decoded with int8/numeric/timestamps as strings) in the form JSON.parse gives for
// the native JSON of the same column.
function toNative(v, col) {
  if (v === null) return null;
  if (v instanceof Uint8Array) return '\\x' + hex(v);
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'NaN';
    if (!Number.isFinite(v)) return v > 0 ? 'Infinity' : '-Infinity';
    return col.typeOid === 26 ? String(v) : v; // oid: a number in JS, a string in to_json()
  }
  if (typeof v === 'string' && (col.typeOid === 20 || col.typeOid === 1700)) {
    return /^-?\d/.test(v) ? Number(v) : v;
  }
  return v;
}

function compareRow(jsRow, nativeRow, relation, where) {
  if (nativeRow === undefined) {
    assert.equal(jsRow, null, `${where}: JS has a row the native output does not`);
    return;
  }
  const seen = {};
  for (const col of relation.columns) {
    const v = jsRow[col.name];
    if (v === UNCHANGED_TOAST || v === undefined) continue; // native leaves these out of the row
    seen[col.name] = toNative(v, col);
  }
  assert.deepEqual(seen, nativeRow, where);
}

for (const file of fixtures) {
  const name = file.slice(root.length);
  test(`conformance: ${name}`, () => {
    const msgs = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map(fromHexLine);
    const native = nativeJsonl(file);

    // 1. The WASM build of the decoder prints exactly what the native build prints.
    assert.equal(new Decoder().messagesToJsonLines(msgs), native);

    // 2. The objects built from the flat buffers carry the same values.
    const lines = native.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const d = new Decoder({ int8: 'string', numeric: 'string', timestamps: 'string' });
    const events = d.decodeMessages(msgs);
    assert.equal(events.length, lines.length);
    let rows = 0;
    events.forEach((ev, i) => {
      const n = lines[i];
      const where = `${name} message ${i + 1} (${n.type})`;
      assert.equal(snake(ev.type), n.type, where);
      if (ev.type === 'insert' || ev.type === 'update' || ev.type === 'delete') {
        rows++;
        assert.equal(ev.relation.schema, n.schema, where);
        assert.equal(ev.relation.table, n.table, where);
        compareRow(ev.new, n.new, ev.relation, where + ' new');
        compareRow(ev.old, n.old, ev.relation, where + ' old');
        compareRow(ev.key, n.key, ev.relation, where + ' key');
        const toast = ev.new ? ev.relation.columns.filter((c) => ev.new[c.name] === UNCHANGED_TOAST).map((c) => c.name) : [];
        assert.deepEqual(toast, n.unchanged_toast ?? [], where + ' unchanged_toast');
      } else if (ev.type === 'begin') {
        assert.equal(ev.finalLsn, n.final_lsn, where);
        assert.equal(ev.commitTime, n.commit_ts, where);
      } else if (ev.type === 'commit' || ev.type === 'streamCommit' || ev.type === 'commitPrepared') {
        assert.equal(ev.endLsn, n.end_lsn, where);
        assert.equal(ev.commitLsn, n.commit_lsn, where);
        assert.equal(ev.commitTime, n.commit_ts, where);
      } else if (ev.type === 'relation') {
        assert.equal(ev.relation.id, n.relation_id, where);
        assert.deepEqual(ev.relation.columns.map((c) => c.name), n.columns.map((c) => c.name), where);
      } else if (ev.type === 'streamAbort') {
        assert.deepEqual(ev.discarded, n.discarded_xids, where);
      } else if (ev.type === 'message') {
        assert.equal(ev.prefix, n.prefix, where);
        assert.equal(ev.transactional, n.transactional, where);
      }
    });
    assert.ok(rows > 0, `${name} has no row changes`);

    // 3. MessagePack: the WASM records equal the native ones, from raw messages and from frames.
    const want = nativeMsgpackHex(file);
    assert.equal(hex(new Decoder().messagesToMsgpack(msgs)), want);
    const framed = stream(msgs.map((m) => frames.msg(m)));
    const fd = new Decoder();
    let got = '';
    for (let o = 0; o < framed.length; o += 777) got += hex(fd.decodeToMsgpack(framed.subarray(o, o + 777)));
    assert.equal(got, want);

    // 4. Frame versions 2 and 3 (as the relay re-encodes for `v=2`, `v=3`): the same events and
    // MessagePack records as version 1, whatever the chunking.
    // Rows of different decoders have different per-relation prototypes: compare the values.
    const plain = (events) => JSON.stringify(events, (_, v) => (typeof v === 'symbol' ? v.toString() : typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? hex(v) : v));
    const v1Events = plain(new Decoder().push(framed));
    for (const version of ['2', '3']) {
      const compact = new Uint8Array(execFileSync(nativeTool(), ['--transcode', version], { input: framed, maxBuffer: 1 << 28 }));
      assert.equal(compact[9], Number(version), `a version ${version} header`);
      const cd = new Decoder();
      const got = [];
      for (let o = 0; o < compact.length; o += 101) got.push(...cd.push(compact.subarray(o, o + 101)));
      assert.equal(plain(got), v1Events, `${name}: version ${version} events`);
      assert.equal(hex(new Decoder().decodeToMsgpack(compact)), want, `${name}: version ${version} msgpack`);
    }
  });
}

test('conformance fixtures exist', () => {
  assert.ok(fixtures.length > 0, `no *.hex fixtures under ${dirs.join(', ')}`);
});
