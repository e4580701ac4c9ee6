/**
 * A peak-EWMA latency estimate, as Finagle's and Linkerd's (tower's) `PeakEwma` keep one per
 * endpoint: a sample above the estimate replaces it at once (the peak: an endpoint that turns slow is
 * avoided at its first slow answer), one below pulls it down by an exponential weight of the time
 * since the last update, and the estimate decays towards 0 while nothing is measured, so an endpoint
 * that was slow gets a call again after a while and shows whether it still is.
 */

/** Estimate of an endpoint nothing has been measured of yet (tower's and Linkerd's default). */
export const DEFAULT_LATENCY_MS = 30;
/** Time constant of the decay (Linkerd's default): after it, an old estimate weighs 1/e. */
export const DECAY_MS = 10_000;

export class PeakEwma {
  private estimateMs = DEFAULT_LATENCY_MS;
  private updatedAt: number;

  constructor(private readonly now: () => number = performance.now.bind(performance)) {
    this.updatedAt = this.now();
  }

  /** One call's latency: its time to the response headers, or to its failure. */
  observe(latencyMs: number): void {
    const at = this.now();
    if (latencyMs > this.estimateMs) {
      this.estimateMs = latencyMs;
    } else {
      const weight = Math.exp(-(at - this.updatedAt) / DECAY_MS);
      this.estimateMs = this.estimateMs * weight + latencyMs * (1 - weight);
    }
    this.updatedAt = at;
  }

  /** The estimate now: the last one decayed towards 0 by the time since it was made. */
  current(): number {
    return this.estimateMs * Math.exp(-(this.now() - this.updatedAt) / DECAY_MS);
  }
}
