/** The schema matches SPEC 1.3 and the committed generated code is what the generator produces. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tempDir } from './helpers/stores.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SPEC = join(ROOT, '../shared/SPEC.md');

/** message name → sorted "type name = number" lines. */
function fields(protoText: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const text = protoText.replace(/\/\/.*$/gm, '');
  for (const m of text.matchAll(/message\s+(\w+)\s*\{((?:[^{}]|\{[^{}]*\})*)\}/g)) {
    const body = m[2]!;
    const list = Array.from(body.matchAll(/(?:repeated\s+)?(\w+)\s+(\w+)\s*=\s*(\d+)\s*;/g), (f) => `${f[0].replace(/\s+/g, ' ')}`);
    out.set(m[1]!, list.sort());
  }
  return out;
}

test('proto/abi.proto has exactly the messages, fields and numbers of SPEC 1.3', async (t) => {
  if (!existsSync(SPEC)) {
    t.skip('SPEC.md is not beside this checkout');
    return;
  }
  const spec = await readFile(SPEC, 'utf8');
  const block = /```proto\n([\s\S]*?)```/.exec(spec)?.[1];
  assert.ok(block, 'SPEC.md has a proto block');
  const ours = await readFile(join(ROOT, 'proto/abi.proto'), 'utf8');
  assert.match(ours, /^package abi;$/m);
  assert.deepEqual(fields(ours), fields(block));
  assert.equal(fields(ours).size, 20);
});

test('the committed generated code is up to date with proto/abi.proto', async () => {
  const out = await tempDir('protokv-gen-');
  try {
    await promisify(execFile)(join(ROOT, 'node_modules/.bin/buf'), ['generate', '--output', out.dir], { cwd: ROOT });
    const fresh = await readFile(join(out.dir, 'src/protocol/generated/abi.ts'), 'utf8');
    const committed = await readFile(join(ROOT, 'src/protocol/generated/abi.ts'), 'utf8');
    assert.ok(fresh === committed, 'src/protocol/generated/abi.ts is stale: run npm run proto:generate');
  } finally {
    await out.remove();
  }
});
