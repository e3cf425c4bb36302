/** The web console's logic without a browser: the command line, typed value text, the metrics reader and figures. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandLineError, parseCommandLine, showResponse, tokenize } from '../src/console/command-line.js';
import { figuresBetween, quantile } from '../src/console/figures.js';
import { ExpositionError, parseExposition, sumBy } from '../src/console/prometheus.js';
import { displayValue, parseValueText, typeOf, ValueTextError, valueToText, VALUE_TYPES } from '../src/console/value-text.js';
import { requests } from '../src/protocol/requests.js';
import { toValue, type KvValue } from '../src/protocol/values.js';

describe('command line', () => {
  test('words, double quotes with JSON escapes, single quotes', () => {
    assert.deepEqual(tokenize(`  HSET "my table" 'a b' "x\\ty\\u00e9" plain  `), [
      { text: 'HSET', quoted: false },
      { text: 'my table', quoted: true },
      { text: 'a b', quoted: true },
      { text: 'x\tyé', quoted: true },
      { text: 'plain', quoted: false },
    ]);
    assert.deepEqual(tokenize('""'), [{ text: '', quoted: true }]);
    assert.throws(() => tokenize('HGET "t'), /unclosed " starting at column 6/);
    assert.throws(() => tokenize("HGET 't"), /unclosed ' starting at column 6/);
    assert.throws(() => tokenize('HGET "\\q"'), /invalid escape/);
  });

  test('every command builds the request the client library would', () => {
    const cases: [string, ReturnType<typeof requests.hget>][] = [
      ['hget t k', requests.hget('t', 'k')],
      ['HGETALL t', requests.hgetall('t')],
      ['HMGET t a b', requests.hmget('t', ['a', 'b'])],
      ['HSET t k v', requests.hset('t', 'k', 'v')],
      ['HMSET t a int:1 b "int:1"', requests.hmset('t', [['a', 1n], ['b', 'int:1']])],
      ['HDEL t k', requests.hdel('t', 'k')],
      ['HMDEL t a b', requests.hmdel('t', ['a', 'b'])],
      ['HEXIST t k', requests.hexist('t', 'k')],
      ['HMEXIST t a', requests.hmexist('t', ['a'])],
      ['HLEN t', requests.hlen('t')],
      ['HSCAN t', requests.hscan('t', '', 0)],
      ['HSCAN t c 50', requests.hscan('t', 'c', 50)],
      ['TABLES', requests.tables('', 0)],
      ['TABLES "" 10', requests.tables('', 10)],
      ['HDROP t', requests.hdrop('t')],
      ['PUBLISH news', requests.publish('news')],
      ['PUBLISH news a float:1.5 bool:false null bin:AQID', requests.publish('news', 'a', 1.5, false, null, new Uint8Array([1, 2, 3]))],
      ['UNSUBSCRIBE news 7', requests.unsubscribe('news', 7)],
    ];
    for (const [line, request] of cases) {
      const parsed = parseCommandLine(line);
      assert.equal(parsed.kind, 'request', line);
      assert.deepEqual(parsed.kind === 'request' && parsed.request, request, line);
    }
    assert.deepEqual(parseCommandLine('subscribe "a topic"'), { kind: 'subscribe', topic: 'a topic' });
    assert.deepEqual(parseCommandLine('  '), { kind: 'empty' });
    assert.deepEqual(parseCommandLine('help'), { kind: 'help' });
  });

  test('integers beyond 2^53 and int64 bounds are exact', () => {
    const parsed = parseCommandLine('HSET t k int:9223372036854775807');
    assert.ok(parsed.kind === 'request');
    assert.deepEqual(parsed.request, requests.hset('t', 'k', (1n << 63n) - 1n));
    assert.throws(() => parseCommandLine('HSET t k int:9223372036854775808'), /outside the int64 range/);
  });

  test('mistakes get a message that says how to write it', () => {
    const refused = (line: string, message: RegExp) => assert.throws(() => parseCommandLine(line), (e: unknown) => e instanceof CommandLineError && message.test(e.message), line);
    refused('FLY t', /unknown command "FLY"; HELP lists the commands/);
    refused('"HGET" t k', /unknown command/);
    refused('HGET t', /usage: HGET table key/);
    refused('HGET t k extra', /usage: HGET table key/);
    refused('HMSET t a 1 b', /usage: HMSET table key value/);
    refused('HSCAN t c -1', /count must be a whole number from 0/);
    refused('UNSUBSCRIBE t 0', /id must be a whole number from 1/);
    refused('HSET t k int:x', /not an integer/);
    refused('HSET t k bool:maybe', /not a bool/);
    refused('HSET t k bin:***', /base64/);
    refused('toString', /unknown command/);
  });

  test('responses are shown with each value typed', () => {
    const shown = showResponse({
      status: 200,
      message: '',
      values: [toValue('a "b"'), toValue(1n << 60n), toValue(2), toValue(true), toValue(null), toValue(new Uint8Array([0, 255]))],
      pairs: [{ key: 'k', value: toValue(0.5) }],
    });
    assert.deepEqual(shown.values, [
      { type: 'string', text: '"a \\"b\\""' },
      { type: 'integer', text: '1152921504606846976' },
      { type: 'float', text: '2.0' },
      { type: 'bool', text: 'true' },
      { type: 'empty', text: '' },
      { type: 'binary', text: '00 ff' },
    ]);
    assert.deepEqual(shown.pairs, [{ key: 'k', type: 'float', text: '0.5' }]);
    assert.equal(showResponse({ status: 404, message: 'Not found: table t, key k', values: [], pairs: [] }).ok, false);
  });
});

describe('typed value text', () => {
  test('every type round-trips through its text', () => {
    const samples: KvValue[] = ['', 'héllo\nworld', new Uint8Array([0, 1, 254, 255]), 0n, -(1n << 63n), (1n << 63n) - 1n, 9007199254740993n, 0.1, -2e-300, Infinity, NaN, true, false, null];
    for (const v of samples) {
      const back = parseValueText(typeOf(v), valueToText(v));
      assert.deepEqual(back, v, String(v));
    }
    assert.deepEqual([...VALUE_TYPES], ['string', 'binary', 'integer', 'float', 'bool', 'empty']);
  });

  test('bad text for a type is refused with what was expected', () => {
    assert.throws(() => parseValueText('integer', '1.5'), ValueTextError);
    assert.throws(() => parseValueText('integer', '-9223372036854775809'), /int64 range/);
    assert.throws(() => parseValueText('float', 'abc'), /not a number/);
    assert.throws(() => parseValueText('float', ''), /not a number/);
    assert.throws(() => parseValueText('bool', 'yes'), /expected true or false/);
    assert.throws(() => parseValueText('binary', 'A'), /base64/);
    assert.equal(parseValueText('bool', ' TRUE '), true);
    assert.equal(parseValueText('integer', ' +12 '), 12n);
  });

  test('listings abbreviate long values and show bytes in hex', () => {
    assert.equal(displayValue(new Uint8Array([1, 2, 171])), '01 02 ab');
    assert.match(displayValue(new Uint8Array(1000), 30), /^00 00 .* … \(1000 bytes\)$/);
    assert.equal(displayValue('x'.repeat(10), 4), 'xxxx… (10 characters)');
    assert.equal(displayValue(3), '3.0');
    assert.equal(displayValue(null), '');
  });
});

const EXPOSITION = (ops: number, bucketScale: number, rss: number) => `# HELP protokv_commands_total Commands executed.
# TYPE protokv_commands_total counter
protokv_commands_total{command="HGET",status="200"} ${ops}
protokv_commands_total{command="HGET",status="404"} ${ops / 2}
protokv_commands_total{command="HSET",status="200"} 10
# TYPE protokv_command_duration_seconds histogram
protokv_command_duration_seconds_bucket{le="0.001",command="HGET"} ${60 * bucketScale}
protokv_command_duration_seconds_bucket{le="0.01",command="HGET"} ${99 * bucketScale}
protokv_command_duration_seconds_bucket{le="+Inf",command="HGET"} ${100 * bucketScale}
protokv_command_duration_seconds_sum{command="HGET"} 1
protokv_command_duration_seconds_count{command="HGET"} ${100 * bucketScale}
protokv_connections{transport="tcp"} 3
protokv_connections{transport="websocket"} 1
process_resident_memory_bytes ${rss}
nodejs_heap_size_used_bytes 1.5e7 1700000000000
weird_label{path="a\\"b\\\\c\\nd"} NaN
`;

describe('metrics reader and figures', () => {
  test('parses samples, labels with escapes, special values and timestamps', () => {
    const scrape = parseExposition(EXPOSITION(100, 1, 5e7));
    assert.deepEqual(scrape.get('protokv_commands_total')?.[1], { name: 'protokv_commands_total', labels: { command: 'HGET', status: '404' }, value: 50 });
    assert.deepEqual(scrape.get('weird_label')?.[0].labels, { path: 'a"b\\c\nd' });
    assert.ok(Number.isNaN(scrape.get('weird_label')?.[0].value));
    assert.equal(scrape.get('nodejs_heap_size_used_bytes')?.[0].value, 1.5e7);
    assert.deepEqual(sumBy(scrape, 'protokv_commands_total', 'command'), new Map([['HGET', 150], ['HSET', 10]]));
  });

  test('malformed lines are named', () => {
    assert.throws(() => parseExposition('ok 1\n{x="1"} 2'), (e: unknown) => e instanceof ExpositionError && /line 2/.test(e.message));
    assert.throws(() => parseExposition('m{a="1} 2'), /unterminated value of label a/);
    assert.throws(() => parseExposition('m{a=1} 2'), /expected ="…" after label a/);
    assert.throws(() => parseExposition('m 12abc'), /expected a number/);
  });

  test('rates and percentiles over the interval between two scrapes', () => {
    const before = parseExposition(EXPOSITION(100, 1, 5e7));
    const now = parseExposition(EXPOSITION(300, 3, 6e7));
    const f = figuresBetween(before, now, 2);
    assert.equal(f.opsPerSecond.get('HGET'), 150);
    assert.equal(f.opsPerSecond.get('HSET'), 0);
    assert.equal(f.totalOpsPerSecond, 150);
    const p = f.latency.get('HGET')!;
    // 200 new observations: 120 ≤ 1 ms, 78 in (1, 10] ms, 2 above.
    assert.ok(Math.abs(p.p50 - (0.001 * 100) / 120) < 1e-12, String(p.p50));
    assert.ok(Math.abs(p.p99 - (0.001 + (0.009 * 78) / 78)) < 1e-12, String(p.p99));
    assert.deepEqual(f.latencyAll, p, 'one command: all commands together are that command');
    assert.deepEqual(f.connections, new Map([['tcp', 3], ['websocket', 1]]));
    assert.equal(f.rssBytes, 6e7);
    assert.equal(f.heapUsedBytes, 1.5e7);
    const first = figuresBetween(undefined, now, 0);
    assert.equal(first.totalOpsPerSecond, 0);
    assert.equal(first.latency.size, 0);
  });

  test('a counter that went down (server restart) counts from zero', () => {
    const f = figuresBetween(parseExposition(EXPOSITION(1000, 10, 1)), parseExposition(EXPOSITION(20, 1, 1)), 1);
    assert.equal(f.opsPerSecond.get('HGET'), 30);
  });

  test('quantile interpolates inside buckets; the +Inf bucket answers the largest finite bound', () => {
    assert.equal(quantile(0.5, [1, 2, Infinity], [0, 10, 10]), 1.5);
    assert.equal(quantile(0.99, [1, Infinity], [1, 100]), 1);
    assert.equal(quantile(0.5, [1, Infinity], [0, 0]), undefined);
  });
});
