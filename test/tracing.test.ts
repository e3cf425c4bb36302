/**
 * Tracing (SPEC 7) end to end: a real `protokv serve` exporting to a real OTLP/HTTP receiver, in
 * both encodings; spans, links, resource, sampling, and the SDK kept out of servers without tracing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type KvClient } from '../src/client/client.js';
import { requests } from '../src/protocol/requests.js';
import { makeTlsFixture, type TlsFixture } from './helpers/certs.js';
import { startServerProcess, type ServerProcess } from './helpers/cli.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './helpers/otlp-receiver.js';
import { tempDir } from './helpers/stores.js';
import { until } from './helpers/wait.js';
import { RawResp } from './helpers/resp.js';

const SERVER = 2;
const INTERNAL = 1;
const STATUS_ERROR = 2;

/** Runs a server exporting to `receiver`, lets `work` use it, stops it gracefully, and returns what arrived. */
async function traced(
  receiver: OtlpReceiver,
  args: string[],
  env: NodeJS.ProcessEnv,
  work: (kv: KvClient, server: ServerProcess) => Promise<void>,
  clientOptions: Parameters<typeof connect>[0] = {},
): Promise<ReceivedSpan[]> {
  const server = await startServerProcess(['--listen', '127.0.0.1:0', ...args], env);
  try {
    const kv = await connect({ host: '127.0.0.1', port: server.port, ...clientOptions });
    try {
      await work(kv, server);
    } finally {
      await kv.close();
    }
    // Spans are exported in batches every few seconds; a graceful stop must flush the rest.
    assert.equal(await server.stop(), 0);
  } finally {
    server.child.kill('SIGKILL');
  }
  return receiver.spans.splice(0);
}

for (const protocol of ['http/protobuf', 'http/json'] as const) {
  describe(`tracing over OTLP ${protocol}`, () => {
    let receiver: OtlpReceiver;
    let data: Awaited<ReturnType<typeof tempDir>>;
    let spans: ReceivedSpan[];
    let port: number;

    before(async () => {
      receiver = await startOtlpReceiver();
      data = await tempDir('protokv-tracing-');
      spans = await traced(
        receiver,
        ['--data-dir', data.dir, '--otlp-endpoint', receiver.url],
        { OTEL_EXPORTER_OTLP_PROTOCOL: protocol, OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test' },
        async (kv, server) => {
          port = server.port;
          await Promise.all([kv.hset('users', 'ada', 'Lovelace'), kv.hset('users', 'alan', 'Turing')]);
          await kv.hget('users', 'ada');
          assert.equal((await kv.send(requests.hget('users', 'nobody'))).status, 404);
          await kv.publish('news', 'hello');
          // A key LMDB cannot hold: a 500 from the store.
          assert.equal((await kv.send(requests.hset('users', 'k'.repeat(3000), 'v'))).status, 500);
        },
      );
    });
    after(async () => {
      await receiver.close();
      await data.remove();
    });

    test('arrives in the chosen encoding, flushed by the graceful stop', () => {
      const expected = protocol === 'http/json' ? /^application\/json/ : /^application\/x-protobuf/;
      assert.ok(receiver.contentTypes.length > 0);
      for (const type of receiver.contentTypes) assert.match(type, expected);
    });

    test('one SERVER span per request, named after its command, with the database conventions', () => {
      const requestSpans = spans.filter((s) => s.kind === SERVER);
      assert.deepEqual(requestSpans.map((s) => s.name).sort(), ['HGET', 'HGET', 'HSET', 'HSET', 'HSET', 'PUBLISH']);
      const hget = requestSpans.find((s) => s.name === 'HGET' && s.attributes['protokv.status'] === 200)!;
      assert.deepEqual(hget.attributes, {
        'db.system.name': 'protokv',
        'db.operation.name': 'HGET',
        'db.collection.name': 'users',
        'protokv.status': 200,
        'network.transport': 'tcp',
        'server.port': port,
      });
      assert.equal(hget.status.code, 0);
      assert.equal(hget.parentSpanId, '', 'a request span is a root span');
      assert.match(hget.traceId, /^[0-9a-f]{32}$/);
      assert.match(hget.spanId, /^[0-9a-f]{16}$/);
      assert.ok(hget.endNs >= hget.startNs && hget.startNs > 1_600_000_000_000_000_000n, 'epoch nanoseconds');
      assert.equal(requestSpans.find((s) => s.name === 'PUBLISH')!.attributes['db.collection.name'], 'news');
      assert.equal(new Set(requestSpans.map((s) => s.traceId)).size, requestSpans.length, 'each request is its own trace');
    });

    test('a 404 is not an error; a 500 is, with its message', () => {
      const missing = spans.find((s) => s.name === 'HGET' && s.attributes['protokv.status'] === 404)!;
      assert.equal(missing.status.code, 0);
      const failed = spans.find((s) => s.name === 'HSET' && s.attributes['protokv.status'] === 500)!;
      assert.equal(failed.status.code, STATUS_ERROR);
      assert.match(failed.status.message, /^Storage error: key too long/);
    });

    test('store commits are spans of their own, linked to the writes they acknowledged', () => {
      const commits = spans.filter((s) => s.name === 'COMMIT');
      assert.ok(commits.length >= 1 && commits.length <= 2, `${commits.length} commits`);
      for (const commit of commits) {
        assert.equal(commit.kind, INTERNAL);
        assert.equal(commit.parentSpanId, '');
        assert.equal(commit.attributes['db.system.name'], 'protokv');
        assert.equal(commit.attributes['protokv.store'], 'lmdb');
        assert.equal(commit.links.length, commit.attributes['protokv.commit.writes']);
      }
      const writes = spans.filter((s) => s.name === 'HSET' && s.attributes['protokv.status'] === 200);
      const linked = commits.flatMap((c) => c.links);
      for (const write of writes) {
        assert.ok(linked.some((l) => l.traceId === write.traceId && l.spanId === write.spanId), `HSET ${write.spanId} is linked`);
      }
      // A write is acknowledged after its commit: the commit ends before the request span does.
      for (const write of writes) {
        const commit = commits.find((c) => c.links.some((l) => l.spanId === write.spanId))!;
        assert.ok(commit.endNs <= write.endNs);
      }
    });

    test('the resource names the service, its version, and OTEL_RESOURCE_ATTRIBUTES', () => {
      const version = spans[0].resource['service.version'];
      assert.match(String(version), /^\d+\.\d+\.\d+/);
      for (const span of spans) {
        assert.equal(span.resource['service.name'], 'protokv');
        assert.equal(span.resource['deployment.environment.name'], 'test');
        assert.equal(span.resource['telemetry.sdk.language'], 'nodejs');
        assert.equal(span.scope, 'protokv');
      }
    });
  });
}

describe('tracing settings', () => {
  let receiver: OtlpReceiver;
  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(() => receiver.close());

  const hsets = async (kv: KvClient, n: number) => {
    for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => kv.hset('t', `k${i + j}`, 'v')));
  };

  test('OTEL_TRACES_SAMPLER=always_off traces nothing; OTEL_SERVICE_NAME names the service', async () => {
    const none = await traced(receiver, ['--memory'], { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_TRACES_SAMPLER: 'always_off' }, (kv) => hsets(kv, 100));
    assert.equal(none.length, 0);
    const named = await traced(receiver, ['--memory'], { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`, OTEL_SERVICE_NAME: 'kv-east' }, (kv) =>
      kv.hset('t', 'k', 'v').then(() => {}),
    );
    assert.deepEqual(
      named.map((s) => [s.name, s.resource['service.name']]),
      [['HSET', 'kv-east']],
    );
  });

  test('--trace-sample 0.5 traces about half of the requests', async () => {
    const spans = await traced(receiver, ['--memory', '--otlp-endpoint', receiver.url, '--trace-sample', '0.5'], {}, (kv) => hsets(kv, 400));
    // Binomial(400, 0.5): 200 ± 10; these bounds are 8 standard deviations wide.
    assert.ok(spans.length > 120 && spans.length < 280, `${spans.length} of 400 traced`);
  });

  describe('over TLS and yamux', () => {
    let tls: TlsFixture;
    before(async () => {
      tls = await makeTlsFixture();
    });
    after(() => tls.cleanup());

    test('network.transport names the transport: resp for commands from the RESP listener', async () => {
      const spans = await traced(receiver, ['--memory', '--otlp-endpoint', receiver.url, '--resp', '127.0.0.1:0'], {}, async (_kv, server) => {
        await until(() => server.logs.some((l) => l.protocol === 'resp'), 'the RESP listener', 60_000);
        const address = String(server.logs.find((l) => l.protocol === 'resp')!.address);
        const client = await RawResp.connect(Number(address.slice(address.lastIndexOf(':') + 1)));
        try {
          assert.deepEqual(await client.call('HSET', 'resp-table', 'k', 'v'), { t: 'int', v: 1n });
        } finally {
          client.socket.destroy();
        }
      });
      assert.deepEqual(
        spans.map((s) => [s.name, s.attributes['network.transport'], s.attributes['db.collection.name']]),
        [['HMSET', 'resp', 'resp-table']],
      );
    });

    test('network.transport names the transport', async () => {
      const f = tls.files;
      const tlsArgs = ['--memory', '--otlp-endpoint', receiver.url, '--tls-cert', f.server, '--tls-key', f.serverKey];
      const clientTls = { tls: { ca: tls.pems.caCert } };
      const overTls = await traced(receiver, tlsArgs, {}, (kv) => kv.hset('t', 'k', 'v').then(() => {}), clientTls);
      assert.deepEqual(overTls.map((s) => s.attributes['network.transport']), ['tls']);
      const overYamux = await traced(receiver, [...tlsArgs, '--mux', 'yamux'], {}, (kv) => kv.hset('t', 'k', 'v').then(() => {}), { ...clientTls, mux: 'yamux' });
      assert.deepEqual(overYamux.map((s) => s.attributes['network.transport']), ['yamux']);
    });
  });
});

describe('tracing off', () => {
  const hook = new URL('./fixtures/module-log.js', import.meta.url).href;

  /** The modules a server loads while serving a few requests, with `args`. */
  async function loadedModules(args: string[]): Promise<string> {
    const dir = await tempDir('protokv-modules-');
    const log = join(dir.dir, 'modules.txt');
    try {
      const server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0', ...args], {
        NODE_OPTIONS: `--import=${hook}`,
        PROTOKV_TEST_MODULE_LOG: log,
      });
      try {
        const kv = await connect({ host: '127.0.0.1', port: server.port });
        await kv.send(requests.hset('t', 'k', 'v'));
        await kv.close();
        assert.equal(await server.stop(), 0);
      } finally {
        server.child.kill('SIGKILL');
      }
      return await readFile(log, 'utf8');
    } finally {
      await dir.remove();
    }
  }

  test('a server without tracing never loads the OpenTelemetry SDK; one with tracing does', async () => {
    const off = await loadedModules([]);
    assert.match(off, /prom-client/, 'the log records the modules that were loaded');
    // prom-client itself loads the API facade (`@opentelemetry/api`, for exemplars); nothing else.
    assert.doesNotMatch(off, /@opentelemetry\/(?!api\/)/);
    const receiver = await startOtlpReceiver();
    try {
      const on = await loadedModules(['--otlp-endpoint', receiver.url]);
      assert.match(on, /@opentelemetry\/sdk-trace-base/);
      assert.match(on, /@opentelemetry\/exporter-trace-otlp-proto/);
    } finally {
      await receiver.close();
    }
  });
});
