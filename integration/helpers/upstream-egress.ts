/**
 * An in-process egress router for tests: the real EgressComponent on port 0 with its own metrics
 * registry and an in-memory span exporter, plus small request and metric helpers.
 */
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { request } from 'undici';
import { EgressComponent } from '../../proxy/egress/egress.js';
import { validateConfig } from '../../services/runtime/config.js';
import { createLogger } from '../../services/runtime/logging.js';
import { createMetrics, type MeshMetrics } from '../../services/runtime/metrics.js';
import { startTelemetry, type Telemetry } from '../../services/runtime/telemetry.js';
import type { CleanupStack } from './wait.js';

export interface TestEgress {
  readonly egress: EgressComponent;
  readonly url: string;
  readonly metrics: MeshMetrics;
  readonly telemetry: Telemetry;
  /** Sends a request through the router with the given Host. */
  call(
    host: string,
    path?: string,
    init?: { method?: string; headers?: Record<string, string>; body?: string },
  ): Promise<{
    status: number;
    headers: Record<string, string | string[] | undefined>;
    text: string;
    json: () => unknown;
  }>;
  /** Sum of a metric's values whose labels include `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Finished spans, after a flush. */
  spans(): Promise<ReadableSpan[]>;
}

export async function startTestEgress(
  cleanup: CleanupStack,
  egressSection: Record<string, unknown>,
  options: {
    upstreamUrl?: string;
    random?: () => number;
    now?: () => number;
    resolve?: (name: string) => Promise<string[]>;
    /** False: no tracer, as in a sidecar without an exporter. */
    tracing?: boolean;
  } = {},
): Promise<TestEgress> {
  const config = validateConfig({ egress: { port: 0, ...egressSection } });
  const metrics = createMetrics();
  const telemetry = startTelemetry({ serviceName: 'egress-test', inMemory: true, env: {} });
  const egress = new EgressComponent({
    config: config.egress,
    upstreamUrl: options.upstreamUrl,
    metrics,
    logger: createLogger({ level: 'silent' }),
    tracer: options.tracing === false ? undefined : telemetry.tracer,
    random: options.random,
    now: options.now,
    resolve: options.resolve,
  });
  cleanup.defer(() => telemetry.shutdown());
  cleanup.defer(() => egress.stop());
  await egress.start();
  const url = egress.url;
  return {
    egress,
    url,
    metrics,
    telemetry,
    async call(host, path = '/', init = {}) {
      const response = await request(`${url}${path}`, {
        method: (init.method ?? 'GET') as 'GET',
        headers: { host, ...init.headers },
        body: init.body,
      });
      const text = await response.body.text();
      return {
        status: response.statusCode,
        headers: response.headers,
        text,
        json: () => JSON.parse(text) as unknown,
      };
    },
    async metric(name, labels = {}) {
      const metric = metrics.registry.getSingleMetric(name);
      if (!metric) throw new Error(`no metric ${name}`);
      const { values } = await metric.get();
      return values
        .filter((value) =>
          Object.entries(labels).every(([key, wanted]) => String(value.labels[key]) === wanted),
        )
        .reduce((sum, value) => sum + value.value, 0);
    },
    async spans() {
      await telemetry.forceFlush();
      return telemetry.memoryExporter!.getFinishedSpans();
    },
  };
}
