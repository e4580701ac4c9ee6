/**
 * TLS and mTLS to upstreams, with a CA, server and client certificates made by the openssl CLI
 * for this test only.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCertificate } from '../scripts/lib/pki.js';
import { startTestEgress } from './helpers/upstream-egress.js';
import { TestUpstream } from './helpers/upstream.js';
import { CleanupStack } from './helpers/wait.js';

interface Pki {
  readonly dir: string;
  readonly file: (name: string) => string;
}

/** A CA, a server certificate for `orders.internal` (no IP SAN) and a client certificate `mesh-sidecar`. */
async function makePki(): Promise<Pki> {
  const dir = mkdtempSync(join(tmpdir(), 'egress-tls-'));
  await createCa(dir, 'ca', '/CN=egress-test-ca');
  // A second CA nobody trusts, for the negative case.
  await createCa(dir, 'other', '/CN=other-ca');
  await issueCertificate(dir, {
    name: 'server',
    subject: '/CN=orders.internal',
    ca: 'ca',
    extensions: 'subjectAltName=DNS:orders.internal\nextendedKeyUsage=serverAuth\n',
  });
  await issueCertificate(dir, {
    name: 'client',
    subject: '/CN=mesh-sidecar',
    ca: 'ca',
    extensions: 'extendedKeyUsage=clientAuth\n',
  });
  return { dir, file: (name: string) => join(dir, name) };
}

describe('egress TLS to upstreams', function () {
  this.timeout(30_000);
  const cleanup = new CleanupStack();
  let pki: Pki;

  before(async () => {
    pki = await makePki();
  });
  after(() => rmSync(pki.dir, { recursive: true, force: true }));
  afterEach(() => cleanup.run());

  async function mtlsUpstream(): Promise<TestUpstream> {
    const upstream = await new TestUpstream({
      name: 'secure',
      tls: {
        key: readFileSync(pki.file('server.key')),
        cert: readFileSync(pki.file('server.crt')),
        ca: readFileSync(pki.file('ca.crt')), // requires a client certificate signed by the CA
      },
    }).start();
    cleanup.defer(() => upstream.stop());
    return upstream;
  }

  it('presents the client certificate to an upstream that requires one, with SNI and a custom CA', async () => {
    const upstream = await mtlsUpstream();
    const egress = await startTestEgress(cleanup, {
      services: {
        orders: {
          endpoints: [upstream.url],
          tls: {
            ca: pki.file('ca.crt'),
            cert: pki.file('client.crt'),
            key: pki.file('client.key'),
            serverName: 'orders.internal',
          },
        },
      },
    });
    const res = await egress.call('orders', '/secure');
    assert.equal(res.status, 200);
    assert.equal(upstream.requests[0].clientCertificate, 'mesh-sidecar');
    assert.equal(upstream.requests[0].serverName, 'orders.internal');
  });

  it('fails with 502 without a client certificate, and reaches nothing', async () => {
    const upstream = await mtlsUpstream();
    const egress = await startTestEgress(cleanup, {
      services: {
        orders: {
          endpoints: [upstream.url],
          retry: { attempts: 1 },
          tls: { ca: pki.file('ca.crt'), serverName: 'orders.internal' },
        },
      },
    });
    const res = await egress.call('orders', '/secure');
    assert.equal(res.status, 502);
    assert.equal(upstream.count(), 0);
  });

  it('refuses an upstream whose certificate does not chain to the configured CA, or names another host', async () => {
    const upstream = await mtlsUpstream();
    const untrusted = await startTestEgress(cleanup, {
      services: {
        orders: {
          endpoints: [upstream.url],
          retry: { attempts: 1 },
          tls: {
            ca: pki.file('other.crt'),
            cert: pki.file('client.crt'),
            key: pki.file('client.key'),
            serverName: 'orders.internal',
          },
        },
      },
    });
    assert.equal((await untrusted.call('orders')).status, 502);
    const wrongName = await startTestEgress(cleanup, {
      services: {
        orders: {
          endpoints: [upstream.url], // https://127.0.0.1:port, and the certificate has no IP SAN
          retry: { attempts: 1 },
          tls: { ca: pki.file('ca.crt'), cert: pki.file('client.crt'), key: pki.file('client.key') },
        },
      },
    });
    assert.equal((await wrongName.call('orders')).status, 502);
    assert.equal(
      await wrongName.metric('mesh_upstream_requests_total', {
        service: 'orders',
        result: 'connect-failure',
      }),
      1,
    );
    assert.equal(upstream.count(), 0);
  });
});
