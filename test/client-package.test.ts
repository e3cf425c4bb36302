/**
 * The client as users install it: `protokv-client`, packed from this build and installed into an
 * empty directory (offline: its one dependency packed from node_modules), loads with `import` and `require`, talks to
 * a real server, and brings none of the server's dependencies. The main package's own entry
 * loads with `require` too (Node ≥ 20.19).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { packClient } from '../tools/pack-client.js';
import { startServer, type Running } from './helpers/server.js';
import { tempDir } from './helpers/stores.js';

const run = promisify(execFile);
const TIMEOUT = { timeout: 180_000 };
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Names of the packages under `node_modules` (scoped ones as @scope/name). */
async function installed(dir: string): Promise<string[]> {
  const top = path.join(dir, 'node_modules');
  const names: string[] = [];
  for (const entry of await readdir(top)) {
    if (entry.startsWith('.')) continue;
    if (entry.startsWith('@')) for (const sub of await readdir(path.join(top, entry))) names.push(`${entry}/${sub}`);
    else names.push(entry);
  }
  return names.sort();
}

describe('the protokv-client package', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let running: Running;
  before(async () => {
    work = await tempDir('protokv-pack-');
    running = await startServer();
  });
  after(async () => {
    await running.close();
    await work.remove();
  });

  test('installs without native builds, alone with @bufbuild/protobuf, and works by import and require', TIMEOUT, async () => {
    const tarball = await packClient(work.dir);
    const app = path.join(work.dir, 'app');
    await run('mkdir', ['-p', app]);
    await writeFile(path.join(app, 'package.json'), '{ "name": "app", "private": true }\n');
    // Its one dependency comes from this checkout's own node_modules, so nothing is fetched.
    const protobuf = path.join(ROOT, 'node_modules/@bufbuild/protobuf');
    const { stdout: packed } = await run('npm', ['pack', '--silent', '--pack-destination', work.dir, protobuf], { cwd: work.dir });
    const dependency = path.join(work.dir, packed.trim().split('\n').at(-1)!);
    await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', dependency, tarball], { cwd: app });
    assert.deepEqual(await installed(app), ['@bufbuild/protobuf', 'protokv-client']);

    const esm = `import { connect, ProtokvError } from 'protokv-client';
      const kv = await connect({ port: ${running.port} });
      await kv.hset('pkg', 'k', 42n);
      console.log(String(await kv.hget('pkg', 'k')), typeof ProtokvError);
      await kv.close();`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', esm], { cwd: app });
    assert.equal(stdout, '42 function\n');

    const cjs = `const { connect } = require('protokv-client');
      connect({ port: ${running.port} }).then(async (kv) => { console.log(String(await kv.hget('pkg', 'k'))); await kv.close(); });`;
    const required = await run(process.execPath, ['-e', cjs], { cwd: app });
    assert.equal(required.stdout, '42\n');
  });

  test('protokv itself loads with require, and protokv/client resolves to the client entry', TIMEOUT, async () => {
    const script = `const main = require(${JSON.stringify(ROOT)});
      const client = require(${JSON.stringify(path.join(ROOT, 'dist/src/client/index.js'))});
      console.log(typeof main.LmdbStore, typeof main.connect, main.connect === client.connect);`;
    const { stdout } = await run(process.execPath, ['-e', script]);
    assert.equal(stdout, 'function function true\n');
  });
});
