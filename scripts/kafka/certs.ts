/**
 * A throw-away CA, a broker certificate (for 127.0.0.1 and localhost) and a client certificate,
 * made with the openssl CLI for TLS tests. Keys are unencrypted PKCS#8 PEM, which both Node and
 * Kafka's PEM keystores (`ssl.keystore.type=PEM`) read.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

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

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const { stderr } = err as { stderr?: string };
    throw new Error(`openssl ${args[0]} failed: ${stderr ?? (err as Error).message}`);
  }
}

async function keyAndCsr(dir: string, name: string, subject: string): Promise<void> {
  await openssl(
    ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`],
    dir,
  );
  await openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`], dir);
}

async function sign(dir: string, name: string, extensions: string): Promise<void> {
  await writeFile(join(dir, `${name}.ext`), extensions);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-sha256',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
}

/** Writes ca.crt, broker.crt/.key and client.crt/.key into `dir` (which must exist). */
export async function generateTestCertificates(dir: string): Promise<TestCertificates> {
  await openssl(
    ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ca.key'],
    dir,
  );
  await openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-subj',
      '/CN=mesh-sidecar test CA',
      '-days',
      '2',
      '-sha256',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-out',
      'ca.crt',
    ],
    dir,
  );
  await keyAndCsr(dir, 'broker', '/CN=localhost');
  await sign(
    dir,
    'broker',
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n',
  );
  await keyAndCsr(dir, 'client', '/CN=mesh-sidecar-test-client');
  await sign(
    dir,
    'client',
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
  );
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
