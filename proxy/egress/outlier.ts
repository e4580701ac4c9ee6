/**
 * Outlier detection per endpoint: after `consecutiveFailures` 5xx answers or connect failures in a
 * row an endpoint is ejected for `baseEjectionMs` × (its number of ejections), capped at
 * `maxEjectionMs`; it comes back by itself when that time is over. Never more than
 * `maxEjectedPercent` of the endpoints are out at once.
 */
import type { Endpoint } from './endpoints.js';

export interface OutlierPolicy {
  /** 0 turns detection off. */
  readonly consecutiveFailures: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  readonly maxEjectedPercent: number;
}

export type OutlierOutcome = 'success' | 'failure' | 'neutral';

interface EndpointHealth {
  failures: number;
  ejections: number;
  ejectedUntil: number;
}

export class OutlierDetector {
  private readonly health = new WeakMap<Endpoint, EndpointHealth>();
  private cache:
    { all: readonly Endpoint[]; eligible: readonly Endpoint[]; until: number; version: number } | undefined;
  private version = 0;

  constructor(
    private readonly policy: OutlierPolicy,
    private readonly now: () => number = Date.now,
    private readonly onEject: (endpoint: Endpoint, ms: number) => void = () => undefined,
  ) {}

  private of(endpoint: Endpoint): EndpointHealth {
    let health = this.health.get(endpoint);
    if (!health) {
      health = { failures: 0, ejections: 0, ejectedUntil: 0 };
      this.health.set(endpoint, health);
    }
    return health;
  }

  isEjected(endpoint: Endpoint): boolean {
    return this.of(endpoint).ejectedUntil > this.now();
  }

  /**
   * The endpoints not ejected now. The same array comes back until something changes, so balancers
   * that derive state from it (the hash ring) keep it.
   */
  eligible(all: readonly Endpoint[]): readonly Endpoint[] {
    const now = this.now();
    const cache = this.cache;
    if (cache && cache.all === all && cache.version === this.version && now < cache.until)
      return cache.eligible;
    let until = Number.POSITIVE_INFINITY;
    const eligible = all.filter((endpoint) => {
      const { ejectedUntil } = this.of(endpoint);
      if (ejectedUntil <= now) return true;
      until = Math.min(until, ejectedUntil);
      return false;
    });
    const result = eligible.length === all.length ? all : eligible;
    this.cache = { all, eligible: result, until, version: this.version };
    return result;
  }

  /**
   * An attempt on `endpoint` ended: `failure` for a 5xx answer or a connect failure, `neutral` for
   * what says nothing about the endpoint (a reset or timeout is not counted, nor does it clear the count).
   */
  record(endpoint: Endpoint, outcome: OutlierOutcome, all: readonly Endpoint[]): void {
    if (this.policy.consecutiveFailures <= 0 || outcome === 'neutral') return;
    const health = this.of(endpoint);
    if (outcome === 'success') {
      health.failures = 0;
      return;
    }
    health.failures += 1;
    if (health.failures < this.policy.consecutiveFailures || this.isEjected(endpoint)) return;
    const ejectedNow = all.filter((other) => this.isEjected(other)).length;
    const allowed = Math.floor((all.length * this.policy.maxEjectedPercent) / 100);
    if (ejectedNow + 1 > allowed) return;
    health.ejections += 1;
    health.failures = 0;
    const ms = Math.min(this.policy.baseEjectionMs * health.ejections, this.policy.maxEjectionMs);
    health.ejectedUntil = this.now() + ms;
    this.version += 1;
    this.onEject(endpoint, ms);
  }
}
