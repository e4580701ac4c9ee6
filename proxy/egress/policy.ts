/**
 * What a service's calls are subject to, in the shape the dispatch layers use. Built from the
 * validated config (`servicePolicyFromConfig`) or, for zero-config mode, from `UPSTREAM_URL` alone
 * (`zeroConfigPolicy`), so both paths run the very same code.
 */
import type { Config } from '../../services/runtime/config.js';
import type { BreakerPolicy } from './breaker.js';
import type { DnsTarget } from './discovery.js';
import { readFileSync } from 'node:fs';
import type { UpstreamTls } from './endpoints.js';
import { KEEPALIVE, type KeepalivePolicy } from '../shared/h2-upstream.js';
import { compileHeaderRules, type CompiledHeaderRules } from '../shared/header-rules.js';
import type { OAuth2Policy } from './oauth2.js';
import type { HealthCheckPolicy } from './health-check.js';
import type { OutlierPolicy } from './outlier.js';

/** Envoy's `retry_on` names for gRPC statuses (`x-envoy-retry-grpc-on`): a Trailers-Only answer with that status. */
export type GrpcRetryCondition =
  'cancelled' | 'deadline-exceeded' | 'internal' | 'resource-exhausted' | 'unavailable';
export type RetryCondition =
  'connect-failure' | 'reset' | 'timeout' | '5xx' | 'gateway-error' | GrpcRetryCondition;
export type LoadBalancerKind = 'round_robin' | 'least_request' | 'peak_ewma' | 'consistent_hash';

export interface RetryBudgetPolicy {
  /** Retries may be at most this share of the requests in the window (plus the minimum below). */
  readonly ratio: number;
  readonly minRetriesPerSecond: number;
}

export interface RetryPolicy {
  /** Most attempts per call, the first included. */
  readonly attempts: number;
  readonly perTryTimeoutMs: number | undefined;
  readonly retryOn: ReadonlySet<RetryCondition>;
  readonly statuses: ReadonlySet<number>;
  readonly baseBackoffMs: number;
  readonly maxBackoffMs: number;
  /** Absent: no budget (zero-config mode, like the reference sidecar). */
  readonly budget: RetryBudgetPolicy | undefined;
}

/** One group of a weighted traffic split: its share of the calls and where its endpoints come from. */
export interface EndpointGroupPolicy {
  readonly name: string;
  /** Relative share of calls; 0 sends the group nothing. */
  readonly weight: number;
  readonly endpoints: readonly string[];
  /** When set, endpoints come from this DNS name instead of `endpoints`. */
  readonly dns: DnsTarget | undefined;
  /** Calls with all of these headers (lower-case names, exact values) go to this group whatever the weights. */
  readonly headers: readonly (readonly [string, string])[] | undefined;
}

export interface ServicePolicy {
  readonly name: string;
  readonly namespace: string | undefined;
  readonly endpoints: readonly string[];
  /** When set, endpoints come from this DNS name instead of `endpoints`. */
  readonly dns: DnsTarget | undefined;
  /** Weighted traffic split: when set, the endpoints come from these groups instead of `endpoints`/`dns`. */
  readonly split: readonly EndpointGroupPolicy[] | undefined;
  readonly loadBalancer: LoadBalancerKind;
  readonly hashHeader: string | undefined;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  /** What the endpoints speak: `http2` for HTTP/2 (gRPC) services. */
  readonly protocol: 'http1' | 'http2';
  /** PINGs on HTTP/2 connections (intervalMs 0: none). */
  readonly keepalive: KeepalivePolicy;
  readonly retry: RetryPolicy;
  /** Connections per endpoint at most. */
  readonly maxConnections: number;
  /** TLS to https endpoints; absent: Node's defaults. */
  readonly tls: UpstreamTls | undefined;
  /** Absent: calls go out without a token. */
  readonly oauth2: OAuth2Policy | undefined;
  /** Header rules of calls to the service; absent: none (no layer). */
  readonly headers?: CompiledHeaderRules | undefined;
  /** Absent: no breaker (zero-config mode). */
  readonly breaker: BreakerPolicy | undefined;
  /** Absent: no outlier detection (zero-config mode). */
  readonly outlier: OutlierPolicy | undefined;
  /** Absent: no active health checks (the default). */
  readonly healthCheck: HealthCheckPolicy | undefined;
  /**
   * What a call answers when every attempt failed without a response: `by-cause` gives 504 for a
   * timeout and 502 otherwise (contract section 3); `bad-gateway` always gives 502, as the reference
   * sidecar of zero-config mode does.
   */
  readonly whenExhausted: 'by-cause' | 'bad-gateway';
}

type ServiceConfig = NonNullable<Config['egress']['services'][string]>;

export function servicePolicyFromConfig(name: string, config: ServiceConfig): ServicePolicy {
  const { retry } = config;
  return {
    name,
    namespace: config.namespace,
    endpoints: config.endpoints,
    dns: config.dns === undefined ? undefined : { ...config.dns },
    split:
      config.split === undefined
        ? undefined
        : Object.entries(config.split).flatMap(([group, split]) =>
            split === undefined
              ? []
              : [
                  {
                    name: group,
                    weight: split.weight,
                    endpoints: split.endpoints,
                    dns: split.dns === undefined ? undefined : { ...split.dns },
                    headers: split.headers === undefined ? undefined : lowerCaseNames(split.headers),
                  },
                ],
          ),
    loadBalancer: config.loadBalancer,
    hashHeader: config.hashHeader?.toLowerCase(),
    timeoutMs: config.timeoutMs,
    connectTimeoutMs: config.connectTimeoutMs,
    protocol: config.protocol,
    keepalive: { ...config.keepalive },
    retry: {
      attempts: retry.attempts,
      perTryTimeoutMs: retry.perTryTimeoutMs,
      retryOn: new Set(retry.retryOn),
      statuses: new Set(retry.statuses),
      baseBackoffMs: retry.baseBackoffMs,
      maxBackoffMs: Math.max(retry.maxBackoffMs, 0),
      budget: { ratio: retry.budgetRatio, minRetriesPerSecond: retry.minRetriesPerSecond },
    },
    oauth2: config.oauth2 === undefined ? undefined : { ...config.oauth2 },
    headers: compileHeaderRules(config.headers),
    tls:
      config.tls === undefined
        ? undefined
        : {
            ca: config.tls.ca === undefined ? undefined : readFileSync(config.tls.ca),
            cert: config.tls.cert === undefined ? undefined : readFileSync(config.tls.cert),
            key: config.tls.key === undefined ? undefined : readFileSync(config.tls.key),
            serverName: config.tls.serverName,
          },
    maxConnections: config.circuitBreaker.maxConnections,
    breaker: {
      maxRequests: config.circuitBreaker.maxRequests,
      maxPendingRequests: config.circuitBreaker.maxPendingRequests,
      consecutiveFailures: config.circuitBreaker.consecutiveFailures,
      openMs: config.circuitBreaker.openMs,
    },
    outlier: { ...config.outlierDetection },
    healthCheck: healthCheckPolicy(config.healthCheck),
    whenExhausted: 'by-cause',
  };
}

/** An HTTP check by path, or a gRPC one by service name (the config check allows exactly one). */
function healthCheckPolicy(check: ServiceConfig['healthCheck']): HealthCheckPolicy | undefined {
  if (check === undefined) return undefined;
  const { intervalMs, timeoutMs, unhealthyThreshold, healthyThreshold, port } = check;
  const probe: HealthCheckPolicy['probe'] =
    check.grpcService !== undefined
      ? { kind: 'grpc', service: check.grpcService }
      : { kind: 'http', path: check.path ?? '/' };
  const headers = Object.fromEntries(lowerCaseNames(check.headers));
  return { probe, port, headers, intervalMs, timeoutMs, unhealthyThreshold, healthyThreshold };
}

/** A config header map as [lower-case name, value] pairs (names are case-insensitive, values not). */
function lowerCaseNames(headers: Readonly<Record<string, string | undefined>>): [string, string][] {
  return Object.entries(headers).flatMap(([name, value]) =>
    value === undefined ? [] : [[name.toLowerCase(), value] as [string, string]],
  );
}

/** The name zero-config mode's catch-all service goes by (metric label `service`). */
export const ZERO_CONFIG_SERVICE = 'upstream';

/**
 * Zero-config mode (contract section 1), as the reference sidecar in ../shared/seeds does it: up to 4
 * attempts when the connection fails, is reset or times out, 2 s per try, full-jitter backoff from
 * 120 ms doubling up to 1 s, HTTP statuses relayed as they are, 502 once every attempt failed.
 * The overall timeout leaves room for every attempt and backoff (4 × 2 s + 120 + 240 + 480 ms).
 */
export function zeroConfigPolicy(upstreamUrl: string): ServicePolicy {
  return {
    name: ZERO_CONFIG_SERVICE,
    namespace: undefined,
    endpoints: [upstreamUrl],
    dns: undefined,
    split: undefined,
    loadBalancer: 'round_robin',
    hashHeader: undefined,
    timeoutMs: 10_000,
    connectTimeoutMs: 1_000,
    protocol: 'http1',
    keepalive: KEEPALIVE,
    retry: {
      attempts: 4,
      perTryTimeoutMs: 2_000,
      retryOn: new Set<RetryCondition>(['connect-failure', 'reset', 'timeout']),
      statuses: new Set(),
      baseBackoffMs: 120,
      maxBackoffMs: 1_000,
      budget: undefined,
    },
    oauth2: undefined,
    tls: undefined,
    maxConnections: 128,
    breaker: undefined,
    outlier: undefined,
    healthCheck: undefined,
    whenExhausted: 'bad-gateway',
  };
}
