/** `protokv cert`: writes a CA and a server and a client certificate for TLS and mutual TLS. */
import { parseArgs } from 'node:util';
import { generateCertificates, writeCertificates, DEFAULT_CLIENT_NAME, DEFAULT_DAYS, DEFAULT_HOSTS } from '../tls/certificates.js';

export const CERT_HELP = `usage: protokv cert --out DIR [--host NAME]... [--client-name NAME] [--days N] [--force]

Creates a private CA and a server and a client certificate signed by it:
  ca.pem ca-key.pem server.pem server-key.pem client.pem client-key.pem (keys are mode 0600)

  --out DIR            directory to write to (created if missing)
  --host NAME          a name or IP address the server certificate is valid for; repeat for more
                       (default: ${DEFAULT_HOSTS.join(', ')})
  --client-name NAME   common name of the client certificate (default ${DEFAULT_CLIENT_NAME})
  --days N             validity in days (default ${DEFAULT_DAYS})
  --force              replace existing files

Then:  protokv serve --tls-cert DIR/server.pem --tls-key DIR/server-key.pem --tls-client-ca DIR/ca.pem
       protokv hget t k --tls-ca DIR/ca.pem --tls-cert DIR/client.pem --tls-key DIR/client-key.pem
`;

export async function certCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        out: { type: 'string', short: 'o' },
        host: { type: 'string', multiple: true },
        'client-name': { type: 'string' },
        days: { type: 'string' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`protokv cert: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(CERT_HELP);
    return 0;
  }
  if (values.out === undefined) {
    process.stderr.write('protokv cert: --out DIR is required\n');
    return 2;
  }
  const days = values.days === undefined ? undefined : Number(values.days);
  if (days !== undefined && (!Number.isFinite(days) || days <= 0)) {
    process.stderr.write(`protokv cert: invalid --days "${values.days}": expected a positive number\n`);
    return 2;
  }
  try {
    const set = await generateCertificates({ hosts: values.host, clientName: values['client-name'], days });
    const written = await writeCertificates(values.out, set, { force: values.force });
    for (const file of written) process.stdout.write(`${file}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`protokv cert: ${(err as Error).message}\n`);
    return 1;
  }
}
