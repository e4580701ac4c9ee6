import { context, propagation, trace, type Tracer } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  BatchSpanProcessor,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';

export interface TelemetryOptions {
  serviceName: string;
  /** Environment to read the standard `OTEL_*` variables from. */
  env?: NodeJS.ProcessEnv;
  /** Keep finished spans in memory so tests can assert on them. */
  inMemory?: boolean;
}

export interface Telemetry {
  readonly tracer: Tracer;
  /**
   * False when no span goes anywhere (no exporter, or the SDK disabled): the tracer is then a
   * no-op, and the proxy skips spans altogether, passing trace headers through unchanged.
   */
  readonly tracing: boolean;
  /** Present when `inMemory` was asked for. */
  readonly memoryExporter: InMemorySpanExporter | undefined;
  /** Pushes finished spans to the exporters; await it before asserting on spans. */
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Starts the OpenTelemetry SDK with W3C trace-context and baggage propagation. Spans are exported
 * over OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or its traces variant) is set, so a sidecar
 * without a collector never tries to reach one; `OTEL_SDK_DISABLED=true` turns tracing off.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  const env = options.env ?? process.env;
  const processors: SpanProcessor[] = [];
  const memoryExporter = options.inMemory ? new InMemorySpanExporter() : undefined;
  if (memoryExporter) processors.push(new SimpleSpanProcessor(memoryExporter));
  const otlpEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (otlpEndpoint) processors.push(new BatchSpanProcessor(new OTLPTraceExporter()));

  const disabled = env.OTEL_SDK_DISABLED?.toLowerCase() === 'true';
  const sdk = disabled
    ? undefined
    : new NodeSDK({
        serviceName: env.OTEL_SERVICE_NAME ?? options.serviceName,
        spanProcessors: processors,
        textMapPropagator: new CompositePropagator({
          propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
        }),
        instrumentations: [],
      });
  sdk?.start();

  let shutdownPromise: Promise<void> | undefined;
  return {
    tracer: trace.getTracer('mesh-sidecar'),
    tracing: sdk !== undefined && processors.length > 0,
    memoryExporter,
    async forceFlush() {
      await Promise.all(processors.map((p) => p.forceFlush()));
    },
    shutdown() {
      shutdownPromise ??= (async () => {
        await sdk?.shutdown();
        // Leave the globals clean so another SDK (the next test) can register.
        trace.disable();
        propagation.disable();
        context.disable();
      })();
      return shutdownPromise;
    },
  };
}
