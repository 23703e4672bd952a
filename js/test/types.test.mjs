// The TypeScript types (dist/index.d.ts, resolved through package.json "exports" like a user's
// project would) type-check a program that uses the whole API.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const js = fileURLToPath(new URL('..', import.meta.url));
const tsc = `${js}node_modules/typescript/bin/tsc`;

test('index.d.ts type-checks a program using the API', { skip: existsSync(tsc) ? false : 'typescript not installed' }, () => {
  let out = '';
  try {
    out = execFileSync(process.execPath, [tsc, '-p', `${js}test/types/tsconfig.json`], { encoding: 'utf8' });
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
  }
  assert.equal(out.trim(), '');
});
