/** The HTTP listener of a real `protokv serve` process: addresses, TLS, readiness across start and SIGTERM. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { makeTlsFixture, type TlsFixture } from './helpers/certs.js';
import { runCli, startServerProcess, type ServerProcess } from './helpers/cli.js';
import { get, request } from './helpers/http.js';
import { RawPeer } from './helpers/server.js';
import { until } from './helpers/wait.js';
import { requests } from '../src/protocol/requests.js';
import { encodeFrame } from '../src/codec/frame.js';
import { encodeRequest } from '../src/protocol/wire.js';

/** Polls `/readyz` until it answers `status`; fails if the process exits first. */
async function readyzBecomes(server: ServerProcess, status: number): Promise<string> {
  const deadline = Date.now() + 60_000;
  let last = '';
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null) throw new Error(`the server exited before /readyz answered ${status} (last: ${last})`);
    const answer = await get(server.http!, '/readyz');
    last = `${answer.status} ${answer.body.trim()}`;
    if (answer.status === status) return last;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`/readyz did not answer ${status} (last: ${last})`);
}

describe('protokv serve: the HTTP listener', () => {
  test('serves /healthz, /readyz, /metrics and the web console next to the protokv port', async () => {
    const server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0']);
    try {
      assert.match(server.http ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(new URL(server.http!).port, String(server.port));
      assert.deepEqual(await get(server.http!, '/healthz').then((a) => [a.status, a.body]), [200, 'ok\n']);
      assert.deepEqual(await get(server.http!, '/readyz').then((a) => [a.status, a.body]), [200, 'ok\n']);
      const metrics = await get(server.http!, '/metrics');
      assert.equal(metrics.status, 200);
      assert.match(String(metrics.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      assert.match(metrics.body, /^# HELP protokv_commands_total /m);
      const page = await get(server.http!, '/');
      assert.equal(page.status, 200);
      assert.match(String(page.headers['content-type']), /^text\/html/);
      assert.match(page.body, /<title>protokv console<\/title>/);
      assert.equal(page.headers['x-frame-options'], 'DENY');
      assert.equal((await get(server.http!, '/console.js')).status, 200);
      const gzipped = await request(server.http!, { path: '/console.js', headers: { 'accept-encoding': 'gzip' } });
      assert.equal(gzipped.headers['content-encoding'], 'gzip', 'the gzip form made at build time');
      assert.equal((await get(server.http!, '/nothing-here')).status, 404);
      assert.equal(await server.stop(), 0);
    } finally {
      server.child.kill('SIGKILL');
    }
  });

  test('--http off: no HTTP listener, and no metrics kept', async () => {
    const server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0', '--http', 'off']);
    try {
      assert.equal(server.http, undefined);
      const line = server.logs.find((l) => l.msg === 'listening')!;
      assert.equal(line.http, 'off');
      assert.equal(line.metrics, 'off');
      assert.equal(await server.stop(), 0);
    } finally {
      server.child.kill('SIGKILL');
    }
  });

  test('--no-metrics: health endpoints but no /metrics', async () => {
    const server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0', '--no-metrics']);
    try {
      assert.equal((await get(server.http!, '/healthz')).status, 200);
      assert.equal((await get(server.http!, '/metrics')).status, 404);
      assert.equal(await server.stop(), 0);
    } finally {
      server.child.kill('SIGKILL');
    }
  });

  test('an HTTP address in use stops the server with a message naming it', async () => {
    const blocker = net.createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const r = await runCli(['serve', '--memory', '--listen', '127.0.0.1:0', '--http', `127.0.0.1:${port}`]);
      assert.equal(r.code, 1);
      assert.match(r.stdout, new RegExp(`cannot listen for HTTP on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
    } finally {
      blocker.close();
    }
  });

  test('a non-loopback HTTP address without TLS is refused at start', async () => {
    const r = await runCli(['serve', '--memory', '--listen', '127.0.0.1:0', '--http', '0.0.0.0:0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--http 0\.0\.0\.0:0 is not a loopback address/);
  });
});

describe('protokv serve: HTTPS with mutual TLS', () => {
  let tls: TlsFixture;
  let server: ServerProcess;
  before(async () => {
    tls = await makeTlsFixture();
    const f = tls.files;
    server = await startServerProcess([
      '--memory', '--listen', '127.0.0.1:0', '--tls-cert', f.server, '--tls-key', f.serverKey, '--tls-client-ca', f.ca,
    ]);
  });
  after(async () => {
    await server.stop();
    await tls.cleanup();
  });

  test('the HTTP listener follows the TLS settings: HTTPS, client certificate required', async () => {
    assert.match(server.http ?? '', /^https:\/\//);
    const withCert = { ca: tls.pems.caCert, cert: tls.pems.clientCert, key: tls.pems.clientKey };
    assert.equal((await get(server.http!, '/healthz', withCert)).status, 200);
    assert.equal((await get(server.http!, '/metrics', withCert)).status, 200);
    await assert.rejects(get(server.http!, '/healthz', { ca: tls.pems.caCert }));
    await assert.rejects(get(server.http!.replace('https:', 'http:'), '/healthz'));
  });
});

describe('protokv serve: readiness during shutdown', () => {
  test('SIGTERM with a connection still open: /readyz is 503 at once, /healthz stays 200 until exit', async () => {
    const server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0']);
    // A client that keeps its side open after the server ends its own holds the shutdown.
    const client = net.connect({ host: '127.0.0.1', port: server.port, allowHalfOpen: true });
    try {
      await once(client, 'connect');
      client.on('error', () => {});
      client.write(encodeFrame(encodeRequest(requests.hset('t', 'k', 'v'))));
      await once(client, 'data');
      assert.equal((await get(server.http!, '/readyz')).status, 200);

      const exited = new Promise<number | null>((resolve) => server.child.once('exit', resolve));
      server.child.kill('SIGTERM');
      assert.equal(await readyzBecomes(server, 503), '503 not ready: shutting down');
      assert.equal((await get(server.http!, '/healthz')).status, 200);
      assert.equal(server.child.exitCode, null, 'still running while the connection is open');
      client.end();
      assert.equal(await exited, 0);
    } finally {
      client.destroy();
      server.child.kill('SIGKILL');
    }
  });

  test('SIGTERM while a client is not reading its responses: 503 until it goes away', async () => {
    const server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0', '--max-frame-size', '4MiB']);
    const loader = await RawPeer.connect(server.port);
    // Incompressible (frames over 1436 bytes are gzipped), so the answers really fill the buffers.
    loader.send(requests.hset('big', 'v', randomBytes(1024 * 1024)));
    assert.equal((await loader.responses(1))[0].status, 200);
    loader.destroy();
    const slow = net.connect({ host: '127.0.0.1', port: server.port });
    slow.on('error', () => {});
    try {
      await once(slow, 'connect');
      // Ask for far more than the socket buffers hold, and read none of it.
      slow.pause();
      const frame = encodeFrame(encodeRequest(requests.hget('big', 'v')));
      for (let i = 0; i < 64; i++) slow.write(frame);
      // Once answers are arriving the client cannot see the server's end of the stream before it
      // reads them, which it never does: the connection stays open through the shutdown.
      await until(() => slow.readableLength > 0, 'the server to start answering', 60_000);

      const exited = new Promise<number | null>((resolve) => server.child.once('exit', resolve));
      server.child.kill('SIGTERM');
      assert.equal(await readyzBecomes(server, 503), '503 not ready: shutting down');
      assert.equal((await get(server.http!, '/healthz')).status, 200);
      slow.destroy();
      assert.equal(await exited, 0);
    } finally {
      slow.destroy();
      server.child.kill('SIGKILL');
    }
  });
});
