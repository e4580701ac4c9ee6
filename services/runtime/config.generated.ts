// generated — do not edit, run npm run gen:config-types
// Source: schemas/config.schema.json. Types of the validated config: keys with a default are required.

/**
 * The mesh-sidecar config document (YAML or JSON). Every section is optional; `{}` is a complete config. Unknown keys are errors. String values may reference environment variables with `${VAR}` or `${VAR:-default}`.
 */
export interface MeshConfig {
  admin: AdminConfig;
  ingress: IngressConfig;
  kafka: KafkaConfig;
  shutdown: ShutdownConfig;
  log: LogConfig;
  telemetry: TelemetryConfig;
}
/**
 * The admin HTTP listener: health and readiness probes, Prometheus metrics, the effective (redacted) config and the quit endpoint.
 */
export interface AdminConfig {
  /**
   * Whether the admin listener runs. Without it there are no probes and no metrics endpoint.
   */
  enabled: boolean;
  /**
   * Address the admin listener binds to. `0.0.0.0` lets the kubelet reach the probes on the pod IP.
   */
  host: string;
  /**
   * TCP port of the admin listener. `0` binds any free port (used by tests).
   */
  port: number;
  /**
   * Serve the admin listener over HTTPS. Absent means plain HTTP.
   */
  tls?: TlsConfig;
}
/**
 * The inbound HTTP proxy: receives the pod's traffic and forwards it to the application.
 */
export interface IngressConfig {
  /**
   * Whether the ingress proxy runs.
   */
  enabled: boolean;
  /**
   * Address the ingress listener binds to.
   */
  host: string;
  /**
   * TCP port of the ingress listener. `0` binds any free port (used by tests).
   */
  port: number;
  /**
   * Base URL of the application that ingress forwards to (http or https). Overridden by the `APP_URL` environment variable.
   */
  target: string;
  /**
   * How long ingress waits for the application's response before answering 504.
   */
  timeoutMs: number;
  /**
   * Serve the ingress listener over HTTPS (and mTLS when `clientCa` is set). Absent means plain HTTP.
   */
  tls?: TlsConfig;
}
/**
 * How the sidecar connects to Kafka.
 */
export interface KafkaConfig {
  /**
   * Kafka bootstrap servers as `host:port`. Overridden by the `KAFKA_BOOTSTRAP` environment variable (comma-separated list).
   *
   * @minItems 1
   */
  bootstrap: string[];
  /**
   * Kafka client id, visible in broker logs and quotas.
   */
  clientId: string;
}
/**
 * What happens on SIGTERM: the sidecar reports not-ready at once, keeps serving for `drainDelayMs`, then drains and stops.
 */
export interface ShutdownConfig {
  /**
   * How long the sidecar keeps accepting work after SIGTERM so load balancers notice the failing readiness probe.
   */
  drainDelayMs: number;
  /**
   * How long draining may take after the drain delay before whatever is left is stopped. Keep `drainDelayMs + timeoutMs` below the pod's `terminationGracePeriodSeconds`.
   */
  timeoutMs: number;
}
/**
 * Structured JSON logs on stdout.
 */
export interface LogConfig {
  /**
   * Lowest level that is written; `silent` writes nothing. Overridden by the `LOG_LEVEL` environment variable.
   */
  level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}
/**
 * OpenTelemetry tracing. Exporter settings come from the standard `OTEL_*` environment variables.
 */
export interface TelemetryConfig {
  /**
   * The `service.name` resource attribute of spans. Overridden by `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`).
   */
  serviceName: string;
}
/**
 * Server certificate and key (PEM files). Setting `clientCa` turns on mutual TLS.
 *
 * This interface was referenced by `MeshConfig`'s JSON-Schema
 * via the `definition` "Tls".
 */
export interface TlsConfig {
  /**
   * Path to the PEM certificate chain the listener presents.
   */
  cert: string;
  /**
   * Path to the PEM private key of `cert`.
   */
  key: string;
  /**
   * Path to a PEM CA bundle. When set, clients must present a certificate signed by it (mTLS).
   */
  clientCa?: string;
}
