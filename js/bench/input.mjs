// The benches' shared input: the narrow7 capture (tests/fixtures/narrow7_text.hex), its
// Relation/Type messages once and its other messages repeated until `rows` inserts, also as
// one version 1 frame stream.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
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

// The same stream in frame version 3 (what connect() asks a relay for: row records coded
// against the previous row, no per-frame CRC), transcoded by the native encoder the relay uses.
export function version3(framed) {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  try {
    execFileSync('cargo', ['build', '-q', '--release', '-p', 'walcast-wasm', '--example', 'fixture_jsonl'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  } catch {
    console.log('(no cargo: the frame version 3 row is skipped)');
    return null;
  }
  const tool = join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'release', 'examples', 'fixture_jsonl');
  return new Uint8Array(execFileSync(tool, ['--transcode', '3'], { input: framed, maxBuffer: 1 << 30 }));
}
