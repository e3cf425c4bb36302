/** `protokv bench` run in-process against real servers; no timing is asserted. */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { benchCommand, BENCH_HELP, type BenchIo } from '../src/cli/bench.js';
import type { BenchReport } from '../src/bench/report.js';
import { FrameTemplate, KEY_DIGITS, responseStatus } from '../src/bench/workload.js';
import { requests, okValues } from '../src/protocol/requests.js';
import { decodeRequest, encodeResponse } from '../src/protocol/wire.js';
import { errorResponse, errors } from '../src/errors.js';
import { startServer, type Running } from './helpers/server.js';
import { makeTlsFixture, type TlsFixture } from './helpers/certs.js';

/** Captures what `benchCommand` writes. */
function capture(): BenchIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stdout: { write: (text: string) => (io.out += text) },
    stderr: { write: (text: string) => (io.err += text), isTTY: false },
  };
  return io;
}

async function runJson(argv: string[]): Promise<{ code: number; report: BenchReport; io: ReturnType<typeof capture> }> {
  const io = capture();
  const code = await benchCommand([...argv, '--json'], io);
  const lines = io.out.trim().split('\n');
  const report = JSON.parse(lines[lines.length - 1]) as BenchReport;
  return { code, report, io };
}

function checkReport(report: BenchReport, expected: Partial<BenchReport>): void {
  for (const field of ['command', 'connections', 'pipeline', 'requests', 'opsPerSec', 'p50Ms', 'p90Ms', 'p99Ms', 'p999Ms', 'maxMs', 'errors', 'durationSec'] as const) {
    assert.ok(field in report, `report has ${field}`);
  }
  for (const [k, v] of Object.entries(expected)) assert.deepEqual(report[k as keyof BenchReport], v, k);
  assert.equal(report.errors, 0);
  assert.ok(report.opsPerSec > 0);
  assert.ok(report.durationSec > 0);
  assert.ok(report.p50Ms <= report.p90Ms && report.p90Ms <= report.p99Ms && report.p99Ms <= report.p999Ms && report.p999Ms <= report.maxMs);
}

describe('protokv bench against a server', () => {
  let running: Running;
  before(async () => {
    running = await startServer();
  });
  after(async () => {
    await running.close();
  });
  const server = () => ['--server', `127.0.0.1:${running.port}`];

  test('HSET: the asked number of requests completes without errors', async () => {
    const { code, report } = await runJson([...server(), '--requests', '2000', '--connections', '4']);
    assert.equal(code, 0);
    checkReport(report, { command: 'hset', connections: 4, pipeline: 1, requests: 2000 });
    // The writes really reached the store, with the generated key format.
    const kv = await running.client();
    try {
      const all = await kv.hgetall('bench');
      assert.ok(all.size > 0);
      for (const [key, value] of all) {
        assert.match(key, new RegExp(`^\\d{${KEY_DIGITS}}$`));
        assert.equal(value, 'x'.repeat(32));
      }
    } finally {
      await kv.close();
    }
  });

  test('HGET with pipelining preloads the keyspace, so every read finds its key', async () => {
    const { code, report } = await runJson([...server(), '--command', 'hget', '--requests', '2000', '-c', '3', '-P', '8', '--keyspace', '500', '--table', 'reads']);
    assert.equal(code, 0);
    checkReport(report, { command: 'hget', connections: 3, pipeline: 8, requests: 2000, preloaded: 500 });
  });

  test('every workload runs clean', async () => {
    for (const command of ['hmget', 'hgetall', 'publish', 'mix']) {
      const { code, report } = await runJson([...server(), '--command', command, '--requests', '2000', '-c', '2', '-P', '4', '--keyspace', '200', '--table', `t-${command}`]);
      assert.equal(code, 0, command);
      checkReport(report, { command, requests: 2000 });
    }
  });

  test('--duration runs for a time instead of a count', async () => {
    const { code, report } = await runJson([...server(), '--duration', '0.3', '-c', '2']);
    assert.equal(code, 0);
    checkReport(report, { command: 'hset' });
    assert.ok(report.requests > 0);
  });

  test('without --json a readable summary is printed', async () => {
    const io = capture();
    assert.equal(await benchCommand([...server(), '--requests', '100', '-c', '1'], io), 0);
    assert.match(io.out, /throughput: [\d,]+ ops\/s/);
    assert.match(io.out, /p50 [\d.]+ +p90 [\d.]+ +p99 [\d.]+ +p99\.9 [\d.]+ +max [\d.]+/);
    assert.equal(io.err, '', 'no progress line when stderr is not a terminal');
  });

  test('missing keys count as errors and make the exit code 1', async () => {
    const { code, report } = await runJson([...server(), '--command', 'hget', '--no-preload', '--table', 'empty', '--requests', '50', '-c', '1']);
    assert.equal(code, 1);
    assert.equal(report.requests, 50);
    assert.equal(report.errorResponses, 50);
    assert.equal(report.errors, 50);
  });
});

test('protokv bench over TLS', async () => {
  const fixture: TlsFixture = await makeTlsFixture();
  const running = await startServer({ tls: { cert: fixture.pems.serverCert, key: fixture.pems.serverKey } });
  try {
    const { code, report } = await runJson(['--server', `127.0.0.1:${running.port}`, '--tls-ca', fixture.files.ca, '--requests', '500', '-c', '2']);
    assert.equal(code, 0);
    checkReport(report, { tls: true, requests: 500 });
  } finally {
    await running.close();
    await fixture.cleanup();
  }
});

test('protokv bench over yamux: all streams on one connection', async () => {
  const running = await startServer({ mux: 'yamux' });
  try {
    const { code, report } = await runJson(['--server', `127.0.0.1:${running.port}`, '--mux', 'yamux', '--command', 'mix', '--requests', '2000', '-c', '8', '-P', '4']);
    assert.equal(code, 0);
    checkReport(report, { mux: 'yamux', connections: 8, requests: 2000 });
  } finally {
    await running.close();
  }
});

describe('protokv bench command line', () => {
  test('a bad flag is refused with exit code 2 and a clear message', async () => {
    for (const argv of [
      ['--bogus'],
      ['--connections', '0'],
      ['--pipeline', 'many'],
      ['--command', 'hdel'],
      ['--requests', '10', '--duration', '1'],
      ['--server', 'nowhere'],
      ['--tls-cert', 'c.pem'],
      ['--mux', 'spdy'],
    ]) {
      const io = capture();
      assert.equal(await benchCommand(argv, io), 2, argv.join(' '));
      assert.equal(io.out, '');
      assert.match(io.err, /^protokv bench: .+/, argv.join(' '));
    }
  });

  test('--help prints the help', async () => {
    const io = capture();
    assert.equal(await benchCommand(['--help'], io), 0);
    assert.equal(io.out, BENCH_HELP);
  });

  test('an unreachable server is exit code 1', async () => {
    const closed = await startServer();
    const port = closed.port;
    await closed.close();
    const io = capture();
    assert.equal(await benchCommand(['--server', `127.0.0.1:${port}`, '--requests', '10', '-c', '1'], io), 1);
    assert.match(io.err, /cannot connect/);
  });
});

describe('request templates and response parsing', () => {
  test('a stamped template decodes as the command with fresh keys', () => {
    const template = new FrameTemplate(3, 1000, (keys) => requests.hmget('t', keys));
    const buf = Buffer.alloc(template.length * 2);
    template.stamp(buf, 0);
    template.stamp(buf, template.length);
    for (const offset of [0, template.length]) {
      const frame = buf.subarray(offset, offset + template.length);
      assert.equal(frame.readUInt32BE(0), template.length - 4);
      const request = decodeRequest(frame.subarray(4));
      assert.equal(request.requestData?.$case, 'hmget');
      const keys = request.requestData.value.keys;
      assert.equal(keys.length, 3);
      for (const k of keys) {
        assert.match(k, /^\d{12}$/);
        assert.ok(Number(k) < 1000);
      }
    }
  });

  test('the status is read from encoded responses', () => {
    const enc = (r: Parameters<typeof encodeResponse>[0]) => Buffer.from(encodeResponse(r));
    assert.equal(responseStatus(enc(okValues([{ value: { $case: 'string', value: 'v' } }]))), 200);
    assert.equal(responseStatus(enc(errorResponse(errors.notFound('t', 'k')))), 404);
    // Fields in another order still work: message first, then status.
    assert.equal(responseStatus(Buffer.from([0x12, 0x01, 0x41, 0x08, 0xf4, 0x03])), 500);
    assert.equal(responseStatus(Buffer.alloc(0)), 0);
  });
});
