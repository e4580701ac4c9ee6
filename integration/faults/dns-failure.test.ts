/**
 * DNS failure under a real sidecar process. The process's system resolver (`dns.promises.lookup`,
 * which DNS discovery uses) is replaced by a preload that answers the test's names from a JSON file
 * read on every lookup, so the test turns answers into SERVFAIL, timeout or ENOTFOUND while it runs:
 * the last known endpoints stay in use, and a service whose name never resolved answers 503
 * no-healthy-upstream naming the service and the DNS error.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { TestUpstream } from '../helpers/upstream.js';
import { CleanupStack, waitFor } from '../helpers/wait.js';

/** Plain ESM (loaded before tsx): the fake resolver. `ETIMEOUT` fails after 1 s, as a timeout does. */
const PRELOAD = `
import dns from 'node:dns';
import { readFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const file = process.env.MESH_TEST_DNS_FILE;
const system = dns.promises.lookup.bind(dns.promises);
dns.promises.lookup = async (name, options) => {
  const entry = JSON.parse(readFileSync(file, 'utf8'))[name];
  if (entry === undefined) return system(name, options);
  if (entry.error) {
    if (entry.error === 'ETIMEOUT') await new Promise((resolve) => setTimeout(resolve, 1000));
    throw Object.assign(new Error('getaddrinfo ' + entry.error + ' ' + name), { code: entry.error, hostname: name });
  }
  const all = entry.addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  return options && options.all ? all : all[0];
};
syncBuiltinESMExports();
`;

type Answer = { addresses: string[] } | { error: string };

describe('fault: DNS failure', function () {
  this.timeout(60_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  it('keeps the last known endpoints when the resolver fails; a never-resolved service answers 503 naming the error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mesh-fake-dns-'));
    cleanup.defer(() => rm(dir, { recursive: true, force: true }));
    const preload = join(dir, 'fake-dns.mjs');
    const answers = join(dir, 'answers.json');
    await writeFile(preload, PRELOAD);
    const setAnswers = (table: Record<string, Answer>) => writeFile(answers, JSON.stringify(table));
    await setAnswers({
      'orders.faults.test': { addresses: ['127.0.0.1'] },
      'ghost.faults.test': { error: 'ENOTFOUND' },
    });

    const upstream = await new TestUpstream({ name: 'orders-pod' }).start();
    cleanup.defer(() => upstream.stop());
    const dns = (name: string) => ({ name, port: upstream.port, intervalMs: 100 });
    const sidecar: SidecarProcess = await startSidecarProcess(
      {
        admin: { host: '127.0.0.1', port: 0 },
        ingress: { enabled: false },
        bridge: { enabled: false },
        egress: {
          port: 0,
          services: {
            orders: { dns: dns('orders.faults.test'), retry: { attempts: 1 } },
            ghost: { dns: dns('ghost.faults.test'), retry: { attempts: 1 } },
          },
        },
      },
      {
        startTimeoutMs: 30_000,
        env: {
          MESH_TEST_DNS_FILE: answers,
          NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${preload}`.trim(),
        },
      },
    );
    cleanup.defer(() => sidecar.cleanup());
    const call = async (host: string) => {
      const res = await request(`${sidecar.urls.egress}/items`, { headers: { host } });
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
    };

    const accounting: Record<string, { sent: number; ok: number; failed: number }> = {};
    const burst = async (phase: string, count = 10) => {
      const tally = (accounting[phase] = { sent: 0, ok: 0, failed: 0 });
      for (let i = 0; i < count; i += 1) {
        tally.sent += 1;
        const res = await call('orders');
        if (res.status === 200) tally.ok += 1;
        else tally.failed += 1;
      }
      assert.deepEqual(tally, { sent: count, ok: count, failed: 0 }, `${phase}: every call succeeds`);
    };

    await burst('resolving');
    for (const error of ['ESERVFAIL', 'ETIMEOUT', 'ENOTFOUND']) {
      const seen = sidecar.logs.length;
      await setAnswers({
        'orders.faults.test': { error },
        'ghost.faults.test': { error: 'ENOTFOUND' },
      });
      // Two failed lookups of the name since the change: the resolver is failing for sure now.
      await waitFor(
        () =>
          sidecar.logs
            .slice(seen)
            .filter(
              (line) =>
                line.msg === 'DNS lookup failed; keeping the last endpoints' &&
                line.service === 'orders' &&
                String(line.err).includes(error),
            ).length >= 2,
        { timeoutMs: 10_000, what: `two ${error} lookups` },
      );
      await burst(error);
    }

    const ghost = await call('ghost');
    assert.equal(ghost.status, 503);
    assert.equal(ghost.headers['x-mesh-error'], 'no-healthy-upstream');
    assert.ok(ghost.headers['retry-after']);
    const problem = JSON.parse(ghost.text) as { code: string; detail: string };
    assert.equal(problem.code, 'MESH_NO_HEALTHY_UPSTREAM');
    assert.match(problem.detail, /ghost/);
    assert.match(problem.detail, /ghost\.faults\.test/);
    assert.match(problem.detail, /ENOTFOUND/);

    const health = await request(`${sidecar.urls.admin}/healthz`);
    assert.equal(health.statusCode, 200);
    await health.body.dump();
    assert.equal(upstream.count(), 40);
    const failedLookups = sidecar.logs.filter(
      (line) => line.msg === 'DNS lookup failed; keeping the last endpoints' && line.service === 'orders',
    ).length;
    console.log(
      `      dns-failure: ${Object.entries(accounting)
        .map(([phase, t]) => `${phase} sent=${t.sent} ok=${t.ok} failed=${t.failed}`)
        .join('; ')}; orders failed lookups=${failedLookups}; upstream got=${upstream.count()}; ` +
        `ghost -> ${ghost.status} "${problem.detail}"`,
    );
  });
});
