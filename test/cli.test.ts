/** The `protokv` binary itself: serve, every client command over TCP and mutual TLS, cert, config errors. */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from '../src/client/client.js';
import { makeTlsFixture } from './helpers/certs.js';
import { BIN, runCli, startServerProcess, type ServerProcess } from './helpers/cli.js';
import { tempDir } from './helpers/stores.js';

interface Setup {
  name: string;
  start(): Promise<{ server: ServerProcess; clientArgs: string[]; cleanup(): Promise<void> }>;
}

const SETUPS: Setup[] = [
  {
    name: 'TCP',
    start: async () => {
      const server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0']);
      return { server, clientArgs: ['--server', server.address], cleanup: async () => void (await server.stop()) };
    },
  },
  {
    name: 'mutual TLS',
    start: async () => {
      const tls = await makeTlsFixture();
      const f = tls.files;
      const server = await startServerProcess([
        '--memory', '--listen', '127.0.0.1:0', '--tls-cert', f.server, '--tls-key', f.serverKey, '--tls-client-ca', f.ca,
      ]);
      return {
        server,
        clientArgs: ['--server', server.address, '--tls-ca', f.ca, '--tls-cert', f.client, '--tls-key', f.clientKey],
        cleanup: async () => {
          await server.stop();
          await tls.cleanup();
        },
      };
    },
  },
];

for (const setup of SETUPS) {
  describe(`CLI client commands over ${setup.name}`, () => {
    let env: Awaited<ReturnType<Setup['start']>>;
    const kv = (...args: string[]) => runCli([...args, ...env.clientArgs]);
    before(async () => {
      env = await setup.start();
    });
    after(() => env.cleanup());

    test('hset / hget / hexist / hdel with types, human output', async () => {
      assert.deepEqual(await kv('hset', 'users', 'ada', 'Lovelace'), { code: 0, stdout: '(none)\n', stderr: '' });
      assert.equal((await kv('hset', 'users', 'ada', '1815', '--type', 'int')).stdout, '"Lovelace"\n');
      assert.equal((await kv('hget', 'users', 'ada')).stdout, '(integer) 1815\n');
      assert.equal((await kv('hexist', 'users', 'ada')).stdout, 'true\n');
      assert.equal((await kv('hdel', 'users', 'ada')).stdout, '(integer) 1815\n');
      assert.equal((await kv('hexist', 'users', 'ada')).stdout, 'false\n');
    });

    test('hget of a missing key exits 1 with the server message on stderr', async () => {
      const r = await kv('hget', 'users', 'nobody');
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, 'Not found: table users, key nobody\n');
    });

    test('hmset / hmget / hgetall / hmexist / hmdel, JSON output is exact', async () => {
      assert.deepEqual(JSON.parse((await kv('hmset', 'm', 'a', '9223372036854775807', 'b', '-1', '--type', 'int', '--json')).stdout), [null, null]);
      await kv('hmset', 'm', 'f', '2.5', '--type', 'float');
      await kv('hmset', 'm', 'y', 'AQID', '--type', 'bytes');
      await kv('hmset', 'm', 't', 'true', '--type', 'bool');
      assert.deepEqual(JSON.parse((await kv('hmget', 'm', 'a', 'zz', 'y', '--json')).stdout), [{ integer: '9223372036854775807' }, null, { binary: 'AQID' }]);
      assert.deepEqual(JSON.parse((await kv('hgetall', 'm', '--json')).stdout), {
        a: { integer: '9223372036854775807' },
        b: { integer: '-1' },
        f: { float: 2.5 },
        y: { binary: 'AQID' },
        t: { bool: true },
      });
      assert.equal((await kv('hmexist', 'm', 'a', 'zz')).stdout, 'true\nfalse\n');
      assert.equal((await kv('hmdel', 'm', 'a', 'zz', 'f')).stdout, '(integer) 9223372036854775807\n(none)\n(float) 2.5\n');
      assert.equal((await kv('hgetall', 'm')).stdout.split('\n').filter(Boolean).length, 3);
    });

    test('publish and subscribe', async () => {
      const sub = spawn(process.execPath, [BIN, 'subscribe', 'news', ...env.clientArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      sub.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<number | null>((resolve) => sub.once('exit', resolve));
      // The human subscriber announces its id on stderr once subscribed.
      const [line] = (await once(createInterface({ input: sub.stderr }), 'line')) as [string];
      const id = /as id (\d+)/.exec(line)?.[1];
      assert.ok(id, line);
      assert.equal((await runCli(['publish', 'news', 'hello', '42', ...env.clientArgs])).stdout, 'OK\n');
      await runCli(['publish', 'news', '7', '--type', 'int', ...env.clientArgs]);
      await runCli(['publish', 'news', ...env.clientArgs]);
      assert.equal((await runCli(['unsubscribe', 'news', id, ...env.clientArgs])).code, 0);
      assert.equal(await exited, 0);
      assert.equal(stdout, '"hello" "42"\n(integer) 7\n(no values)\n');
    });

    test('subscribe --json prints one JSON line per message and stops on SIGINT', async () => {
      const sub = spawn(process.execPath, [BIN, 'subscribe', 'json-news', '--json', ...env.clientArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
      const lines = createInterface({ input: sub.stdout });
      const exited = new Promise<number | null>((resolve) => sub.once('exit', resolve));
      const first = once(lines, 'line');
      // Publish until the subscriber is in place (it prints nothing before the first message in JSON mode).
      for (let i = 0; i < 100; i++) {
        await runCli(['publish', 'json-news', '1.5', '--type', 'float', ...env.clientArgs]);
        if (await Promise.race([first.then(() => true), new Promise((r) => setTimeout(() => r(false), 100))])) break;
      }
      const [line] = (await first) as [string];
      assert.deepEqual(JSON.parse(line), [{ float: 1.5 }]);
      sub.kill('SIGINT');
      assert.equal(await exited, 0);
    });

    test('bad arguments exit 2 with usage', async () => {
      const r = await kv('hset', 'only-table');
      assert.equal(r.code, 2);
      assert.match(r.stderr, /usage: protokv hset TABLE KEY VALUE/);
      const t = await kv('hset', 't', 'k', 'x', '--type', 'int');
      assert.equal(t.code, 2);
      assert.match(t.stderr, /invalid int "x"/);
    });
  });
}

describe('CLI server lifecycle', () => {
  test('a server that is not running gives a clear error', async () => {
    const r = await runCli(['hget', 't', 'k', '--server', '127.0.0.1:1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot connect|ECONNREFUSED/);
  });

  test('restart on the same data dir keeps the data, with types', async () => {
    const dir = await tempDir();
    try {
      const first = await startServerProcess(['--data-dir', dir.dir, '--listen', '127.0.0.1:0']);
      await runCli(['hset', 't', 'n', '-9223372036854775808', '--type', 'int', '--server', first.address]);
      await runCli(['hset', 't', 's', 'kept', '--server', first.address]);
      assert.equal(await first.stop('SIGINT'), 0);
      const second = await startServerProcess(['--data-dir', dir.dir, '--listen', '127.0.0.1:0']);
      assert.equal((await runCli(['hget', 't', 'n', '--server', second.address])).stdout, '(integer) -9223372036854775808\n');
      assert.equal((await runCli(['hget', 't', 's', '--server', second.address])).stdout, '"kept"\n');
      assert.equal(await second.stop(), 0);
    } finally {
      await dir.remove();
    }
  });

  test('SIGTERM with requests in flight: every sent request is answered, then exit 0', async () => {
    const dir = await tempDir();
    try {
      const server = await startServerProcess(['--data-dir', dir.dir, '--listen', '127.0.0.1:0']);
      const kv = await connect({ host: '127.0.0.1', port: server.port });
      const writes = Array.from({ length: 2000 }, (_, i) => kv.hset('inflight', `k${i}`, BigInt(i)));
      await new Promise((r) => setImmediate(r));
      const exit = server.stop('SIGTERM');
      const results = await Promise.allSettled(writes);
      const answered = results.filter((r) => r.status === 'fulfilled').length;
      assert.ok(answered > 0);
      assert.equal(await exit, 0);
      const logs = server.logs.map((l) => l.msg);
      assert.ok(logs.includes('stopped'), JSON.stringify(logs));
      await kv.close().catch(() => {});
      // Everything acknowledged before the shutdown is on disk.
      const again = await startServerProcess(['--data-dir', dir.dir, '--listen', '127.0.0.1:0']);
      const kv2 = await connect({ host: '127.0.0.1', port: again.port });
      const stored = await kv2.hgetall('inflight');
      for (const [i, r] of results.entries()) if (r.status === 'fulfilled') assert.equal(stored.get(`k${i}`), BigInt(i));
      await kv2.close();
      await again.stop();
    } finally {
      await dir.remove();
    }
  });

  test('bad settings exit 2 naming the setting', async () => {
    const dir = await tempDir();
    try {
      const r1 = await runCli(['serve', '--listen', 'nonsense']);
      assert.equal(r1.code, 2);
      assert.match(r1.stderr, /--listen/);
      const r2 = await runCli(['serve', '--listen', '0.0.0.0:0', '--memory']);
      assert.equal(r2.code, 2);
      assert.match(r2.stderr, /--insecure/);
      const cfg = join(dir.dir, 'bad.toml');
      await writeFile(cfg, 'listen = "127.0.0.1:0"\nbogus = 1\n');
      const r3 = await runCli(['serve', '--config', cfg]);
      assert.equal(r3.code, 2);
      assert.match(r3.stderr, /unknown setting "bogus"/);
      const r4 = await runCli(['serve'], { PROTOKV_LOG_LEVEL: 'loud' });
      assert.equal(r4.code, 2);
      assert.match(r4.stderr, /PROTOKV_LOG_LEVEL/);
    } finally {
      await dir.remove();
    }
  });

  test('a config file and environment configure the server; flags win', async () => {
    const dir = await tempDir();
    try {
      const cfg = join(dir.dir, 'protokv.toml');
      await writeFile(cfg, 'listen = "127.0.0.1:1"\nmemory = true\n[limits]\nmax_frame_size = "2KiB"\n');
      const server = await startServerProcess(['--config', cfg, '--listen', '127.0.0.1:0']);
      const small = await runCli(['hset', 't', 'k', 'x'.repeat(100), '--server', server.address]);
      assert.equal(small.code, 0, small.stderr);
      // The limit applies to the inflated payload too, so even a well-compressed 4 KiB value is refused.
      const big = await runCli(['hset', 't', 'k', 'x'.repeat(4096), '--server', server.address]);
      assert.equal(big.code, 1);
      assert.match(big.stderr, /Frame too large/);
      await server.stop();
    } finally {
      await dir.remove();
    }
  });
});

describe('protokv cert', () => {
  let out: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    out = await tempDir();
  });
  after(async () => {
    await out.remove();
  });

  test('writes the six files, keys 0600, usable by serve and the client', async () => {
    const r = await runCli(['cert', '--out', out.dir, '--host', 'localhost', '--host', '127.0.0.1', '--client-name', 'tester']);
    assert.equal(r.code, 0, r.stderr);
    for (const f of ['ca.pem', 'ca-key.pem', 'server.pem', 'server-key.pem', 'client.pem', 'client-key.pem']) {
      const s = await stat(join(out.dir, f));
      if (f.endsWith('-key.pem')) assert.equal(s.mode & 0o777, 0o600, f);
    }
    const at = (f: string) => join(out.dir, f);
    const server = await startServerProcess([
      '--memory', '--listen', '127.0.0.1:0', '--tls-cert', at('server.pem'), '--tls-key', at('server-key.pem'), '--tls-client-ca', at('ca.pem'),
    ]);
    const tls = ['--server', server.address, '--tls-ca', at('ca.pem'), '--tls-cert', at('client.pem'), '--tls-key', at('client-key.pem')];
    assert.equal((await runCli(['hset', 't', 'k', 'v', ...tls])).code, 0);
    assert.equal((await runCli(['hget', 't', 'k', ...tls])).stdout, '"v"\n');
    const noCert = await runCli(['hget', 't', 'k', '--server', server.address, '--tls-ca', at('ca.pem')]);
    assert.equal(noCert.code, 1);
    await server.stop();
  });

  test('refuses to overwrite without --force', async () => {
    const r = await runCli(['cert', '--out', out.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /exist/);
    assert.equal((await runCli(['cert', '--out', out.dir, '--force'])).code, 0);
  });
});
