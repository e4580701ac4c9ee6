/**
 * Debian's Prometheus scraping a real sidecar process: the `mesh_*` series arrive through its HTTP
 * API; every metric the Helm chart's dashboard and alert rules use is in the sidecar's /metrics; and
 * every one of their expressions runs in that Prometheus (no panel or alert that can never show data).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startSidecarProcess, type SidecarProcess } from './helpers/sidecar-process.js';
import { CleanupStack, waitFor } from './helpers/wait.js';
import {
  dashboardExpressions,
  exposedSeriesNames,
  loadDashboard,
  metricNamesIn,
  renderedRuleGroups,
  startPrometheus,
  type PrometheusServer,
} from './prometheus-lib.js';
import { ensureHelm } from '../scripts/helm/chart.js';

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    );
  });
}

/** The sidecar's metrics as a scrape sees them. */
async function scrape(adminUrl: string): Promise<string> {
  const res = await fetch(`${adminUrl}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** Dashboard queries made runnable outside Grafana: its variables replaced by what they stand for. */
function asPlainPromQL(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$namespace', '.*')
    .replaceAll('$pod', '.*')
    .replace(/^label_values\(([^,]+)(?:, *\w+)?\)$/, '$1');
}

describe('Prometheus scraping a running sidecar', function () {
  this.timeout(120_000);
  const cleanup = new CleanupStack();
  let sidecar: SidecarProcess;
  let prometheus: PrometheusServer;
  let alertExpressions: string[];

  before(async function () {
    this.timeout(15 * 60_000);
    await ensureHelm();
    alertExpressions = (await renderedRuleGroups()).flatMap((group) => group.rules.map((rule) => rule.expr));

    const app = createServer((req, res) => {
      res.statusCode = req.url === '/fail' ? 500 : 200;
      res.end('ok');
    });
    const appUrl = await listen(app);
    cleanup.defer(() => new Promise((resolve) => app.close(resolve)));
    sidecar = await startSidecarProcess({
      admin: { host: '127.0.0.1', port: 0 },
      ingress: { host: '127.0.0.1', port: 0, target: appUrl },
      egress: {
        port: 0,
        services: { orders: { endpoints: [appUrl] } },
        routes: [{ prefix: '/orders', service: 'orders' }],
      },
      shutdown: { drainDelayMs: 0, timeoutMs: 2_000 },
    });
    cleanup.defer(() => sidecar.cleanup());
    // Traffic on both proxies, one failure included, so the request series exist.
    for (const path of ['/', '/fail']) await (await fetch(`${sidecar.urls.ingress}${path}`)).text();
    // (fetch cannot set Host, so the call takes the path route to the service.)
    assert.equal((await fetch(`${sidecar.urls.egress}/orders/1`)).status, 200);

    prometheus = await startPrometheus([new URL(sidecar.urls.admin).host]);
    cleanup.defer(() => prometheus.stop());
  });

  after(() => cleanup.run());

  it('Prometheus scrapes the admin /metrics and its HTTP API finds the mesh_* series', async () => {
    const up = await waitFor(
      async () => {
        const result = await prometheus.api<{ result: { value: [number, string] }[] }>('query', {
          query: 'up{job="mesh-sidecar"}',
        });
        return result.result[0]?.value[1] === '1' ? result : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: 'up{job="mesh-sidecar"} == 1' },
    );
    assert.equal(up.result.length, 1);

    const series = await waitFor(
      async () => {
        const found = await prometheus.api<Record<string, string>[]>('series', {
          'match[]': '{__name__=~"mesh_.+"}',
        });
        return found.some((s) => s.__name__ === 'mesh_http_server_requests_total' && s.listener === 'ingress')
          ? found
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: 'mesh_* series in Prometheus' },
    );
    const names = new Set(series.map((s) => s.__name__));
    for (const name of [
      'mesh_http_server_requests_total',
      'mesh_http_server_request_duration_seconds_bucket',
      'mesh_upstream_requests_total',
      'mesh_circuit_breaker_open',
      'mesh_ready',
      'mesh_readiness_check',
    ]) {
      assert.ok(names.has(name), `Prometheus has ${name}; it has ${[...names].sort().join(', ')}`);
    }
    const failures = await prometheus.api<{
      result: { metric: Record<string, string>; value: [number, string] }[];
    }>('query', { query: 'mesh_http_server_requests_total{listener="ingress", status="500"}' });
    assert.equal(failures.result.length, 1);
    assert.equal(failures.result[0].value[1], '1');
    const ready = await prometheus.api<{ result: { value: [number, string] }[] }>('query', {
      query: 'mesh_ready',
    });
    assert.equal(ready.result[0]?.value[1], '1', 'the sidecar is ready and mesh_ready says so');
  });

  it('every metric the dashboard and the alert rules use is in the sidecar /metrics', async () => {
    const exposed = exposedSeriesNames(await scrape(sidecar.urls.admin));
    const used = new Map<string, string>();
    for (const expr of dashboardExpressions(await loadDashboard()))
      for (const name of metricNamesIn(expr)) used.set(name, `dashboard: ${expr}`);
    for (const expr of alertExpressions)
      for (const name of metricNamesIn(expr)) used.set(name, `alert: ${expr}`);
    assert.ok(used.size >= 15, `the dashboard and alerts use ${used.size} metrics`);
    const missing = [...used]
      .filter(([name]) => !exposed.has(name))
      .map(([name, where]) => `${name} (${where})`);
    assert.deepEqual(missing, []);
    // The check itself can fail: a name that is not exposed is reported.
    assert.equal(exposed.has('mesh_no_such_metric_total'), false);
  });

  it('every dashboard query and alert expression runs in Prometheus', async () => {
    const failed: string[] = [];
    for (const expr of [...dashboardExpressions(await loadDashboard()), ...alertExpressions]) {
      try {
        await prometheus.api('query', { query: asPlainPromQL(expr) });
      } catch (err) {
        failed.push(`${expr}: ${(err as Error).message}`);
      }
    }
    assert.deepEqual(failed, []);
  });
});
