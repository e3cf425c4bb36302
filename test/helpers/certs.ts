/**
 * A throw-away set of TLS files for tests that need a TLS or mutual-TLS server and client.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CERTIFICATE_FILES,
  generateCertificates,
  writeCertificates,
  type CertificateOptions,
  type CertificateSet,
} from '../../src/tls/certificates.js';

/** Paths of the written files. */
export interface TlsFixtureFiles {
  ca: string;
  caKey: string;
  server: string;
  serverKey: string;
  client: string;
  clientKey: string;
}

/** A fresh CA with server and client certificates, on disk and in memory. */
export interface TlsFixture {
  /** The temporary directory holding the files. */
  dir: string;
  files: TlsFixtureFiles;
  pems: CertificateSet;
  /** Removes the directory and everything in it. */
  cleanup(): Promise<void>;
}

/**
 * Generates certificates (server valid for localhost, 127.0.0.1 and ::1; client named
 * `protokv-client` unless `options` say otherwise) and writes them into a new temp directory.
 */
export async function makeTlsFixture(options: CertificateOptions = {}): Promise<TlsFixture> {
  const dir = await mkdtemp(path.join(tmpdir(), 'protokv-tls-'));
  try {
    const pems = await generateCertificates(options);
    await writeCertificates(dir, pems);
    const at = (name: string) => path.join(dir, name);
    return {
      dir,
      files: {
        ca: at(CERTIFICATE_FILES.caCert),
        caKey: at(CERTIFICATE_FILES.caKey),
        server: at(CERTIFICATE_FILES.serverCert),
        serverKey: at(CERTIFICATE_FILES.serverKey),
        client: at(CERTIFICATE_FILES.clientCert),
        clientKey: at(CERTIFICATE_FILES.clientKey),
      },
      pems,
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
