/**
 * The Redis tools against `protokv serve --resp`, run as a real process: redis-cli (RESP2 and
 * RESP3, --json, --pipe, --scan, --bigkeys, help from COMMAND DOCS) and redis-benchmark (a short,
 * bounded run that must finish without errors). Skipped, saying why, where the tools are missing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { startServerProcess, type ServerProcess } from './helpers/cli.js';
import { encodeCommand, missingRedis, RawResp } from './helpers/resp.js';
import { until } from './helpers/wait.js';

const exec = promisify(execFile);
const skip = missingRedis('redis-cli', 'redis-benchmark');

describe('redis-cli and redis-benchmark against protokv serve --resp', { skip }, () => {
  let server: ServerProcess;
  let port: number;
  const cli = async (...args: string[]): Promise<string> => {
    const { stdout } = await exec('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 60_000 });
    return stdout;
  };

  before(async () => {
    server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0', '--resp', '127.0.0.1:0', '--log-level', 'info']);
    await until(() => server.logs.some((l) => l.msg === 'listening' && l.protocol === 'resp'), 'the RESP listener', 15_000);
    const line = server.logs.find((l) => l.protocol === 'resp')!;
    port = Number(String(line.address).split(':').pop());
  });
  after(async () => {
    assert.equal(await server.stop(), 0, 'graceful shutdown exits 0');
  });

  test('commands and replies, RESP2', async () => {
    assert.equal(await cli('hset', 'users', 'ada', 'Lovelace', 'born', '1815'), '2\n');
    assert.equal(await cli('hget', 'users', 'ada'), 'Lovelace\n');
    assert.equal(await cli('hincrby', 'users', 'born', '1'), '1816\n');
    assert.equal(await cli('--no-raw', 'hget', 'users', 'nobody'), '(nil)\n');
    assert.equal(await cli('--no-raw', 'hgetall', 'nokey'), '(empty array)\n');
    assert.equal(await cli('--no-raw', 'get', 'k'), "(error) ERR unknown command 'get', with args beginning with: 'k' \n");
    assert.equal(await cli('type', 'users'), 'hash\n');
  });

  test('RESP3 with -3 and --json', async () => {
    assert.deepEqual(JSON.parse(await cli('-3', '--json', 'hgetall', 'users')), { ada: 'Lovelace', born: '1816' });
    assert.equal(await cli('-3', '--no-raw', 'hget', 'users', 'nobody'), '(nil)\n');
    assert.equal(await cli('-3', '--no-raw', 'hexists', 'users', 'ada'), '(integer) 1\n');
    const hello = JSON.parse(await cli('-3', '--json', 'hello', '3')) as Record<string, unknown>;
    assert.equal(hello.proto, 3);
    assert.equal(hello.server, 'redis');
  });

  test('--pipe loads 20,000 commands and reports no errors', async () => {
    const commands: Buffer[] = [];
    for (let i = 0; i < 20_000; i++) commands.push(encodeCommand(['HSET', 'piped', `field:${i}`, `value:${i}`]));
    const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port), '--pipe'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.stdin.end(Buffer.concat(commands));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, output);
    assert.match(output, /errors: 0, replies: 20000/);
    assert.equal(await cli('hlen', 'piped'), '20000\n');
  });

  test('--scan, --bigkeys and inline commands on stdin', async () => {
    const keys = (await cli('--scan', '--pattern', 'p*')).trim().split('\n');
    assert.deepEqual(keys, ['piped']);
    const big = await cli('--bigkeys');
    assert.match(big, /Biggest\s+hash found '"?piped"?' has 20000 fields/);
    const { stdout } = await promisify((cb: (err: Error | null, out: { stdout: string }) => void) => {
      const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', () => cb(null, { stdout: out }));
      child.stdin.end('hset inline "a b" "c\\nd"\nhget inline "a b"\nping\n');
    })();
    assert.equal(stdout, '1\nc\nd\nPONG\n');
  });

  test('help text comes from COMMAND DOCS', async () => {
    const help = await cli('help', 'hrandfield');
    assert.match(help, /HRANDFIELD.*key \[count \[WITHVALUES\]\]/);
    assert.match(help, /summary:.*Get one or multiple random fields from a hash/);
    assert.match(await cli('help', 'hset'), /key field value \[field value \.\.\.\]/);
  });

  test('redis-benchmark runs HSET, HGET and PING to completion, pipelined or not, with no errors', async () => {
    await cli('hset', 'bench', 'key:000000000042', 'x');
    const runs = [
      ['-n', '5000', '-c', '20', '-t', 'ping,hset'],
      ['-n', '5000', '-c', '20', '-P', '16', 'HSET', 'bench', 'key:__rand_int__', 'value'],
      ['-n', '5000', '-c', '20', '-P', '16', '-r', '1000', 'HGET', 'bench', 'key:__rand_int__'],
    ];
    for (const args of runs) {
      const { stdout, stderr } = await exec('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '--csv', ...args], { timeout: 120_000 });
      const rows = stdout.trim().split('\n').slice(1);
      assert.ok(rows.length >= 1, stdout + stderr);
      for (const row of rows) {
        const rps = Number((JSON.parse(`[${row}]`) as unknown[])[1]);
        assert.ok(rps > 0, row);
      }
      assert.doesNotMatch(stdout + stderr, /error|ERR/i);
    }
    assert.ok(Number(await cli('hlen', 'bench')) > 1, 'the pipelined HSET run wrote fields');
    // redis-benchmark -t hset writes to "myhash"; it really ran.
    assert.ok(Number(await cli('hlen', 'myhash')) > 0);
  });

  test('QUIT answers OK and the server closes the connection', async () => {
    const c = await RawResp.connect(port);
    c.send('QUIT');
    c.send('PING');
    assert.deepEqual(await c.reply(), { t: 'simple', v: 'OK' });
    await c.closed();
    assert.equal(c.pending, 0, 'nothing after QUIT is run');
  });
});
