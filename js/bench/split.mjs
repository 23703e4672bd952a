// Splits the bench time into the WASM decode alone and the whole push (WASM + JS objects), to
// see where time goes: `node bench/split.mjs [dist dir]` (default ../dist). Median of 7 runs of
// process CPU time (user + system), which a loaded machine distorts less than wall clock.
import { pathToFileURL } from 'node:url';
import { narrow7, wasmPush } from './input.mjs';

const dist = process.argv[2] ? pathToFileURL(process.argv[2] + '/').href : new URL('../dist/', import.meta.url).href;
const { Decoder } = await import(new URL('node/index.mjs', dist).href);
const { rows: rowCount, framed: fs } = narrow7();
const CHUNK = 64 * 1024;

function wasmOnly() {
  const d = new Decoder();
  for (let o = 0; o < fs.length; o += CHUNK) wasmPush(d, fs.subarray(o, o + CHUNK));
  d.free();
}

function whole() {
  const d = new Decoder();
  let s = 0;
  for (let o = 0; o < fs.length; o += CHUNK) {
    for (const e of d.push(fs.subarray(o, o + CHUNK))) if (e.type === 'insert') s += e.new.id ? 1 : 0;
  }
  d.free();
  return s;
}

function median(fn) {
  fn();
  const t = [];
  for (let i = 0; i < 7; i++) {
    const a = process.cpuUsage();
    fn();
    const d = process.cpuUsage(a);
    t.push((d.user + d.system) / 1e6);
  }
  t.sort((a, b) => a - b);
  return t[3];
}

const w = median(wasmOnly);
const a = median(whole);
const rate = (s) => (rowCount / s / 1e6).toFixed(2);
console.log(`${rowCount} rows: wasm alone ${rate(w)} M rows/s (${(w * 1e3).toFixed(0)} ms), whole ${rate(a)} M rows/s (${(a * 1e3).toFixed(0)} ms), JS objects ${((a - w) * 1e3).toFixed(0)} ms`);
