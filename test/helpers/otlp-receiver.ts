/**
 * A real OTLP/HTTP trace receiver for tests: an HTTP server that accepts `POST /v1/traces` in
 * either encoding (JSON, or protobuf read by a small decoder of the OTLP trace schema) and keeps
 * the spans, normalized to one shape so tests check both encodings alike.
 */
import http from 'node:http';
import { once } from 'node:events';
import { gunzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';

/** A span as received, whatever the encoding. */
export interface ReceivedSpan {
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client… */
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, string | number | boolean>;
  links: { traceId: string; spanId: string }[];
  status: { code: number; message: string };
  resource: Record<string, string | number | boolean>;
  scope: string;
}

export interface OtlpReceiver {
  /** Base URL, e.g. `http://127.0.0.1:PORT`. */
  url: string;
  spans: ReceivedSpan[];
  /** Content types of the requests received. */
  contentTypes: string[];
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const contentTypes: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      const type = String(req.headers['content-type'] ?? '');
      contentTypes.push(type);
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.statusCode = 404;
        res.end();
        return;
      }
      try {
        if (type.startsWith('application/json')) {
          spans.push(...fromJson(JSON.parse(body.toString('utf8')) as JsonRequest));
          res.setHeader('Content-Type', 'application/json');
          res.end('{}');
        } else {
          spans.push(...fromProtobuf(body));
          res.setHeader('Content-Type', 'application/x-protobuf');
          res.end();
        }
      } catch (err) {
        res.statusCode = 400;
        res.end(String(err));
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    contentTypes,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// --- OTLP/JSON ---

interface JsonValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
}
interface JsonKeyValue {
  key: string;
  value: JsonValue;
}
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: JsonKeyValue[];
  links?: { traceId: string; spanId: string }[];
  status?: { code?: number; message?: string };
}
interface JsonRequest {
  resourceSpans: { resource?: { attributes?: JsonKeyValue[] }; scopeSpans: { scope?: { name?: string }; spans: JsonSpan[] }[] }[];
}

function jsonAttributes(list: JsonKeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    if (value.stringValue !== undefined) out[key] = value.stringValue;
    else if (value.boolValue !== undefined) out[key] = value.boolValue;
    else if (value.intValue !== undefined) out[key] = Number(value.intValue);
    else if (value.doubleValue !== undefined) out[key] = value.doubleValue;
  }
  return out;
}

function fromJson(request: JsonRequest): ReceivedSpan[] {
  return request.resourceSpans.flatMap((rs) =>
    rs.scopeSpans.flatMap((ss) =>
      ss.spans.map((s) => ({
        name: s.name,
        kind: s.kind,
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId ?? '',
        startNs: BigInt(s.startTimeUnixNano),
        endNs: BigInt(s.endTimeUnixNano),
        attributes: jsonAttributes(s.attributes),
        links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
        status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
        resource: jsonAttributes(rs.resource?.attributes),
        scope: ss.scope?.name ?? '',
      })),
    ),
  );
}

// --- OTLP/protobuf: a reader of the wire format and the field numbers of the trace schema ---

type Field = string | bigint | number | Buffer | Decoded;
interface Decoded {
  [field: number]: Field[];
}

/** Decodes one message into its fields by number; sub-messages stay as bytes until read as such. */
function fields(bytes: Buffer): Decoded {
  const out: Decoded = {};
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = bytes[pos++];
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < bytes.length) {
    const key = Number(varint());
    const field = key >>> 3;
    let value: Field;
    switch (key & 7) {
      case 0:
        value = varint();
        break;
      case 1:
        value = bytes.readBigUInt64LE(pos);
        pos += 8;
        break;
      case 2: {
        const length = Number(varint());
        value = bytes.subarray(pos, pos + length);
        pos += length;
        break;
      }
      case 5:
        value = bytes.readUInt32LE(pos);
        pos += 4;
        break;
      default:
        throw new Error(`unsupported wire type ${key & 7}`);
    }
    (out[field] ??= []).push(value);
  }
  return out;
}

const bytesOf = (d: Decoded, n: number): Buffer[] => (d[n] ?? []) as Buffer[];
const first = (d: Decoded, n: number): Buffer | undefined => bytesOf(d, n)[0];
const text = (d: Decoded, n: number): string => first(d, n)?.toString('utf8') ?? '';
const hex = (d: Decoded, n: number): string => first(d, n)?.toString('hex') ?? '';
const integer = (d: Decoded, n: number): bigint => (d[n]?.[0] as bigint | undefined) ?? 0n;

/** KeyValue { 1 key; 2 AnyValue { 1 string, 2 bool, 3 int, 4 double } } */
function protoAttributes(list: Buffer[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list.map(fields)) {
    const value = fields(first(kv, 2) ?? Buffer.alloc(0));
    const key = text(kv, 1);
    if (value[1]) out[key] = text(value, 1);
    else if (value[2]) out[key] = integer(value, 2) !== 0n;
    else if (value[3]) out[key] = Number(BigInt.asIntN(64, integer(value, 3)));
    else if (value[4]) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(integer(value, 4));
      out[key] = b.readDoubleLE(0);
    }
  }
  return out;
}

/**
 * ExportTraceServiceRequest { 1 ResourceSpans { 1 Resource { 1 attributes }, 2 ScopeSpans {
 * 1 scope { 1 name }, 2 Span { 1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 6 kind,
 * 7 start, 8 end (fixed64), 9 attributes, 13 Link { 1 trace_id, 2 span_id }, 15 Status {
 * 2 message, 3 code } } } } }
 */
function fromProtobuf(body: Buffer): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of bytesOf(fields(body), 1).map(fields)) {
    const resource = protoAttributes(bytesOf(fields(first(rs, 1) ?? Buffer.alloc(0)), 1));
    for (const ss of bytesOf(rs, 2).map(fields)) {
      const scope = text(fields(first(ss, 1) ?? Buffer.alloc(0)), 1);
      for (const s of bytesOf(ss, 2).map(fields)) {
        const status = fields(first(s, 15) ?? Buffer.alloc(0));
        spans.push({
          name: text(s, 5),
          kind: Number(integer(s, 6)),
          traceId: hex(s, 1),
          spanId: hex(s, 2),
          parentSpanId: hex(s, 4),
          startNs: integer(s, 7),
          endNs: integer(s, 8),
          attributes: protoAttributes(bytesOf(s, 9)),
          links: bytesOf(s, 13)
            .map(fields)
            .map((l) => ({ traceId: hex(l, 1), spanId: hex(l, 2) })),
          status: { code: Number(integer(status, 3)), message: text(status, 2) },
          resource,
          scope,
        });
      }
    }
  }
  return spans;
}
