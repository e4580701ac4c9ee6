/**
 * The egress path as a chain of small dispatch layers, each with one job, in the manner of undici's
 * interceptors: a layer turns one `Send` into another. A call goes through the call layers
 * (overall timeout, retry) once and through the attempt layers (endpoint pick, client span,
 * per-try timeout, metrics, transport) once per attempt.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { propagation, SpanKind, SpanStatusCode, trace, type Context, type Tracer } from '@opentelemetry/api';
import { MeshError } from '../../services/runtime/errors.js';
import {
  formatGrpcTimeout,
  grpcTimeoutMs,
  httpStatusOfGrpc,
  isGrpcContentType,
} from '../../services/runtime/http.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { CallSignal } from '../shared/signal.js';
import { sendUpstream, type UpstreamBody } from '../shared/upstream.js';
import type { CircuitBreaker } from './breaker.js';
import type { CallControls } from './call-controls.js';
import type { Endpoint } from './endpoints.js';
import type { TokenSource } from './oauth2.js';
import type { OutlierOutcome } from './outlier.js';
import type { RetryPolicy } from './policy.js';
import {
  backoffMs,
  classifyError,
  isSafeToResend,
  matchesRetryOn,
  reachedUpstream,
  retryAfterMs,
  type AttemptOutcome,
  type FailureKind,
  type RetryBudget,
} from './retry.js';

/** One call of the app to a service, as it travels down the layers. */
export interface Call {
  readonly service: string;
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** A buffer can be sent again; a stream (a body over `maxRetryBodyBytes`) only once. */
  readonly body: Buffer | Readable | null;
  /** Aborted when the overall timeout fires or the app goes away; `reason` says which. */
  readonly signal: CallSignal;
  /** Trace context of the egress SERVER span; attempts are its children. */
  readonly context: Context;
  readonly hashKey?: string | undefined;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** The backoff waited before this attempt (0 for the first). */
  readonly backoffMs: number;
  /** Endpoints earlier attempts of this call used (a retry prefers another one). */
  readonly tried: Set<Endpoint>;
  /** Set by the endpoint layer. */
  readonly endpoint?: Endpoint | undefined;
  /** The protocol an upgrade request asks for (proxy/shared/tunnel.ts); undefined otherwise. */
  readonly upgrade?: string | undefined;
  /** When a gRPC call's deadline (its `grpc-timeout`, from its arrival) passes, in `Date.now()` time. */
  readonly deadlineAt?: number | undefined;
  /** The app's per-call timeouts and retries (call-controls.ts), over the service's. */
  readonly controls?: CallControls | undefined;
}

export interface Answer {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  /** The response body; whoever gets the answer must pipe or discard it. */
  readonly body: UpstreamBody;
  readonly endpoint: Endpoint;
  /** A gRPC answer: its HTTP 200 says nothing of the call, its `grpc-status` does (see `judgeAnswer`). */
  readonly grpc: boolean;
}

/**
 * The status an answer stands for where the breaker, outlier detection, retries, metrics and spans
 * judge it: the HTTP status, except for a gRPC answer with HTTP 200, where it is the `grpc-status`
 * as HTTP (httpStatusOfGrpc, Envoy's mapping: UNAVAILABLE 503, INTERNAL 500, …). Known with the
 * headers for HTTP and for gRPC's Trailers-Only answers (a call failing before any message, the
 * usual form of a gRPC error); undefined while a gRPC body is still streaming, and when it ended
 * without a status (cut).
 */
function statusOf(answer: Answer): number | undefined {
  if (!answer.grpc) return answer.statusCode;
  const grpcStatus = answer.body.grpcStatus;
  return grpcStatus === undefined ? undefined : httpStatusOfGrpc(grpcStatus);
}

/** Calls `judge` with the answer's status (statusOf) as soon as it is known: at once, or when the body is done. */
function judgeAnswer(answer: Answer, judge: (status: number | undefined) => void): void {
  const status = statusOf(answer);
  if (status !== undefined || !answer.grpc) judge(status);
  else answer.body.whenDone(() => judge(statusOf(answer)));
}

/** How the breaker and outlier detection count a status: a 5xx fails, none tells nothing. */
function outcomeOf(status: number | undefined): 'success' | 'failure' | 'neutral' {
  if (status === undefined) return 'neutral';
  return status >= 500 ? 'failure' : 'success';
}

/** An attempt that ended without a response. */
export class AttemptFailure extends Error {
  override readonly name = 'AttemptFailure';
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly endpoint?: Endpoint,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type Send = (call: Call) => Promise<Answer>;
export type Layer = (next: Send) => Send;

/** compose(a, b, c)(send): a runs first and calls b, which calls c, which calls send. */
export function compose(...layers: Layer[]): (send: Send) => Send {
  return (send) => layers.reduceRight((next, layer) => layer(next), send);
}

/** Waits `ms`, or rejects with the signal's reason when it aborts first. */
function sleep(ms: number, signal: CallSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason instanceof Error ? signal.reason : new Error('call aborted'));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason instanceof Error ? signal.reason : new Error('call aborted'));
    };
    const timer = setTimeout(() => {
      signal.offAbort(onAbort);
      resolve();
    }, ms);
    signal.onAbort(onAbort);
  });
}

// ---------------------------------------------------------------------------------------------
// Call layers

/** Failed calls as the breaker counts them: no response from the upstream, or the call timed out. */
function isCallFailure(err: unknown): boolean {
  return err instanceof AttemptFailure || (err instanceof MeshError && err.code === 'MESH_TIMEOUT');
}

/**
 * The service's circuit breaker: refuses at once (503 `circuit-open`, no upstream contact) while the
 * circuit is open or a concurrency limit is reached, and feeds it each call's outcome.
 */
export function circuitBreaker(breaker: CircuitBreaker, pendingRequests: () => number): Layer {
  const release = () => breaker.release();
  return (next) => (call) => {
    const admission = breaker.admit(pendingRequests);
    if (!admission.admitted) {
      return Promise.reject(
        new MeshError('MESH_CIRCUIT_OPEN', `service ${call.service}: ${admission.reason}`, {
          headers: { 'x-mesh-error': 'circuit-open', 'retry-after': '1' },
        }),
      );
    }
    return next(call).then(
      (answer) => {
        judgeAnswer(answer, (status) => breaker.record(admission, outcomeOf(status)));
        answer.body.whenDone(release);
        return answer;
      },
      (err: unknown) => {
        breaker.record(admission, isCallFailure(err) ? 'failure' : 'neutral');
        breaker.release();
        throw err;
      },
    );
  };
}

/**
 * Overall time of the call, retries and the response body included: then 504 `timeout`. A gRPC
 * call's own deadline (`grpc-timeout`) takes the place of `timeoutMs`, as Envoy's `max_grpc_timeout`
 * does: the caller set how long its call may take, a long stream included (a gRPC client gives up
 * at its deadline anyway); so does the app's `x-mesh-timeout-ms` (the shorter of the two when a call
 * has both); a call without either gets `timeoutMs`.
 */
export function overallTimeout(timeoutMs: number): Layer {
  return (next) => (call) => {
    const signal = new CallSignal(call.signal);
    const deadlineMs = grpcTimeoutMs(call.headers['grpc-timeout']);
    const askedMs = call.controls?.timeoutMs;
    const limitMs =
      deadlineMs === undefined && askedMs === undefined
        ? timeoutMs
        : Math.min(deadlineMs ?? Infinity, askedMs ?? Infinity);
    const timer = setTimeout(() => {
      const limit =
        limitMs === askedMs
          ? `the call's x-mesh-timeout-ms (${askedMs} ms)`
          : limitMs === deadlineMs
            ? `the call's grpc-timeout (${deadlineMs} ms)`
            : `${timeoutMs} ms`;
      const detail = `upstream ${call.service} did not answer within ${limit}`;
      signal.abort(new MeshError('MESH_TIMEOUT', detail, { headers: { 'x-mesh-error': 'timeout' } }));
    }, limitMs);
    const done = () => {
      clearTimeout(timer);
      signal.unlink();
    };
    const deadlineAt = deadlineMs === undefined ? undefined : Date.now() + deadlineMs;
    return next({ ...call, signal, deadlineAt }).then(
      (answer) => {
        answer.body.whenDone(done);
        return answer;
      },
      (err: unknown) => {
        done();
        throw signal.aborted && signal.reason instanceof MeshError ? signal.reason : err;
      },
    );
  };
}

/**
 * Puts the service's OAuth2 token on the call; when the upstream answers 401 with it, drops it and
 * sends the call once more with a fresh one (when the body can be sent again).
 */
export function oauth2Token(tokens: TokenSource): Layer {
  return (next) => async (call) => {
    const withToken = (token: string): Call => ({
      ...call,
      headers: { ...call.headers, authorization: `Bearer ${token}` },
    });
    const token = await tokens.get();
    const answer = await next(withToken(token));
    const resendable = call.body === null || Buffer.isBuffer(call.body);
    if (answer.statusCode !== 401 || !resendable) return answer;
    answer.body.discard();
    tokens.invalidate(token);
    return next(withToken(await tokens.get()));
  };
}

export interface RetryLayerOptions {
  readonly policy: RetryPolicy;
  readonly budget: RetryBudget | undefined;
  readonly metrics: MeshMetrics;
  readonly random?: () => number;
}

/**
 * Sends the call again while the policy allows it: the outcome matches `retryOn`, attempts are left,
 * the body can be sent again, a request the upstream may have seen is safe to resend (contract
 * section 5), and the retry budget has room. Waits a full-jitter backoff between attempts — or, when
 * the answer says `Retry-After` (a 503 or 429 of an upstream that knows when it will take calls
 * again), at least that long; a `Retry-After` beyond `maxBackoffMs` is not waited for: the answer
 * goes back to the caller, Retry-After and all (Envoy's rate-limited retry back-off does likewise).
 * What the last attempt produced (response or failure) is what the call produces.
 */
export function retry(options: RetryLayerOptions): Layer {
  const { policy, budget, metrics } = options;
  const random = options.random ?? Math.random;
  // Counter children by service, resolved once (prom-client hashes the labels on every inc otherwise).
  const retries = labelCache((service: string) => metrics.upstreamRetries.labels({ service }));
  const exhausted = labelCache((service: string) => metrics.upstreamRetryBudgetExhausted.labels({ service }));
  return (next) => async (call) => {
    budget?.recordRequest();
    const resendable = call.body === null || Buffer.isBuffer(call.body);
    const maxRetries = call.controls?.maxRetries;
    const attempts = maxRetries === undefined ? policy.attempts : maxRetries + 1;
    let wait = 0;
    for (let attempt = 1; ; attempt += 1) {
      let answer: Answer | undefined;
      let failure: AttemptFailure | undefined;
      let outcome: AttemptOutcome;
      try {
        answer = await next({ ...call, attempt, backoffMs: wait, headers: withDeadlineLeft(call) });
        // A gRPC call still streaming is not retried whatever it ends with: its answer has begun.
        outcome = {
          kind: 'status',
          status: statusOf(answer) ?? answer.statusCode,
          grpcStatus: answer.grpc ? answer.body.grpcStatus : undefined,
        };
      } catch (err) {
        if (!(err instanceof AttemptFailure)) throw err;
        failure = err;
        outcome = { kind: err.kind };
      }
      const retryable =
        attempt < attempts &&
        matchesRetryOn(policy, outcome) &&
        resendable &&
        (!reachedUpstream(outcome) || isSafeToResend(call.method, call.headers)) &&
        !call.signal.aborted;
      // Read only for an answer that would be retried: not on every call's way back.
      const askedWait = retryable && answer ? retryAfterMs(answer.headers['retry-after']) : undefined;
      const wanted = retryable && (askedWait === undefined || askedWait <= policy.maxBackoffMs);
      if (wanted && budget !== undefined && !budget.tryWithdraw()) {
        exhausted(call.service).inc();
      } else if (wanted) {
        retries(call.service).inc();
        if (answer) answer.body.discard();
        wait = Math.max(backoffMs(attempt, policy, random), askedWait ?? 0);
        if (wait > 0) await sleep(wait, call.signal);
        continue;
      }
      if (answer) return answer;
      throw failure ?? new Error('attempt ended without an answer');
    }
  };
}

/**
 * A gRPC call's headers with its `grpc-timeout` lowered to what is left of the deadline, as Envoy
 * sends it on every attempt: an upstream retried after a slow failure and a backoff must not work
 * on past the moment the caller gives up.
 */
function withDeadlineLeft(call: Call): IncomingHttpHeaders {
  if (call.deadlineAt === undefined) return call.headers;
  return { ...call.headers, 'grpc-timeout': formatGrpcTimeout(call.deadlineAt - Date.now()) };
}

// ---------------------------------------------------------------------------------------------
// Attempt layers

export interface EndpointPicker {
  /** The endpoint of this attempt (its balancer, its split group), or undefined when none is left. */
  pick(call: Call): Endpoint | undefined;
  /** What is known of why no endpoint is left (a DNS error), for the error detail. */
  problem?(): string | undefined;
}

/** Picks the endpoint of this attempt; none left is 503 `no-healthy-upstream`. */
export function pickEndpoint(picker: EndpointPicker): Layer {
  return (next) => (call) => {
    const endpoint = picker.pick(call);
    if (endpoint === undefined) {
      const problem = picker.problem?.();
      const detail = `service ${call.service} has no healthy endpoint${problem ? ` (${problem})` : ''}`;
      return Promise.reject(
        new MeshError('MESH_NO_HEALTHY_UPSTREAM', detail, {
          headers: { 'x-mesh-error': 'no-healthy-upstream', 'retry-after': '1' },
        }),
      );
    }
    call.tried.add(endpoint);
    return next({ ...call, endpoint });
  };
}

/** A CLIENT span per attempt, child of the egress SERVER span, its context sent to the upstream. */
export function clientSpan(tracer: Tracer): Layer {
  return (next) => async (call) => {
    const endpoint = call.endpoint!;
    const span = tracer.startSpan(call.method, { kind: SpanKind.CLIENT }, call.context);
    // Attributes only for a span that records them: without an exporter the tracer is a no-op.
    if (span.isRecording()) {
      span.setAttributes({
        'http.request.method': call.method,
        'server.address': endpoint.url.hostname,
        'server.port': Number(endpoint.url.port || (endpoint.url.protocol === 'https:' ? 443 : 80)),
        'url.full': `${endpoint.origin}${call.path}`,
        'mesh.service': call.service,
        'mesh.retry.backoff_ms': call.backoffMs,
      });
      if (endpoint.group !== undefined) span.setAttribute('mesh.split.group', endpoint.group);
      if (call.attempt > 1) span.setAttribute('http.request.resend_count', call.attempt - 1);
    }
    const headers: IncomingHttpHeaders = { ...call.headers };
    propagation.inject(trace.setSpan(call.context, span), headers);
    try {
      const answer = await next({ ...call, headers });
      if (span.isRecording()) {
        span.setAttribute('http.response.status_code', answer.statusCode);
        judgeAnswer(answer, (status) => {
          if (answer.grpc && answer.body.grpcStatus !== undefined) {
            span.setAttribute('rpc.grpc.status_code', answer.body.grpcStatus);
          }
          if (status === undefined || status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        });
        answer.body.whenDone(() => span.end());
      }
      return answer;
    } catch (err) {
      span.setAttribute('error.type', err instanceof AttemptFailure ? err.kind : 'aborted');
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      span.end();
      throw err;
    }
  };
}

/**
 * Bounds the wait for the response headers of one attempt (`retry.perTryTimeoutMs`, or the call's
 * `x-mesh-per-try-timeout-ms`); firing is a `timeout` failure.
 */
export function perTryTimeout(configuredMs: number | undefined): Layer {
  return (next) => {
    const timed = async (call: Call, timeoutMs: number): Promise<Answer> => {
      const signal = new CallSignal(call.signal);
      let failure: AttemptFailure | undefined;
      const timer = setTimeout(() => {
        failure = new AttemptFailure(
          'timeout',
          `no response headers from ${call.endpoint?.origin ?? call.service} within ${timeoutMs} ms`,
          call.endpoint,
        );
        signal.abort(failure);
      }, timeoutMs);
      try {
        const answer = await next({ ...call, signal });
        clearTimeout(timer);
        // The body still streams under this signal: it follows the call's until the body is done.
        answer.body.whenDone(() => signal.unlink());
        return answer;
      } catch (err) {
        clearTimeout(timer);
        signal.unlink();
        throw failure !== undefined && !call.signal.aborted ? failure : err;
      }
    };
    return (call) => {
      const timeoutMs = call.controls?.perTryTimeoutMs ?? configuredMs;
      return timeoutMs === undefined ? next(call) : timed(call, timeoutMs);
    };
  };
}

/** Outcome of one attempt as outlier detection counts it (see OutlierDetector.record). */
export type OutlierRecorder = (endpoint: Endpoint, outcome: OutlierOutcome) => void;

/** Tells outlier detection (of the endpoint's group) how each attempt on an endpoint went. */
export function outlierDetection(record: OutlierRecorder): Layer {
  return (next) => (call) => {
    const endpoint = call.endpoint!;
    return next(call).then(
      (answer) => {
        judgeAnswer(answer, (status) => record(endpoint, outcomeOf(status)));
        return answer;
      },
      (err: unknown) => {
        const connectFailure = err instanceof AttemptFailure && err.kind === 'connect-failure';
        record(endpoint, connectFailure ? 'failure' : 'neutral');
        throw err;
      },
    );
  };
}

/**
 * peak_ewma: each attempt's time to its response headers, or to its failure (a timeout counts as
 * slow as it was), goes into its endpoint's latency estimate.
 */
export const latencyTracking: Layer = (next) => (call) => {
  const { latency } = call.endpoint!;
  const start = performance.now();
  return next(call).then(
    (answer) => {
      latency.observe(performance.now() - start);
      return answer;
    },
    (err: unknown) => {
      latency.observe(performance.now() - start);
      throw err;
    },
  );
};

/** `mesh_upstream_requests_total` per attempt, and the endpoint's active count for least_request. */
export function attemptMetrics(metrics: MeshMetrics): Layer {
  const count = (service: string, result: string) =>
    metrics.upstreamRequests.series({ service, result }).inc();
  return (next) => (call) => {
    const endpoint = call.endpoint!;
    endpoint.active += 1;
    return next(call).then(
      (answer) => {
        judgeAnswer(answer, (status) =>
          count(call.service, status === undefined ? 'reset' : statusClass(status)),
        );
        answer.body.whenDone(() => (endpoint.active -= 1));
        return answer;
      },
      (err: unknown) => {
        endpoint.active -= 1;
        if (err instanceof AttemptFailure) count(call.service, err.kind);
        throw err;
      },
    );
  };
}

const STATUS_CLASSES = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

function statusClass(status: number): string {
  const index = Math.floor(status / 100);
  return STATUS_CLASSES[index] ?? `${index}xx`;
}

/** Memoizes `make` by key: metric children of bounded label sets, looked up once each. */
function labelCache<T>(make: (key: string) => T): (key: string) => T {
  const cache = new Map<string, T>();
  return (key) => {
    let value = cache.get(key);
    if (value === undefined) {
      value = make(key);
      cache.set(key, value);
    }
    return value;
  };
}

/** The bottom of the chain: one request on the endpoint's keep-alive pool. */
export const transport: Send = (call) => {
  const endpoint = call.endpoint!;
  return sendUpstream(
    endpoint.pool,
    {
      path: call.path,
      method: call.method,
      headers: call.headers,
      body: call.body,
      upgrade: call.upgrade ?? null,
    },
    call.signal,
  ).then(
    (response) => ({
      statusCode: response.statusCode,
      headers: response.headers,
      body: response.body,
      endpoint,
      grpc: response.statusCode === 200 && isGrpcContentType(response.headers['content-type']),
    }),
    (err: unknown) => {
      if (call.signal.aborted) throw call.signal.reason instanceof Error ? call.signal.reason : err;
      const kind = classifyError(err);
      throw new AttemptFailure(kind, `${endpoint.origin}: ${(err as Error).message}`, endpoint, {
        cause: err,
      });
    },
  );
};
