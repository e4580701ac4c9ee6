/**
 * One upstream service: its endpoint groups (one, or several in a weighted traffic split, each with
 * its endpoints, balancer and outlier detection), retry budget, circuit breaker and the composed
 * dispatch chain.
 */
import type { Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { createBalancer, type Balancer } from './balancer.js';
import { CircuitBreaker } from './breaker.js';
import {
  attemptMetrics,
  circuitBreaker,
  oauth2Token,
  clientSpan,
  compose,
  outlierDetection,
  overallTimeout,
  perTryTimeout,
  latencyTracking,
  pickEndpoint,
  retry,
  transport,
  type Layer,
  type Send,
} from './dispatch.js';
import { DnsDiscovery, systemResolve, type DnsTarget, type Resolve } from './discovery.js';
import { EndpointSet, type Endpoint } from './endpoints.js';
import { headerRulesLayer } from './header-rules.js';
import { HealthChecker } from './health-check.js';
import { TokenSource } from './oauth2.js';
import { oauth2ScopeToken } from './scope-token.js';
import { OutlierDetector, type OutlierOutcome } from './outlier.js';
import type { ServicePolicy } from './policy.js';
import { RetryBudget } from './retry.js';
import { SplitPicker, type EndpointGroup } from './split.js';

export interface UpstreamServiceOptions {
  readonly policy: ServicePolicy;
  readonly metrics: MeshMetrics;
  /** Absent when tracing is off: no CLIENT span per attempt. */
  readonly tracer: Tracer | undefined;
  /** Randomness of backoff jitter and least_request (tests pin it). */
  readonly random?: (() => number) | undefined;
  /** Clock of the breaker and outlier detection (tests move it). */
  readonly now?: (() => number) | undefined;
  /** DNS resolver of discovery (tests use their own). */
  readonly resolve?: Resolve | undefined;
  readonly logger: Logger;
}

const passThrough: Layer = (next) => next;

/** Name of the one group of a service that is not split. */
const WHOLE_SERVICE = '';

/** What a group tells its service: an endpoint ejected, an endpoint's health changed. */
interface GroupEvents {
  readonly ejected: () => void;
  readonly healthChanged: () => void;
}

/** One endpoint group of a service (the whole service when it is not split). */
export class ServiceGroup implements EndpointGroup {
  readonly endpoints: EndpointSet;
  readonly outliers: OutlierDetector | undefined;
  /** Active health checks, when the service has them. */
  readonly health: HealthChecker | undefined;
  readonly balancer: Balancer;
  private readonly discovery: DnsDiscovery | undefined;

  constructor(
    readonly name: string,
    readonly weight: number,
    source: { readonly endpoints: readonly string[]; readonly dns: DnsTarget | undefined },
    options: UpstreamServiceOptions,
    events: GroupEvents,
    readonly headers?: readonly (readonly [string, string])[],
  ) {
    const { policy } = options;
    const split = name !== WHOLE_SERVICE;
    this.endpoints = new EndpointSet({
      connectTimeoutMs: policy.connectTimeoutMs,
      connections: policy.maxConnections,
      tls: policy.tls,
      protocol: policy.protocol,
      keepalive: policy.keepalive,
      group: split ? name : undefined,
    });
    if (source.dns) {
      this.discovery = new DnsDiscovery(
        split ? `${policy.name}/${name}` : policy.name,
        source.dns,
        this.endpoints,
        options.resolve ?? systemResolve,
        options.logger,
      );
    } else {
      this.endpoints.update(source.endpoints);
    }
    if (policy.outlier) {
      this.outliers = new OutlierDetector(policy.outlier, options.now ?? Date.now, events.ejected);
    }
    if (policy.healthCheck) {
      const { metrics, logger } = options;
      const service = policy.name;
      const passed = metrics.upstreamHealthChecks.labels({ service, result: 'passed' });
      const failed = metrics.upstreamHealthChecks.labels({ service, result: 'failed' });
      this.health = new HealthChecker(
        policy.healthCheck,
        this.endpoints,
        {
          checked: (_endpoint, ok) => (ok ? passed : failed).inc(),
          changed: (endpoint, healthy, detail) => {
            const fields = { service, group: split ? name : undefined, endpoint: endpoint.origin, detail };
            if (healthy) logger.info(fields, 'endpoint passes its health checks again');
            else logger.warn(fields, 'endpoint fails its health checks: out of load balancing');
            events.healthChanged();
          },
        },
        options.random,
      );
    }
    this.balancer = createBalancer(policy.loadBalancer, options.random);
  }

  eligible(): readonly Endpoint[] {
    const all = this.endpoints.all;
    const healthy = this.health ? this.health.eligible(all) : all;
    return this.outliers ? this.outliers.eligible(healthy) : healthy;
  }

  /** Endpoints out of load balancing because their health checks fail. */
  unhealthyCount(): number {
    const { health } = this;
    return health === undefined
      ? 0
      : this.endpoints.all.filter((endpoint) => !health.isHealthy(endpoint)).length;
  }

  record(endpoint: Endpoint, outcome: OutlierOutcome): void {
    this.outliers?.record(endpoint, outcome, this.endpoints.all);
  }

  async start(): Promise<void> {
    await this.discovery?.start();
    this.health?.start();
  }

  refresh(): Promise<void> {
    return this.discovery?.refresh() ?? Promise.resolve();
  }

  discoveryError(): string | undefined {
    return this.discovery?.lastError;
  }

  close(): Promise<void> {
    this.discovery?.stop();
    this.health?.stop();
    return this.endpoints.close();
  }

  destroy(): Promise<void> {
    this.discovery?.stop();
    this.health?.stop();
    return this.endpoints.destroy();
  }
}

export class UpstreamService {
  readonly name: string;
  readonly policy: ServicePolicy;
  /** The endpoint groups of a traffic split, in config order; one group when the service is not split. */
  readonly groups: readonly ServiceGroup[];
  readonly breaker: CircuitBreaker | undefined;
  readonly tokens: TokenSource | undefined;
  /** The retry budget, when the policy has one (the status page reads its use). */
  readonly retryBudget: RetryBudget | undefined;
  /** The whole egress path of a call to this service. */
  readonly send: Send;

  constructor(options: UpstreamServiceOptions) {
    const { policy, metrics, tracer, random } = options;
    const now = options.now ?? Date.now;
    const service = policy.name;
    this.name = service;
    this.policy = policy;
    const events: GroupEvents = {
      ejected: () => metrics.outlierEjections.inc({ service }),
      healthChanged: () => {
        let unhealthy = 0;
        for (const group of this.groups) unhealthy += group.unhealthyCount();
        metrics.upstreamUnhealthyEndpoints.set({ service }, unhealthy);
      },
    };
    if (policy.healthCheck) metrics.upstreamUnhealthyEndpoints.set({ service }, 0);
    this.groups =
      policy.split === undefined
        ? [new ServiceGroup(WHOLE_SERVICE, 1, policy, options, events)]
        : policy.split.map(
            (group) => new ServiceGroup(group.name, group.weight, group, options, events, group.headers),
          );
    const byName = new Map(this.groups.map((group) => [group.name, group]));
    const budget = policy.retry.budget === undefined ? undefined : new RetryBudget(policy.retry.budget, now);
    this.retryBudget = budget;
    if (policy.breaker) {
      metrics.circuitBreakerOpen.set({ service }, 0);
      this.breaker = new CircuitBreaker(policy.breaker, now, (open) =>
        metrics.circuitBreakerOpen.set({ service }, open ? 1 : 0),
      );
    }
    if (policy.oauth2) this.tokens = new TokenSource(policy.oauth2, now);
    const pending = () => {
      let sum = 0;
      for (const group of this.groups)
        for (const endpoint of group.endpoints.all) sum += endpoint.pool.stats.pending;
      return sum;
    };
    const recordOutlier = (endpoint: Endpoint, outcome: OutlierOutcome) =>
      byName.get(endpoint.group ?? WHOLE_SERVICE)?.record(endpoint, outcome);
    const scopeHeader = policy.oauth2?.scopeTokenHeader;
    this.send = compose(
      policy.headers ? headerRulesLayer(policy.headers) : passThrough,
      this.breaker ? circuitBreaker(this.breaker, pending) : passThrough,
      overallTimeout(policy.timeoutMs),
      this.tokens
        ? scopeHeader === undefined
          ? oauth2Token(this.tokens)
          : oauth2ScopeToken(this.tokens, scopeHeader)
        : passThrough,
      retry({ policy: policy.retry, budget, metrics, random }),
      pickEndpoint(new SplitPicker(this.groups, random)),
      tracer ? clientSpan(tracer) : passThrough,
      perTryTimeout(policy.retry.perTryTimeoutMs),
      policy.outlier ? outlierDetection(recordOutlier) : passThrough,
      policy.loadBalancer === 'peak_ewma' ? latencyTracking : passThrough,
      attemptMetrics(metrics),
    )(transport);
  }

  /** The endpoints of the service (of its first group when it is split). */
  get endpoints(): EndpointSet {
    return this.groups[0].endpoints;
  }

  /** A group of the split by name. */
  group(name: string): ServiceGroup | undefined {
    return this.groups.find((group) => group.name === name);
  }

  /** Starts discovery (the first lookups are awaited; a failed one leaves its group without endpoints). */
  async start(): Promise<void> {
    await Promise.all(this.groups.map((group) => group.start()));
  }

  /** Resolves the DNS names again now (tests; SIGHUP in the future). */
  async refreshEndpoints(): Promise<void> {
    await Promise.all(this.groups.map((group) => group.refresh()));
  }

  async close(): Promise<void> {
    await Promise.all(this.groups.map((group) => group.close()));
  }

  async destroy(): Promise<void> {
    await Promise.all(this.groups.map((group) => group.destroy()));
  }
}
