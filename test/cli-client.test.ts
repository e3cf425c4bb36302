/**
 * The CLI's client side beyond single commands: values from stdin and files, the settings from
 * the environment, a reader that goes away (`| head`), subscriptions that are lost or survive a
 * restart, and the interactive mode fed by a pipe.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect } from '../src/client/client.js';
import { makeTlsFixture, type TlsFixture } from './helpers/certs.js';
import { BIN, runCli, startServerProcess, type CliResult, type ServerProcess } from './helpers/cli.js';
import { tempDir } from './helpers/stores.js';
import { until } from './helpers/wait.js';

const TIMEOUT = { timeout: 120_000 };

/** Runs `protokv ...args` with `input` on its standard input (no history file). */
function runWithInput(args: string[], input: string | Buffer, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCli(args, { PROTOKV_HISTORY: 'off', ...env }, input);
}

describe('CLI values, environment and output', () => {
  let server: ServerProcess;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0']);
    dir = await tempDir();
  });
  after(async () => {
    await server.stop();
    await dir.remove();
  });
  const at = () => ['--server', server.address];

  test('a VALUE of - comes from stdin: 200 kB of raw bytes, or text', TIMEOUT, async () => {
    const blob = randomBytes(200_000);
    const r = await runWithInput(['hset', 'files', 'blob', '-', '--type', 'bytes', ...at()], blob);
    assert.equal(r.code, 0, r.stderr);
    const back = JSON.parse((await runCli(['hget', 'files', 'blob', '--json', ...at()])).stdout) as { binary: string };
    assert.ok(Buffer.from(back.binary, 'base64').equals(blob));
    assert.equal((await runWithInput(['hset', 'files', 'text', '-', ...at()], 'two\nlines\n')).code, 0);
    assert.equal((await runCli(['hget', 'files', 'text', ...at()])).stdout, '"two\\nlines\\n"\n');
    assert.equal((await runWithInput(['hset', 'files', 'n', '-', '--type', 'int', ...at()], '42\n')).code, 0);
    assert.equal((await runCli(['hget', 'files', 'n', ...at()])).stdout, '(integer) 42\n');
  });

  test('@FILE reads a file, @@ and --literal keep the text as written', TIMEOUT, async () => {
    const file = join(dir.dir, 'value.bin');
    await writeFile(file, Buffer.from([0, 1, 2, 255]));
    assert.equal((await runCli(['hset', 'files', 'f', `@${file}`, '--type', 'bytes', ...at()])).code, 0);
    assert.equal((await runCli(['hget', 'files', 'f', '--json', ...at()])).stdout, '{"binary":"AAEC/w=="}\n');
    await runCli(['hset', 'files', 'at', '@@home', ...at()]);
    assert.equal((await runCli(['hget', 'files', 'at', ...at()])).stdout, '"@home"\n');
    await runCli(['hset', 'files', 'dash', '-', '--literal', ...at()]);
    assert.equal((await runCli(['hget', 'files', 'dash', ...at()])).stdout, '"-"\n');
    const missing = await runCli(['hset', 'files', 'x', `@${join(dir.dir, 'nope')}`, ...at()]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read the value from .*nope/);
  });

  test('a reader that goes away (| head) ends the command quietly', TIMEOUT, async () => {
    const kv = await connect({ host: '127.0.0.1', port: server.port });
    const pairs: [string, string][] = Array.from({ length: 20_000 }, (_, i) => [`key-${i}`, 'v'.repeat(64)]);
    await kv.hmset('wide', pairs);
    await kv.close();
    const child = spawn(process.execPath, [BIN, 'hgetall', 'wide', ...at()], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await once(child.stdout, 'data');
    child.stdout.destroy();
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0);
    assert.equal(stderr, '');
  });
});

describe('CLI over mutual TLS configured from the environment', () => {
  let fixture: TlsFixture;
  let server: ServerProcess;
  before(async () => {
    fixture = await makeTlsFixture();
    const f = fixture.files;
    server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0', '--tls-cert', f.server, '--tls-key', f.serverKey, '--tls-client-ca', f.ca]);
  });
  after(async () => {
    await server.stop();
    await fixture.cleanup();
  });

  test('PROTOKV_SERVER, PROTOKV_TLS_CA, PROTOKV_TLS_CLIENT_CERT and PROTOKV_TLS_CLIENT_KEY', TIMEOUT, async () => {
    const f = fixture.files;
    const env = { PROTOKV_SERVER: server.address, PROTOKV_TLS_CA: f.ca, PROTOKV_TLS_CLIENT_CERT: f.client, PROTOKV_TLS_CLIENT_KEY: f.clientKey };
    assert.deepEqual(await runCli(['hset', 't', 'k', 'v'], env), { code: 0, stdout: '(none)\n', stderr: '' });
    assert.equal((await runCli(['hget', 't', 'k'], env)).stdout, '"v"\n');
    const noCert = await runCli(['hget', 't', 'k'], { PROTOKV_SERVER: server.address, PROTOKV_TLS_CA: f.ca });
    assert.equal(noCert.code, 1);
    assert.match(noCert.stderr, /requires a client certificate/);
  });
});

describe('CLI subscriptions when the server goes away', () => {
  test('subscribe exits 1 when the subscription is lost for good', TIMEOUT, async () => {
    const server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0']);
    const sub = spawn(process.execPath, [BIN, 'subscribe', 'news', '--server', server.address, '--reconnect-attempts', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    sub.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(sub, 'exit') as Promise<[number | null]>;
    await until(() => /subscribed/.test(stderr), 'the subscription', 20_000);
    await server.stop('SIGKILL');
    const [code] = await exited;
    assert.equal(code, 1);
    assert.match(stderr, /closed|lost/);
  });

  test('subscribe carries on after the server restarts on the same port', TIMEOUT, async () => {
    let server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0']);
    const port = server.port;
    const sub = spawn(process.execPath, [BIN, 'subscribe', 'news', '--server', server.address], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    sub.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const lines: string[] = [];
    createInterface({ input: sub.stdout }).on('line', (l) => lines.push(l));
    try {
      await until(() => /subscribed/.test(stderr), 'the subscription', 20_000);
      await server.stop('SIGKILL');
      await until(() => /reconnecting/.test(stderr), 'the subscriber to notice', 20_000);
      server = await startServerProcess(['--memory', '--listen', `127.0.0.1:${port}`]);
      await until(() => /reconnected/.test(stderr), 'the subscriber to reconnect', 30_000);
      // Publish until the renewed subscription is in place.
      for (let i = 0; i < 200 && lines.length === 0; i++) {
        await runCli(['publish', 'news', 'back', '--server', server.address]);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(lines[0], '"back"');
    } finally {
      sub.kill('SIGINT');
      await once(sub, 'exit');
      await server.stop('SIGKILL');
    }
  });
});

describe('interactive mode fed by a pipe', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0']);
  });
  after(() => server.stop());

  test('runs each line as a command, quotes group words, and exits 1 if a command failed', TIMEOUT, async () => {
    const script = ['hset users ada "Ada Lovelace"', 'hset users born 1815 --type int', 'hget users ada', 'hmget users born nobody --json', 'hget users nobody', 'help', ''].join('\n');
    const r = await runWithInput(['--server', server.address], script);
    assert.equal(r.code, 1, r.stderr);
    const out = r.stdout.split('\n');
    assert.deepEqual(out.slice(0, 4), ['(none)', '(none)', '"Ada Lovelace"', '[{"integer":"1815"},null]']);
    assert.match(r.stdout, /hgetall TABLE/);
    assert.match(r.stderr, /Not found: table users, key nobody/);
  });

  test('repl --json, and a clean run exits 0', TIMEOUT, async () => {
    const r = await runWithInput(['repl', '--json', '--server', server.address], 'hexist users ada\nquit\nhget users ada\n');
    assert.deepEqual(r, { code: 0, stdout: 'true\n', stderr: '' });
  });
});

describe('table browsing from the CLI', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0']);
    const kv = await connect({ host: '127.0.0.1', port: server.port });
    await kv.hmset('fruit', Array.from({ length: 25 }, (_, i) => [`f${String(i).padStart(2, '0')}`, BigInt(i)] as [string, bigint]));
    await kv.hset('veg', 'kale', 'green');
    await kv.close();
  });
  after(() => server.stop());
  const at = () => ['--server', server.address];

  test('hlen, and hscan walking every page', TIMEOUT, async () => {
    assert.equal((await runCli(['hlen', 'fruit', ...at()])).stdout, '(integer) 25\n');
    assert.equal((await runCli(['hlen', 'nothing', '--json', ...at()])).stdout, '0\n');
    const all = await runCli(['hscan', 'fruit', '--count', '7', '--json', ...at()]);
    assert.equal(all.code, 0, all.stderr);
    const entries = all.stdout.trim().split('\n').map((l) => JSON.parse(l) as { key: string; value: { integer: string } });
    assert.deepEqual(entries.map((e) => e.key).sort(), Array.from({ length: 25 }, (_, i) => `f${String(i).padStart(2, '0')}`));
    const page = await runCli(['hscan', 'fruit', '--count', '10', '--cursor', '', ...at()]);
    const lines = page.stdout.trim().split('\n');
    assert.equal(lines.length, 11);
    assert.match(lines[10], /^\(next cursor\) ".+"$/);
  });

  test('tables lists every non-empty table with its key count', TIMEOUT, async () => {
    const r = await runCli(['tables', '--count', '1', ...at()]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').sort(), ['"fruit" (25 keys)', '"veg" (1 key)']);
  });

  test('hdrop asks first; without a terminal it needs --yes', TIMEOUT, async () => {
    const refused = await runCli(['hdrop', 'veg', ...at()]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /pass --yes/);
    assert.equal((await runCli(['hlen', 'veg', ...at()])).stdout, '(integer) 1\n');
    assert.equal((await runCli(['hdrop', 'veg', '--yes', ...at()])).stdout, '(integer) 1\n');
    assert.equal((await runCli(['hlen', 'veg', ...at()])).stdout, '(integer) 0\n');
  });
});
