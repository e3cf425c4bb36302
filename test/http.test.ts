/** The HTTP listener on real sockets: routing, mounts, upgrades, HTTPS and mutual TLS, static files, readiness. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { HttpListener, sendText } from '../src/http/listener.js';
import { acceptsGzip, staticFiles } from '../src/http/static-files.js';
import { gunzipSync, gzipSync } from 'node:zlib';
import { addHealthRoutes, HEALTH_CHECK_TIMEOUT_MS, Readiness } from '../src/http/health.js';
import { silentLogger } from '../src/logger.js';
import { makeTlsFixture, type TlsFixture } from './helpers/certs.js';
import { get, request } from './helpers/http.js';

async function listen(extra: Partial<Parameters<typeof HttpListener.listen>[0]> = {}): Promise<{ listener: HttpListener; base: string }> {
  const listener = await HttpListener.listen({ host: '127.0.0.1', port: 0, logger: silentLogger(), ...extra });
  const scheme = listener.secure ? 'https' : 'http';
  return { listener, base: `${scheme}://127.0.0.1:${listener.address().port}` };
}

/** A logger whose lines the test can read. */
function capturingLogger(): { logger: ReturnType<typeof silentLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

describe('HTTP listener routing', () => {
  let listener: HttpListener;
  let base: string;
  const captured = capturingLogger();

  before(async () => {
    ({ listener, base } = await listen({ logger: captured.logger }));
    listener
      .route('GET', '/hello', (req, res) => sendText(res, 200, `hello ${req.url}\n`))
      .route('POST', '/hello', (_req, res) => sendText(res, 201, 'posted\n'))
      .route('GET', '/throws', () => {
        throw new Error('sync failure');
      })
      .route('GET', '/rejects', () => Promise.reject(new Error('async failure')))
      .mount('/files/', (req, res) => sendText(res, 200, `files: ${req.url}\n`))
      .mount('/files/deep/', (req, res) => sendText(res, 200, `deep: ${req.url}\n`))
      .route('GET', '/files/exact', (_req, res) => sendText(res, 200, 'exact\n'));
  });
  after(() => listener.close());

  test('a route answers its method; the query string does not change the path', async () => {
    const answer = await get(base, '/hello?x=1');
    assert.equal(answer.status, 200);
    assert.equal(answer.body, 'hello /hello?x=1\n');
    assert.equal(answer.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal((await request(base, { method: 'POST', path: '/hello' })).status, 201);
  });

  test('HEAD is answered by the GET route, without a body', async () => {
    const answer = await request(base, { method: 'HEAD', path: '/hello' });
    assert.equal(answer.status, 200);
    assert.equal(answer.body, '');
    assert.equal(answer.headers['content-length'], String('hello /hello\n'.length));
  });

  test('another method on a routed path is 405 with Allow', async () => {
    const answer = await request(base, { method: 'DELETE', path: '/hello' });
    assert.equal(answer.status, 405);
    assert.equal(answer.headers.allow, 'GET, POST, HEAD');
  });

  test('nothing registered: 404, and / is 404 until something is mounted there', async () => {
    assert.equal((await get(base, '/nothing')).status, 404);
    assert.equal((await get(base, '/')).status, 404);
    assert.equal((await get(base, '/hello/')).status, 404);
  });

  test('the longest mount wins, and an exact route beats every mount', async () => {
    assert.equal((await get(base, '/files/a.txt')).body, 'files: /files/a.txt\n');
    assert.equal((await get(base, '/files/deep/b.txt')).body, 'deep: /files/deep/b.txt\n');
    assert.equal((await get(base, '/files/exact')).body, 'exact\n');
    assert.equal((await get(base, '/files')).status, 404);
  });

  test('a handler that throws or rejects gives 500, is logged, and the listener keeps serving', async () => {
    for (const path of ['/throws', '/rejects']) {
      const answer = await get(base, path);
      assert.equal(answer.status, 500);
      assert.equal(answer.body, 'internal error\n');
    }
    const failures = captured.lines.filter((l) => l.msg === 'HTTP handler failed');
    assert.deepEqual(failures.map((l) => l.path), ['/throws', '/rejects']);
    assert.equal((await get(base, '/hello')).status, 200);
  });

  test('registration mistakes are refused when made, not when a request arrives', () => {
    assert.throws(() => listener.route('GET', '/hello', () => {}), /GET \/hello is already routed/);
    assert.throws(() => listener.route('GET', 'relative', () => {}), /starts with "\/"/);
    assert.throws(() => listener.route('PATCH' as 'GET', '/x', () => {}), /unknown HTTP method PATCH/);
    assert.throws(() => listener.mount('/files', () => {}), /ends with "\/"/);
    assert.throws(() => listener.mount('/files/', () => {}), /already mounted/);
  });
});

describe('HTTP upgrades', () => {
  let listener: HttpListener;
  let port: number;

  before(async () => {
    ({ listener } = await listen());
    port = listener.address().port;
    // A toy protocol: complete the upgrade, then echo in upper case.
    listener.onUpgrade('/echo', (_req, socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()));
    });
  });
  after(() => listener.close());

  async function upgrade(path: string): Promise<{ socket: net.Socket; head: string }> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n`);
    let head = '';
    while (!head.includes('\r\n\r\n')) head += ((await once(socket, 'data')) as [Buffer])[0].toString();
    return { socket, head };
  }

  test('a registered path gets the connection', async () => {
    const { socket, head } = await upgrade('/echo?client=1');
    assert.match(head, /^HTTP\/1\.1 101 /);
    socket.write('ping');
    const [echo] = (await once(socket, 'data')) as [Buffer];
    assert.equal(echo.toString(), 'PING');
    socket.destroy();
  });

  test('an upgrade anywhere else is 404 and closed', async () => {
    const { socket, head } = await upgrade('/elsewhere');
    assert.match(head, /^HTTP\/1\.1 404 /);
    await once(socket, 'close');
  });

  test('a second handler for the same path is refused', () => {
    assert.throws(() => listener.onUpgrade('/echo', () => {}), /already handled/);
  });

  test('close ends upgraded connections too', async () => {
    const { socket } = await upgrade('/echo');
    const closed = once(socket, 'close');
    await listener.close(50);
    await closed;
  });
});

describe('HTTPS', () => {
  let tls: TlsFixture;
  before(async () => {
    tls = await makeTlsFixture();
  });
  after(() => tls.cleanup());

  test('with the server certificate only, any client may connect over TLS', async () => {
    const { listener, base } = await listen({ tls: { cert: tls.pems.serverCert, key: tls.pems.serverKey } });
    try {
      listener.route('GET', '/x', (_req, res) => sendText(res, 200, 'secure\n'));
      assert.ok(base.startsWith('https://'));
      assert.equal((await get(base, '/x', { ca: tls.pems.caCert })).body, 'secure\n');
      // Plain HTTP on an HTTPS port gets no answer.
      await assert.rejects(get(base.replace('https:', 'http:'), '/x'));
    } finally {
      await listener.close();
    }
  });

  test('with a client CA, a client certificate signed by it is required', async () => {
    const { listener, base } = await listen({ tls: { cert: tls.pems.serverCert, key: tls.pems.serverKey, clientCa: tls.pems.caCert } });
    try {
      listener.route('GET', '/x', (_req, res) => sendText(res, 200, 'mutual\n'));
      await assert.rejects(get(base, '/x', { ca: tls.pems.caCert }));
      const foreign = await makeTlsFixture();
      try {
        await assert.rejects(get(base, '/x', { ca: tls.pems.caCert, cert: foreign.pems.clientCert, key: foreign.pems.clientKey }));
      } finally {
        await foreign.cleanup();
      }
      const answer = await get(base, '/x', { ca: tls.pems.caCert, cert: tls.pems.clientCert, key: tls.pems.clientKey });
      assert.equal(answer.body, 'mutual\n');
    } finally {
      await listener.close();
    }
  });
});

describe('static files', () => {
  let root: string;
  let outside: string;
  let listener: HttpListener;
  let base: string;

  before(async () => {
    const top = await mkdtemp(path.join(tmpdir(), 'protokv-static-'));
    root = path.join(top, 'site');
    outside = path.join(top, 'secret.txt');
    await mkdir(path.join(root, 'sub', 'dir'), { recursive: true });
    await mkdir(path.join(root, 'empty'));
    await writeFile(path.join(root, 'index.html'), '<!doctype html><title>console</title>');
    await writeFile(path.join(root, 'app.js'), 'export const x = 1;');
    await writeFile(path.join(root, 'style.css'), 'body{}');
    await writeFile(path.join(root, 'sub', 'dir', 'data.json'), '{"a":1}');
    await writeFile(path.join(root, 'sub', 'index.html'), 'sub index');
    await writeFile(path.join(root, 'blob.bin'), Buffer.from([0, 1, 2]));
    await writeFile(path.join(root, 'with space.txt'), 'spaced');
    await writeFile(outside, 'do not serve');
    await symlink(outside, path.join(root, 'link-out'));
    await symlink(path.join(root, 'app.js'), path.join(root, 'link-in.js'));
    ({ listener, base } = await listen());
    listener.mount('/', staticFiles(root));
  });
  after(async () => {
    await listener.close();
    await rm(path.dirname(root), { recursive: true, force: true });
  });

  test('files are served with the content type of their extension', async () => {
    const cases: [string, string, string][] = [
      ['/', 'text/html; charset=utf-8', '<!doctype html><title>console</title>'],
      ['/index.html', 'text/html; charset=utf-8', '<!doctype html><title>console</title>'],
      ['/app.js', 'text/javascript; charset=utf-8', 'export const x = 1;'],
      ['/style.css', 'text/css; charset=utf-8', 'body{}'],
      ['/sub/dir/data.json', 'application/json; charset=utf-8', '{"a":1}'],
      ['/sub/', 'text/html; charset=utf-8', 'sub index'],
      ['/sub', 'text/html; charset=utf-8', 'sub index'],
      ['/blob.bin', 'application/octet-stream', '\0\x01\x02'],
      ['/with%20space.txt', 'text/plain; charset=utf-8', 'spaced'],
      ['/link-in.js', 'text/javascript; charset=utf-8', 'export const x = 1;'],
      ['/app.js?v=3', 'text/javascript; charset=utf-8', 'export const x = 1;'],
    ];
    for (const [target, type, body] of cases) {
      const answer = await get(base, target);
      assert.equal(answer.status, 200, target);
      assert.equal(answer.headers['content-type'], type, target);
      assert.equal(answer.headers['x-content-type-options'], 'nosniff', target);
      assert.equal(answer.body, body, target);
    }
  });

  test('HEAD gives the headers without the body', async () => {
    const answer = await request(base, { method: 'HEAD', path: '/app.js' });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-length'], String('export const x = 1;'.length));
    assert.equal(answer.body, '');
  });

  test('nothing outside the directory can be reached, however the path is written', async () => {
    const attempts = [
      '/../secret.txt',
      '/sub/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/%2E%2E/secret.txt',
      '/sub/%2e%2e/%2e%2e/secret.txt',
      '/..%2fsecret.txt',
      '/..%5csecret.txt',
      '/%2e%2e%2fsecret.txt',
      '/link-out',
      '/app.js%00.html',
      '/%zz',
      '//etc/passwd',
      '/empty/',
      '/missing.js',
    ];
    for (const target of attempts) {
      const answer = await get(base, target);
      assert.equal(answer.status, 404, target);
      assert.ok(!answer.body.includes('do not serve'), target);
    }
  });

  test('only GET and HEAD', async () => {
    const answer = await request(base, { method: 'POST', path: '/app.js' });
    assert.equal(answer.status, 405);
    assert.equal(answer.headers.allow, 'GET, HEAD');
  });
});

describe('static files sent gzipped when built so', () => {
  let root: string;
  let listener: HttpListener;
  let base: string;
  const script = 'export const answer = 42;\n'.repeat(50);

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'protokv-static-gz-'));
    await writeFile(path.join(root, 'app.js'), script);
    await writeFile(path.join(root, 'app.js.gz'), gzipSync(script));
    await writeFile(path.join(root, 'plain.css'), 'body{}');
    ({ listener, base } = await listen());
    listener.mount('/', staticFiles(root, { precompressed: true }));
  });
  after(async () => {
    await listener.close();
    await rm(root, { recursive: true, force: true });
  });

  /** `GET path` with `Accept-Encoding`, the body as the bytes sent (not inflated). */
  function fetchBytes(target: string, acceptEncoding?: string): Promise<{ headers: Record<string, string | string[] | undefined>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      http
        .get(`${base}${target}`, { headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
        })
        .on('error', reject);
    });
  }

  test('a client accepting gzip gets the gzip form, with the original type; others get the file', async () => {
    const gz = await fetchBytes('/app.js', 'gzip, deflate, br');
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(gz.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(gz.headers.vary, 'Accept-Encoding');
    assert.equal(Number(gz.headers['content-length']), gz.body.length);
    assert.equal(gunzipSync(gz.body).toString(), script);
    for (const refusing of [undefined, 'identity', 'gzip;q=0', 'br', '*;q=1, gzip;q=0']) {
      const plain = await fetchBytes('/app.js', refusing);
      assert.equal(plain.headers['content-encoding'], undefined, String(refusing));
      assert.equal(plain.body.toString(), script, String(refusing));
      assert.equal(plain.headers.vary, 'Accept-Encoding');
    }
    const css = await fetchBytes('/plain.css', 'gzip');
    assert.equal(css.headers['content-encoding'], undefined, 'no gzip form: the file as it is');
    assert.equal(css.body.toString(), 'body{}');
  });

  test('Accept-Encoding is read as RFC 9110 says', () => {
    assert.equal(acceptsGzip('gzip'), true);
    assert.equal(acceptsGzip('GZIP;q=0.5'), true);
    assert.equal(acceptsGzip('br, *'), true);
    assert.equal(acceptsGzip('*;q=0'), false);
    assert.equal(acceptsGzip('gzip;q=0, *'), false);
    assert.equal(acceptsGzip('gzip;q=0.000'), false);
    assert.equal(acceptsGzip(''), false);
    assert.equal(acceptsGzip(undefined), false);
  });
});

describe('readiness', () => {
  test('/readyz follows the phase and the checks; /healthz is always ok', async () => {
    const { listener, base } = await listen();
    try {
      const readiness = new Readiness();
      let storeHealthy = true;
      readiness.addCheck('store', () => (storeHealthy ? { healthy: true } : { healthy: false, detail: 'engine unreachable' }));
      addHealthRoutes(listener, readiness);
      const ready = async () => {
        const answer = await get(base, '/readyz');
        return `${answer.status} ${answer.body.trim()}`;
      };

      assert.equal(await ready(), '503 not ready: starting');
      assert.deepEqual(await get(base, '/healthz').then((a) => [a.status, a.body]), [200, 'ok\n']);
      readiness.ready();
      assert.equal(await ready(), '200 ok');
      storeHealthy = false;
      assert.equal(await ready(), '503 not ready: store: engine unreachable');
      storeHealthy = true;
      assert.equal(await ready(), '200 ok');
      readiness.stopping();
      assert.equal(await ready(), '503 not ready: shutting down');
      readiness.ready();
      assert.equal(await ready(), '503 not ready: shutting down', 'once stopping, never ready again');
      assert.equal((await get(base, '/healthz')).status, 200);
    } finally {
      await listener.close();
    }
  });

  test('a check that throws or never answers makes the server not ready', async () => {
    const throwing = new Readiness().addCheck('store', () => {
      throw new Error('boom');
    });
    throwing.ready();
    assert.deepEqual(await throwing.report(), { healthy: false, detail: 'store: boom' });

    const hanging = new Readiness().addCheck('store', () => new Promise(() => {}));
    hanging.ready();
    assert.deepEqual(await hanging.report(), { healthy: false, detail: `store: no answer within ${HEALTH_CHECK_TIMEOUT_MS} ms` });
  });
});
