import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import {
  CERTIFICATE_FILES,
  generateCertificates,
  writeCertificates,
  type CertificateSet,
} from '../src/tls/certificates.js';
import { makeTlsFixture, type TlsFixture } from './helpers/certs.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const DAY_MS = 24 * 60 * 60 * 1000;

interface Accepted {
  authorized: boolean;
  authorizationError?: string;
  peerCn: string | undefined;
}

interface TestServer {
  server: tls.Server;
  port: number;
  accepted: Accepted[];
  close(): Promise<void>;
}

/** A TLS server on 127.0.0.1 that greets each client with "hello" and hangs up. */
async function startServer(options: tls.TlsOptions): Promise<TestServer> {
  const accepted: Accepted[] = [];
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer(options, (socket) => {
    const peer = socket.getPeerCertificate();
    const cn = peer.subject?.CN;
    const entry: Accepted = { authorized: socket.authorized, peerCn: Array.isArray(cn) ? cn.join(',') : cn };
    if (socket.authorizationError) entry.authorizationError = String(socket.authorizationError);
    accepted.push(entry);
    socket.end('hello');
  });
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // Refused handshakes are the point of several tests; keep them from becoming unhandled errors.
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as AddressInfo).port,
    accepted,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** Connects, completes the handshake and reads until the server hangs up; rejects on any TLS failure. */
function exchange(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      if (data === '') reject(new Error('the server hung up without a greeting'));
      else resolve(data);
    });
  });
}

function serverOptions(set: CertificateSet, mutual = false): tls.TlsOptions {
  return mutual
    ? { cert: set.serverCert, key: set.serverKey, ca: set.caCert, requestCert: true, rejectUnauthorized: true }
    : { cert: set.serverCert, key: set.serverKey };
}

/**
 * Why a mutual-TLS server would refuse this client certificate: a server that asks for the
 * certificate but lets the handshake finish reports the verification error it found.
 */
async function clientCertificateVerdict(server: CertificateSet, client: { cert: string; key: string }): Promise<string> {
  const srv = await startServer({ ...serverOptions(server, true), rejectUnauthorized: false });
  try {
    await exchange(srv.port, { ca: server.caCert, servername: 'localhost', cert: client.cert, key: client.key });
    const [accepted] = srv.accepted;
    assert.ok(accepted);
    return accepted.authorized ? 'authorized' : (accepted.authorizationError ?? 'unauthorized');
  } finally {
    await srv.close();
  }
}

/**
 * Connects to a mutual-TLS server with the given client certificate (or none) and expects the
 * server to drop the connection before accepting it.
 */
async function assertRefusedByServer(server: CertificateSet, client?: { cert: string; key: string }): Promise<void> {
  const srv = await startServer(serverOptions(server, true));
  try {
    const refused = once(srv.server, 'tlsClientError');
    const credentials = client ? { cert: client.cert, key: client.key } : {};
    await assert.rejects(exchange(srv.port, { ca: server.caCert, servername: 'localhost', ...credentials }));
    await refused;
    assert.deepEqual(srv.accepted, []);
  } finally {
    await srv.close();
  }
}

let fixture: TlsFixture;
let other: CertificateSet;

before(async () => {
  fixture = await makeTlsFixture();
  other = await generateCertificates();
});

after(async () => {
  await fixture.cleanup();
});

describe('certificate contents', () => {
  test('the CA is a CA and issued both certificates', () => {
    const ca = new X509Certificate(fixture.pems.caCert);
    const server = new X509Certificate(fixture.pems.serverCert);
    const client = new X509Certificate(fixture.pems.clientCert);
    assert.equal(ca.ca, true);
    assert.equal(server.ca, false);
    assert.equal(client.ca, false);
    assert.ok(server.checkIssued(ca) && server.verify(ca.publicKey));
    assert.ok(client.checkIssued(ca) && client.verify(ca.publicKey));
  });

  test('keys are ECDSA P-256 in PKCS#8 and match their certificates', () => {
    const pairs: [string, string][] = [
      [fixture.pems.caCert, fixture.pems.caKey],
      [fixture.pems.serverCert, fixture.pems.serverKey],
      [fixture.pems.clientCert, fixture.pems.clientKey],
    ];
    for (const [certPem, keyPem] of pairs) {
      assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
      const cert = new X509Certificate(certPem);
      const key = createPrivateKey(keyPem);
      assert.equal(key.asymmetricKeyType, 'ec');
      assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      assert.ok(cert.checkPrivateKey(key));
    }
  });

  test('server certificate: default names, serverAuth only', () => {
    const server = new X509Certificate(fixture.pems.serverCert);
    assert.equal(server.checkHost('localhost'), 'localhost');
    assert.equal(server.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(server.checkIP('::1'), '::1');
    assert.equal(server.checkHost('example.com'), undefined);
    assert.deepEqual(server.keyUsage, [SERVER_AUTH]);
    // Node's own hostname check, the one TLS clients run, agrees for IPv6 too.
    assert.equal(tls.checkServerIdentity('::1', server.toLegacyObject()), undefined);
  });

  test('client certificate: default name, clientAuth only', () => {
    const client = new X509Certificate(fixture.pems.clientCert);
    assert.match(client.subject, /^CN=protokv-client$/m);
    assert.deepEqual(client.keyUsage, [CLIENT_AUTH]);
  });

  test('hosts become DNS or IP names as they are written', async () => {
    const set = await generateCertificates({
      hosts: ['kv.internal', '10.0.0.7', '[fd00::7]', 'fd00::8'],
      clientName: 'worker-1',
    });
    const server = new X509Certificate(set.serverCert);
    assert.equal(server.checkHost('kv.internal'), 'kv.internal');
    assert.equal(server.checkIP('10.0.0.7'), '10.0.0.7');
    assert.equal(server.checkIP('fd00::7'), 'fd00::7');
    assert.equal(server.checkIP('fd00::8'), 'fd00::8');
    assert.equal(server.checkHost('localhost'), undefined);
    assert.equal(server.checkIP('127.0.0.1'), undefined);
    assert.match(server.subjectAltName ?? '', /^DNS:kv\.internal, IP Address:10\.0\.0\.7, /);
    assert.match(new X509Certificate(set.clientCert).subject, /^CN=worker-1$/m);
  });

  test('days and explicit dates set the validity', async () => {
    const now = Date.now();
    const set = await generateCertificates({ days: 30 });
    const validTo = new Date(new X509Certificate(set.serverCert).validTo).getTime();
    assert.ok(validTo > now + 29 * DAY_MS && validTo < now + 31 * DAY_MS);

    const notBefore = new Date('2030-01-01T00:00:00Z');
    const notAfter = new Date('2031-06-01T00:00:00Z');
    const fixed = new X509Certificate((await generateCertificates({ notBefore, notAfter })).clientCert);
    assert.equal(new Date(fixed.validFrom).getTime(), notBefore.getTime());
    assert.equal(new Date(fixed.validTo).getTime(), notAfter.getTime());
  });

  test('two sets have independent CAs', () => {
    assert.notEqual(fixture.pems.caCert, other.caCert);
    const ca = new X509Certificate(fixture.pems.caCert);
    assert.equal(new X509Certificate(other.serverCert).checkIssued(ca), false);
  });

  test('an existing CA can issue new certificates', async () => {
    const ca = { cert: fixture.pems.caCert, key: fixture.pems.caKey };
    const set = await generateCertificates({ ca, clientName: 'second' });
    assert.equal(set.caCert, fixture.pems.caCert);
    assert.equal(set.caKey, fixture.pems.caKey);
    const caCert = new X509Certificate(fixture.pems.caCert);
    assert.ok(new X509Certificate(set.serverCert).verify(caCert.publicKey));
    assert.ok(new X509Certificate(set.clientCert).verify(caCert.publicKey));
  });

  test('bad options are refused with a clear error', async () => {
    await assert.rejects(generateCertificates({ hosts: [] }), /at least one host/);
    await assert.rejects(generateCertificates({ hosts: ['bad host'] }), /invalid host "bad host"/);
    await assert.rejects(generateCertificates({ hosts: ['-x.example'] }), /invalid host/);
    await assert.rejects(generateCertificates({ clientName: '' }), /invalid client name/);
    await assert.rejects(generateCertificates({ clientName: 'a,b' }), /invalid client name/);
    await assert.rejects(generateCertificates({ days: 0 }), /invalid validity of 0 days/);
    await assert.rejects(generateCertificates({ days: Number.NaN }), /invalid validity/);
    await assert.rejects(
      generateCertificates({ notBefore: new Date('2030-01-02'), notAfter: new Date('2030-01-01') }),
      /notAfter .* is not after notBefore/,
    );
    const leafAsCa = { cert: fixture.pems.serverCert, key: fixture.pems.serverKey };
    await assert.rejects(generateCertificates({ ca: leafAsCa }), /is not a CA/);
    await assert.rejects(generateCertificates({ ca: { cert: fixture.pems.caCert, key: other.caKey } }), /does not belong/);
    await assert.rejects(generateCertificates({ ca: { cert: 'nonsense', key: fixture.pems.caKey } }), /invalid CA/);
  });
});

describe('TLS handshakes with the generated files', () => {
  let files: TlsFixture['files'];
  let pems: CertificateSet;
  before(async () => {
    // Read back from disk so the files, not just the in-memory PEMs, are what is exercised.
    files = fixture.files;
    pems = {
      caCert: await readFile(files.ca, 'utf8'),
      caKey: await readFile(files.caKey, 'utf8'),
      serverCert: await readFile(files.server, 'utf8'),
      serverKey: await readFile(files.serverKey, 'utf8'),
      clientCert: await readFile(files.client, 'utf8'),
      clientKey: await readFile(files.clientKey, 'utf8'),
    };
  });

  test('the server certificate verifies against the CA as localhost and as 127.0.0.1', async () => {
    const srv = await startServer(serverOptions(pems));
    try {
      assert.equal(await exchange(srv.port, { ca: pems.caCert, servername: 'localhost' }), 'hello');
      assert.equal(await exchange(srv.port, { ca: pems.caCert }), 'hello');
    } finally {
      await srv.close();
    }
  });

  test('a client that does not trust the CA refuses the server', async () => {
    const srv = await startServer(serverOptions(pems));
    try {
      await assert.rejects(exchange(srv.port, { ca: other.caCert, servername: 'localhost' }), {
        code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      });
    } finally {
      await srv.close();
    }
  });

  test('a name the certificate does not carry is refused', async () => {
    const srv = await startServer(serverOptions(pems));
    try {
      await assert.rejects(exchange(srv.port, { ca: pems.caCert, servername: 'kv.example.com' }), {
        code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      });
    } finally {
      await srv.close();
    }
  });

  test('mutual TLS accepts the client certificate and sees its name', async () => {
    const srv = await startServer(serverOptions(pems, true));
    try {
      const client = { cert: pems.clientCert, key: pems.clientKey };
      const reply = await exchange(srv.port, { ca: pems.caCert, servername: 'localhost', ...client });
      assert.equal(reply, 'hello');
      assert.deepEqual(srv.accepted, [{ authorized: true, peerCn: 'protokv-client' }]);
    } finally {
      await srv.close();
    }
  });

  test('mutual TLS refuses a client certificate from another CA', async () => {
    const foreign = { cert: other.clientCert, key: other.clientKey };
    await assertRefusedByServer(pems, foreign);
    assert.equal(await clientCertificateVerdict(pems, foreign), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  test('mutual TLS refuses a client without a certificate', async () => {
    await assertRefusedByServer(pems);
  });

  test('an expired server certificate is refused', async () => {
    const expired = await generateCertificates({
      ca: { cert: pems.caCert, key: pems.caKey },
      notBefore: new Date(Date.now() - 10 * DAY_MS),
      notAfter: new Date(Date.now() - DAY_MS),
    });
    const srv = await startServer(serverOptions(expired));
    try {
      await assert.rejects(exchange(srv.port, { ca: pems.caCert, servername: 'localhost' }), { code: 'CERT_HAS_EXPIRED' });
    } finally {
      await srv.close();
    }
  });

  test('an expired client certificate is refused', async () => {
    const expired = await generateCertificates({
      ca: { cert: pems.caCert, key: pems.caKey },
      notBefore: new Date(Date.now() - 10 * DAY_MS),
      notAfter: new Date(Date.now() - DAY_MS),
    });
    const stale = { cert: expired.clientCert, key: expired.clientKey };
    await assertRefusedByServer(pems, stale);
    assert.equal(await clientCertificateVerdict(pems, stale), 'CERT_HAS_EXPIRED');
  });

  test('the client certificate is what mutual TLS accepts; the server certificate is not', async () => {
    assert.equal(await clientCertificateVerdict(pems, { cert: pems.clientCert, key: pems.clientKey }), 'authorized');
    assert.equal(
      await clientCertificateVerdict(pems, { cert: pems.serverCert, key: pems.serverKey }),
      'INVALID_PURPOSE',
    );
  });

  test('a client certificate cannot serve as a server certificate', async () => {
    const srv = await startServer({ cert: pems.clientCert, key: pems.clientKey });
    try {
      await assert.rejects(exchange(srv.port, { ca: pems.caCert, servername: 'protokv-client' }));
    } finally {
      await srv.close();
    }
  });
});

describe('writeCertificates', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'protokv-cert-write-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const mode = async (file: string) => (await stat(file)).mode & 0o777;

  test('writes all six files into a new directory, keys readable by the owner only', async () => {
    const target = path.join(dir, 'nested', 'certs');
    const written = await writeCertificates(target, fixture.pems);
    assert.deepEqual(written, Object.values(CERTIFICATE_FILES).map((name) => path.join(target, name)));
    assert.deepEqual((await readdir(target)).sort(), Object.values(CERTIFICATE_FILES).sort());
    for (const name of [CERTIFICATE_FILES.caKey, CERTIFICATE_FILES.serverKey, CERTIFICATE_FILES.clientKey]) {
      assert.equal(await mode(path.join(target, name)), 0o600, name);
    }
    for (const name of [CERTIFICATE_FILES.caCert, CERTIFICATE_FILES.serverCert, CERTIFICATE_FILES.clientCert]) {
      assert.equal((await mode(path.join(target, name))) & 0o022, 0, `${name} is not writable by others`);
    }
    assert.equal(await readFile(path.join(target, 'server.pem'), 'utf8'), fixture.pems.serverCert);
  });

  test('the fixture keys are 0600 too', async () => {
    for (const file of [fixture.files.caKey, fixture.files.serverKey, fixture.files.clientKey]) {
      assert.equal(await mode(file), 0o600, file);
    }
  });

  test('refuses to overwrite, and writes nothing, when any file exists', async () => {
    const target = path.join(dir, 'partial');
    await writeCertificates(target, fixture.pems);
    await rm(path.join(target, CERTIFICATE_FILES.caCert));
    await rm(path.join(target, CERTIFICATE_FILES.clientCert));
    await assert.rejects(writeCertificates(target, other), (err: Error) => {
      assert.match(err.message, /refusing to overwrite existing/);
      assert.match(err.message, /server-key\.pem/);
      return true;
    });
    assert.deepEqual((await readdir(target)).sort(), ['ca-key.pem', 'client-key.pem', 'server-key.pem', 'server.pem']);
    assert.equal(await readFile(path.join(target, 'server.pem'), 'utf8'), fixture.pems.serverCert);
  });

  test('force replaces the files and tightens a loosened key', async () => {
    const target = path.join(dir, 'forced');
    await writeCertificates(target, fixture.pems);
    const key = path.join(target, CERTIFICATE_FILES.serverKey);
    await chmod(key, 0o644);
    await writeFile(path.join(target, 'unrelated.txt'), 'keep me');
    await writeCertificates(target, other, { force: true });
    assert.equal(await readFile(key, 'utf8'), other.serverKey);
    assert.equal(await mode(key), 0o600);
    assert.equal(await readFile(path.join(target, 'unrelated.txt'), 'utf8'), 'keep me');
  });
});
