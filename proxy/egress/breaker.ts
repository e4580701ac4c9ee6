/**
 * A service's circuit breaker: closed → (consecutive failed calls) → open → (after `openMs`) half-open,
 * where one probe call goes through; its success closes the circuit, its failure opens it again.
 * Also the concurrency limits (calls in flight, requests queued for a connection): over them, calls
 * are refused at once, like Envoy's overflow, instead of piling up in front of a slow upstream.
 */
export interface BreakerPolicy {
  /** Calls in flight to the service at most. */
  readonly maxRequests: number;
  /** Requests waiting for a connection (over all endpoints) at most. */
  readonly maxPendingRequests: number;
  /** Consecutive failed calls that open the circuit; 0 never opens it. */
  readonly consecutiveFailures: number;
  readonly openMs: number;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export type Admission = { admitted: true; probe: boolean } | { admitted: false; reason: string };

export class CircuitBreaker {
  private stateValue: BreakerState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private probeInFlight = false;
  private inFlight = 0;

  constructor(
    private readonly policy: BreakerPolicy,
    private readonly now: () => number = Date.now,
    /** Called with true when the circuit opens (or half-opens), false when it closes. */
    private readonly onChange: (open: boolean) => void = () => undefined,
  ) {}

  get state(): BreakerState {
    if (this.stateValue === 'open' && this.now() - this.openedAt >= this.policy.openMs) {
      this.stateValue = 'half-open';
    }
    return this.stateValue;
  }

  /**
   * Whether a call may go out now; `pending` is the number of requests queued for a connection, or
   * a function counting them, called only when the count could matter: queued requests belong to
   * calls in flight, so below `maxPendingRequests` calls in flight the limit cannot be reached (the
   * count walks every connection of every pool, too much to do on each call).
   */
  admit(pending: number | (() => number)): Admission {
    const state = this.state;
    if (state === 'open') return { admitted: false, reason: 'circuit open' };
    if (state === 'half-open') {
      if (this.probeInFlight) return { admitted: false, reason: 'circuit half-open, probe in flight' };
      this.probeInFlight = true;
      this.inFlight += 1;
      return { admitted: true, probe: true };
    }
    if (this.inFlight >= this.policy.maxRequests) {
      return { admitted: false, reason: `${this.inFlight} requests in flight (maxRequests)` };
    }
    const queued =
      typeof pending === 'number' ? pending : this.inFlight < this.policy.maxPendingRequests ? 0 : pending();
    if (queued >= this.policy.maxPendingRequests) {
      return { admitted: false, reason: `${queued} requests waiting for a connection (maxPendingRequests)` };
    }
    this.inFlight += 1;
    return { admitted: true, probe: false };
  }

  /**
   * The outcome of an admitted call: `success` is a response below 500, `failure` a 5xx or no
   * response, `neutral` a call that ended without telling anything (the app went away).
   */
  record(admission: { probe: boolean }, outcome: 'success' | 'failure' | 'neutral'): void {
    if (admission.probe) this.probeInFlight = false;
    if (outcome === 'neutral') return;
    if (outcome === 'success') {
      this.failures = 0;
      if (this.stateValue !== 'closed') {
        this.stateValue = 'closed';
        this.onChange(false);
      }
      return;
    }
    this.failures += 1;
    const trip =
      admission.probe ||
      (this.policy.consecutiveFailures > 0 &&
        this.failures >= this.policy.consecutiveFailures &&
        this.stateValue === 'closed');
    if (trip) {
      this.stateValue = 'open';
      this.openedAt = this.now();
      this.onChange(true);
    }
  }

  /** State, consecutive failures and calls in flight (the status page shows them). */
  status(): { state: BreakerState; consecutiveFailures: number; inFlight: number } {
    return { state: this.state, consecutiveFailures: this.failures, inFlight: this.inFlight };
  }

  /** The admitted call has ended (its response body too). */
  release(): void {
    this.inFlight -= 1;
  }
}
