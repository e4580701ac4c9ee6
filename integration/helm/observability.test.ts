/**
 * The Grafana dashboard and the alert rules the chart ships: rendered only when switched on, labelled
 * for Grafana's dashboard sidecar, thresholds from the values, and `promtool check rules` passes on
 * exactly what the PrometheusRule renders. (That each metric they use exists in a running sidecar's
 * /metrics is checked in integration/prometheus.test.ts.)
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chartDir, ensureHelm, findObject, renderChart, validateObject } from '../../scripts/helm/chart.js';
import {
  checkRules,
  dashboardExpressions,
  loadDashboard,
  metricNamesIn,
  renderedRuleGroups,
} from '../prometheus-lib.js';

const ALERTS = [
  'MeshSidecarConsumerLagGrowing',
  'MeshSidecarDeadLetters',
  'MeshSidecarCircuitBreakerOpen',
  'MeshSidecarHigh5xxRatio',
  'MeshSidecarNotReady',
  'MeshSidecarConfigReloadFailed',
];

describe('helm chart: Grafana dashboard and alert rules', function () {
  this.timeout(60_000);

  before(async function () {
    this.timeout(15 * 60_000);
    await ensureHelm();
  });

  it('renders neither by default', async () => {
    const objects = await renderChart({ values: ['ci/minimal-values.yaml'] });
    assert.deepEqual(
      objects.filter((o) => o.kind === 'PrometheusRule' || o.metadata.name.endsWith('-dashboard')),
      [],
    );
  });

  it('the dashboard ConfigMap carries grafana_dashboard: "1" and the dashboard file unchanged', async () => {
    const objects = await renderChart({
      values: ['ci/minimal-values.yaml'],
      setJson: { 'grafanaDashboard.enabled': true, 'grafanaDashboard.annotations': { grafana_folder: 'Mesh' } },
    });
    const configMap = findObject<{
      metadata: { name: string; labels: Record<string, string>; annotations?: Record<string, string> };
      data: Record<string, string>;
    }>(objects, 'ConfigMap', 'demo-mesh-sidecar-dashboard');
    assert.deepEqual(validateObject(configMap as never), []);
    assert.equal(configMap.metadata.labels.grafana_dashboard, '1');
    assert.equal(configMap.metadata.annotations?.grafana_folder, 'Mesh');
    const file = await readFile(join(chartDir, 'dashboards/mesh-sidecar.json'), 'utf8');
    assert.deepEqual(JSON.parse(configMap.data['mesh-sidecar.json']), JSON.parse(file));
  });

  it('the dashboard is well formed: unique panel ids, a templated Prometheus data source, PromQL in every target', async () => {
    const dashboard = await loadDashboard();
    assert.equal(dashboard.uid, 'mesh-sidecar');
    const ids = dashboard.panels.map((panel) => panel.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
      assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, panel.title);
      assert.ok((panel.targets ?? []).length > 0, `${panel.title} has a query`);
      for (const target of panel.targets ?? []) {
        assert.ok(metricNamesIn(target.expr).length > 0, `${panel.title}: ${target.expr} uses a metric`);
      }
    }
    assert.ok(dashboard.templating.list.some((v) => v.name === 'datasource'));
    const used = new Set(dashboardExpressions(dashboard).flatMap(metricNamesIn));
    for (const name of ['mesh_consumer_lag', 'mesh_circuit_breaker_open', 'mesh_ready']) {
      assert.ok(used.has(name), `the dashboard shows ${name}`);
    }
  });

  it('the PrometheusRule has the six alerts, thresholds and durations from the values, and extra labels', async () => {
    const groups = await renderedRuleGroups({
      'prometheusRule.thresholds': { consumerLag: 42, deadLettersPerMinute: 3, errorRatio: 0.2 },
      'prometheusRule.for': { notReady: '7m' },
      'prometheusRule.alertLabels': { team: 'orders' },
      'prometheusRule.labels': { release: 'kube-prometheus-stack' },
    });
    const rules = groups.flatMap((group) => group.rules);
    assert.deepEqual(
      rules.map((rule) => rule.alert),
      ALERTS,
    );
    const byName = new Map(rules.map((rule) => [rule.alert, rule]));
    assert.match(byName.get('MeshSidecarConsumerLagGrowing')!.expr, /> 42\b/);
    assert.match(byName.get('MeshSidecarDeadLetters')!.expr, /\* 60 > 3\b/);
    assert.match(byName.get('MeshSidecarHigh5xxRatio')!.expr, /> 0\.2\b/);
    assert.equal(byName.get('MeshSidecarNotReady')!.for, '7m');
    for (const rule of rules) {
      assert.equal(rule.labels?.team, 'orders', rule.alert);
      assert.match(rule.labels?.severity ?? '', /^(warning|critical)$/, rule.alert);
      assert.ok(rule.annotations?.summary, `${rule.alert} has a summary`);
    }
  });

  it('promtool check rules passes on the rendered rules (and fails on a broken one)', async () => {
    const groups = await renderedRuleGroups();
    const check = await checkRules(groups);
    assert.equal(check.code, 0, `promtool: ${check.stdout}${check.stderr}`);
    assert.match(check.stdout, /SUCCESS: 6 rules found/);

    const broken = await checkRules([{ name: 'broken', rules: [{ alert: 'Broken', expr: 'sum by (x (mesh_ready)' }] }]);
    assert.notEqual(broken.code, 0, 'promtool refuses an invalid expression');
  });
});
