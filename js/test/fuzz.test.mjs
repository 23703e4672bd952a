// Mutated real captures through the shipped .wasm and the JS that reads its output: every
// failure must be a DecodeError (never a WASM trap, nor a TypeError/RangeError from reading a
// half-written buffer), what decoded before it must be whole events, and nothing may stop the
// module from serving the next decoder. js/wasm/tests/fuzz.rs checks the Rust half natively,
// and js/wasm/fuzz fuzzes it; this is the same idea end to end, as the package runs it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { Decoder, DecodeError } from '../dist/node/index.mjs';
import { frames, stream, fromHexLine } from './pgwire.mjs';

const root = new URL('../../', import.meta.url);
function captures(max) {
  const out = [];
  for (const dir of ['tests/fixtures/', 'decoder/tests/fixtures/pg15/']) {
    for (const name of readdirSync(new URL(dir, root)).filter((n) => n.endsWith('.hex')).sort()) {
      const lines = readFileSync(new URL(dir + name, root), 'utf8').split('\n').filter((l) => l.trim());
      out.push({ name, msgs: lines.slice(0, max).map(fromHexLine) });
    }
  }
  return out;
}

// xorshift32: the same mutations on every run, so a failure reproduces.
function rng(seed) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  return { next, below: (n) => (n > 0 ? next() % n : 0) };
}

function mutate(r, msgs) {
  const i = r.below(msgs.length);
  const m = msgs[i];
  const at = r.below(m.length);
  switch (m.length === 0 ? -1 : r.below(7)) {
    case -1:
      msgs[i] = Uint8Array.of(r.next() & 255);
      break;
    case 0:
      m[at] = r.next() & 255;
      break;
    case 1:
      m[at] ^= 1 << r.below(8);
      break;
    case 2:
      msgs[i] = m.slice(0, at);
      break;
    case 3:
      msgs[i] = Uint8Array.from([...m.subarray(0, at), ...m.subarray(at + 1)]);
      break;
    case 4: {
      const piece = m.subarray(at, at + 1 + r.below(16));
      msgs[i] = Uint8Array.from([...m.subarray(0, at), ...piece, ...m.subarray(at)]);
      break;
    }
    case 5:
      msgs.splice(i, 1);
      break;
    default:
      msgs.splice(r.below(msgs.length), 0, m.slice());
  }
}

// Serializes every field of every event (BigInt and bytes included): a half-read buffer shows
// up as a throw here or in the decoder, not as silently odd values.
function walk(events) {
  assert.ok(Array.isArray(events));
  for (const e of events) {
    assert.equal(typeof e.type, 'string');
    JSON.stringify(e, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
  }
}

// Runs `fn`; returns its events, or a DecodeError's `events` (what decoded before it).
function decodeOrError(fn, what) {
  try {
    return { events: fn(), error: null };
  } catch (e) {
    if (!(e instanceof DecodeError)) {
      assert.fail(`${what}: ${e?.constructor?.name}: ${e?.message}\n${e?.stack}`);
    }
    return { events: e.events ?? [], error: e };
  }
}

test('mutated captures give events or a DecodeError, never a crash', () => {
  const r = rng(0x2545f491);
  const bases = captures(30);
  let runs = 0;
  let failed = 0;
  for (const { name, msgs: base } of bases) {
    for (let k = 0; k < 120; k++) {
      const msgs = base.map((m) => m.slice());
      for (let n = 1 + r.below(3); n > 0 && msgs.length > 0; n--) mutate(r, msgs);
      const what = `${name} mutation ${k}`;

      const d = new Decoder();
      const direct = decodeOrError(() => d.decodeMessages(msgs), what);
      walk(direct.events);
      if (direct.error) {
        failed++;
        // Every message before the failing one is exactly one whole event.
        assert.equal(direct.events.length, direct.error.messageIndex, what);
      } else {
        assert.equal(direct.events.length, msgs.length, what);
      }
      d.free();

      // The same messages as a frame stream, in uneven chunks.
      const bytes = stream(msgs.map((m) => frames.msg(m)));
      const f = new Decoder();
      const got = [];
      let ferr = null;
      for (let o = 0; o < bytes.length && !ferr; o += 97) {
        const res = decodeOrError(() => f.push(bytes.subarray(o, o + 97)), what + ' (frames)');
        got.push(...res.events);
        ferr = res.error;
      }
      walk(got);
      assert.equal(ferr !== null, direct.error !== null, what + ': frames and messages disagree');
      assert.equal(got.length, direct.events.length, what + ': frames and messages disagree');
      f.free();

      const p = new Decoder();
      const packed = decodeOrError(() => [p.messagesToMsgpack(msgs)], what + ' (msgpack)');
      if (!packed.error) assert.ok(packed.events[0] instanceof Uint8Array);
      p.free();
      runs++;
    }
  }
  // Both sides got exercised: batches that fail part-way, and batches that decode.
  assert.ok(failed > runs / 10 && failed < (runs * 9) / 10, `${failed} of ${runs} failed`);

  // And the module still serves a new decoder as before.
  for (const { name, msgs } of bases) {
    assert.equal(new Decoder().decodeMessages(msgs).length, msgs.length, name);
  }
});
