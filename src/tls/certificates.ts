/**
 * Creates the certificates protokv needs for TLS and mutual TLS: a private CA, a server
 * certificate it signs (for the addresses clients dial) and a client certificate it signs (for
 * servers that demand one). Everything is ECDSA P-256 with SHA-256 and written as PEM, private
 * keys as PKCS#8.
 */
import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { chmod, mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type * as X509 from '@peculiar/x509';

/** A CA and the server and client certificates it issued, each as PEM text. */
export interface CertificateSet {
  /** The CA certificate: servers trust client certificates, and clients trust servers, through it. */
  caCert: string;
  /** The CA's private key (PKCS#8), needed only to issue more certificates. */
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** What to put in the certificates. Every field has a default suited to a server on this machine. */
export interface CertificateOptions {
  /**
   * Names and addresses the server certificate is valid for: host names become DNS names, IP
   * literals (IPv6 with or without brackets) become IP addresses. Default: `localhost`,
   * `127.0.0.1`, `::1`.
   */
  hosts?: string[];
  /** The client certificate's common name, which a server sees as the client's identity. Default `protokv-client`. */
  clientName?: string;
  /** How long the certificates are valid, counted from `notBefore`. Default 365. Ignored when `notAfter` is given. */
  days?: number;
  /** Start of validity. Default: a few minutes ago, so that peers whose clocks lag slightly accept it. */
  notBefore?: Date;
  /** End of validity; may lie in the past, which makes expired certificates. */
  notAfter?: Date;
  /**
   * Issue the server and client certificates from this existing CA instead of creating a new
   * one; the returned set then carries this CA unchanged.
   */
  ca?: { cert: string; key: string };
}

/** Options for {@link writeCertificates}. */
export interface WriteCertificatesOptions {
  /** Replace files that already exist. Without it nothing is written when any of them exists. */
  force?: boolean;
}

/** The file each part of a {@link CertificateSet} is written to by {@link writeCertificates}. */
export const CERTIFICATE_FILES = {
  caCert: 'ca.pem',
  caKey: 'ca-key.pem',
  serverCert: 'server.pem',
  serverKey: 'server-key.pem',
  clientCert: 'client.pem',
  clientKey: 'client-key.pem',
} as const satisfies Record<keyof CertificateSet, string>;

/** Default names and addresses of the server certificate. */
export const DEFAULT_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '::1'];
/** Default common name of the client certificate. */
export const DEFAULT_CLIENT_NAME = 'protokv-client';
/** Default validity in days. */
export const DEFAULT_DAYS = 365;

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const CLOCK_SKEW_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
const PRIVATE_KEY_FILES = new Set<keyof CertificateSet>(['caKey', 'serverKey', 'clientKey']);

/**
 * Creates a CA (or uses `options.ca`) and a server and a client certificate signed by it.
 * Each call without `options.ca` makes a new, independent CA.
 */
export async function generateCertificates(options: CertificateOptions = {}): Promise<CertificateSet> {
  const x509 = await loadX509();
  const { notBefore, notAfter } = validity(options);
  const sans = subjectAltNames(options.hosts ?? [...DEFAULT_HOSTS]);
  const clientName = options.clientName ?? DEFAULT_CLIENT_NAME;
  if (clientName.trim() === '' || /[,=+<>#;"\\]/.test(clientName)) {
    throw new Error(`invalid client name ${JSON.stringify(clientName)}: expected a non-empty name without , = + < > # ; " \\`);
  }

  const ca = options.ca ? await importCa(x509, options.ca) : await createCa(x509, notBefore, notAfter);

  const server = await issue(x509, ca, {
    subject: `CN=${sans[0]?.value ?? 'protokv-server'}`,
    notBefore,
    notAfter,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(sans),
    ],
  });
  const client = await issue(x509, ca, {
    subject: `CN=${clientName}`,
    notBefore,
    notAfter,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ],
  });

  return {
    caCert: ca.certPem,
    caKey: ca.keyPem,
    serverCert: server.certPem,
    serverKey: server.keyPem,
    clientCert: client.certPem,
    clientKey: client.keyPem,
  };
}

/**
 * Writes a certificate set into `dir` (created if missing) under the names in
 * {@link CERTIFICATE_FILES}; private keys are readable by their owner only (mode 0600).
 * Refuses, before writing anything, when any of the files exists, unless `force` is set.
 * Returns the paths written.
 */
export async function writeCertificates(
  dir: string,
  set: CertificateSet,
  options: WriteCertificatesOptions = {},
): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const entries = (Object.keys(CERTIFICATE_FILES) as (keyof CertificateSet)[]).map((part) => ({
    part,
    file: path.join(dir, CERTIFICATE_FILES[part]),
  }));

  if (!options.force) {
    const existing: string[] = [];
    for (const { file } of entries) {
      if (await exists(file)) existing.push(file);
    }
    if (existing.length > 0) {
      throw new Error(`refusing to overwrite existing ${existing.join(', ')}; use force to replace them`);
    }
  }

  const written: string[] = [];
  for (const { part, file } of entries) {
    const secret = PRIVATE_KEY_FILES.has(part);
    const mode = secret ? 0o600 : 0o644;
    // 'wx' closes the gap between the check above and the write: a file that appeared since is not clobbered.
    await writeFile(file, set[part], { mode, flag: options.force ? 'w' : 'wx' });
    // The mode given to writeFile applies only to new files; a replaced key must not keep looser permissions.
    if (secret) await chmod(file, 0o600);
    written.push(file);
  }
  return written;
}

type X509Module = typeof X509;

interface Issuer {
  cert: X509.X509Certificate;
  keys: CryptoKeyPair;
  certPem: string;
  keyPem: string;
}

type CryptoKeyPair = webcrypto.CryptoKeyPair;

let x509Loaded: Promise<X509Module> | undefined;

/**
 * Loads @peculiar/x509 once, lazily, so commands that never touch certificates do not pay for it.
 * It resolves algorithms through tsyringe, which needs the Reflect metadata polyfill loaded first.
 */
function loadX509(): Promise<X509Module> {
  x509Loaded ??= (async () => {
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto);
    return x509;
  })();
  return x509Loaded;
}

function validity(options: CertificateOptions): { notBefore: Date; notAfter: Date } {
  const days = options.days ?? DEFAULT_DAYS;
  if (!Number.isFinite(days) || days <= 0) {
    throw new Error(`invalid validity of ${days} days: expected a positive number`);
  }
  const notBefore = options.notBefore ?? new Date(Date.now() - CLOCK_SKEW_MS);
  const notAfter = options.notAfter ?? new Date(notBefore.getTime() + days * DAY_MS);
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) {
    throw new Error('invalid validity: notBefore and notAfter must be valid dates');
  }
  if (notAfter.getTime() <= notBefore.getTime()) {
    throw new Error(`invalid validity: notAfter ${notAfter.toISOString()} is not after notBefore ${notBefore.toISOString()}`);
  }
  return { notBefore, notAfter };
}

const DNS_LABEL = /^(?:\*|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)$/i;

function subjectAltNames(hosts: string[]): X509.JsonGeneralName[] {
  if (hosts.length === 0) throw new Error('the server certificate needs at least one host name or address');
  const names: X509.JsonGeneralName[] = [];
  for (const raw of hosts) {
    const host = raw.trim();
    const unbracketed = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    if (isIP(unbracketed) !== 0) {
      names.push({ type: 'ip', value: unbracketed });
      continue;
    }
    const labels = host.replace(/\.$/, '').split('.');
    if (host.length === 0 || host.length > 253 || !labels.every((l) => DNS_LABEL.test(l)) || labels.slice(1).includes('*')) {
      throw new Error(`invalid host ${JSON.stringify(raw)}: expected a DNS name or an IP address`);
    }
    names.push({ type: 'dns', value: host.toLowerCase() });
  }
  return names;
}

async function createCa(x509: X509Module, notBefore: Date, notAfter: Date): Promise<Issuer> {
  const keys = await generateKeys();
  // A random suffix keeps CAs made on different runs apart in trust stores and error messages.
  const name = `CN=protokv CA ${randomBytes(4).toString('hex')}`;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys, certPem: certificatePem(cert), keyPem: await privateKeyPem(keys.privateKey) };
}

async function importCa(x509: X509Module, ca: { cert: string; key: string }): Promise<Issuer> {
  let nodeCert: X509Certificate;
  let nodeKey: ReturnType<typeof createPrivateKey>;
  try {
    nodeCert = new X509Certificate(ca.cert);
    nodeKey = createPrivateKey(ca.key);
  } catch (err) {
    throw new Error(`invalid CA: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (!nodeCert.ca) throw new Error(`invalid CA: ${nodeCert.subject} is not a CA certificate`);
  if (!nodeCert.checkPrivateKey(nodeKey)) throw new Error('invalid CA: the key does not belong to the certificate');
  if (nodeKey.asymmetricKeyType !== 'ec' || nodeKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error('invalid CA: expected an ECDSA P-256 key');
  }
  const subtle = webcrypto.subtle;
  const pkcs8 = nodeKey.export({ type: 'pkcs8', format: 'der' });
  const privateKey = await subtle.importKey('pkcs8', pkcs8, KEY_ALGORITHM, true, ['sign']);
  const spki = nodeCert.publicKey.export({ type: 'spki', format: 'der' });
  const publicKey = await subtle.importKey('spki', spki, KEY_ALGORITHM, true, ['verify']);
  return { cert: new x509.X509Certificate(ca.cert), keys: { privateKey, publicKey }, certPem: ca.cert, keyPem: ca.key };
}

async function issue(
  x509: X509Module,
  ca: Issuer,
  leaf: { subject: string; notBefore: Date; notAfter: Date; extensions: X509.Extension[] },
): Promise<{ certPem: string; keyPem: string }> {
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: leaf.subject,
    issuer: ca.cert.subject,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      ...leaf.extensions,
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });
  return { certPem: certificatePem(cert), keyPem: await privateKeyPem(keys.privateKey) };
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
}

/**
 * A random 128-bit serial: RFC 5280 wants serials unique per CA, positive and at most 20 bytes.
 * The first byte is kept in 0x01..0x7f so the DER integer is neither negative nor re-padded.
 */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function certificatePem(cert: X509.X509Certificate): string {
  return `${cert.toString('pem').trim()}\n`;
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
