// The CommonJS entry loads the same single .wasm and exposes the same API as the ESM entries.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

test('require("walcast") works and decodes', async () => {
  const w = require('../dist/node/index.cjs');
  for (const name of ['connect', 'Decoder', 'UNCHANGED_TOAST', 'ResyncRequiredError', 'BadRequestError', 'DecodeError', 'init', 'fetchTransport', 'parseLsn', 'formatLsn']) {
    assert.ok(w[name] !== undefined, `missing export ${name}`);
  }
  await w.init(); // optional in Node, must be harmless
  const { pg } = await import('./pgwire.mjs');
  const d = new w.Decoder({ int8: 'bigint' });
  const ev = d.decodeMessages([pg.relation(1, 's', 't', [{ name: 'a', oid: 20 }]), pg.insert(1, ['5'])]);
  assert.equal(ev[1].new.a, 5n);
  assert.equal(w.formatLsn(w.parseLsn('16/B374D848')), '16/B374D848');
  assert.ok(new w.ResyncRequiredError('x') instanceof w.WalcastError);
});

test('package.json exports resolve to built files, with one .wasm for every environment', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
  const root = path.join(__dirname, '..');
  const e = pkg.exports['.'];
  for (const f of [e.types, e.node.import, e.node.require, e.browser, e.default, pkg.exports['./walcast.wasm']]) {
    assert.ok(fs.existsSync(path.join(root, f)), `${f} missing: run scripts/build-js.sh`);
  }
  const wasmFiles = [];
  (function walk(d) {
    for (const f of fs.readdirSync(d, { withFileTypes: true })) {
      if (f.isDirectory()) walk(path.join(d, f.name));
      else if (f.name.endsWith('.wasm')) wasmFiles.push(f.name);
    }
  })(path.join(root, 'dist'));
  assert.deepEqual(wasmFiles, ['walcast.wasm']);
  // The browser bundle must not use Node built-ins.
  const browser = fs.readFileSync(path.join(root, e.browser), 'utf8');
  assert.doesNotMatch(browser, /node:|require\(/);
});

test('the ESM entry loads where a global __dirname exists (node -e, the REPL)', () => {
  const { execFileSync } = require('node:child_process');
  const url = require('node:url').pathToFileURL(path.join(__dirname, '..', 'dist', 'node', 'index.mjs')).href;
  // `node -e` defines a global __dirname ('.'); the ESM build must still find its .wasm.
  const out = execFileSync(process.execPath, ['-e', `import(${JSON.stringify(url)}).then((m) => console.log(typeof m.Decoder))`], { cwd: '/', encoding: 'utf8' });
  assert.equal(out.trim(), 'function');
});
