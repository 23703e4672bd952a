// Node entry (ESM and, via the build, CommonJS): the WASM is read from disk and instantiated
// synchronously at import, so `init()` is optional here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initSync, Core } from '../dist/gen/walcast.js';
import { setWasm, isInitialized, setInitializer } from './core.js';

export * from './api.js';

function wasmPath() {
  // CommonJS build: __dirname is dist/node; ESM build: import.meta.url is dist/node/index.mjs.
  // The build defines WALCAST_CJS: testing for __dirname would misfire in ESM under `node -e`
  // and the REPL, which define a global __dirname.
  // eslint-disable-next-line no-undef
  if (WALCAST_CJS) return join(__dirname, '..', 'walcast.wasm');
  return fileURLToPath(new URL('../walcast.wasm', import.meta.url));
}

function instantiate(input) {
  const exp = initSync({ module: input ?? readFileSync(wasmPath()) });
  setWasm(Core, exp.memory);
}

/** Optional in Node. Accepts the module's bytes or a WebAssembly.Module to use instead. */
export async function init(input) {
  if (isInitialized()) return;
  if (input instanceof Response) input = new Uint8Array(await input.arrayBuffer());
  instantiate(input);
}

setInitializer(init);
instantiate();
