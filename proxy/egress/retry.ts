/**
 * The pieces of the retry decision that need no I/O: how an attempt failed, whether the request may
 * be sent again, how long to back off, and the retry budget.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { GrpcRetryCondition, RetryBudgetPolicy, RetryCondition, RetryPolicy } from './policy.js';

/** How an attempt failed when it produced no response. */
export type FailureKind = 'connect-failure' | 'reset' | 'timeout';

/**
 * Error codes that mean the upstream did not get or did not process the request: the connection was
 * never established, or an HTTP/2 upstream refused the stream.
 */
const CONNECT_FAILURE_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
  // An HTTP/2 stream the upstream refused or never saw (proxy/shared/h2-upstream.ts): not processed.
  'MESH_H2_UNPROCESSED',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Classifies an undici/socket error. Anything that is neither a connect failure nor a timeout is a reset. */
export function classifyError(err: unknown): FailureKind {
  for (let current: unknown = err, depth = 0; current && depth < 4; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (CONNECT_FAILURE_CODES.has(code)) return 'connect-failure';
      if (TIMEOUT_CODES.has(code)) return 'timeout';
    }
    current = (current as { cause?: unknown }).cause;
  }
  return 'reset';
}

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** Contract section 5: only these may be sent again once the upstream may have seen them. */
export function isSafeToResend(method: string, headers: IncomingHttpHeaders): boolean {
  return IDEMPOTENT_METHODS.has(method.toUpperCase()) || headers['idempotency-key'] !== undefined;
}

/**
 * What an attempt ended with, as far as retrying is concerned: for a gRPC answer, `status` is its
 * `grpc-status` as HTTP (httpStatusOfGrpc) and `grpcStatus` the code itself.
 */
export type AttemptOutcome = { kind: 'status'; status: number; grpcStatus?: number } | { kind: FailureKind };

/** The gRPC status each gRPC retry condition stands for. */
const GRPC_CONDITION_BY_STATUS = new Map<number, GrpcRetryCondition>([
  [1, 'cancelled'],
  [4, 'deadline-exceeded'],
  [8, 'resource-exhausted'],
  [13, 'internal'],
  [14, 'unavailable'],
]);

/** Whether the policy's conditions cover this outcome (safety and attempts are checked elsewhere). */
export function matchesRetryOn(policy: RetryPolicy, outcome: AttemptOutcome): boolean {
  const on = (condition: RetryCondition) => policy.retryOn.has(condition);
  if (outcome.kind !== 'status') return on(outcome.kind);
  const { status, grpcStatus } = outcome;
  const grpcCondition = grpcStatus === undefined ? undefined : GRPC_CONDITION_BY_STATUS.get(grpcStatus);
  if (grpcCondition !== undefined && on(grpcCondition)) return true;
  if (policy.statuses.has(status)) return true;
  if (status >= 500 && status <= 599 && on('5xx')) return true;
  return (status === 502 || status === 503 || status === 504) && on('gateway-error');
}

/** Whether the upstream may have received (part of) the request in an attempt with this outcome. */
export function reachedUpstream(outcome: AttemptOutcome): boolean {
  return outcome.kind !== 'connect-failure';
}

/**
 * Full-jitter exponential backoff before retry number `retry` (1 = the first retry): a uniform
 * random wait between 0 and min(max, base × 2^(retry−1)), as the reference sidecar computes it.
 */
export function backoffMs(
  retry: number,
  policy: Pick<RetryPolicy, 'baseBackoffMs' | 'maxBackoffMs'>,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.baseBackoffMs * 2 ** (retry - 1));
  return Math.floor(random() * (ceiling + 1));
}

/**
 * How long an upstream's `Retry-After` asks to wait, in milliseconds: delay-seconds, or an HTTP-date
 * (from `now`); undefined without one or when it is malformed. A date in the past is 0.
 */
export function retryAfterMs(value: unknown, now: () => number = Date.now): number | undefined {
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  // An HTTP-date names a weekday (`Sun, 06 Nov 1994 08:49:37 GMT`): no bare number parses as one.
  if (Number.isNaN(at) || !/[a-z]/i.test(text)) return undefined;
  return Math.max(0, at - now());
}

/**
 * A retry budget in the manner of Finagle and Linkerd: over a sliding window (10 s, in 1 s slots),
 * retries may be at most `ratio` × requests + `minRetriesPerSecond` × window seconds. When every
 * endpoint fails, retries stop adding load at once instead of multiplying it by the attempts.
 */
export class RetryBudget {
  private readonly slots: { second: number; requests: number; retries: number }[] = [];
  private readonly windowSeconds: number;

  constructor(
    private readonly policy: RetryBudgetPolicy,
    private readonly now: () => number = Date.now,
    windowMs = 10_000,
  ) {
    this.windowSeconds = Math.max(1, Math.round(windowMs / 1000));
  }

  /** Counts a new call (not a retry). */
  recordRequest(): void {
    this.slot().requests += 1;
  }

  /** Takes one retry from the budget; false when it is spent. */
  tryWithdraw(): boolean {
    const { requests, retries } = this.totals();
    const allowed = this.policy.ratio * requests + this.policy.minRetriesPerSecond * this.windowSeconds;
    if (retries + 1 > allowed) return false;
    this.slot().retries += 1;
    return true;
  }

  /** Requests and retries in the window and how many retries it allows (the status page shows it). */
  usage(): { windowSeconds: number; requests: number; retries: number; allowed: number } {
    const { requests, retries } = this.totals();
    const allowed = this.policy.ratio * requests + this.policy.minRetriesPerSecond * this.windowSeconds;
    return { windowSeconds: this.windowSeconds, requests, retries, allowed: Math.floor(allowed) };
  }

  private slot() {
    const second = Math.floor(this.now() / 1000);
    this.prune(second);
    let last = this.slots[this.slots.length - 1];
    if (last?.second !== second) {
      last = { second, requests: 0, retries: 0 };
      this.slots.push(last);
    }
    return last;
  }

  private totals() {
    this.prune(Math.floor(this.now() / 1000));
    let requests = 0;
    let retries = 0;
    for (const slot of this.slots) {
      requests += slot.requests;
      retries += slot.retries;
    }
    return { requests, retries };
  }

  private prune(second: number): void {
    while (this.slots.length > 0 && this.slots[0].second <= second - this.windowSeconds) this.slots.shift();
  }
}
