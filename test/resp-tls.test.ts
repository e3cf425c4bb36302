/**
 * The RESP listener over TLS and mutual TLS, with certificates the test generates: ioredis and
 * redis-cli (--tls) connect with a client certificate and are refused without one.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { makeTlsFixture, type TlsFixture } from './helpers/certs.js';
import { missingRedis, startResp, type RespEnv } from './helpers/resp.js';

const exec = promisify(execFile);

describe('RESP over mutual TLS', () => {
  let fixture: TlsFixture;
  let env: RespEnv;
  before(async () => {
    fixture = await makeTlsFixture();
    const [cert, key, clientCa] = await Promise.all([readFile(fixture.files.server), readFile(fixture.files.serverKey), readFile(fixture.files.ca)]);
    env = await startResp({ resp: { tls: { cert, key, clientCa } } });
  });
  after(async () => {
    await env?.close();
    await fixture?.cleanup();
  });

  test('ioredis with a client certificate', async () => {
    const [ca, cert, key] = await Promise.all([readFile(fixture.files.ca), readFile(fixture.files.client), readFile(fixture.files.clientKey)]);
    const redis = new Redis({ host: 'localhost', port: env.port, tls: { ca, cert, key, servername: 'localhost' }, lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await redis.connect();
      assert.equal(await redis.hset('secure', 'k', 'v'), 1);
      assert.equal(await redis.hget('secure', 'k'), 'v');
    } finally {
      redis.disconnect();
    }
  });

  test('a client without a certificate is refused at the handshake', async () => {
    const ca = await readFile(fixture.files.ca);
    const socket = tls.connect({ host: '127.0.0.1', port: env.port, ca, servername: 'localhost' });
    socket.on('error', () => {});
    socket.write('*1\r\n$4\r\nPING\r\n');
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString()));
    await new Promise((resolve) => socket.once('close', resolve));
    assert.equal(got, '');
  });

  test('redis-cli --tls', { skip: missingRedis('redis-cli') }, async () => {
    const { stdout } = await exec(
      'redis-cli',
      ['--tls', '--cacert', fixture.files.ca, '--cert', fixture.files.client, '--key', fixture.files.clientKey, '-h', 'localhost', '-p', String(env.port), 'hget', 'secure', 'k'],
      { timeout: 30_000 },
    );
    assert.equal(stdout, 'v\n');
  });
});
