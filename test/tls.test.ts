/** The server's TLS listener: mutual TLS refusals and the protocol floor, with real handshakes. */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { once } from 'node:events';
import { connect, type ConnectOptions } from '../src/client/client.js';
import { generateCertificates } from '../src/tls/certificates.js';
import { makeTlsFixture, type TlsFixture } from './helpers/certs.js';
import { RawPeer, startServer, type Running } from './helpers/server.js';
import { requests } from '../src/protocol/requests.js';

describe('mutual TLS refusals', () => {
  let fixture: TlsFixture;
  let running: Running;
  before(async () => {
    fixture = await makeTlsFixture();
    const { pems } = fixture;
    running = await startServer({ tls: { cert: pems.serverCert, key: pems.serverKey, clientCa: pems.caCert } });
  });
  after(async () => {
    await running.close();
    await fixture.cleanup();
  });

  const base = () => ({ host: '127.0.0.1', port: running.port, connectTimeoutMs: 5000 });

  /** Connects and runs one command; mutual-TLS refusals surface either at connect or at the first request. */
  async function attempt(tlsOptions: ConnectOptions['tls']): Promise<void> {
    const kv = await connect({ ...base(), tls: tlsOptions });
    try {
      await kv.hset('t', 'k', 'v');
    } finally {
      await kv.close().catch(() => {});
    }
  }

  test('a client with a certificate from the CA is served', async () => {
    const { pems } = fixture;
    await attempt({ ca: pems.caCert, cert: pems.clientCert, key: pems.clientKey });
    await attempt({ ca: pems.caCert, cert: pems.clientCert, key: pems.clientKey, servername: 'localhost' });
  });

  test('a client without a certificate is refused', async () => {
    await assert.rejects(attempt({ ca: fixture.pems.caCert }));
  });

  test('a client certificate from another CA is refused', async () => {
    const other = await generateCertificates();
    await assert.rejects(attempt({ ca: fixture.pems.caCert, cert: other.clientCert, key: other.clientKey }));
  });

  test('an expired client certificate is refused', async () => {
    const expired = await generateCertificates({
      ca: { cert: fixture.pems.caCert, key: fixture.pems.caKey },
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    await assert.rejects(attempt({ ca: fixture.pems.caCert, cert: expired.clientCert, key: expired.clientKey }));
  });

  test('the client refuses a server certificate for the wrong name', async () => {
    const { pems } = fixture;
    await assert.rejects(
      attempt({ ca: pems.caCert, cert: pems.clientCert, key: pems.clientKey, servername: 'not-this-host.example' }),
      /does not match|altnames/i,
    );
  });

  test('the client refuses a server certificate from a CA it does not trust', async () => {
    const other = await generateCertificates();
    const { pems } = fixture;
    await assert.rejects(attempt({ ca: other.caCert, cert: pems.clientCert, key: pems.clientKey }), /self[- ]signed|unable to verify|certificate/i);
  });

  test('TLS 1.1 is refused (protocol floor is 1.2)', async () => {
    const { pems } = fixture;
    const socket = tls.connect({
      host: '127.0.0.1',
      port: running.port,
      ca: pems.caCert,
      cert: pems.clientCert,
      key: pems.clientKey,
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.1',
      servername: 'localhost',
    });
    const [err] = (await once(socket, 'error').catch((e: unknown) => [e])) as [Error];
    assert.match(String(err?.message ?? err), /protocol|version|handshake|alert/i);
    socket.destroy();
  });

  test('plaintext to the TLS port gets no answer and is closed', async () => {
    const peer = await RawPeer.connect(running.port);
    peer.send(requests.hget('t', 'k'));
    await peer.closed();
    await assert.rejects(peer.responses(1), /closed after 0/);
  });

  test('the server keeps serving after every refusal', async () => {
    const { pems } = fixture;
    await attempt({ ca: pems.caCert, cert: pems.clientCert, key: pems.clientKey });
  });
});

describe('server-only TLS', () => {
  test('clients need no certificate when no client CA is configured', async () => {
    const fixture = await makeTlsFixture();
    const { pems } = fixture;
    const running = await startServer({ tls: { cert: pems.serverCert, key: pems.serverKey } });
    try {
      const kv = await connect({ host: 'localhost', port: running.port, tls: { ca: pems.caCert } });
      await kv.hset('t', 'k', 'v');
      assert.equal(await kv.hget('t', 'k'), 'v');
      await kv.close();
    } finally {
      await running.close();
      await fixture.cleanup();
    }
  });
});
