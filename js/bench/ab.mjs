// Compares builds under the same load: `node bench/ab.mjs distA distB [...]` decodes the narrow7
// capture (~200k rows) with each `dist` directory in turn, 9 rounds interleaved, and prints the
// minimum process CPU time of the WASM decode alone and of the whole push (WASM + JS objects).
// Interleaving and the minimum make it usable on a machine that other work keeps busy.
// `--v3` decodes the same stream in frame version 3 (what connect() asks a relay for).
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { narrow7, wasmPush, version3 } from './input.mjs';

const v3 = process.argv.includes('--v3');
const dists = process.argv.slice(2).filter((a) => a !== '--v3');
if (dists.length === 0) throw new Error('usage: node bench/ab.mjs [--v3] distA [distB ...]');
const decoders = [];
for (const [i, d] of dists.entries()) {
  // A query string per build: each gets its own module instance (and its own WASM memory).
  decoders.push((await import(pathToFileURL(resolve(d, 'node/index.mjs')).href + `?${i}`)).Decoder);
}
const { rows, framed } = narrow7();
const fs = v3 ? version3(framed) : framed;
if (!fs) throw new Error('--v3 needs cargo, to transcode the stream');
const CHUNK = 64 * 1024;

function wasmOnly(D) {
  const d = new D();
  for (let o = 0; o < fs.length; o += CHUNK) wasmPush(d, fs.subarray(o, o + CHUNK));
  d.free();
}

function whole(D) {
  const d = new D();
  let s = 0;
  for (let o = 0; o < fs.length; o += CHUNK) {
    for (const e of d.push(fs.subarray(o, o + CHUNK))) if (e.type === 'insert') s += e.new.id ? 1 : 0;
  }
  d.free();
  return s;
}

function cpuMs(fn) {
  const a = process.cpuUsage();
  fn();
  const d = process.cpuUsage(a);
  return (d.user + d.system) / 1e3;
}

const best = dists.map(() => [Infinity, Infinity]);
for (const D of decoders) {
  wasmOnly(D); // warm up
  whole(D);
}
for (let r = 0; r < 9; r++) {
  decoders.forEach((D, i) => {
    best[i][0] = Math.min(best[i][0], cpuMs(() => wasmOnly(D)));
    best[i][1] = Math.min(best[i][1], cpuMs(() => whole(D)));
  });
}
dists.forEach((d, i) => {
  const [w, a] = best[i];
  console.log(`${d}: wasm ${w.toFixed(0)} ms, whole ${a.toFixed(0)} ms (${(rows / a / 1e3).toFixed(2)} M rows/s per CPU-second), JS objects ${(a - w).toFixed(0)} ms`);
});
