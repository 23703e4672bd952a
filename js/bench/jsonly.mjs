// Times only the JS object building (Decoder._read on flat buffers already decoded by WASM):
// `node bench/jsonly.mjs [dist dir]`. CPU time, median of 9 runs; each run reads every chunk
// of the narrow7 capture 150 times.
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { frames, stream, fromHexLine } from '../test/pgwire.mjs';
import { wasmPush } from './input.mjs';

const dist = process.argv[2] ? pathToFileURL(process.argv[2] + '/').href : new URL('../dist/', import.meta.url).href;
const { Decoder } = await import(new URL('node/index.mjs', dist).href);
const fixture = fileURLToPath(new URL('../../tests/fixtures/narrow7_text.hex', import.meta.url));
const base = readFileSync(fixture, 'utf8').split('\n').filter((l) => l.trim()).map(fromHexLine);
const fs = stream(base.map((m) => frames.msg(m)));
const CHUNK = 64 * 1024;
const REPEAT = 150;

function run() {
  const d = new Decoder();
  let rows = 0;
  let ms = 0;
  for (let o = 0; o < fs.length; o += CHUNK) {
    const status = wasmPush(d, fs.subarray(o, o + CHUNK));
    const a = process.cpuUsage();
    for (let r = 0; r < REPEAT; r++) {
      for (const e of d._read(status)) if (e.type === 'insert') rows += e.new.id ? 1 : 0;
    }
    const u = process.cpuUsage(a);
    ms += (u.user + u.system) / 1e3;
  }
  d.free();
  return [rows, ms];
}

run();
const t = [];
let rows = 0;
for (let i = 0; i < 9; i++) {
  const [n, ms] = run();
  rows = n;
  t.push(ms);
}
t.sort((a, b) => a - b);
console.log(`JS objects only: ${(rows / t[4] / 1e3).toFixed(2)} M rows/s (${rows} rows in ${t[4].toFixed(0)} ms CPU)`);
