/**
 * docs/metrics.md, generated from the metrics the sidecar really registers: `createMetrics()`
 * against a fresh registry, so the page can never name a metric the code does not have.
 */
import { Registry } from 'prom-client';
import { createMetrics } from '../../services/runtime/metrics.js';
import { code, GENERATED_NOTE, table } from './markdown.js';

export interface MetricInfo {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly labels: readonly string[];
  readonly buckets?: readonly number[] | undefined;
}

/** The `mesh_*` metrics of a fresh `createMetrics()`, sorted by name. */
export function registeredMeshMetrics(): MetricInfo[] {
  const registry = new Registry();
  createMetrics(registry);
  const metrics = registry.getMetricsAsArray() as unknown as {
    name: string;
    help: string;
    type: string;
    labelNames?: string[];
    buckets?: number[];
  }[];
  return metrics
    .filter((metric) => metric.name.startsWith('mesh_'))
    .map((metric) => ({
      name: metric.name,
      type: metric.type,
      help: metric.help,
      labels: [...(metric.labelNames ?? [])],
      ...(metric.type === 'histogram' && metric.buckets ? { buckets: [...metric.buckets] } : {}),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** The series names Prometheus exposes for a metric (histograms have `_bucket`, `_sum`, `_count`). */
export function seriesNames(metric: MetricInfo): string[] {
  return metric.type === 'histogram' || metric.type === 'summary'
    ? [`${metric.name}_bucket`, `${metric.name}_sum`, `${metric.name}_count`].filter(
        (name) => metric.type === 'histogram' || !name.endsWith('_bucket'),
      )
    : [metric.name];
}

export function renderMetricsDoc(metrics: readonly MetricInfo[] = registeredMeshMetrics()): string {
  const lines = [
    '# Metrics',
    '',
    GENERATED_NOTE('the metrics `createMetrics()` in `services/runtime/metrics.ts` registers'),
    '',
    'The admin listener serves them in the Prometheus text format at `GET /metrics` (port 15000 by default),',
    "next to prom-client's default `process_*` and `nodejs_*` metrics. The Helm chart's Grafana dashboard and",
    "alert rules use only these names; a test checks that each one they use is in a running sidecar's `/metrics`.",
    '',
    table(
      ['Metric', 'Type', 'Labels', 'Description'],
      metrics.map((metric) => [
        code(metric.name),
        metric.type,
        metric.labels.length ? metric.labels.map(code).join(', ') : '—',
        metric.help,
      ]),
    ),
    '',
  ];
  const histograms = metrics.filter((metric) => metric.buckets !== undefined);
  if (histograms.length > 0) {
    lines.push('## Histogram buckets', '', 'Upper bounds in seconds (each histogram also has `+Inf`).', '');
    lines.push(
      table(
        ['Histogram', 'Buckets'],
        histograms.map((metric) => [code(metric.name), metric.buckets!.join(', ')]),
      ),
      '',
    );
  }
  return `${lines.join('\n').trimEnd()}\n`;
}
