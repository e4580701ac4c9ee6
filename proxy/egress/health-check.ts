/**
 * Active health checking of a group's endpoints, as Envoy, HAProxy and nginx do it: every
 * `intervalMs` each endpoint gets `GET <path>` on its own connection pool; `unhealthyThreshold`
 * failed checks in a row take it out of load balancing, `healthyThreshold` passed ones in a row put
 * it back. Outlier detection learns from the calls; this learns before a call is spent on an
 * endpoint that is up but not serving (a pod draining, an app whose dependencies are down).
 *
 * Endpoints start healthy — a Kubernetes endpoint is only listed once its pod is ready, and a
 * sidecar that starts must not refuse calls until a first round has run. When no endpoint of the
 * group is healthy, all of them are used (Envoy's panic mode): checks that fail everywhere are more
 * likely wrong than every endpoint down, and the calls' own failures still feed outlier detection.
 */
import type { Endpoint, EndpointSet } from './endpoints.js';
import { CallSignal } from '../shared/signal.js';
import { sendUpstream } from '../shared/upstream.js';

export interface HealthCheckPolicy {
  /** Path (and query) of the check request, e.g. `/healthz`. */
  readonly path: string;
  readonly intervalMs: number;
  /** A check without response headers within this time failed. */
  readonly timeoutMs: number;
  /** Failed checks in a row that take a healthy endpoint out. */
  readonly unhealthyThreshold: number;
  /** Passed checks in a row that bring an unhealthy endpoint back. */
  readonly healthyThreshold: number;
}

interface EndpointHealth {
  healthy: boolean;
  /** Passed (> 0) or failed (< 0) checks in a row. */
  streak: number;
}

export interface HealthCheckEvents {
  /** One check ended. */
  checked(endpoint: Endpoint, passed: boolean, detail: string): void;
  /** An endpoint went out of (false) or back into (true) load balancing. */
  changed(endpoint: Endpoint, healthy: boolean, detail: string): void;
}

/** What one check tells: 2xx and 3xx pass, as a Kubernetes HTTP probe counts them. */
export async function checkEndpoint(
  endpoint: Endpoint,
  policy: HealthCheckPolicy,
): Promise<string | undefined> {
  const signal = new CallSignal();
  const timer = setTimeout(
    () => signal.abort(new Error(`no answer within ${policy.timeoutMs} ms`)),
    policy.timeoutMs,
  );
  try {
    const response = await sendUpstream(
      endpoint.pool,
      {
        path: policy.path,
        method: 'GET',
        headers: { host: endpoint.url.host, 'user-agent': 'mesh-sidecar-health-check' },
        body: null,
      },
      signal,
    );
    // A short answer is already complete here: discarding it costs nothing and keeps the connection.
    response.body.discard();
    const { statusCode } = response;
    return statusCode >= 200 && statusCode < 400 ? undefined : `status ${statusCode}`;
  } catch (err) {
    return (err as Error).message;
  } finally {
    clearTimeout(timer);
  }
}

export class HealthChecker {
  private readonly health = new WeakMap<Endpoint, EndpointHealth>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private round: Promise<void> | undefined;
  /** Bumped when an endpoint changes state: `eligible` recomputes its list only then. */
  private version = 0;
  private cache: { all: readonly Endpoint[]; version: number; eligible: readonly Endpoint[] } | undefined;

  constructor(
    private readonly policy: HealthCheckPolicy,
    private readonly endpoints: EndpointSet,
    private readonly events: HealthCheckEvents,
    private readonly random: () => number = Math.random,
  ) {}

  /** Runs a first round now (not awaited: endpoints are healthy until told otherwise), then one per interval. */
  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  isHealthy(endpoint: Endpoint): boolean {
    return this.health.get(endpoint)?.healthy ?? true;
  }

  /** The healthy endpoints of `all`; all of them when none is (panic). The same array until something changes. */
  eligible(all: readonly Endpoint[]): readonly Endpoint[] {
    const cache = this.cache;
    if (cache !== undefined && cache.all === all && cache.version === this.version) return cache.eligible;
    const healthy = all.filter((endpoint) => this.isHealthy(endpoint));
    const eligible = healthy.length === all.length || healthy.length === 0 ? all : healthy;
    this.cache = { all, version: this.version, eligible };
    return eligible;
  }

  /** One round of checks of every endpoint now (tests; the timer runs the same). */
  async checkNow(): Promise<void> {
    const running = this.round;
    if (running !== undefined) return running;
    const round = Promise.all(this.endpoints.all.map((endpoint) => this.checkOne(endpoint))).then(() => {
      this.round = undefined;
    });
    this.round = round;
    return round;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.checkNow().then(() => {
        // Up to a tenth of the interval of jitter, so the sidecars of a fleet do not check in step.
        this.schedule(this.policy.intervalMs * (1 + this.random() / 10));
      });
    }, delayMs);
    this.timer.unref();
  }

  private async checkOne(endpoint: Endpoint): Promise<void> {
    const failure = await checkEndpoint(endpoint, this.policy);
    if (this.stopped) return;
    let state = this.health.get(endpoint);
    if (state === undefined) {
      state = { healthy: true, streak: 0 };
      this.health.set(endpoint, state);
    }
    const passed = failure === undefined;
    this.events.checked(endpoint, passed, failure ?? 'passed');
    state.streak = passed ? Math.max(state.streak, 0) + 1 : Math.min(state.streak, 0) - 1;
    const flip = state.healthy
      ? -state.streak >= this.policy.unhealthyThreshold
      : state.streak >= this.policy.healthyThreshold;
    if (!flip) return;
    state.healthy = !state.healthy;
    state.streak = 0;
    this.version += 1;
    this.events.changed(endpoint, state.healthy, failure ?? `${this.policy.healthyThreshold} checks passed`);
  }
}
