/**
 * Helpers of the observability tests: the Grafana dashboard and alert rules the Helm chart ships,
 * the metric names they use, Debian's `prometheus` and `promtool`. Missing binaries are errors,
 * never skips: CI installs them (`.ci/run`), and a test that silently skipped would prove nothing.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { chartDir, findObject, renderChart } from '../scripts/helm/chart.js';
import { freePort } from '../scripts/lib/ports.js';
import { waitFor } from './helpers/wait.js';

export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';
export const PROMTOOL_BIN = process.env.PROMTOOL_BIN ?? '/usr/bin/promtool';

/** Throws (never skips) when a Debian binary the tests need is not installed. */
export function requireBinary(path: string, apt: string): void {
  if (!existsSync(path)) {
    throw new Error(`${path} is not installed: apt-get install -y ${apt} (.ci/run does this in CI)`);
  }
}

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}
export interface RuleGroup {
  readonly name: string;
  readonly rules: AlertRule[];
}

/** The alert rule groups of the chart's PrometheusRule, rendered with the given extra values. */
export async function renderedRuleGroups(setJson: Record<string, unknown> = {}): Promise<RuleGroup[]> {
  const objects = await renderChart({
    values: ['ci/minimal-values.yaml'],
    setJson: { 'prometheusRule.enabled': true, ...setJson },
  });
  return findObject<{ spec: { groups: RuleGroup[] } }>(objects, 'PrometheusRule').spec.groups;
}

/** The dashboard JSON the chart ships. */
export async function loadDashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(join(chartDir, 'dashboards/mesh-sidecar.json'), 'utf8')) as Dashboard;
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; query?: unknown; definition?: string }[] };
}
export interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: { expr: string; refId: string }[];
  panels?: Panel[];
}

/** Every PromQL expression of the dashboard: panel targets and template variable queries. */
export function dashboardExpressions(dashboard: Dashboard): string[] {
  const panels = dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
  const targets = panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr));
  const variables = dashboard.templating.list.flatMap((variable) =>
    typeof variable.definition === 'string' ? [variable.definition] : [],
  );
  return [...targets, ...variables];
}

/** Metric names (`mesh_*`, `process_*`, `nodejs_*`) an expression uses. */
export function metricNamesIn(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b((?:mesh|process|nodejs)_[a-zA-Z0-9_]+)\b/g)].map((m) => m[1]))];
}

/**
 * The series names a Prometheus text exposition offers: every sample's name, and for every declared
 * metric (`# TYPE`) its name plus `_bucket`/`_sum`/`_count` for histograms and summaries. A metric
 * declared without samples yet (a counter no one has counted) still counts: it is registered and
 * gets series as soon as something happens.
 */
export function exposedSeriesNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      names.add(type[1]);
      if (type[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(type[1] + s);
      if (type[2] === 'summary') for (const s of ['_sum', '_count']) names.add(type[1] + s);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (sample) names.add(sample[1]);
  }
  return names;
}

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function promtool(args: string[]): Promise<ExecResult> {
  requireBinary(PROMTOOL_BIN, 'prometheus');
  return new Promise((resolve, reject) => {
    execFile(PROMTOOL_BIN, args, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`${PROMTOOL_BIN}: ${err.message}`, { cause: err }));
        return;
      }
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

/** Writes `groups` as a Prometheus rules file and runs `promtool check rules` on it. */
export async function checkRules(groups: unknown): Promise<ExecResult> {
  const dir = await mkdtemp(join(tmpdir(), 'mesh-rules-'));
  try {
    const file = join(dir, 'rules.yaml');
    await writeFile(file, stringify({ groups }));
    return await promtool(['check', 'rules', file]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface PrometheusServer {
  readonly url: string;
  readonly logs: () => string;
  /** GET /api/v1/<path>; throws unless the answer is `status: success`. */
  api<T = unknown>(path: string, params?: Record<string, string>): Promise<T>;
  stop(): Promise<void>;
}

/**
 * Debian's prometheus on a free loopback port, with a temporary config and data directory,
 * scraping `targets` (host:port) at `/metrics` every second.
 */
export async function startPrometheus(targets: readonly string[]): Promise<PrometheusServer> {
  requireBinary(PROMETHEUS_BIN, 'prometheus');
  const dir = await mkdtemp(join(tmpdir(), 'mesh-prometheus-'));
  const port = await freePort();
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
    scrape_configs: [{ job_name: 'mesh-sidecar', metrics_path: '/metrics', static_configs: [{ targets }] }],
  };
  await writeFile(join(dir, 'prometheus.yml'), stringify(config));
  let output = '';
  const proc: ChildProcess = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`prometheus exited (${proc.exitCode})`);
        const res = await fetch(`${url}/-/ready`).catch(() => undefined);
        return res?.ok === true;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'prometheus /-/ready' },
    );
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}; prometheus output: ${output}`);
  }
  return {
    url,
    logs: () => output,
    async api<T>(path: string, params: Record<string, string> = {}): Promise<T> {
      const query = new URLSearchParams(params).toString();
      const res = await fetch(`${url}/api/v1/${path}${query ? `?${query}` : ''}`);
      const body = (await res.json()) as { status: string; data: T; error?: string };
      if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
      return body.data;
    },
    stop,
  };
}
