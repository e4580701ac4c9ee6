import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Writable } from 'node:stream';
import { Script } from 'node:vm';
import type { Component } from '../../runtime/component.js';
import { validateConfig } from '../../runtime/config.js';
import { createLogger } from '../../runtime/logging.js';
import { createMetrics } from '../../runtime/metrics.js';
import { RecentErrors } from '../../runtime/recent-errors.js';
import { startTelemetry } from '../../runtime/telemetry.js';
import { Sidecar } from '../sidecar.js';
import { formatStatusText } from './format-text.js';
import { STATUS_PAGE_HTML } from './page.js';
import { collectStatus, type SidecarStatus } from './snapshot.js';

/** An HTTP call with a Host header (fetch cannot set one). */
function call(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/x`, { headers: { host } }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end();
  });
}

const component = (name: string, status?: () => Record<string, string>): Component => ({
  name,
  start: () => Promise.resolve(),
  readiness: () => ({ ready: true }),
  drain: () => Promise.resolve(),
  stop: () => Promise.resolve(),
  ...(status ? { status } : {}),
});

describe('status page data', () => {
  describe('collectStatus()', () => {
    it('takes every component that reports a status, shows a failing one as an error, and sums up readiness', async () => {
      const status = await collectStatus({
        version: '9.9.9',
        startedAt: new Date('2026-01-01T00:00:00Z'),
        now: () => new Date('2026-01-01T00:01:30Z'),
        checks: () => [
          { name: 'lifecycle', ready: true },
          { name: 'ingress', ready: false, reason: 'app down' },
        ],
        components: () => [
          component('admin', () => ({ a: 'b' })),
          component('quiet'),
          component('broken', () => {
            throw new Error('boom');
          }),
        ],
        recentErrors: () => [{ time: 't', level: 'error', msg: 'm' }],
      });
      assert.equal(status.version, '9.9.9');
      assert.equal(status.uptimeSeconds, 90);
      assert.equal(status.ready, false);
      assert.deepEqual(status.checks[1], { name: 'ingress', ready: false, reason: 'app down' });
      assert.deepEqual(status.components, { admin: { a: 'b' }, broken: { statusError: 'boom' } });
      assert.equal(status.recentErrors.length, 1);
    });
  });

  describe('the admin listener of an in-process sidecar', () => {
    it('GET /status shows egress endpoints, ejections, breaker state, retry budget, listeners and recent errors', async () => {
      const recentErrors = new RecentErrors();
      const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
      const config = validateConfig({
        admin: { host: '127.0.0.1', port: 0 },
        ingress: { enabled: false },
        egress: {
          port: 0,
          services: {
            orders: {
              // Nothing listens on port 1 or 2 (privileged, unused): every attempt is a connect failure.
              endpoints: ['http://127.0.0.1:1', 'http://127.0.0.1:2'],
              retry: { attempts: 2, baseBackoffMs: 0, maxBackoffMs: 0 },
              circuitBreaker: { consecutiveFailures: 2, openMs: 60_000 },
              outlierDetection: { consecutiveFailures: 1, maxEjectedPercent: 50 },
            },
          },
        },
        shutdown: { drainDelayMs: 0, timeoutMs: 2_000 },
      });
      const sidecar = new Sidecar({
        config,
        env: {},
        logger: createLogger({ level: 'warn', destination: recentErrors.tee(sink) }),
        metrics: createMetrics(),
        telemetry: startTelemetry({ serviceName: 'status-test', env: { OTEL_SDK_DISABLED: 'true' } }),
        recentErrors,
      });
      await sidecar.start();
      try {
        const egress = sidecar.urlOf('egress')!;
        for (let i = 0; i < 3; i++) assert.ok((await call(egress, 'orders')) >= 500);

        const res = await fetch(`${sidecar.adminUrl}/status`);
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('cache-control'), 'no-store');
        const status = (await res.json()) as SidecarStatus;
        assert.equal(status.service, 'mesh-sidecar');
        assert.equal(status.ready, true);
        assert.deepEqual(
          status.checks.map((c) => c.name),
          ['lifecycle', 'egress'],
        );
        const components = status.components as Record<string, Record<string, unknown>>;
        assert.deepEqual(Object.keys(components), ['admin', 'egress']);
        const adminListener = components.admin.listener as Record<string, unknown>;
        assert.equal(adminListener.url, sidecar.adminUrl);
        assert.equal(adminListener.listening, true);
        const [orders] = components.egress.services as Record<string, unknown>[];
        assert.equal(orders.name, 'orders');
        assert.equal(orders.endpoints, 2);
        assert.equal(orders.ejected, 1, 'one endpoint ejected (50% of 2)');
        assert.equal((orders.breaker as { state: string }).state, 'open');
        const budget = orders.retryBudget as { retries: number; requests: number; allowed: number };
        assert.ok(budget.retries >= 1 && budget.requests >= 2 && budget.allowed >= budget.retries);
        assert.ok(
          status.recentErrors.some((e) => e.level === 'warn' && e.msg === 'egress call failed'),
          JSON.stringify(status.recentErrors),
        );

        const page = await fetch(`${sidecar.adminUrl}/`);
        assert.equal(page.status, 200);
        assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
        assert.equal(await page.text(), STATUS_PAGE_HTML);

        const metrics = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
        assert.match(metrics, /^mesh_ready 1$/m);
        assert.match(metrics, /^mesh_readiness_check\{check="egress"\} 1$/m);
      } finally {
        await sidecar.shutdown('test');
      }
    });
  });

  describe('the HTML page', () => {
    it('is self-contained: no external script, style, font or image', () => {
      assert.doesNotMatch(STATUS_PAGE_HTML, /<(script|link|img)[^>]+(src|href)="(https?:)?\/\//i);
      assert.doesNotMatch(STATUS_PAGE_HTML, /@import|url\(/i);
      assert.match(STATUS_PAGE_HTML, /<script>[\s\S]+fetch\('status'/);
      assert.match(STATUS_PAGE_HTML, /<style>[\s\S]+<\/style>/);
    });

    it('its script parses', () => {
      const script = /<script>([\s\S]+)<\/script>/.exec(STATUS_PAGE_HTML)![1];
      // Compiled, not run: a syntax error in the string would only show in a browser otherwise.
      assert.doesNotThrow(() => new Script(script));
    });
  });

  describe('formatStatusText()', () => {
    it('prints readiness, listeners, subscriptions with partitions, upstreams, pull consumers and errors', () => {
      const text = formatStatusText({
        service: 'mesh-sidecar',
        version: '1.2.3',
        pid: 42,
        startedAt: '2026-01-01T00:00:00.000Z',
        uptimeSeconds: 5,
        generatedAt: '2026-01-01T00:00:05.000Z',
        ready: false,
        checks: [
          { name: 'lifecycle', ready: true },
          { name: 'subscriptions', ready: false, reason: 'orders: not joined' },
        ],
        components: {
          admin: {
            listener: {
              name: 'admin',
              url: 'http://127.0.0.1:15000',
              listening: true,
              draining: false,
              connections: 1,
              inFlight: 1,
            },
          },
          subscriptions: {
            subscriptions: [
              {
                name: 'orders',
                group: 'g1',
                topics: ['t1'],
                topicPattern: null,
                lag: 7,
                joined: true,
                paused: true,
                crashed: null,
                lastDeliveryError: { at: '2026-01-01T00:00:04.000Z', error: 'app down: ECONNREFUSED' },
                partitions: [{ topic: 't1', partition: 0, lag: 7, paused: true }],
              },
            ],
          },
          egress: {
            services: [
              {
                name: 'billing',
                endpoints: 3,
                ejected: 1,
                breaker: { state: 'half-open' },
                retryBudget: { retries: 2, allowed: 100 },
                unhealthy: 2,
              },
              { name: 'ledger', endpoints: 1, ejected: 0, breaker: null, retryBudget: null, unhealthy: null },
            ],
          },
          processors: { running: 1 },
          bridge: {
            kafkaConnected: true,
            lastConnectError: null,
            pullConsumers: [
              {
                group: 'pg',
                name: 'c1',
                format: 'json',
                partitions: [{ topic: 't2', partition: 1 }],
                bufferedRecords: 3,
              },
            ],
          },
        },
        recentErrors: [
          { time: '2026-01-01T00:00:04.000Z', level: 'warn', msg: 'partition paused', source: 'orders' },
        ],
      });
      assert.match(text, /^mesh-sidecar 1\.2\.3 {2}pid 42 {2}up 5s {2}NOT READY\n/);
      assert.match(text, / {2}subscriptions +NOT READY +orders: not joined/);
      assert.match(text, / {2}admin +http:\/\/127\.0\.0\.1:15000 +listening/);
      assert.match(text, / {2}orders {2}group g1 {2}topics t1 {2}lag 7 {2}PAUSED/);
      assert.match(text, /last delivery error at 2026-01-01T00:00:04\.000Z: app down: ECONNREFUSED/);
      assert.match(text, / {4}t1\/0 +lag 7 +paused/);
      assert.match(
        text,
        / {2}billing +endpoints 3 +ejected 1 +breaker half-open +retry budget 2\/100 +unhealthy 2/,
      );
      assert.match(
        text,
        / {2}ledger +endpoints 1 +ejected 0 +breaker none +no retry budget +no health checks/,
      );
      assert.match(text, / {2}pg\/c1 +json +t2\/1 +buffered 3/);
      assert.match(text, /warn {3}\[orders\] partition paused/);
      assert.match(text, /\nprocessors\n {2}\{\n {4}"running": 1\n {2}\}\n/);
    });
  });
});
