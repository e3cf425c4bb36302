/** Errors the client library throws. */

/** The server answered with a non-2xx status. */
export class ProtokvError extends Error {
  /** HTTP-style status from the server (400, 404, 413, 500, 503). */
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = 'ProtokvError';
    this.status = status;
  }
}

/** The connection closed before an answer arrived. */
export class ConnectionClosedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConnectionClosedError';
  }
}

/** The server sent something that is not a valid protokv frame or response. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}
