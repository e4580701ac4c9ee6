import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from './hot-metrics.js';

/**
 * The metrics every part of the sidecar shares. The registry is created by the caller (one per
 * sidecar, one per test) so that nothing lands in prom-client's global registry.
 */
export interface MeshMetrics {
  readonly registry: Registry;
  /** Counted once per request on every listener: plain-number series (see hot-metrics.ts). */
  readonly httpServerRequests: HotCounter<'listener' | 'method' | 'route' | 'status'>;
  readonly httpServerDuration: HotHistogram<'listener' | 'method' | 'route' | 'status'>;
  /** gRPC calls by the status their caller got (a gRPC error is an HTTP 200 in the two above). */
  readonly grpcServerHandled: HotCounter<'listener' | 'route' | 'grpc_code'>;
  readonly configReloads: Counter<'result'>;
  /** 1 when every readiness check passes (what `/readyz` says), else 0; set on each scrape. */
  readonly ready: Gauge;
  /** Each readiness check: 1 ready, 0 not; set on each scrape. */
  readonly readinessCheck: Gauge<'check'>;
  /** Ingress: requests the sidecar answered itself, by route template and reason (`validation`, `unauthorized`, ...). */
  readonly ingressRejections: Counter<'route' | 'reason'>;
  readonly ingressResponseValidationFailures: Counter<'route' | 'method' | 'status'>;
  /** Ingress: requests copied to a route's shadow upstream, by route prefix and result (`sent`, `failed`, `skipped`). */
  readonly ingressMirroredRequests: Counter<'prefix' | 'result'>;
  /** Ingress: faults injected (non-production), by route prefix and kind (`delay`, `abort`). */
  readonly ingressInjectedFaults: Counter<'prefix' | 'kind'>;
  readonly bridgeProducedRecords: Counter<'topic' | 'result'>;
  readonly bridgeProducedBytes: Counter<'topic'>;
  readonly bridgeProduceDuration: Histogram<'topic'>;
  /** Records handed out by pull consumer polls (`GET /consumers/.../records`), by group. */
  readonly bridgeConsumedRecords: Counter<'group'>;
  /** Egress: attempts sent to upstreams; `result` is the status class (`2xx`...) or `connect-failure|reset|timeout`. */
  /** Counted once per egress attempt: plain-number series (see hot-metrics.ts). */
  readonly upstreamRequests: HotCounter<'service' | 'result'>;
  readonly upstreamRetries: Counter<'service'>;
  readonly upstreamRetryBudgetExhausted: Counter<'service'>;
  readonly circuitBreakerOpen: Gauge<'service'>;
  readonly outlierEjections: Counter<'service'>;
  /** Active health checks of egress endpoints, by service and result (`passed`, `failed`). */
  readonly upstreamHealthChecks: Counter<'service' | 'result'>;
  /** Egress endpoints out of load balancing because their health checks fail, by service. */
  readonly upstreamUnhealthyEndpoints: Gauge<'service'>;
  /** Push subscriptions: final outcomes and retries, `result` = success|retry|dead_letter|dropped. */
  readonly subscriptionDeliveries: Counter<'subscription' | 'result'>;
  readonly subscriptionDeliveryDuration: Histogram<'subscription'>;
  readonly subscriptionDeadLetters: Counter<'subscription' | 'topic'>;
  readonly subscriptionPausedPartitions: Gauge<'subscription'>;
  readonly consumerLag: Gauge<'group' | 'topic' | 'partition'>;
  /** Stream processors: input records whose outputs and offset were committed (final). */
  readonly processorProcessedRecords: Counter<'processor' | 'result'>;
  readonly processorProducedRecords: Counter<'processor' | 'topic'>;
  readonly processorDeadLetters: Counter<'processor' | 'topic'>;
  readonly processorAbortedTransactions: Counter<'processor'>;
}

export function createMetrics(registry: Registry = new Registry()): MeshMetrics {
  collectDefaultMetrics({ register: registry });
  const serverLabels = ['listener', 'method', 'route', 'status'] as const;
  return {
    registry,
    httpServerRequests: new HotCounter({
      name: 'mesh_http_server_requests_total',
      help: 'Requests answered by the sidecar, by listener, method, route and status.',
      labelNames: serverLabels,
      registers: [registry],
    }),
    grpcServerHandled: new HotCounter({
      name: 'mesh_grpc_server_handled_total',
      help: 'gRPC calls answered by the sidecar, by listener, route and the gRPC status the caller got (OK, UNAVAILABLE, ...; CANCELLED when the call ended without one).',
      labelNames: ['listener', 'route', 'grpc_code'],
      registers: [registry],
    }),
    httpServerDuration: new HotHistogram({
      name: 'mesh_http_server_request_duration_seconds',
      help: 'Time from request start to the end of the response, by listener, method, route and status.',
      labelNames: serverLabels,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    bridgeProducedRecords: new Counter({
      name: 'mesh_bridge_produced_records_total',
      help: 'Records of REST produce requests, by topic and result (success|failed|rejected).',
      labelNames: ['topic', 'result'],
      registers: [registry],
    }),
    bridgeProducedBytes: new Counter({
      name: 'mesh_bridge_produced_bytes_total',
      help: 'Key, value and header bytes of records Kafka acknowledged, by topic.',
      labelNames: ['topic'],
      registers: [registry],
    }),
    bridgeProduceDuration: new Histogram({
      name: 'mesh_bridge_produce_duration_seconds',
      help: 'Time from a produce request being accepted to all its records being acknowledged or failed, by topic.',
      labelNames: ['topic'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    bridgeConsumedRecords: new Counter({
      name: 'mesh_bridge_consumed_records_total',
      help: 'Records handed out to pull consumer polls, by consumer group.',
      labelNames: ['group'],
      registers: [registry],
    }),
    ingressRejections: new Counter({
      name: 'mesh_ingress_rejected_requests_total',
      help: 'Ingress requests refused before reaching the app, by route template and reason.',
      labelNames: ['route', 'reason'],
      registers: [registry],
    }),
    ingressMirroredRequests: new Counter({
      name: 'mesh_ingress_mirrored_requests_total',
      help: 'Ingress requests copied to a shadow upstream, by route prefix and result (sent|failed|skipped).',
      labelNames: ['prefix', 'result'],
      registers: [registry],
    }),
    ingressInjectedFaults: new Counter({
      name: 'mesh_ingress_injected_faults_total',
      help: 'Faults injected on ingress routes (non-production), by route prefix and kind (delay|abort).',
      labelNames: ['prefix', 'kind'],
      registers: [registry],
    }),
    ingressResponseValidationFailures: new Counter({
      name: 'mesh_ingress_response_validation_failures_total',
      help: 'App responses that do not match the OpenAPI document, by route template, method and status.',
      labelNames: ['route', 'method', 'status'],
      registers: [registry],
    }),
    configReloads: new Counter({
      name: 'mesh_config_reloads_total',
      help: 'Config reloads on SIGHUP, by result (success|failure).',
      labelNames: ['result'],
      registers: [registry],
    }),
    ready: new Gauge({
      name: 'mesh_ready',
      help: '1 when the sidecar is ready (every readiness check of /readyz passes), else 0.',
      registers: [registry],
    }),
    readinessCheck: new Gauge({
      name: 'mesh_readiness_check',
      help: 'Readiness of each check of /readyz (lifecycle, ingress, bridge, subscriptions, ...): 1 ready, 0 not.',
      labelNames: ['check'],
      registers: [registry],
    }),
    upstreamRequests: new HotCounter({
      name: 'mesh_upstream_requests_total',
      help: 'Egress attempts sent to upstream endpoints, by service and result (status class, or connect-failure|reset|timeout).',
      labelNames: ['service', 'result'],
      registers: [registry],
    }),
    upstreamRetries: new Counter({
      name: 'mesh_upstream_retries_total',
      help: 'Egress retries (attempts after the first), by service.',
      labelNames: ['service'],
      registers: [registry],
    }),
    upstreamRetryBudgetExhausted: new Counter({
      name: 'mesh_upstream_retry_budget_exhausted_total',
      help: 'Egress retries not made because the retry budget was spent, by service.',
      labelNames: ['service'],
      registers: [registry],
    }),
    circuitBreakerOpen: new Gauge({
      name: 'mesh_circuit_breaker_open',
      help: '1 while the egress circuit breaker of a service is open or half-open, else 0.',
      labelNames: ['service'],
      registers: [registry],
    }),
    upstreamHealthChecks: new Counter({
      name: 'mesh_upstream_health_checks_total',
      help: 'Active health checks of egress endpoints, by service and result (passed|failed).',
      labelNames: ['service', 'result'],
      registers: [registry],
    }),
    upstreamUnhealthyEndpoints: new Gauge({
      name: 'mesh_upstream_unhealthy_endpoints',
      help: 'Egress endpoints out of load balancing because their active health checks fail, by service.',
      labelNames: ['service'],
      registers: [registry],
    }),
    outlierEjections: new Counter({
      name: 'mesh_outlier_ejections_total',
      help: 'Egress endpoints ejected by outlier detection, by service.',
      labelNames: ['service'],
      registers: [registry],
    }),
    subscriptionDeliveries: new Counter({
      name: 'mesh_subscription_deliveries_total',
      help: 'Push subscription records by result: success, retry (an attempt to be repeated), dead_letter, dropped.',
      labelNames: ['subscription', 'result'],
      registers: [registry],
    }),
    subscriptionDeliveryDuration: new Histogram({
      name: 'mesh_subscription_delivery_duration_seconds',
      help: 'Duration of one push delivery attempt (request to the app until its answer is read), by subscription.',
      labelNames: ['subscription'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    subscriptionDeadLetters: new Counter({
      name: 'mesh_subscription_dead_letters_total',
      help: 'Records written to a dead-letter topic, by subscription and source topic.',
      labelNames: ['subscription', 'topic'],
      registers: [registry],
    }),
    subscriptionPausedPartitions: new Gauge({
      name: 'mesh_subscription_paused_partitions',
      help: 'Partitions a push subscription has paused (app down or blocked on a poison record).',
      labelNames: ['subscription'],
      registers: [registry],
    }),
    consumerLag: new Gauge({
      name: 'mesh_consumer_lag',
      help: 'Records of a partition after the committed offset of a consumer group (end offset minus committed offset).',
      labelNames: ['group', 'topic', 'partition'],
      registers: [registry],
    }),
    processorProcessedRecords: new Counter({
      name: 'mesh_processor_processed_records_total',
      help: 'Stream processor input records committed as final, by processor and result (success|dead_letter|dropped).',
      labelNames: ['processor', 'result'],
      registers: [registry],
    }),
    processorProducedRecords: new Counter({
      name: 'mesh_processor_produced_records_total',
      help: 'Output records a stream processor committed (exactly_once) or had acknowledged (at_least_once), by processor and topic.',
      labelNames: ['processor', 'topic'],
      registers: [registry],
    }),
    processorDeadLetters: new Counter({
      name: 'mesh_processor_dead_letters_total',
      help: 'Input records a stream processor wrote to its dead-letter topic, by processor and input topic.',
      labelNames: ['processor', 'topic'],
      registers: [registry],
    }),
    processorAbortedTransactions: new Counter({
      name: 'mesh_processor_aborted_transactions_total',
      help: 'Transactions a stream processor aborted (exactly_once), or output batches it gave up and redid (at_least_once), by processor.',
      labelNames: ['processor'],
      registers: [registry],
    }),
  };
}
