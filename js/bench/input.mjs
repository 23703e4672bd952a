// The benches' shared input: the narrow7 capture (tests/fixtures/narrow7_text.hex), its
// Relation/Type messages once and its other messages repeated until `rows` inserts, also as
// one version 1 frame stream.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { frames, stream, fromHexLine } from '../test/pgwire.mjs';

export function narrow7(rows = 200000) {
  const fixture = fileURLToPath(new URL('../../tests/fixtures/narrow7_text.hex', import.meta.url));
  const base = readFileSync(fixture, 'utf8').split('\n').filter((l) => l.trim()).map(fromHexLine);
  const rel = base.filter((m) => m[0] === 0x52 || m[0] === 0x59);
  const rest = base.filter((m) => m[0] !== 0x52 && m[0] !== 0x59);
  const perRound = rest.filter((m) => m[0] === 0x49).length || 1;
  const msgs = [...rel];
  for (let n = 0; n < rows; n += perRound) msgs.push(...rest);
  return {
    msgs,
    rows: msgs.filter((m) => m[0] === 0x49).length,
    framed: stream(msgs.map((m) => frames.msg(m))),
  };
}

// The WASM half of Decoder.push (decoding into the flat buffers, no JS objects), also for
// builds from before Decoder._pushWasm, whose Core took the chunk itself.
export function wasmPush(d, chunk) {
  return d._pushWasm ? d._pushWasm(chunk) : d._core.push_frames(chunk);
}
