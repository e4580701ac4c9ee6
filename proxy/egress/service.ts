/**
 * One upstream service: its endpoints, balancer, retry budget and the composed dispatch chain.
 */
import type { Tracer } from '@opentelemetry/api';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { createBalancer } from './balancer.js';
import {
  attemptMetrics,
  clientSpan,
  compose,
  overallTimeout,
  perTryTimeout,
  pickEndpoint,
  retry,
  transport,
  type Send,
} from './dispatch.js';
import { EndpointSet, type Endpoint } from './endpoints.js';
import type { ServicePolicy } from './policy.js';
import { RetryBudget } from './retry.js';

export interface UpstreamServiceOptions {
  readonly policy: ServicePolicy;
  readonly metrics: MeshMetrics;
  readonly tracer: Tracer;
  /** Randomness of backoff jitter and least_request (tests pin it). */
  readonly random?: () => number;
}

export class UpstreamService {
  readonly name: string;
  readonly policy: ServicePolicy;
  readonly endpoints: EndpointSet;
  /** The whole egress path of a call to this service. */
  readonly send: Send;

  constructor(options: UpstreamServiceOptions) {
    const { policy, metrics, tracer, random } = options;
    this.name = policy.name;
    this.policy = policy;
    this.endpoints = new EndpointSet({ connectTimeoutMs: policy.connectTimeoutMs });
    this.endpoints.update(policy.endpoints);
    const budget = policy.retry.budget === undefined ? undefined : new RetryBudget(policy.retry.budget);
    const source = { eligible: (): readonly Endpoint[] => this.endpoints.all };
    this.send = compose(
      overallTimeout(policy.timeoutMs),
      retry({ policy: policy.retry, budget, metrics, random }),
      pickEndpoint(source, createBalancer(policy.loadBalancer, random)),
      clientSpan(tracer),
      perTryTimeout(policy.retry.perTryTimeoutMs),
      attemptMetrics(metrics),
    )(transport);
  }

  close(): Promise<void> {
    return this.endpoints.close();
  }

  destroy(): Promise<void> {
    return this.endpoints.destroy();
  }
}
