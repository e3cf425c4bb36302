/** The RESP listener's pure parts: request parser, reply writer, binary-safe names, values, globs. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_ARGUMENTS, MAX_INLINE_SIZE, RespParser, RespProtocolError, splitInline, type Args } from '../src/resp/parser.js';
import { ReplyWriter } from '../src/resp/reply.js';
import { decodeName, encodeName, nameByteLength } from '../src/resp/names.js';
import { argValue, formatFloat, parseFloatText, parseInteger, parseIntegerText, renderValue } from '../src/resp/values.js';
import { Glob } from '../src/resp/glob.js';

const LIMITS = { maxBulkLength: 1024 * 1024, maxRequestBytes: 4 * 1024 * 1024 };

function argsOf(a: Args): string[] {
  const out: string[] = [];
  for (let i = 0; i < a.count; i++) out.push(a.view(i).toString('latin1'));
  return out;
}

/** Every command in `input`, fed in the given chunks. */
function parseAll(chunks: Buffer[], limits = LIMITS): string[][] {
  const p = new RespParser(limits);
  const out: string[][] = [];
  for (const c of chunks) {
    p.push(c);
    while (p.next()) out.push(argsOf(p.args));
  }
  return out;
}

function parseError(input: string | Buffer, limits = LIMITS): string {
  const p = new RespParser(limits);
  p.push(typeof input === 'string' ? Buffer.from(input, 'latin1') : input);
  try {
    while (p.next());
  } catch (err) {
    assert.ok(err instanceof RespProtocolError);
    return err.message;
  }
  assert.fail('no protocol error');
}

const enc = (...args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a, 'latin1')}\r\n${a}\r\n`).join('')}`;

describe('RESP request parser', () => {
  test('multibulk commands, pipelined, whatever the split of the input', () => {
    const commands = [['HSET', 'h', 'f', 'v'], ['GET', ''], ['PING'], ['HMGET', 'h', 'a\r\nb', '\0\xff']];
    const wire = Buffer.from(commands.map((c) => enc(...c)).join(''), 'latin1');
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: wire.length }), { maxLength: 20 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let from = 0;
        for (const p of points) {
          chunks.push(wire.subarray(from, p));
          from = p;
        }
        chunks.push(wire.subarray(from));
        assert.deepEqual(parseAll(chunks), commands);
      }),
    );
  });

  test('a byte at a time', () => {
    const wire = Buffer.from(enc('HSET', 'x'.repeat(1000), 'y') + 'PING\r\n', 'latin1');
    const chunks = Array.from(wire, (b) => Buffer.from([b]));
    assert.deepEqual(parseAll(chunks), [['HSET', 'x'.repeat(1000), 'y'], ['PING']]);
  });

  test('inline commands: words, quotes, escapes; empty lines and *0 / *-1 are ignored', () => {
    assert.deepEqual(parseAll([Buffer.from('PING\r\n\r\n  set  a "b c"  \n*0\r\n*-10\r\nECHO \'it\\\'s\' "\\x41\\n"\r\n')]), [
      ['PING'],
      ['set', 'a', 'b c'],
      ['ECHO', "it's", 'A\n'],
    ]);
  });

  test('Redis protocol errors, with its texts', () => {
    assert.equal(parseError('*3000000000\r\n'), 'Protocol error: invalid multibulk length');
    assert.equal(parseError(`*${MAX_ARGUMENTS + 1}\r\n`), 'Protocol error: invalid multibulk length');
    assert.equal(parseError('*x\r\n'), 'Protocol error: invalid multibulk length');
    assert.equal(parseError('*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n'), "Protocol error: expected '$', got 'f'");
    assert.equal(parseError('*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n'), 'Protocol error: invalid bulk length');
    assert.equal(parseError('*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n'), 'Protocol error: invalid bulk length');
    assert.equal(parseError(`*1\r\n$${LIMITS.maxBulkLength + 1}\r\n`), 'Protocol error: invalid bulk length');
    assert.equal(parseError('set """test-key""" test-value\r\n'), 'Protocol error: unbalanced quotes in request');
    assert.equal(parseError(Buffer.alloc(MAX_INLINE_SIZE + 1, 'a')), 'Protocol error: too big inline request');
    assert.equal(parseError(`*${'1'.repeat(MAX_INLINE_SIZE + 1)}`), 'Protocol error: too big mbulk count string');
    assert.equal(parseError(`*1\r\n$${'1'.repeat(MAX_INLINE_SIZE + 1)}`), 'Protocol error: too big bulk count string');
  });

  test('a request larger than the limit is refused as soon as its size is known', () => {
    const limits = { maxBulkLength: 1000, maxRequestBytes: 2000 };
    assert.equal(parseError(enc('a', 'x'.repeat(900), 'y'.repeat(900), 'z'.repeat(900)).slice(0, 1840), limits), 'Protocol error: request larger than 2000 bytes');
  });

  test('commands parsed before an error still come out, in order', () => {
    const p = new RespParser(LIMITS);
    p.push(Buffer.from(`${enc('PING')}*1\r\nfoo\r\n`));
    assert.equal(p.next(), true);
    assert.deepEqual(argsOf(p.args), ['PING']);
    assert.throws(() => p.next(), RespProtocolError);
  });

  test('arguments are views of the input, not copies', () => {
    const wire = Buffer.from(enc('ECHO', 'hello'));
    const p = new RespParser(LIMITS);
    p.push(wire);
    assert.equal(p.next(), true);
    assert.equal(p.args.bufs[1].buffer, wire.buffer);
  });

  test('inline splitting matches sdssplitargs on closing-quote rules', () => {
    const split = (s: string) => splitInline(Buffer.from(s, 'latin1'), 0, Buffer.byteLength(s, 'latin1'))?.map((b) => b.toString('latin1'));
    assert.deepEqual(split('"a"b'), undefined);
    assert.deepEqual(split("'a'b"), undefined);
    assert.deepEqual(split('"unterminated'), undefined);
    assert.deepEqual(split('a\tb'), ['a', 'b']);
    assert.deepEqual(split('"\\xzz"'), ['xzz']);
  });
});

describe('reply writer', () => {
  const text = (w: ReplyWriter) => Buffer.concat(w.take()).toString('latin1');

  test('RESP2 and RESP3 forms of the same calls', () => {
    for (const protocol of [2, 3] as const) {
      const w = new ReplyWriter();
      w.protocol = protocol;
      w.map(1);
      w.bulkString('k');
      w.null();
      w.set(0);
      w.push(1);
      w.double(1.5);
      w.bool(true);
      w.verbatim('hi');
      w.nullArray();
      const expected =
        protocol === 2 ? '*2\r\n$1\r\nk\r\n$-1\r\n*0\r\n*1\r\n$3\r\n1.5\r\n:1\r\n$2\r\nhi\r\n*-1\r\n' : '%1\r\n$1\r\nk\r\n_\r\n~0\r\n>1\r\n,1.5\r\n#t\r\n=6\r\ntxt:hi\r\n_\r\n';
      assert.equal(text(w), expected);
    }
  });

  test('truncate discards a reply across slabs and big referenced payloads', () => {
    const w = new ReplyWriter();
    w.ok();
    const mark = w.mark();
    w.bulk(Buffer.alloc(100_000, 1));
    w.bulkString('x'.repeat(5000));
    w.truncate(mark);
    w.integer(7);
    assert.equal(text(w), '+OK\r\n:7\r\n');
  });

  test('errors have CR and LF replaced; names are written as their original bytes', () => {
    const w = new ReplyWriter();
    w.error('ERR a\r\nb');
    w.bulkName(decodeName(Buffer.from([0x61, 0xff]), 0, 2));
    assert.deepEqual(Buffer.concat(w.take()), Buffer.concat([Buffer.from('-ERR a  b\r\n$2\r\na'), Buffer.from([0xff]), Buffer.from('\r\n')]));
  });

  test('many small replies come out in order across slab boundaries', () => {
    const w = new ReplyWriter();
    let expected = '';
    for (let i = 0; i < 20_000; i++) {
      w.integer(i);
      expected += `:${i}\r\n`;
      if (i % 777 === 0) {
        const part = text(w);
        assert.equal(part, expected);
        expected = '';
      }
    }
    assert.equal(text(w), expected);
  });
});

describe('binary-safe names', () => {
  test('any bytes survive the round trip; UTF-8 decodes as UTF-8', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const buf = Buffer.from(bytes);
        const name = decodeName(buf, 0, buf.length);
        assert.deepEqual(encodeName(name), buf);
        assert.equal(nameByteLength(name), buf.length);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
        const buf = Buffer.from(s, 'utf8');
        assert.equal(decodeName(buf, 0, buf.length), s);
      }),
    );
  });

  test('different bytes never give the same name', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), fc.uint8Array({ maxLength: 12 }), (a, b) => {
        fc.pre(!Buffer.from(a).equals(Buffer.from(b)));
        assert.notEqual(decodeName(Buffer.from(a), 0, a.length), decodeName(Buffer.from(b), 0, b.length));
      }),
      { numRuns: 2000 },
    );
  });

  test('invalid bytes show as U+FFFD when the name is written as UTF-8 (protobuf)', () => {
    const name = decodeName(Buffer.from([0x61, 0xc3, 0x28, 0xed, 0xa0, 0x80]), 0, 6);
    assert.equal(Buffer.from(name, 'utf8').toString('utf8'), 'a\ufffd(\ufffd\ufffd\ufffd');
  });
});

describe('values and numbers', () => {
  test('arguments become string values when UTF-8, binary otherwise', () => {
    assert.deepEqual(argValue(Buffer.from('héllo'), 0, 6), { value: { $case: 'string', value: 'héllo' } });
    const bin = argValue(Buffer.from([0xff, 0x00]), 0, 2);
    assert.equal(bin.value?.$case, 'binary');
  });

  test('every type renders as Redis-style text', () => {
    assert.equal(renderValue({ value: { $case: 'integer', value: -(1n << 63n) } }), '-9223372036854775808');
    assert.equal(renderValue({ value: { $case: 'bool', value: false } }), 'false');
    assert.equal(renderValue({ value: undefined }), '');
    assert.equal(renderValue({ value: { $case: 'float', value: 0.1 + 0.2 } }), '0.30000000000000004');
  });

  test('floats: shortest round-trip digits, no exponent', () => {
    const cases: [number, string][] = [
      [1.23, '1.23'],
      [2, '2'],
      [1e21, '1000000000000000000000'],
      [5e-7, '0.0000005'],
      [-1.5e-10, '-0.00000000015'],
      [1.7976931348623157e308, `17976931348623157${'0'.repeat(292)}`],
      [-0, '0'],
      [Infinity, 'inf'],
      [-Infinity, '-inf'],
      [NaN, 'nan'],
    ];
    for (const [x, text] of cases) assert.equal(formatFloat(x), text, String(x));
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
        fc.pre(!Object.is(x, -0));
        assert.equal(Number(formatFloat(x)), x);
        assert.ok(!/e/i.test(formatFloat(x)));
      }),
      { numRuns: 2000 },
    );
  });

  test("integers follow Redis's string2ll", () => {
    const p = (s: string) => parseInteger(Buffer.from(s), 0, Buffer.byteLength(s));
    assert.equal(p('0'), 0n);
    assert.equal(p('-9223372036854775808'), -(1n << 63n));
    assert.equal(p('9223372036854775807'), (1n << 63n) - 1n);
    for (const bad of ['', '-', '+1', '01', '-0', ' 1', '1 ', '1.0', '9223372036854775808', '-9223372036854775809', '1e3', '１']) {
      assert.equal(p(bad), undefined, JSON.stringify(bad));
    }
    assert.equal(parseIntegerText('中5'), undefined);
    assert.equal(parseIntegerText('-17'), -17n);
  });

  test("floats follow strtold's syntax as Redis uses it", () => {
    assert.equal(parseFloatText('1.5'), 1.5);
    assert.equal(parseFloatText('-.5e1'), -5);
    assert.equal(parseFloatText('+inf'), Infinity);
    assert.equal(parseFloatText('-Infinity'), -Infinity);
    for (const bad of ['', ' 1', '1 ', 'nan', '1\x002', '1e999', '1e-999', '0x10', 'abc', '1.2.3']) {
      assert.equal(parseFloatText(bad), undefined, JSON.stringify(bad));
    }
  });
});

describe('glob patterns', () => {
  const m = (pattern: string, subject: string, nocase = false) => new Glob(Buffer.from(pattern, 'latin1'), nocase).test(Buffer.from(subject, 'latin1'));

  test('stars, question marks, classes, escapes', () => {
    assert.ok(m('*', ''));
    assert.ok(m('key:1??', 'key:123'));
    assert.ok(!m('key:1??', 'key:12'));
    assert.ok(m('foo.*', 'foo.1'));
    assert.ok(!m('foo.*', 'foo1'));
    assert.ok(m('h[ae]llo', 'hallo'));
    assert.ok(!m('h[^e]llo', 'hello'));
    assert.ok(m('h[a-c]llo', 'hbllo'));
    assert.ok(m('h[c-a]llo', 'hbllo'));
    assert.ok(m('h\\*llo', 'h*llo'));
    assert.ok(!m('h\\*llo', 'hello'));
    assert.ok(m('a*b*c', 'axxbyyc'));
    assert.ok(!m('a*b*c', 'axxbyy'));
    assert.ok(m('HeLLo', 'hello', true));
    assert.ok(m('[abc', 'b'));
    assert.ok(m('x\\', 'x\\'));
  });

  test('pathological patterns stay polynomial', () => {
    const started = Date.now();
    assert.ok(!m('a*'.repeat(200) + 'b', 'a'.repeat(5000)));
    assert.ok(Date.now() - started < 5000);
  });
});
