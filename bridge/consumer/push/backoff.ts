/** Exponential backoff with full jitter: a random wait between 0 and min(max, initial * 2^retry). */
export interface BackoffPolicy {
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
}

/**
 * The wait before retry number `retry` (0 for the first retry). `random` is injectable so tests can
 * pin the jitter; the cap doubles per retry and never exceeds `maxBackoffMs`.
 */
export function fullJitterBackoff(policy: BackoffPolicy, retry: number, random = Math.random): number {
  return Math.floor(random() * backoffCap(policy, retry));
}

/** The upper bound of the wait before retry number `retry`. */
export function backoffCap(policy: BackoffPolicy, retry: number): number {
  const exponent = Math.min(Math.max(retry, 0), 30);
  return Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** exponent);
}

/**
 * Resolves after `ms`, or at once (with `false`) when `signal` aborts; the timer never keeps the
 * process alive.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
