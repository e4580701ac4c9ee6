/**
 * A throw-away CA, a broker certificate (for 127.0.0.1 and localhost) and a client certificate
 * for the Kafka TLS tests (scripts/lib/pki.ts makes them with the openssl CLI).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCa, issueCertificate } from '../lib/pki.js';

export interface TestCertificates {
  readonly dir: string;
  readonly caFile: string;
  /** PEM text of the CA certificate. */
  readonly ca: string;
  readonly brokerCertFile: string;
  readonly brokerKeyFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

/** Writes ca.crt, broker.crt/.key and client.crt/.key into `dir` (which must exist). */
export async function generateTestCertificates(dir: string): Promise<TestCertificates> {
  await createCa(dir, 'ca', '/CN=mesh-sidecar test CA');
  await issueCertificate(dir, {
    name: 'broker',
    subject: '/CN=localhost',
    ca: 'ca',
    extensions:
      'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n',
  });
  await issueCertificate(dir, {
    name: 'client',
    subject: '/CN=mesh-sidecar-test-client',
    ca: 'ca',
    extensions:
      'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
  });
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    ca: await readFile(join(dir, 'ca.crt'), 'utf8'),
    brokerCertFile: join(dir, 'broker.crt'),
    brokerKeyFile: join(dir, 'broker.key'),
    clientCertFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
  };
}
