/** `/metrics` (SPEC 6) over real sockets: every metric, exact counts, bounded labels, every transport. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Registry } from 'prom-client';
import { encodeFrame, FrameDecoder } from '../src/codec/frame.js';
import { encodeRequest } from '../src/protocol/wire.js';
import { requests } from '../src/protocol/requests.js';
import type { CommandRequest } from '../src/protocol/generated/abi.js';
import { LmdbStore } from '../src/storage/lmdb.js';
import { Figures, COMMAND_LABELS } from '../src/observability/instrumentation.js';
import { createMetricsRegistry } from '../src/observability/metrics.js';
import { PubSub } from '../src/service/pubsub.js';
import { MemoryStore } from '../src/storage/memory.js';
import { makeTlsFixture, type TlsFixture } from './helpers/certs.js';
import { parseExposition, startInstrumentedServer, valueOf, type InstrumentedServer, type Sample } from './helpers/metrics.js';
import { tempDir } from './helpers/stores.js';
import { get } from './helpers/http.js';
import { RawResp } from './helpers/resp.js';
import { RespServer } from '../src/resp/server.js';
import { readFile } from 'node:fs/promises';
import { until } from './helpers/wait.js';

/** Scrapes until `check` passes (figures of a write land when its callback runs), then returns the samples. */
async function scrapeUntil(server: InstrumentedServer, what: string, check: (s: Sample[]) => boolean): Promise<Sample[]> {
  const deadline = Date.now() + 60_000;
  let samples = await server.scrape();
  while (!check(samples)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
    samples = await server.scrape();
  }
  return samples;
}

/** A raw connection that counts the bytes it sends and receives, and the responses. */
class CountingPeer {
  sent = 0;
  received = 0;
  responses = 0;
  readonly #decoder = new FrameDecoder();

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      this.#decoder.push(chunk);
      while (this.#decoder.next() !== undefined) this.responses++;
    });
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<CountingPeer> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    return new CountingPeer(socket);
  }

  send(request: CommandRequest | Buffer): void {
    const frame = Buffer.isBuffer(request) ? request : encodeFrame(encodeRequest(request));
    this.sent += frame.length;
    this.socket.write(frame);
  }

  async answers(n: number): Promise<void> {
    await until(() => this.responses >= n, `${n} responses`, 60_000);
  }
}

const SPEC_METRICS: [string, string][] = [
  ['protokv_commands_total', 'counter'],
  ['protokv_command_duration_seconds', 'histogram'],
  ['protokv_connections', 'gauge'],
  ['protokv_connections_total', 'counter'],
  ['protokv_connections_rejected_total', 'counter'],
  ['protokv_bytes_received_total', 'counter'],
  ['protokv_bytes_sent_total', 'counter'],
  ['protokv_subscriptions', 'gauge'],
  ['protokv_published_messages_total', 'counter'],
  ['protokv_delivered_messages_total', 'counter'],
  ['protokv_subscribers_dropped_total', 'counter'],
  ['protokv_store_commit_duration_seconds', 'histogram'],
  ['protokv_store_keys', 'gauge'],
];

describe('metrics over TCP', () => {
  let server: InstrumentedServer;
  before(async () => {
    server = await startInstrumentedServer();
  });
  after(() => server.close());

  test('every metric of SPEC 6 is exposed with its type, next to the process and Node.js metrics', async () => {
    const body = (await get(server.http, '/metrics')).body;
    for (const [name, type] of SPEC_METRICS) assert.match(body, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), name);
    for (const name of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'nodejs_eventloop_lag_seconds', 'nodejs_gc_duration_seconds']) {
      assert.match(body, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
  });

  test('requests by command and status, durations by command, bytes both ways — exactly', async () => {
    const before = await server.scrape();
    const peer = await CountingPeer.connect(server.port);
    try {
      for (let i = 0; i < 3; i++) peer.send(requests.hset('metrics-table', `k${i}`, `v${i}`));
      peer.send(requests.hget('metrics-table', 'k0'));
      peer.send(requests.hget('metrics-table', 'k1'));
      peer.send(requests.hget('metrics-table', 'missing'));
      peer.send(encodeFrame(Buffer.alloc(0))); // a request naming no command
      await peer.answers(7);
      const delta = (s: Sample[], name: string, labels: Record<string, string> = {}) => (valueOf(s, name, labels) ?? 0) - (valueOf(before, name, labels) ?? 0);
      const samples = await scrapeUntil(server, 'every response to be counted as written', (s) => delta(s, 'protokv_bytes_sent_total') === peer.received);
      assert.equal(delta(samples, 'protokv_commands_total', { command: 'HSET', status: '200' }), 3);
      assert.equal(delta(samples, 'protokv_commands_total', { command: 'HGET', status: '200' }), 2);
      assert.equal(delta(samples, 'protokv_commands_total', { command: 'HGET', status: '404' }), 1);
      assert.equal(delta(samples, 'protokv_commands_total', { command: 'INVALID', status: '400' }), 1);
      assert.equal(delta(samples, 'protokv_bytes_received_total'), peer.sent);
      assert.equal(delta(samples, 'protokv_command_duration_seconds_count', { command: 'HSET' }), 3);
      assert.equal(delta(samples, 'protokv_command_duration_seconds_count', { command: 'HGET' }), 3);

      // Buckets are cumulative and end with +Inf = count; the sum is positive.
      const buckets = samples.filter((s) => s.name === 'protokv_command_duration_seconds_bucket' && s.labels.command === 'HGET');
      assert.equal(buckets.at(-1)!.labels.le, '+Inf');
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value);
      assert.equal(buckets.at(-1)!.value, valueOf(samples, 'protokv_command_duration_seconds_count', { command: 'HGET' }));
      assert.ok(valueOf(samples, 'protokv_command_duration_seconds_sum', { command: 'HGET' })! > 0);
      // Commands that never ran have no series.
      assert.equal(valueOf(samples, 'protokv_command_duration_seconds_count', { command: 'HMDEL' }), undefined);
    } finally {
      peer.socket.destroy();
    }
  });

  test('labels come from bounded sets: no table name, key or value ever appears', async () => {
    const kv = await server.client();
    try {
      await kv.hset('secret-table-Qx7', 'secret-key-Qx7', 'secret-value-Qx7');
      await kv.publish('secret-topic-Qx7', 'hello');
    } finally {
      await kv.close();
    }
    const body = (await get(server.http, '/metrics')).body;
    assert.doesNotMatch(body, /Qx7/);
    for (const sample of parseExposition(body).filter((s) => s.name.startsWith('protokv_commands'))) {
      assert.ok(COMMAND_LABELS.includes(sample.labels.command), sample.labels.command);
    }
  });

  test('subscriptions, published and delivered messages', async () => {
    const [a, b, publisher] = await Promise.all([server.client(), server.client(), server.client()]);
    try {
      const base = await server.scrape();
      const delta = (s: Sample[], name: string) => valueOf(s, name)! - valueOf(base, name)!;
      const subs = await Promise.all([a.subscribe('news'), b.subscribe('news')]);
      assert.equal(valueOf(await server.scrape(), 'protokv_subscriptions'), 2);
      for (let i = 0; i < 3; i++) await publisher.publish('news', i);
      await publisher.publish('nobody-listens', 'x');
      const samples = await server.scrape();
      assert.equal(delta(samples, 'protokv_published_messages_total'), 4);
      assert.equal(delta(samples, 'protokv_delivered_messages_total'), 6);
      for (const sub of subs) await sub.unsubscribe();
      await scrapeUntil(server, 'subscriptions to end', (s) => valueOf(s, 'protokv_subscriptions') === 0);
    } finally {
      await Promise.all([a.close(), b.close(), publisher.close()]);
    }
  });

  test('the store key count follows the memory store', async () => {
    const kv = await server.client();
    try {
      await kv.send(requests.hmset('keys-table', [['a', 1n], ['b', 2n], ['c', 3n]]));
      const samples = await server.scrape();
      assert.equal(valueOf(samples, 'protokv_store_keys'), server.service.store.keyCount!() as number);
      await kv.hdel('keys-table', 'a');
      assert.equal(valueOf(await server.scrape(), 'protokv_store_keys'), (server.service.store.keyCount!() as number));
    } finally {
      await kv.close();
    }
  });
});

describe('metrics: connections', () => {
  test('TCP connections open and accepted, and refused over the limit', async () => {
    const server = await startInstrumentedServer({ maxConnections: 2 });
    const peers: CountingPeer[] = [];
    try {
      peers.push(await CountingPeer.connect(server.port), await CountingPeer.connect(server.port));
      const open = (s: Sample[]) => valueOf(s, 'protokv_connections', { transport: 'tcp' });
      let samples = await scrapeUntil(server, 'two connections', (s) => open(s) === 2);
      assert.equal(valueOf(samples, 'protokv_connections_total', { transport: 'tcp' }), 2);
      for (const transport of ['tls', 'yamux', 'websocket', 'resp']) assert.equal(valueOf(samples, 'protokv_connections', { transport }), 0, transport);
      const refused = await CountingPeer.connect(server.port);
      peers.push(refused);
      await once(refused.socket, 'close');
      samples = await scrapeUntil(server, 'a refused connection', (s) => valueOf(s, 'protokv_connections_rejected_total', { reason: 'max_connections' }) === 1);
      assert.equal(valueOf(samples, 'protokv_connections_rejected_total', { reason: 'tls_handshake' }), 0);
      assert.equal(valueOf(samples, 'protokv_connections_total', { transport: 'tcp' }), 2, 'a refused connection is not counted as accepted');
      for (const p of peers) p.socket.destroy();
      await scrapeUntil(server, 'connections to close', (s) => open(s) === 0);
    } finally {
      for (const p of peers) p.socket.destroy();
      await server.close();
    }
  });
});

describe('metrics: dropped subscribers', () => {
  test('a subscriber that stops reading past its backlog is dropped and counted', async () => {
    const server = await startInstrumentedServer({ subscriberBacklogBytes: 1024 });
    const subscriber = net.connect({ host: '127.0.0.1', port: server.port });
    subscriber.on('error', () => {});
    await once(subscriber, 'connect');
    const publisher = await server.client();
    try {
      subscriber.write(encodeFrame(encodeRequest(requests.subscribe('firehose'))));
      await until(() => server.service.pubsub.size === 1, 'the subscription', 60_000);
      subscriber.pause();
      const big = randomBytes(256 * 1024); // incompressible: frames are gzipped past 1436 bytes
      for (let i = 0; i < 200 && server.service.pubsub.size > 0; i++) await publisher.publish('firehose', big);
      const samples = await scrapeUntil(server, 'the drop to be counted', (s) => valueOf(s, 'protokv_subscribers_dropped_total') === 1);
      assert.equal(valueOf(samples, 'protokv_subscriptions'), 0);
    } finally {
      subscriber.destroy();
      await publisher.close();
      await server.close();
    }
  });
});

describe('metrics over TLS and yamux', () => {
  let fixture: TlsFixture;
  before(async () => {
    fixture = await makeTlsFixture();
  });
  after(() => fixture.cleanup());

  test('TLS connections, and refused handshakes by reason', async () => {
    const { pems } = fixture;
    const server = await startInstrumentedServer(
      { tls: { cert: pems.serverCert, key: pems.serverKey, clientCa: pems.caCert } },
      { tls: { ca: pems.caCert, cert: pems.clientCert, key: pems.clientKey } },
    );
    const kv = await server.client();
    try {
      await kv.hset('t', 'k', 'v');
      let samples = await scrapeUntil(server, 'one TLS connection', (s) => valueOf(s, 'protokv_connections', { transport: 'tls' }) === 1);
      assert.equal(valueOf(samples, 'protokv_connections', { transport: 'tcp' }), 0);
      assert.equal(valueOf(samples, 'protokv_commands_total', { command: 'HSET', status: '200' }), 1);
      // No client certificate: the handshake is refused.
      const bare = tls.connect({ host: '127.0.0.1', port: server.port, ca: pems.caCert, servername: 'localhost' });
      bare.on('error', () => {});
      await new Promise((resolve) => bare.once('close', resolve));
      samples = await scrapeUntil(server, 'the refused handshake', (s) => valueOf(s, 'protokv_connections_rejected_total', { reason: 'tls_handshake' }) === 1);
      await kv.close();
      await scrapeUntil(server, 'the connection to close', (s) => valueOf(s, 'protokv_connections', { transport: 'tls' }) === 0);
    } finally {
      await kv.close();
      await server.close();
    }
  });

  test('yamux streams count as yamux connections, on top of the TCP connection carrying them', async () => {
    const server = await startInstrumentedServer({ mux: 'yamux' }, { mux: 'yamux' });
    try {
      const kv = await server.client();
      const sub = await kv.subscribe('yamux-topic');
      await kv.hset('t', 'k', 'v');
      const samples = await scrapeUntil(server, 'yamux streams', (s) => valueOf(s, 'protokv_connections', { transport: 'yamux' })! >= 2);
      assert.equal(valueOf(samples, 'protokv_connections', { transport: 'tcp' }), 1);
      assert.equal(valueOf(samples, 'protokv_commands_total', { command: 'HSET', status: '200' }), 1);
      assert.equal(valueOf(samples, 'protokv_commands_total', { command: 'SUBSCRIBE', status: '200' }), 1);
      await sub.unsubscribe();
      await kv.close();
      await scrapeUntil(server, 'streams to close', (s) => valueOf(s, 'protokv_connections', { transport: 'yamux' }) === 0);
    } finally {
      await server.close();
    }
  });
});

describe('metrics over RESP', () => {
  test('commands run from RESP are counted and timed, with transport resp', async () => {
    const server = await startInstrumentedServer();
    const resp = await RespServer.listen({ service: server.service, host: '127.0.0.1', port: 0 });
    const client = await RawResp.connect(resp.address().port);
    try {
      assert.deepEqual(await client.call('HSET', 'resp-table', 'a', '1', 'b', '2'), { t: 'int', v: 2n });
      assert.deepEqual(await client.call('HGET', 'resp-table', 'a'), { t: 'bulk', v: Buffer.from('1') });
      assert.deepEqual(await client.call('PING'), { t: 'simple', v: 'PONG' });
      const samples = await scrapeUntil(server, 'RESP commands to be timed', (s) => valueOf(s, 'protokv_command_duration_seconds_count', { command: 'HGET' }) === 1);
      assert.equal(valueOf(samples, 'protokv_connections', { transport: 'resp' }), 1);
      assert.equal(valueOf(samples, 'protokv_connections_total', { transport: 'resp' }), 1);
      assert.equal(valueOf(samples, 'protokv_commands_total', { command: 'HMSET', status: '200' }), 1);
      assert.equal(valueOf(samples, 'protokv_commands_total', { command: 'HGET', status: '200' }), 1);
      assert.equal(valueOf(samples, 'protokv_command_duration_seconds_count', { command: 'HMSET' }), 1);
      assert.ok(valueOf(samples, 'protokv_bytes_received_total')! > 0);
      assert.ok(valueOf(samples, 'protokv_bytes_sent_total')! > 0);
    } finally {
      client.socket.destroy();
      await resp.close();
      await server.close();
    }
  });
});

describe('metrics on the persistent store', () => {
  test('commit durations and the key count', async () => {
    const dir = await tempDir('protokv-metrics-');
    const server = await startInstrumentedServer({ store: (observer) => LmdbStore.open(dir.dir, { commitObserver: observer }) });
    try {
      const kv = await server.client();
      await Promise.all(Array.from({ length: 20 }, (_, i) => kv.hset('durable', `k${i}`, i)));
      for (let i = 0; i < 5; i++) await kv.hset('durable', `seq${i}`, i);
      await kv.close();
      const samples = await scrapeUntil(server, 'commits', (s) => (valueOf(s, 'protokv_store_commit_duration_seconds_count') ?? 0) >= 6);
      const commits = valueOf(samples, 'protokv_store_commit_duration_seconds_count')!;
      // Concurrent writes share commits; sequential ones each have their own.
      assert.ok(commits >= 6 && commits <= 25, `${commits} commits`);
      assert.ok(valueOf(samples, 'protokv_store_commit_duration_seconds_sum')! > 0);
      assert.equal(valueOf(samples, 'protokv_store_commit_duration_seconds_bucket', { le: '+Inf' }), commits);
      assert.equal(valueOf(samples, 'protokv_store_keys'), 25);
    } finally {
      await server.close();
      await dir.remove();
    }
  });
});

describe('the exposition of precounted histograms', () => {
  test('buckets, sum and count render as prom-client renders its own histograms', async () => {
    const figures = new Figures();
    const hget = COMMAND_LABELS.indexOf('HGET');
    figures.durations.observe(hget, 0.0002);
    figures.durations.observe(hget, 0.003);
    figures.durations.observe(hget, 42);
    const registry: Registry = createMetricsRegistry({ figures, pubsub: new PubSub(), store: new MemoryStore() });
    const lines = (await registry.metrics()).split('\n').filter((l) => l.startsWith('protokv_command_duration_seconds'));
    assert.deepEqual(lines.slice(0, 3), [
      'protokv_command_duration_seconds_bucket{command="HGET",le="0.00005"} 0',
      'protokv_command_duration_seconds_bucket{command="HGET",le="0.0001"} 0',
      'protokv_command_duration_seconds_bucket{command="HGET",le="0.00025"} 1',
    ]);
    assert.ok(lines.includes('protokv_command_duration_seconds_bucket{command="HGET",le="0.005"} 2'));
    assert.ok(lines.includes('protokv_command_duration_seconds_bucket{command="HGET",le="10"} 2'));
    assert.ok(lines.includes('protokv_command_duration_seconds_bucket{command="HGET",le="+Inf"} 3'));
    assert.ok(lines.includes('protokv_command_duration_seconds_sum{command="HGET"} 42.0032'));
    assert.ok(lines.includes('protokv_command_duration_seconds_count{command="HGET"} 3'));
    assert.equal(lines.length, 17 + 1 + 2, 'one series: the commands never observed are left out');
  });
});

describe('the observability documentation', () => {
  test('every metric the docs, the alerts and the dashboard name is one the server exposes', async () => {
    const server = await startInstrumentedServer();
    try {
      const exposed = new Set((await get(server.http, '/metrics')).body.match(/^# TYPE (\S+)/gm)!.map((l) => l.slice('# TYPE '.length)));
      const docs = ['docs/observability.md', 'docs/prometheus-alerts.yml', 'docs/grafana-dashboard.json'];
      for (const file of docs) {
        const text = await readFile(new URL(`../../${file}`, import.meta.url), 'utf8');
        const named = new Set(text.match(/\b(?:protokv|process|nodejs)_[a-z0-9_]+/g) ?? []);
        assert.ok(named.size > 0, file);
        for (const name of named) {
          const base = name.replace(/_(bucket|sum|count)$/, '');
          assert.ok(exposed.has(name) || exposed.has(base), `${file} names ${name}, which /metrics does not expose`);
        }
      }
    } finally {
      await server.close();
    }
  });
});
