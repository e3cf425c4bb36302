/**
 * A stream's instrumentation queue on its own: requests answered out of order (asynchronous
 * stores), writes that finish what was answered, a queue that never empties under steady load,
 * and a client that never lets anything be written.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { COMMAND_LABELS, Figures, Instrumentation, STATUS_LABELS } from '../src/observability/instrumentation.js';
import { ok, requests } from '../src/protocol/requests.js';
import { errorResponse, errors } from '../src/errors.js';

function setup() {
  const figures = new Figures();
  const stream = new Instrumentation({ figures, tracer: null }).stream({ transport: 'tcp', port: 1 });
  const timed = (command: string) => figures.durations.cumulative(COMMAND_LABELS.indexOf(command)).at(-1)!;
  const answered = (command: string, status: string) =>
    figures.commands[COMMAND_LABELS.indexOf(command) * STATUS_LABELS.length + STATUS_LABELS.indexOf(status)];
  return { figures, stream, timed, answered };
}

describe('the instrumentation queue of a stream', () => {
  test('a write finishes the answered requests at the head, in request order', () => {
    const { figures, stream, timed, answered } = setup();
    stream.received(100);
    const slow = stream.begin(requests.hset('t', 'k', 'v')); // a write, answered later
    stream.dispatched();
    const fast = stream.begin(requests.hget('t', 'k'));
    stream.answered(fast, errorResponse(errors.notFound('t', 'k')));
    assert.equal(answered('HGET', '404'), 1, 'counted once answered');
    stream.written(10);
    assert.equal(timed('HGET'), 0, 'not written before the earlier request is');
    stream.answered(slow, ok());
    stream.written(20);
    assert.equal(timed('HSET'), 1);
    assert.equal(timed('HGET'), 1);
    assert.equal(figures.bytesReceived, 100);
    assert.equal(figures.bytesSent, 30);
  });

  test('under steady load the queue never empties, and every request is still timed once', () => {
    const { stream, timed, answered } = setup();
    let outstanding = stream.begin(requests.hset('t', 'k', 0n));
    for (let i = 1; i <= 10_000; i++) {
      stream.received(10);
      const next = stream.begin(i % 2 === 0 ? requests.hset('t', 'k', BigInt(i)) : requests.hget('t', 'k'));
      stream.answered(outstanding, ok());
      stream.written(10);
      outstanding = next;
    }
    assert.equal(answered('HSET', '200') + answered('HGET', '200'), 10_000);
    assert.equal(timed('HSET') + timed('HGET'), 10_000);
    assert.equal(timed('HGET'), 5000);
  });

  test('requests that are never written are finished anyway past the queue limit', () => {
    const { stream, timed } = setup();
    for (let i = 0; i < 5000; i++) stream.answered(stream.begin(requests.hget('t', `k${i}`)), ok());
    assert.ok(timed('HGET') >= 5000 - 256, `${timed('HGET')} timed`);
    stream.written(1);
    assert.equal(timed('HGET'), 5000);
  });

  test('a request naming no command is counted as INVALID, an unknown status as other', () => {
    const { stream, answered } = setup();
    stream.answered(stream.begin({ requestData: undefined }), errorResponse(errors.invalidCommand('the request has no command')));
    stream.answered(stream.begin(requests.hget('t', 'k')), { status: 299, message: '', values: [], pairs: [] });
    assert.equal(answered('INVALID', '400'), 1);
    assert.equal(answered('HGET', 'other'), 1);
  });
});
