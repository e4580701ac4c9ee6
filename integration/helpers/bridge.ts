import { pino } from 'pino';
import { BridgeComponent } from '../../bridge/bridge.js';
import { validateConfig } from '../../services/runtime/config.js';
import { createMetrics, type MeshMetrics } from '../../services/runtime/metrics.js';
import { startTelemetry, type Telemetry } from '../../services/runtime/telemetry.js';
import { getKafkaBootstrap } from './kafka.js';
import { waitFor, type CleanupStack } from './wait.js';

export interface TestBridge {
  readonly bridge: BridgeComponent;
  readonly url: string;
  readonly telemetry: Telemetry;
  readonly metrics: MeshMetrics;
}

/**
 * An in-process BridgeComponent on port 0 against a real broker (the shared test broker unless
 * `brokers` says otherwise), with in-memory spans and a fresh metrics registry; waits until its
 * producer is connected and registers its stop on `cleanup`.
 */
export async function startTestBridge(
  cleanup: CleanupStack,
  options: { bridge?: Record<string, unknown>; brokers?: string[]; baseDir?: string } = {},
): Promise<TestBridge> {
  const telemetry = startTelemetry({ serviceName: 'bridge-test', inMemory: true, env: {} });
  cleanup.defer(() => telemetry.shutdown());
  const metrics = createMetrics();
  const config = validateConfig({
    kafka: { bootstrap: options.brokers ?? (await getKafkaBootstrap()) },
    bridge: { enabled: true, port: 0, ...options.bridge },
  });
  const bridge = new BridgeComponent({
    bridge: config.bridge,
    kafka: config.kafka,
    baseDir: options.baseDir ?? process.cwd(),
    version: '0.0.0-test',
    metrics,
    logger: pino({ level: 'silent' }),
    tracer: telemetry.tracer,
  });
  await bridge.start();
  cleanup.defer(() => bridge.stop());
  await waitFor(() => bridge.readiness().ready, { timeoutMs: 20_000, what: 'bridge producer connected' });
  return { bridge, url: bridge.url, telemetry, metrics };
}
