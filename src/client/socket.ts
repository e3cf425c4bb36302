/**
 * Opening one TCP or TLS connection to a protokv server, ready for frames, with errors that say
 * what went wrong and what to do about it.
 */
import net from 'node:net';
import tls from 'node:tls';
import { ConnectionClosedError } from './core/errors.js';

export interface SocketOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 9527. */
  port?: number;
  /**
   * Use TLS: `true` for the system's CAs, or any `tls.connect` options (`ca`, `cert`, `key`,
   * `pfx`, `passphrase`, `servername`, `ciphers`, `checkServerIdentity`, …), passed through.
   * protokv sets `minVersion: 'TLSv1.2'` unless you set it.
   */
  tls?: boolean | tls.ConnectionOptions;
  /** Give up connecting after this long (ms). Default 10,000. */
  connectTimeoutMs?: number;
  /** TCP keep-alive: `true` (default: first probe after 30 s idle), `false`, or the idle time in ms. */
  keepAlive?: boolean | number;
}

const DEFAULT_KEEPALIVE_MS = 30_000;
/** How long to wait for a TLS 1.3 session ticket (the server's acceptance of our certificate). */
const TICKET_WAIT_MS = 500;

/**
 * Connects (and completes the TLS handshake). Nagle is off, since requests are small and latency
 * matters; TCP keep-alive is on, so a peer that vanished is noticed on an idle connection too.
 * Rejects with a `ConnectionClosedError` carrying a hint; `signal` cancels.
 */
export function openSocket(options: SocketOptions, signal?: AbortSignal): Promise<net.Socket> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 9527;
  const address = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
  const timeout = options.connectTimeoutMs ?? 10_000;
  const keepAlive = options.keepAlive ?? true;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new ConnectionClosedError(`connecting to ${address} was cancelled`));
      return;
    }
    let socket: net.Socket;
    let stage = 'the TCP connection';
    let accepted = false;
    let ticketTimer: NodeJS.Timeout | undefined;
    let done = false;
    if (options.tls) {
      const t: tls.ConnectionOptions = options.tls === true ? {} : options.tls;
      const ip = net.isIP(host) !== 0;
      socket = tls.connect({
        minVersion: 'TLSv1.2',
        // An IP address is not sent as SNI, but the certificate must still match it.
        ...(t.servername === undefined && ip
          ? { checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(host, cert) }
          : {}),
        ...t,
        host,
        port,
        servername: t.servername ?? (ip ? undefined : host),
      });
      socket.once('connect', () => (stage = 'the TLS handshake'));
      socket.once('secureConnect', () => {
        if ((socket as tls.TLSSocket).getProtocol() !== 'TLSv1.3') return ready();
        // In TLS 1.3 the server checks our certificate after the handshake: a refusal comes as an
        // alert (or a close) just after it. A session ticket means the server accepted us, so wait
        // for one — briefly, for servers that send none — and report a refusal at connect time
        // rather than on the first request.
        stage = 'the server to accept the TLS handshake';
        accepted = true;
        // Not from inside the event: a write made while OpenSSL is still handling the ticket is lost.
        socket.once('session', () => setImmediate(ready));
        ticketTimer = setTimeout(ready, TICKET_WAIT_MS);
      });
    } else {
      socket = net.connect({ host, port });
      socket.once('connect', ready);
    }
    const timer = setTimeout(
      () => fail(new ConnectionClosedError(`connecting to ${address} timed out after ${timeout} ms waiting for ${stage}`)),
      timeout,
    );
    const onAbort = (): void => fail(new ConnectionClosedError(`no answer from ${address}: still waiting for ${stage}`));
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (err) => fail(socketError(address, err)));
    socket.once('close', () =>
      fail(
        new ConnectionClosedError(
          accepted
            ? `${address} closed the connection right after the TLS handshake: it refused the client certificate (not signed by the CA it trusts, --tls-client-ca) or requires one (--tls-cert, --tls-key)`
            : `${address} closed the connection during ${stage}`,
        ),
      ),
    );
    function cleanup(): void {
      clearTimeout(timer);
      clearTimeout(ticketTimer);
      signal?.removeEventListener('abort', onAbort);
    }
    function fail(err: Error): void {
      if (done) return;
      done = true;
      cleanup();
      socket.destroy();
      reject(err);
    }
    function ready(): void {
      if (done) return;
      done = true;
      cleanup();
      socket.removeAllListeners('error');
      socket.removeAllListeners('close');
      socket.removeAllListeners('session');
      socket.setNoDelay(true);
      if (keepAlive !== false) socket.setKeepAlive(true, keepAlive === true ? DEFAULT_KEEPALIVE_MS : keepAlive);
      resolve(socket);
    }
  });
}

/** What OpenSSL and the OS report, said so that the fix is obvious. */
const HINTS: Record<string, string> = {
  ECONNREFUSED: 'nothing is listening there: is the server running, on that address?',
  ENOTFOUND: 'the host name does not resolve',
  EHOSTUNREACH: 'the host is unreachable',
  ECONNRESET: 'the server reset the connection',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the server requires a client certificate (mutual TLS): give tls.cert and tls.key (--tls-cert, --tls-key)',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'the server refused the client certificate: it is not signed by the CA the server trusts (--tls-client-ca), or it has expired',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'the server refused the client certificate: it is not signed by the CA the server trusts (--tls-client-ca)',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'the server refused the client certificate: it has expired',
  ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR: 'the server could not verify the client certificate: does tls.key belong to tls.cert?',
  ERR_SSL_WRONG_VERSION_NUMBER: 'the server does not speak TLS on this port: drop the TLS options, or use the TLS port',
  ERR_SSL_PACKET_LENGTH_TOO_LONG: 'the server does not speak TLS on this port: drop the TLS options, or use the TLS port',
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: 'the server and client share no TLS version (protokv needs TLS 1.2 or later)',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed and not trusted: give its CA as tls.ca (--tls-ca)',
  SELF_SIGNED_CERT_IN_CHAIN: 'the server certificate is signed by a CA this client does not trust: give that CA as tls.ca (--tls-ca)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is signed by a CA this client does not trust: give that CA as tls.ca (--tls-ca)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the server certificate is signed by a CA this client does not trust: give that CA as tls.ca (--tls-ca)',
  CERT_HAS_EXPIRED: 'the server certificate has expired',
  CERT_NOT_YET_VALID: 'the server certificate is not valid yet (check the clocks)',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the server certificate is not valid for this host name: connect by a name it lists, or set tls.servername (--tls-servername)',
};

/** Turns a socket or TLS error into a `ConnectionClosedError` with a hint (the original is the `cause`). */
export function socketError(address: string, err: Error, extraHint?: string): ConnectionClosedError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  let hint = extraHint ?? HINTS[code];
  if (hint === undefined && /certificate|alert|ssl|tls/i.test(`${code} ${err.message}`)) hint = 'the TLS handshake failed';
  // OpenSSL's messages run over several lines of internals; its `reason` says it in a few words.
  const said = (err as { reason?: unknown }).reason;
  const message = typeof said === 'string' && said !== '' ? said : err.message.split('\n')[0];
  const detail = code !== '' && !message.includes(code) ? `${code}: ${message}` : message;
  return new ConnectionClosedError(hint === undefined ? `${address}: ${detail}` : `${address}: ${hint} (${detail})`, { cause: err });
}
