/**
 * Outlier detection per endpoint: after `consecutiveFailures` 5xx answers or connect failures in a
 * row, or when such failures reach `failurePercent` of its calls in a window of
 * `failurePercentIntervalMs` (after `failurePercentMinRequests` calls there), an endpoint is ejected
 * for `baseEjectionMs` × (its number of ejections), capped at `maxEjectionMs`; it comes back by
 * itself when that time is over. Never more than `maxEjectedPercent` of the endpoints are out at once.
 */
import type { Endpoint } from './endpoints.js';

export interface OutlierPolicy {
  /** 0 turns the consecutive rule off. */
  readonly consecutiveFailures: number;
  /** 0 turns the failure-percentage rule off. */
  readonly failurePercent: number;
  readonly failurePercentMinRequests: number;
  readonly failurePercentIntervalMs: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  readonly maxEjectedPercent: number;
}

export type OutlierOutcome = 'success' | 'failure' | 'neutral';

interface EndpointHealth {
  /** Failures in a row. */
  failures: number;
  ejections: number;
  ejectedUntil: number;
  /** The failure-percentage window: when it began, its calls and failures. */
  windowStart: number;
  calls: number;
  failed: number;
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
      health = { failures: 0, ejections: 0, ejectedUntil: 0, windowStart: this.now(), calls: 0, failed: 0 };
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
    const { consecutiveFailures, failurePercent } = this.policy;
    if ((consecutiveFailures <= 0 && failurePercent <= 0) || outcome === 'neutral') return;
    const health = this.of(endpoint);
    const failed = outcome === 'failure';
    if (failurePercent > 0) this.count(health, failed);
    if (!failed) {
      health.failures = 0;
      return;
    }
    health.failures += 1;
    if (this.isEjected(endpoint)) return;
    const inARow = consecutiveFailures > 0 && health.failures >= consecutiveFailures;
    const byShare =
      failurePercent > 0 &&
      health.calls >= this.policy.failurePercentMinRequests &&
      health.failed * 100 >= failurePercent * health.calls;
    if (!inARow && !byShare) return;
    const ejectedNow = all.filter((other) => this.isEjected(other)).length;
    const allowed = Math.floor((all.length * this.policy.maxEjectedPercent) / 100);
    if (ejectedNow + 1 > allowed) return;
    health.ejections += 1;
    health.failures = 0;
    health.calls = 0;
    health.failed = 0;
    const ms = Math.min(this.policy.baseEjectionMs * health.ejections, this.policy.maxEjectionMs);
    health.ejectedUntil = this.now() + ms;
    this.version += 1;
    this.onEject(endpoint, ms);
  }

  /** Counts a call in the endpoint's failure-percentage window, starting a new window when it is over. */
  private count(health: EndpointHealth, failed: boolean): void {
    const now = this.now();
    if (now - health.windowStart >= this.policy.failurePercentIntervalMs) {
      health.windowStart = now;
      health.calls = 0;
      health.failed = 0;
    }
    health.calls += 1;
    if (failed) health.failed += 1;
  }
}
