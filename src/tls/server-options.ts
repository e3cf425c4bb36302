/**
 * The TLS settings every protokv listener shares (the protokv port, the HTTP port, and the
 * listeners to come): TLS 1.2 or later, and with a client CA, mutual TLS.
 */
import type { TlsOptions } from 'node:tls';

/** Certificate material for a listener, as PEM. */
export interface TlsMaterial {
  /** Server certificate chain (PEM). */
  cert: string | Buffer;
  /** Server private key (PEM). */
  key: string | Buffer;
  /** When set, clients must present a certificate signed by this CA (mutual TLS). */
  clientCa?: string | Buffer;
}

/** A TLS handshake not finished by then is dropped (a peer that hangs up mid-handshake is not always noticed). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Options for `tls.createServer` / `https.createServer` serving `material`. */
export function serverTlsOptions(material: TlsMaterial): TlsOptions {
  const { cert, key, clientCa } = material;
  return {
    cert,
    key,
    minVersion: 'TLSv1.2',
    handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    ...(clientCa === undefined ? {} : { ca: clientCa, requestCert: true, rejectUnauthorized: true }),
  };
}
