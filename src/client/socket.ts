/** Opening one TCP or TLS connection to a protokv server, ready for frames. */
import net from 'node:net';
import tls from 'node:tls';

export interface SocketOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 9527. */
  port?: number;
  /** Use TLS: `true` for the system's CAs, or the CA, client certificate and name to verify. */
  tls?: boolean | { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer; servername?: string };
  /** Give up connecting after this long (ms). Default 10,000. */
  connectTimeoutMs?: number;
}

/** Connects (and completes the TLS handshake); Nagle is off, since requests are small and latency matters. */
export function openSocket(options: SocketOptions): Promise<net.Socket> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 9527;
  const timeout = options.connectTimeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    if (options.tls) {
      const t = options.tls === true ? {} : options.tls;
      const ip = net.isIP(host) !== 0;
      socket = tls.connect({
        host,
        port,
        ca: t.ca,
        cert: t.cert,
        key: t.key,
        minVersion: 'TLSv1.2',
        servername: t.servername ?? (ip ? undefined : host),
        // An IP address is not sent as SNI, but the certificate must still match it.
        ...(t.servername === undefined && ip ? { checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(host, cert) } : {}),
      });
      socket.once('secureConnect', ready);
    } else {
      socket = net.connect({ host, port });
      socket.once('connect', ready);
    }
    const timer = setTimeout(() => fail(new Error(`connecting to ${host}:${port} timed out after ${timeout} ms`)), timeout);
    socket.once('error', fail);
    function fail(err: Error): void {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    }
    function ready(): void {
      clearTimeout(timer);
      socket.off('error', fail);
      socket.setNoDelay(true);
      resolve(socket);
    }
  });
}
