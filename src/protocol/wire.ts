/**
 * Protobuf encoding and decoding of the two top-level messages, with decode failures turned
 * into the protocol's 400 error.
 */
import { CommandRequest, CommandResponse } from './generated/abi.js';
import { errors } from '../errors.js';
import { decodeCommandRequest, Utf8Error } from './decoder.js';

/**
 * Decodes a request payload; throws a `MALFORMED_FRAME` (400) error when it is not valid protobuf.
 *
 * With `maxKeys`, a request naming more keys, pairs or values than that is refused with
 * `TOO_MANY_KEYS` before it is decoded: a few bytes per key would otherwise let one small
 * compressed frame make the server build millions of strings while every other client waits.
 */
export function decodeRequest(payload: Uint8Array, maxKeys = Infinity): CommandRequest {
  const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return decodeRequestAt(buf, 0, buf.length, maxKeys);
}

/** `decodeRequest` of the payload at bytes `[start, end)` of `buf`, without a view of it. */
export function decodeRequestAt(buf: Buffer, start: number, end: number, maxKeys = Infinity): CommandRequest {
  // Every repeated entry takes at least two bytes, so only large payloads can exceed the limit.
  if (end - start > 2 * maxKeys) {
    const count = countRepeatedEntries(buf.subarray(start, end));
    if (count > maxKeys) throw errors.tooManyKeys(count, maxKeys);
  }
  try {
    return decodeCommandRequest(buf, start, end);
  } catch (err) {
    if (err instanceof Utf8Error) throw errors.invalidUtf8(err.field);
    throw errors.malformedFrame(`payload is not a valid CommandRequest (${(err as Error).message})`, err);
  }
}

/** Decodes a response payload; throws a `MALFORMED_FRAME` error when it is not valid protobuf. */
export function decodeResponse(payload: Uint8Array): CommandResponse {
  try {
    return CommandResponse.decode(payload);
  } catch (err) {
    throw errors.malformedFrame(`payload is not a valid CommandResponse (${(err as Error).message})`, err);
  }
}

export function encodeRequest(request: CommandRequest): Uint8Array {
  return CommandRequest.encode(request).finish();
}

export function encodeResponse(response: CommandResponse): Uint8Array {
  return CommandResponse.encode(response).finish();
}

/**
 * Counts the entries of field 2 — the repeated keys, pairs or values of every multi-key command
 * and of PUBLISH — in the command sub-message, walking tags and lengths without decoding
 * anything. Malformed input stops the count; the decoder then reports it properly.
 */
export function countRepeatedEntries(payload: Uint8Array): number {
  let count = 0;
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (pos >= payload.length || shift > 49) return -1;
      const b = payload[pos++];
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
      shift += 7;
    }
  };
  while (pos < payload.length) {
    const tag = varint();
    if (tag < 0 || (tag & 7) !== 2) return count;
    const len = varint();
    if (len < 0 || pos + len > payload.length) return count;
    // A command sub-message: count its field-2 (tag 0x12) entries.
    const end = pos + len;
    while (pos < end) {
      const inner = varint();
      if (inner < 0) return count;
      switch (inner & 7) {
        case 0:
          if (varint() < 0) return count;
          break;
        case 1:
          pos += 8;
          break;
        case 2: {
          const n = varint();
          if (n < 0) return count;
          pos += n;
          break;
        }
        case 5:
          pos += 4;
          break;
        default:
          return count;
      }
      if (inner === 0x12) count++;
    }
    pos = end;
  }
  return count;
}
