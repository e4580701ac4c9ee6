/**
 * `mesh-sidecar status`: the status document (`GET /status`) as plain text for a terminal, the
 * same sections as the HTML page. Reads the document loosely: a sidecar of another version may
 * send more or fewer fields.
 */
import type { SidecarStatus } from './snapshot.js';

type Loose = Record<string, unknown>;

const list = (value: unknown): Loose[] => (Array.isArray(value) ? (value as Loose[]) : []);
const text = (value: unknown): string =>
  value === null || value === undefined ? '-' : typeof value === 'string' ? value : JSON.stringify(value);

/** Left-aligned columns, two spaces apart. */
export function columns(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd(),
  );
}

export function formatStatusText(status: SidecarStatus): string {
  const out: string[] = [];
  const components = status.components as Record<string, Loose>;
  out.push(
    `mesh-sidecar ${status.version}  pid ${status.pid}  up ${status.uptimeSeconds}s  ${status.ready ? 'READY' : 'NOT READY'}`,
  );

  out.push('', 'Readiness');
  out.push(
    ...columns(
      status.checks.map((check) => [
        `  ${check.name}`,
        check.ready ? 'ready' : 'NOT READY',
        check.ready ? '' : (check.reason ?? ''),
      ]),
    ),
  );

  const listeners = Object.values(components)
    .map((component) => component.listener as Loose | undefined)
    .filter((listener): listener is Loose => listener !== undefined);
  out.push('', 'Listeners');
  out.push(
    ...columns([
      ['  name', 'address', 'state', 'connections', 'in flight'],
      ...listeners.map((l) => [
        `  ${text(l.name)}`,
        text(l.url),
        l.draining ? 'draining' : l.listening ? 'listening' : 'closed',
        text(l.connections),
        text(l.inFlight),
      ]),
    ]),
  );

  const subscriptions = list(components.subscriptions?.subscriptions);
  out.push('', 'Push subscriptions');
  if (subscriptions.length === 0) out.push('  none');
  for (const sub of subscriptions) {
    const state = !sub.joined ? 'NOT JOINED' : sub.paused ? 'PAUSED' : 'running';
    const topics = list(sub.topics).length
      ? (sub.topics as string[]).join(',')
      : `/${text(sub.topicPattern)}/`;
    out.push(
      `  ${text(sub.name)}  group ${text(sub.group)}  topics ${topics}  lag ${text(sub.lag)}  ${state}`,
    );
    if (sub.crashed) out.push(`    consumer crashed: ${text(sub.crashed)}`);
    const error = sub.lastDeliveryError as Loose | null | undefined;
    if (error) out.push(`    last delivery error at ${text(error.at)}: ${text(error.error)}`);
    out.push(
      ...columns(
        list(sub.partitions).map((p) => [
          `    ${text(p.topic)}/${text(p.partition)}`,
          `lag ${text(p.lag)}`,
          p.paused === null ? '-' : p.paused ? 'paused' : 'running',
        ]),
      ),
    );
  }

  const services = list(components.egress?.services);
  out.push('', 'Upstream services');
  if (services.length === 0) out.push('  none');
  out.push(
    ...columns(
      services.map((service) => {
        const breaker = service.breaker as Loose | null;
        const budget = service.retryBudget as Loose | null;
        return [
          `  ${text(service.name)}`,
          `endpoints ${text(service.endpoints)}`,
          `ejected ${text(service.ejected)}`,
          `breaker ${breaker ? text(breaker.state) : 'none'}`,
          budget ? `retry budget ${text(budget.retries)}/${text(budget.allowed)}` : 'no retry budget',
          service.unhealthy === null || service.unhealthy === undefined
            ? 'no health checks'
            : `unhealthy ${text(service.unhealthy)}`,
        ];
      }),
    ),
  );

  const bridge = components.bridge;
  out.push('', 'Bridge pull consumers');
  if (!bridge) out.push('  bridge off');
  else {
    out.push(
      `  Kafka ${bridge.kafkaConnected ? 'connected' : `NOT CONNECTED ${text(bridge.lastConnectError)}`}`,
    );
    const consumers = list(bridge.pullConsumers);
    if (consumers.length === 0) out.push('  no consumer instance');
    out.push(
      ...columns(
        consumers.map((c) => [
          `  ${text(c.group)}/${text(c.name)}`,
          text(c.format),
          list(c.partitions)
            .map((p) => `${text(p.topic)}/${text(p.partition)}`)
            .join(',') || '-',
          `buffered ${text(c.bufferedRecords)}`,
        ]),
      ),
    );
  }

  const known = new Set(['admin', 'ingress', 'egress', 'bridge', 'subscriptions']);
  for (const [name, component] of Object.entries(components)) {
    if (known.has(name)) continue;
    const rest = Object.fromEntries(Object.entries(component).filter(([key]) => key !== 'listener'));
    out.push(
      '',
      name,
      ...JSON.stringify(rest, null, 2)
        .split('\n')
        .map((line) => `  ${line}`),
    );
  }

  out.push('', 'Recent warnings and errors');
  if (status.recentErrors.length === 0) out.push('  none');
  for (const entry of status.recentErrors.slice(0, 20)) {
    out.push(
      `  ${entry.time}  ${entry.level.padEnd(5)}  ${entry.source ? `[${entry.source}] ` : ''}${entry.msg}${entry.error ? `: ${entry.error}` : ''}`,
    );
  }
  return `${out.join('\n')}\n`;
}
