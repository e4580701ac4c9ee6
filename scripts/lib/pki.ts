/**
 * Throw-away certificate authorities and certificates for TLS tests, made with the openssl CLI.
 * Keys are unencrypted PKCS#8 PEM (EC P-256), which Node and Kafka's PEM keystores both read.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const { stderr } = err as { stderr?: string };
    throw new Error(`openssl ${args[0]} failed: ${stderr ?? (err as Error).message}`);
  }
}

function generateKey(dir: string, name: string): Promise<void> {
  return openssl(
    ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`],
    dir,
  );
}

/** Writes `<name>.crt` and `<name>.key` into `dir`: a self-signed CA valid for two days. */
export async function createCa(dir: string, name: string, subject: string): Promise<void> {
  await generateKey(dir, name);
  await openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      `${name}.key`,
      '-subj',
      subject,
      '-days',
      '2',
      '-sha256',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
}

/**
 * Writes `<name>.crt` and `<name>.key` into `dir`, signed by the CA `<ca>.crt` / `<ca>.key` there;
 * `extensions` are openssl extension lines (subjectAltName, extendedKeyUsage, ...).
 */
export async function issueCertificate(
  dir: string,
  options: { name: string; subject: string; ca: string; extensions: string },
): Promise<void> {
  const { name, subject, ca, extensions } = options;
  await generateKey(dir, name);
  await openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`], dir);
  await writeFile(join(dir, `${name}.ext`), extensions);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
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
