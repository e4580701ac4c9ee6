/**
 * Zero-config mode (contract section 1), mirroring the reference sidecar of ../shared/seeds: 4
 * attempts on connect failure, reset or a 2 s per-try timeout, full-jitter backoff 120 ms doubling
 * up to 1 s, HTTP statuses relayed, 502 after the last failure, x-forwarded-for added.
 */
import assert from 'node:assert/strict';
import { SpanKind } from '@opentelemetry/api';
import { request } from 'undici';
import { loadConfig, validateConfig, zeroConfigMode } from '../services/runtime/config.js';
import { createLogger } from '../services/runtime/logging.js';
import { createMetrics } from '../services/runtime/metrics.js';
import { startTelemetry } from '../services/runtime/telemetry.js';
import { Sidecar } from '../services/sidecar/sidecar.js';
import { startTestEgress } from './helpers/upstream-egress.js';
import { fail, hang, ok, reset, TestUpstream } from './helpers/upstream.js';
import { CleanupStack } from './helpers/wait.js';

/** Jitter pinned to its maximum, so the backoffs are exactly 120, 240, 480 ms. */
const maxJitter = () => 0.999_999_9;

describe('egress zero-config mode (UPSTREAM_URL)', function () {
  this.timeout(30_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  async function upstream(): Promise<TestUpstream> {
    const started = await new TestUpstream({ name: 'reference' }).start();
    cleanup.defer(() => started.stop());
    return started;
  }

  it('succeeds on the fourth attempt when the first three are reset, backing off 120, 240, 480 ms', async () => {
    const up = await upstream();
    up.script(reset, reset, reset, ok());
    const egress = await startTestEgress(cleanup, {}, { upstreamUrl: up.url, random: maxJitter });
    const res = await egress.call('127.0.0.1', '/hello?name=x');
    assert.equal(res.status, 200);
    assert.equal(up.count(), 4);
    assert.equal(await egress.metric('mesh_upstream_retries_total', { service: 'upstream' }), 3);
    const clients = (await egress.spans()).filter((s) => s.kind === SpanKind.CLIENT);
    assert.deepEqual(
      clients.map((s) => s.attributes['mesh.retry.backoff_ms']),
      [0, 120, 240, 480],
    );
  });

  it('answers 502 after four failed attempts, with 3 retries counted', async () => {
    const up = await upstream();
    up.setBehaviour(reset);
    const egress = await startTestEgress(cleanup, {}, { upstreamUrl: up.url, random: () => 0 });
    const res = await egress.call('127.0.0.1', '/hello');
    assert.equal(res.status, 502);
    assert.equal(res.headers['x-mesh-error'], 'upstream-reset');
    assert.equal(up.count(), 4);
    assert.equal(await egress.metric('mesh_upstream_retries_total', { service: 'upstream' }), 3);
  });

  it('answers 502 when the upstream refuses connections, after 4 attempts', async () => {
    const up = await upstream();
    await up.stop();
    const egress = await startTestEgress(cleanup, {}, { upstreamUrl: up.url, random: () => 0 });
    const res = await egress.call('127.0.0.1', '/hello', { method: 'POST', body: 'x' });
    assert.equal(res.status, 502);
    assert.equal(
      await egress.metric('mesh_upstream_requests_total', { service: 'upstream', result: 'connect-failure' }),
      4,
    );
  });

  it('relays HTTP error statuses without retrying them', async () => {
    const up = await upstream();
    up.setBehaviour(fail(503));
    const egress = await startTestEgress(cleanup, {}, { upstreamUrl: up.url });
    const res = await egress.call('127.0.0.1', '/hello');
    assert.equal(res.status, 503);
    assert.equal((res.json() as { upstream: string }).upstream, 'reference');
    assert.equal(up.count(), 1);
    assert.equal(await egress.metric('mesh_upstream_retries_total', { service: 'upstream' }), 0);
  });

  it('retries an attempt that times out after 2 s, and adds x-forwarded-for', async () => {
    const up = await upstream();
    up.script(hang, ok());
    const egress = await startTestEgress(cleanup, {}, { upstreamUrl: up.url, random: () => 0 });
    const res = await egress.call('127.0.0.1', '/hello');
    assert.equal(res.status, 200);
    assert.equal(up.count(), 2);
    assert.equal(up.requests[1].headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(
      await egress.metric('mesh_upstream_requests_total', { service: 'upstream', result: 'timeout' }),
      1,
    );
  });

  it('runs admin and egress, and no ingress, when there is no config file', async () => {
    const up = await upstream();
    up.setBehaviour(reset);
    const env = { UPSTREAM_URL: up.url };
    // The config main.ts builds without a file; only the ports are moved to 0 for the test.
    const zero = zeroConfigMode(await loadConfig({ env }), up.url);
    assert.equal(zero.ingress.enabled, false);
    assert.equal(zero.egress.host, '127.0.0.1');
    assert.equal(zero.egress.port, 15001);
    const config = validateConfig({
      ...zero,
      admin: { ...zero.admin, host: '127.0.0.1', port: 0 },
      egress: { ...zero.egress, port: 0 },
      shutdown: { drainDelayMs: 0, timeoutMs: 5_000 },
    });
    const telemetry = startTelemetry({ serviceName: 'zero', inMemory: true, env: {} });
    const sidecar = new Sidecar({
      config,
      env,
      logger: createLogger({ level: 'silent' }),
      metrics: createMetrics(),
      telemetry,
    });
    cleanup.defer(() => sidecar.shutdown('test'));
    await sidecar.start();
    const urls = sidecar.listenerUrls();
    assert.deepEqual(Object.keys(urls).sort(), ['admin', 'egress']);

    const res = await request(`${urls.egress}/anything`);
    assert.equal(res.statusCode, 502);
    await res.body.dump();
    const metrics = await (await request(`${urls.admin}/metrics`)).body.text();
    assert.match(metrics, /^mesh_upstream_retries_total\{service="upstream"\} 3$/m);
  });

  it('refuses a malformed UPSTREAM_URL as a config problem', async () => {
    const config = await loadConfig({ env: {} });
    assert.throws(() => zeroConfigMode(config, 'not a url'), /UPSTREAM_URL must be an http/);
    assert.throws(() => zeroConfigMode(config, 'ftp://x'), /UPSTREAM_URL must be an http/);
  });
});
