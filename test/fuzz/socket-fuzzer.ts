/**
 * The socket fuzzer: many concurrent connections throw valid, mutated and hostile frames at a live
 * server — split at random points, pipelined, cut off mid-frame, gzip bombs, oversize headers,
 * subscriptions broken by a second request — and every response is checked against what the
 * bytes sent predict (see `classifyFrame`). Used by the fuzz test (a few thousand frames) and by
 * `bench/fuzz.ts` (as many as asked).
 */
import net from 'node:net';
import { once } from 'node:events';
import { FrameDecoder } from '../../src/codec/frame.js';
import type { CommandResponse } from '../../src/protocol/generated/abi.js';
import { requests } from '../../src/protocol/requests.js';
import { decodeResponse } from '../../src/protocol/wire.js';
import { Rand } from './random.js';
import {
  brokenGzip,
  classifyFrame,
  encoded,
  gzipBomb,
  gzipFrame,
  header,
  manyKeysPayload,
  mutate,
  oversizeHeader,
  protobufish,
  randomRequest,
  rawFrame,
  TOPICS,
  type Expectation,
} from './inputs.js';

export interface FuzzOptions {
  port: number;
  /** Sessions running at once, each on its own connection. */
  connections: number;
  /** Frames to send in all. */
  frames: number;
  seed: number;
  /** The server's maximum frame size: bombs and oversize headers are built against it. */
  maxFrameSize: number;
  /** Send more bytes after an oversize header, as a client that does not wait for the 413 would. */
  junkAfterOversize?: boolean;
  /** A session the server has not finished with in this long is recorded as stalled. Default 30 s. */
  sessionLimitMs?: number;
  /** Most frames one session sends before it ends. Default 64. */
  maxFramesPerSession?: number;
  /** Called every `progressEvery` frames with the report so far. */
  onProgress?: (report: FuzzReport) => void;
  progressEvery?: number;
  /** Runs exactly these sessions, one after another (seeds as printed in failures), instead of `frames`. */
  replay?: readonly number[];
}

const FRAME_KINDS = {
  valid: 30,
  'valid-gzip': 6,
  mutated: 25,
  'mutated-gzip': 4,
  protobufish: 12,
  random: 8,
  empty: 2,
  'broken-gzip': 6,
  subscribe: 1.5,
  'many-keys': 0.5,
  'gzip-bomb': 1,
  oversize: 1,
} as const;
export type FrameKind = keyof typeof FRAME_KINDS;

const ENDINGS = {
  /** Half-close after writing; the server must answer everything, then close. */
  end: 50,
  /** Wait for every answer, then drop the connection. */
  'wait-destroy': 20,
  /** Write a frame's first bytes only, then drop the connection. */
  'abort-mid-frame': 15,
  /** Drop the connection after a random prefix of the bytes. */
  'abort-anywhere': 10,
  /** Unframed random bytes, then half-close. */
  raw: 5,
} as const;
export type Ending = keyof typeof ENDINGS;

export interface FuzzReport {
  seed: number;
  framesSent: number;
  bytesSent: number;
  sessions: number;
  endings: Record<Ending, number>;
  frameKinds: Record<FrameKind, number>;
  /** Responses received, by status. */
  responses: Record<string, number>;
  /** Sessions whose connection the server closed after a 413. */
  closedAfter413: number;
  subscriptions: number;
  failureCount: number;
  /** The first failures, each with enough detail to replay it. */
  failures: string[];
}

const MAX_FAILURES_KEPT = 30;

function emptyCounts<K extends string>(keys: Readonly<Record<K, number>>): Record<K, number> {
  return Object.fromEntries(Object.keys(keys).map((k) => [k, 0])) as Record<K, number>;
}

interface Planned {
  kind: FrameKind;
  bytes: Buffer;
  expect: Expectation;
}

/** A frame as `check` sees it: a name for reports, and what it must produce. */
export interface Expected {
  kind: string;
  expect: Expectation;
}

function buildFrame(rand: Rand, kind: FrameKind, maxFrameSize: number): Buffer {
  switch (kind) {
    case 'valid':
      return rawFrame(encoded(randomRequest(rand)));
    case 'valid-gzip':
      return gzipFrame(encoded(randomRequest(rand)));
    case 'mutated':
      return rawFrame(mutate(rand, encoded(randomRequest(rand))));
    case 'mutated-gzip':
      return gzipFrame(mutate(rand, encoded(randomRequest(rand))));
    case 'protobufish':
      return rawFrame(protobufish(rand, 3));
    case 'random':
      return rawFrame(rand.bytes(rand.size(Math.min(4096, maxFrameSize))), rand.chance(0.2));
    case 'empty':
      return header(0, rand.chance(0.3));
    case 'broken-gzip':
      return rawFrame(brokenGzip(rand, encoded(randomRequest(rand))), true);
    case 'subscribe':
      return rawFrame(encoded(requests.subscribe(rand.pick(TOPICS))));
    case 'many-keys':
      return gzipFrame(manyKeysPayload(rand.range(1, Math.floor((maxFrameSize - 8) / 2))));
    case 'gzip-bomb':
      return gzipBomb(maxFrameSize);
    case 'oversize':
      return oversizeHeader(rand, maxFrameSize);
  }
}

/** Frames for one session: stops at a frame that ends the stream's usefulness (413, subscription). */
function plan(rand: Rand, count: number, maxFrameSize: number): Planned[] {
  const out: Planned[] = [];
  while (out.length < count) {
    const kind = rand.weighted(FRAME_KINDS);
    const bytes = buildFrame(rand, kind, maxFrameSize);
    const expect = classifyFrame(bytes, maxFrameSize);
    out.push({ kind, bytes, expect });
    if (expect.kind === 'too-large') break;
    if (expect.kind === 'subscribe') {
      // One request on a subscription stream is answered 400 and ends it; more would go unanswered.
      if (rand.chance(0.5)) {
        const extraKind = rand.chance(0.2) ? rand.weighted(FRAME_KINDS) : rand.pick<FrameKind>(['valid', 'mutated', 'protobufish']);
        const extra = buildFrame(rand, extraKind, maxFrameSize);
        out.push({ kind: extraKind, bytes: extra, expect: classifyFrame(extra, maxFrameSize) });
      }
      break;
    }
  }
  return out;
}

function describeResponse(r: CommandResponse): string {
  return `${r.status} ${JSON.stringify(r.message)} values=${r.values.length} pairs=${r.pairs.length}`;
}

/**
 * Checks the responses of a session against its plan. With `complete`, every planned answer must
 * be there; otherwise (the client dropped the connection) what arrived must be a correct prefix.
 */
export function check(planned: readonly Expected[], responses: readonly CommandResponse[], complete: boolean): string | undefined {
  let i = 0;
  for (let f = 0; f < planned.length; f++) {
    const { expect, kind } = planned[f];
    const r = responses[i++];
    if (r === undefined) return complete ? `no response to frame ${f} (${kind}); ${responses.length} responses in all` : undefined;
    const where = `frame ${f} (${kind})`;
    if (expect.kind === 'reply') {
      if (!expect.statuses.includes(r.status)) return `${where}, ${expect.command}: expected ${expect.statuses.join('/')}, got ${describeResponse(r)}`;
      if (r.status === 404 && !r.message.startsWith('Not found')) return `${where}: a 404 whose message is ${JSON.stringify(r.message)}`;
      if (r.status !== 200 && (r.values.length > 0 || r.pairs.length > 0)) return `${where}: error response with values or pairs`;
      if (r.status !== 200 && r.message.length === 0) return `${where}: error response without a message`;
      continue;
    }
    if (expect.kind === 'too-large') {
      if (r.status !== 413) return `${where}: expected 413, got ${describeResponse(r)}`;
      if (i < responses.length) return `${where}: ${responses.length - i} responses after the 413`;
      return undefined;
    }
    // A subscription: its id, then published messages (200), then maybe the 400 (or 413) for the extra frame.
    const id = r.values[0]?.value;
    if (r.status !== 200 || id?.$case !== 'integer' || id.value <= 0n) return `${where}: SUBSCRIBE answered ${describeResponse(r)}`;
    const extra = planned[f + 1];
    for (; i < responses.length; i++) {
      const m = responses[i];
      if (m.status === 200) continue;
      const last = i === responses.length - 1;
      // An oversize header is refused before anything else; any other frame on a subscription
      // stream, a gzip bomb included, is refused without being inflated.
      const allowed = extra?.expect.kind === 'too-large' && extra.expect.by === 'header' ? 413 : 400;
      if (!last || extra === undefined || m.status !== allowed) return `${where}: on the subscription stream, ${describeResponse(m)}`;
    }
    return undefined;
  }
  if (i < responses.length) return `${responses.length - i} responses more than frames sent`;
  return undefined;
}

/** How many responses a complete session gets at least (a subscription may get more). */
export function expectedResponses(planned: readonly Expected[]): number {
  let n = 0;
  for (const p of planned) {
    n++;
    if (p.expect.kind !== 'reply') break;
  }
  return n;
}

class Connection {
  readonly socket: net.Socket;
  readonly responses: CommandResponse[] = [];
  readonly closed: Promise<void>;
  decodeError: string | undefined;
  isClosed = false;
  #wake: (() => void) | undefined;

  constructor(socket: net.Socket) {
    this.socket = socket;
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
        for (let p = decoder.next(); p !== undefined; p = decoder.next()) this.responses.push(decodeResponse(p));
      } catch (err) {
        this.decodeError ??= `undecodable response: ${(err as Error).message}`;
      }
      this.#wake?.();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        this.#wake?.();
        resolve();
      }),
    );
  }

  /** Resolves once `n` responses arrived or the connection closed. */
  async waitFor(n: number): Promise<void> {
    while (this.responses.length < n && !this.isClosed) await new Promise<void>((resolve) => (this.#wake = resolve));
  }
}

async function writeAll(rand: Rand, socket: net.Socket, bytes: Buffer): Promise<void> {
  if (bytes.length === 0) return;
  const cuts = Array.from({ length: rand.int(6) }, () => rand.int(bytes.length)).sort((a, b) => a - b);
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    if (to <= from) continue;
    if (socket.destroyed) return;
    if (!socket.write(bytes.subarray(from, to))) {
      await Promise.race([once(socket, 'drain'), once(socket, 'close')]);
    }
    from = to;
    // Let the piece leave on its own, so the server sees it as a separate read.
    if (rand.chance(0.4)) await new Promise((r) => setImmediate(r));
  }
}

async function withLimit<T>(work: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  try {
    return await Promise.race([work, limit]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runSocketFuzzer(options: FuzzOptions): Promise<FuzzReport> {
  const report: FuzzReport = {
    seed: options.seed,
    framesSent: 0,
    bytesSent: 0,
    sessions: 0,
    endings: emptyCounts(ENDINGS),
    frameKinds: emptyCounts(FRAME_KINDS),
    responses: {},
    closedAfter413: 0,
    subscriptions: 0,
    failureCount: 0,
    failures: [],
  };
  const limitMs = options.sessionLimitMs ?? 30_000;
  const maxPerSession = options.maxFramesPerSession ?? 64;
  const progressEvery = options.progressEvery ?? 100_000;
  let remaining = options.frames;
  let nextProgress = progressEvery;

  const fail = (text: string): void => {
    report.failureCount++;
    if (report.failures.length < MAX_FAILURES_KEPT) report.failures.push(text);
  };

  async function session(rand: Rand, sessionSeed: number): Promise<void> {
    const ending = rand.weighted(ENDINGS);
    const planned = ending === 'raw' ? [] : plan(rand, rand.range(1, maxPerSession), options.maxFrameSize);
    // Raw sessions send no frames, so they take nothing from the budget.
    remaining -= planned.length;
    let bytes: Buffer = Buffer.concat(planned.map((p) => p.bytes));
    const tooLarge = planned.at(-1)?.expect.kind === 'too-large';
    if (ending === 'raw') bytes = rand.bytes(rand.size(8192));
    else if (tooLarge && options.junkAfterOversize) bytes = Buffer.concat([bytes, rand.bytes(rand.range(1, 256 * 1024))]);
    else if (ending === 'abort-mid-frame') {
      const length = rand.range(1, Math.min(options.maxFrameSize, 100_000));
      bytes = Buffer.concat([bytes, header(length, rand.chance(0.2)), rand.bytes(rand.int(Math.min(length, 4096)))]);
    } else if (ending === 'abort-anywhere') bytes = bytes.subarray(0, rand.int(bytes.length + 1));

    report.sessions++;
    report.endings[ending]++;
    for (const p of planned) {
      report.frameKinds[p.kind]++;
      if (p.expect.kind === 'subscribe') report.subscriptions++;
    }
    report.framesSent += planned.length;
    report.bytesSent += bytes.length;

    const socket = net.connect({ host: '127.0.0.1', port: options.port, noDelay: true });
    const conn = new Connection(socket);
    const connected = await withLimit(
      Promise.race([once(socket, 'connect').then(() => true), conn.closed.then(() => false)]),
      limitMs,
    );
    if (connected !== true) {
      fail(`seed ${sessionSeed}: could not connect (${connected === 'timeout' ? 'timeout' : 'closed'})`);
      socket.destroy();
      return;
    }

    const work = (async () => {
      await writeAll(rand, socket, bytes);
      switch (ending) {
        case 'end':
        case 'raw':
          socket.end();
          await conn.closed;
          return true;
        case 'wait-destroy':
          await conn.waitFor(expectedResponses(planned));
          socket.destroy();
          return true;
        default:
          if (rand.chance(0.5)) await new Promise((r) => setImmediate(r));
          socket.destroy();
          return false;
      }
    })();
    const complete = await withLimit(work, limitMs);
    socket.destroy();
    await conn.closed;

    for (const r of conn.responses) report.responses[r.status] = (report.responses[r.status] ?? 0) + 1;
    const context = (): string =>
      `seed ${sessionSeed}, ending ${ending}, frames ${planned.map((p) => p.kind).join(',')}; ` +
      `responses ${conn.responses.map((r) => r.status).join(',')}; first bytes ${bytes.subarray(0, 48).toString('hex')}`;
    if (complete === 'timeout') {
      fail(`stalled for ${limitMs} ms: ${context()}`);
      return;
    }
    if (conn.decodeError !== undefined) fail(`${conn.decodeError}: ${context()}`);
    if (ending === 'raw') {
      let after413 = false;
      for (const r of conn.responses) {
        if (after413 || ![200, 400, 404, 413].includes(r.status)) fail(`raw bytes answered ${describeResponse(r)}: ${context()}`);
        if (r.status === 413) after413 = true;
      }
      return;
    }
    const problem = check(planned, conn.responses, complete);
    if (problem !== undefined) fail(`${problem}: ${context()}`);
    if (tooLarge && complete && conn.responses.at(-1)?.status === 413) report.closedAfter413++;
  }

  async function worker(index: number): Promise<void> {
    const rand = new Rand(options.seed + index * 7919);
    while (remaining > 0) {
      const sessionSeed = rand.int(2 ** 31);
      await session(new Rand(sessionSeed), sessionSeed);
      if (options.onProgress && report.framesSent >= nextProgress) {
        nextProgress += progressEvery;
        options.onProgress(report);
      }
    }
  }

  if (options.replay !== undefined) {
    for (const sessionSeed of options.replay) await session(new Rand(sessionSeed), sessionSeed);
  } else {
    await Promise.all(Array.from({ length: options.connections }, (_, i) => worker(i)));
  }
  return report;
}
