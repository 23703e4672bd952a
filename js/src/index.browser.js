// Browser / bundler / worker entry: plain ESM. The WASM is fetched on first use (connect), or
// explicitly with `await init()`; pass init(url | bytes | Response | WebAssembly.Module) to load
// it from a CDN or from bytes you already have.
import initGlue, { Core } from '../dist/gen/walcast.js';
import { setWasm, isInitialized, setInitializer } from './core.js';

export * from './api.js';

let pending = null;

export function init(input) {
  if (isInitialized()) return Promise.resolve();
  if (!pending) {
    const module_or_path = input ?? new URL('../walcast.wasm', import.meta.url);
    pending = initGlue({ module_or_path }).then(
      (exp) => setWasm(Core, exp.memory),
      (e) => {
        pending = null;
        throw e;
      },
    );
  }
  return pending;
}

setInitializer(init);
