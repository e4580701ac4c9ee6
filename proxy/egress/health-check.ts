/**
 * Active health checking of a group's endpoints, as Envoy, HAProxy and nginx do it: every
 * `intervalMs` each endpoint gets `GET <path>`, or gRPC's standard health check, on its own
 * connections (keep-alive pool or HTTP/2 session); `unhealthyThreshold`
 * failed checks in a row take it out of load balancing, `healthyThreshold` passed ones in a row put
 * it back. Outlier detection learns from the calls; this learns before a call is spent on an
 * endpoint that is up but not serving (a pod draining, an app whose dependencies are down).
 *
 * Endpoints start healthy — a Kubernetes endpoint is only listed once its pod is ready, and a
 * sidecar that starts must not refuse calls until a first round has run. When no endpoint of the
 * group is healthy, all of them are used (Envoy's panic mode): checks that fail everywhere are more
 * likely wrong than every endpoint down, and the calls' own failures still feed outlier detection.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { H2DispatchHandler, UpstreamDispatcher } from '../shared/h2-upstream.js';
import type { Endpoint, EndpointSet } from './endpoints.js';

/** What a check asks: `GET <path>` (2xx and 3xx pass), or gRPC's `grpc.health.v1.Health/Check` (SERVING passes). */
export type HealthProbe =
  { readonly kind: 'http'; readonly path: string } | { readonly kind: 'grpc'; readonly service: string };

export interface HealthCheckPolicy {
  readonly probe: HealthProbe;
  /** Check this port of the endpoint's host (a management port) instead of the endpoint's own. */
  readonly port: number | undefined;
  /** Headers of every check (lower-case names); `host` replaces the checked host:port. */
  readonly headers: Readonly<Record<string, string>>;
  readonly intervalMs: number;
  /** A check not answered (completely) within this time failed. */
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

const USER_AGENT = 'mesh-sidecar-health-check';
/** Health answers are small; past this much, the rest of a body is not kept. */
const MAX_ANSWER_BYTES = 64 * 1024;

interface ProbeAnswer {
  readonly status: number;
  readonly body: Buffer;
  readonly trailers: IncomingHttpHeaders;
}

/**
 * One request on the endpoint's own dispatcher (keep-alive pool or HTTP/2 session), or on its
 * connection to the health port, its answer read whole — so the connection stays usable — or
 * rejected after `timeoutMs`.
 */
function probe(
  dispatcher: UpstreamDispatcher,
  options: Dispatcher.DispatchOptions,
  timeoutMs: number,
): Promise<ProbeAnswer> {
  return new Promise((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let failure: Error | undefined;
    let status = 0;
    let trailers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      failure = new Error(`no answer within ${timeoutMs} ms`);
      controller?.abort(failure);
      reject(failure);
    }, timeoutMs);
    const handler: H2DispatchHandler = {
      onRequestStart(started) {
        controller = started;
        if (failure !== undefined) started.abort(failure);
      },
      onResponseTrailersOnly(fields) {
        trailers = fields;
      },
      onResponseStart(_controller, statusCode) {
        if (statusCode >= 200) status = statusCode;
      },
      onResponseData(_controller, chunk) {
        if (size >= MAX_ANSWER_BYTES) return;
        chunks.push(chunk);
        size += chunk.length;
      },
      onResponseEnd(_controller, fields) {
        clearTimeout(timer);
        if (fields !== undefined && Object.keys(fields).length > 0) trailers = fields;
        resolve({ status, body: Buffer.concat(chunks), trailers });
      },
      onResponseError(_controller, err) {
        clearTimeout(timer);
        reject(err);
      },
    };
    dispatcher.dispatch(options, handler);
  });
}

/** Protocol Buffers varint at `offset`: [value, next offset], or undefined past the end. */
function readVarint(bytes: Buffer, offset: number): [number, number] | undefined {
  let value = 0;
  for (let shift = 0, at = offset; at < bytes.length && shift < 35; shift += 7, at += 1) {
    value += (bytes[at] & 0x7f) * 2 ** shift;
    if ((bytes[at] & 0x80) === 0) return [value, at + 1];
  }
  return undefined;
}

/** `HealthCheckRequest { string service = 1; }` in one uncompressed gRPC message frame. */
export function grpcHealthRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  const length: number[] = [];
  for (let n = name.length; ; n >>>= 7) {
    if (n < 0x80) {
      length.push(n);
      break;
    }
    length.push((n & 0x7f) | 0x80);
  }
  // proto3 leaves a field at its default ("") out.
  const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, ...length]), name]);
  const frame = Buffer.alloc(5);
  frame.writeUInt32BE(message.length, 1);
  return Buffer.concat([frame, message]);
}

const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

/** The `status` of the `HealthCheckResponse` in the first message frame of `body`, by name. */
export function grpcServingStatus(body: Buffer): string {
  if (body.length < 5) return 'no message';
  if (body[0] !== 0) return 'a compressed message';
  const message = body.subarray(5, 5 + body.readUInt32BE(1));
  let status = 0;
  for (let at = 0; at < message.length;) {
    const tag = readVarint(message, at);
    if (tag === undefined) return 'a malformed message';
    const [key, next] = tag;
    const value = readVarint(message, next);
    if ((key & 7) === 0 && value !== undefined) {
      if (key >>> 3 === 1) status = value[0];
      at = value[1];
    } else if ((key & 7) === 2 && value !== undefined) {
      at = value[1] + value[0];
    } else {
      return 'a malformed message';
    }
  }
  return SERVING_STATUS[status] ?? `status ${status}`;
}

/** Runs one check: undefined when it passed, else why it failed. */
export async function checkEndpoint(
  endpoint: Endpoint,
  policy: HealthCheckPolicy,
): Promise<string | undefined> {
  const { probe: kind, timeoutMs, port } = policy;
  const dispatcher = port === undefined ? endpoint.pool : endpoint.onPort(port);
  const headers = {
    host: port === undefined ? endpoint.url.host : `${endpoint.url.hostname}:${port}`,
    'user-agent': USER_AGENT,
    ...policy.headers,
  };
  try {
    if (kind.kind === 'http') {
      const request = { path: kind.path, method: 'GET', headers, body: null };
      const { status } = await probe(dispatcher, request, timeoutMs);
      return status >= 200 && status < 400 ? undefined : `status ${status}`;
    }
    const answer = await probe(
      dispatcher,
      {
        path: '/grpc.health.v1.Health/Check',
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/grpc' },
        body: grpcHealthRequest(kind.service),
      },
      timeoutMs,
    );
    if (answer.status !== 200) return `status ${answer.status}`;
    const grpcStatus = answer.trailers['grpc-status'];
    if (grpcStatus !== '0')
      return `grpc-status ${String(grpcStatus)} ${String(answer.trailers['grpc-message'] ?? '')}`.trim();
    const serving = grpcServingStatus(answer.body);
    return serving === 'SERVING' ? undefined : serving;
  } catch (err) {
    return (err as Error).message;
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
