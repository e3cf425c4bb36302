/**
 * Protobuf encoding and decoding of the two top-level messages, with decode failures turned
 * into the protocol's 400 error.
 */
import { CommandRequest, CommandResponse } from './generated/abi.js';
import { errors } from '../errors.js';

/** Decodes a request payload; throws a `MALFORMED_FRAME` (400) error when it is not valid protobuf. */
export function decodeRequest(payload: Uint8Array): CommandRequest {
  try {
    return CommandRequest.decode(payload);
  } catch (err) {
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
