import { connect } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type { Logger } from 'pino';
import { Pool } from 'undici';
import type { Component, ComponentStatus, Readiness } from '../../services/runtime/component.js';
import type { Config } from '../../services/runtime/config.js';

type IngressConfig = Config['ingress'];
import { MeshError, toMeshError, type MeshErrorCode } from '../../services/runtime/errors.js';
import {
  annotateResponse,
  HttpListener,
  sendProblem,
  traceIdOf,
  type ListenerTls,
} from '../../services/runtime/http.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { H2Origin, type UpstreamDispatcher } from '../shared/h2-upstream.js';
import type { IngressContext } from './context.js';
import { forward, type ForwardDeps } from './forward.js';
import { startContext } from './request-id.js';
import { buildRules, RESTART_ONLY_KEYS, RulesError, type IngressRules } from './rules.js';
import { matchRoute, validateRequest } from './validation.js';

export interface IngressOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: ListenerTls | undefined;
  /** The app: `http://127.0.0.1:8080`. */
  readonly target: string;
  readonly timeoutMs: number;
  /** The listener also speaks HTTP/2 (h2 by ALPN with TLS, h2c with prior knowledge without). */
  readonly http2?: boolean;
  /** `http2`: the app serves HTTP/2 (a gRPC server); one multiplexed session instead of the pool. */
  readonly targetProtocol?: 'http1' | 'http2';
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  /** Absent when tracing is off: no spans, and trace headers reach the app unchanged. */
  readonly tracer: Tracer | undefined;
  /** How often the app's port is probed for readiness. */
  readonly appProbeIntervalMs?: number;
  /**
   * The rules part of the ingress config (OpenAPI, JWT, rate limits, body limit). Built in
   * `start()`; replaced by `reconfigure()`. Absent: forward everything.
   */
  readonly rules?: IngressConfig | undefined;
  /** Relative paths of the config (`openapi`, `jwt.keysFile`) are resolved against this directory. */
  readonly baseDir?: string;
}

export type ReloadVerdict = { ok: true; commit(): void } | { ok: false; problems: string[] };

const REJECTION_REASONS: Partial<Record<MeshErrorCode, string>> = {
  MESH_BAD_REQUEST: 'validation',
  MESH_UNAUTHORIZED: 'unauthorized',
  MESH_FORBIDDEN: 'forbidden',
  MESH_NOT_FOUND: 'not_found',
  MESH_METHOD_NOT_ALLOWED: 'method_not_allowed',
  MESH_PAYLOAD_TOO_LARGE: 'too_large',
  MESH_UNSUPPORTED_MEDIA_TYPE: 'unsupported_media_type',
  MESH_RATE_LIMITED: 'rate_limited',
  MESH_DRAINING: 'draining',
  MESH_OVERLOADED: 'overloaded',
  MESH_NOT_READY: 'not_ready',
};

const FORWARD_ONLY: IngressRules = {
  api: undefined,
  strict: false,
  validateResponses: false,
  maxBodyBytes: Number.MAX_SAFE_INTEGER,
  auth: undefined,
  limiter: undefined!,
};

/**
 * The ingress listener: other services call the app through it. Each request runs a fixed
 * pipeline of small steps — request id → route match → rate limit → auth → (rate limit by
 * subject) → validation → forward — on node:http with an undici keep-alive pool to the app.
 * Any step may refuse the request with a MeshError, answered as problem+json.
 */
export class IngressComponent implements Component {
  readonly name = 'ingress';
  private readonly listener: HttpListener;
  private readonly pool: UpstreamDispatcher;
  private readonly targetUrl: URL;
  private readonly forwardDeps: ForwardDeps;
  private rules: IngressRules;
  /** Requests admitted under `maxConcurrentRequests` whose response has not closed. */
  private inFlight = 0;
  private appliedConfig: IngressConfig | undefined;
  private appReachable: boolean | undefined;
  private probeTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: IngressOptions) {
    this.targetUrl = new URL(options.target);
    const timeouts = { headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs };
    this.pool =
      options.targetProtocol === 'http2'
        ? new H2Origin(this.targetUrl.origin, timeouts)
        : new Pool(this.targetUrl.origin, { connections: 128, keepAliveTimeout: 30_000, ...timeouts });
    this.listener = new HttpListener({
      name: 'ingress',
      host: options.host,
      port: options.port,
      tls: options.tls,
      handler: (req, res) => void this.handle(req, res),
      acceptUpgrades: true,
      http2: options.http2,
      metrics: options.metrics,
      logger: options.logger,
    });
    this.rules = FORWARD_ONLY;
    this.forwardDeps = {
      pool: this.pool,
      origin: this.targetUrl.origin,
      timeoutMs: options.timeoutMs,
      protocol: options.tls ? 'https' : 'http',
      logger: options.logger,
      metrics: options.metrics,
      grpcWeb: options.targetProtocol === 'http2',
    };
  }

  get url(): string {
    return this.listener.url;
  }

  async start(): Promise<void> {
    // Rules first: a broken OpenAPI document or key file fails start-up before the port is bound.
    if (this.options.rules) {
      try {
        this.rules = await buildRules(
          this.options.rules,
          this.options.baseDir ?? process.cwd(),
          this.options.metrics,
        );
      } catch (err) {
        if (err instanceof RulesError) throw new Error(`${err.pointer}: ${err.message}`);
        throw err;
      }
      this.appliedConfig = this.options.rules;
      this.logRules('ingress rules loaded');
    }
    await this.listener.listen();
    await this.probeApp();
    this.probeTimer = setInterval(() => void this.probeApp(), this.options.appProbeIntervalMs ?? 2_000);
    this.probeTimer.unref();
  }

  /**
   * Prepares a new ingress config (SIGHUP). Rule changes are built now and applied by `commit()`;
   * changes to the listener or the app connection need a restart and are refused.
   */
  async reconfigure(next: IngressConfig): Promise<ReloadVerdict> {
    const previous = this.appliedConfig ?? this.options.rules;
    const problems: string[] = [];
    for (const key of RESTART_ONLY_KEYS) {
      if (JSON.stringify(next[key]) !== JSON.stringify(previous?.[key])) {
        problems.push(`/ingress/${key}: changing this needs a restart`);
      }
    }
    if (problems.length > 0) return { ok: false, problems };
    try {
      const rules = await buildRules(next, this.options.baseDir ?? process.cwd(), this.options.metrics);
      return {
        ok: true,
        commit: () => {
          // Mirror pools and the audit stream of the old rules; requests still holding them end first.
          const replaced = this.rules.policies;
          this.rules = rules;
          if (replaced !== undefined) void replaced.close();
          this.appliedConfig = next;
          this.logRules('ingress rules reloaded');
        },
      };
    } catch (err) {
      if (err instanceof RulesError) return { ok: false, problems: [`${err.pointer}: ${err.message}`] };
      return { ok: false, problems: [`/ingress: ${(err as Error).message}`] };
    }
  }

  readiness(): Readiness {
    if (!this.listener.isListening) return { ready: false, reason: 'ingress listener not bound' };
    if (this.appReachable !== true) {
      return { ready: false, reason: `app at ${this.targetUrl.origin} is not accepting connections` };
    }
    return { ready: true };
  }

  /** Listener, app and rules as the admin status page shows them. */
  status(): ComponentStatus {
    const { api, auth, strict, validateResponses, maxBodyBytes } = this.rules;
    return {
      listener: this.listener.status(),
      target: this.targetUrl.origin,
      appReachable: this.appReachable ?? null,
      rules: {
        openapiOperations: api?.operationCount ?? 0,
        openapiStrict: strict,
        validateResponses,
        maxBodyBytes:
          Number.isSafeInteger(maxBodyBytes) && maxBodyBytes < Number.MAX_SAFE_INTEGER ? maxBodyBytes : null,
        jwt: auth !== undefined,
        rateLimitRules: this.appliedConfig?.rateLimits.length ?? 0,
      },
    };
  }

  async drain(): Promise<void> {
    clearInterval(this.probeTimer);
    await this.listener.drain();
    await this.pool.close();
    await this.rules.policies?.close();
  }

  async stop(): Promise<void> {
    clearInterval(this.probeTimer);
    await this.listener.stop();
    await this.pool.destroy();
    await this.rules.policies?.close();
  }

  private logRules(message: string): void {
    const { api, auth, strict } = this.rules;
    this.options.logger.info(
      { operations: api?.operationCount ?? 0, openapiStrict: strict, jwt: auth !== undefined },
      message,
    );
  }

  /** Readiness of the app is a TCP connect to its port: cheap, and needs no health route in the app. */
  private probeApp(): Promise<void> {
    return new Promise((resolve) => {
      const port = Number(this.targetUrl.port || (this.targetUrl.protocol === 'https:' ? 443 : 80));
      const socket = connect({ host: this.targetUrl.hostname, port });
      socket.setTimeout(1_000);
      const settle = (reachable: boolean) => {
        socket.destroy();
        if (reachable !== this.appReachable) {
          this.options.logger.info({ app: this.targetUrl.origin, reachable }, 'app reachability changed');
        }
        this.appReachable = reachable;
        resolve();
      };
      socket.once('connect', () => settle(true));
      socket.once('timeout', () => settle(false));
      socket.once('error', () => settle(false));
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ctx = startContext(req, res);
    // One snapshot per request: a reload in the middle of it does not mix old and new rules.
    const rules = this.rules;
    const { traceContext, recordingSpan } = this.startSpan(ctx);
    try {
      await this.pipeline(ctx, rules, traceContext, recordingSpan);
    } catch (err) {
      this.reject(ctx, err);
    }
  }

  /**
   * The request's SERVER span, continued from the caller's trace. Tracing off: no span, the trace
   * headers reach the app in the copied headers, and the access log takes the caller's trace id.
   */
  private startSpan(ctx: IngressContext): { traceContext?: Context; recordingSpan?: Span } {
    const { req, res } = ctx;
    const tracer = this.options.tracer;
    if (tracer === undefined) {
      annotateResponse(res, { route: ctx.route, traceId: traceIdOf(req.headers.traceparent) });
      return {};
    }
    const parent = propagation.extract(context.active(), req.headers);
    const span = tracer.startSpan(`${ctx.method} ingress`, { kind: SpanKind.SERVER }, parent);
    annotateResponse(res, { route: ctx.route, traceId: span.spanContext().traceId });
    // Attributes and the end of the span only when it records (a sampler may say no).
    const recording = span.isRecording();
    if (recording) {
      span.setAttributes({ 'http.request.method': ctx.method, 'url.path': ctx.path });
      res.once('close', () => {
        span.setAttribute('http.response.status_code', res.statusCode);
        if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      });
    }
    return { traceContext: trace.setSpan(parent, span), recordingSpan: recording ? span : undefined };
  }

  /** The steps after the span: each may refuse the request by throwing a MeshError. */
  private async pipeline(
    ctx: IngressContext,
    rules: IngressRules,
    traceContext: Context | undefined,
    recordingSpan: Span | undefined,
  ): Promise<void> {
    if (this.listener.isDraining) {
      throw new MeshError('MESH_DRAINING', 'sidecar is shutting down', { headers: { 'retry-after': '1' } });
    }
    if (rules.maxConcurrentRequests !== undefined) this.admit(ctx, rules.maxConcurrentRequests);
    // ingress.routes policies (IP, CORS, faults, headers, mirror); undefined when none are configured.
    if (rules.pre !== undefined && (await rules.pre(ctx))) return;
    matchRoute(ctx, rules.api);
    if (rules.api) {
      annotateResponse(ctx.res, { route: ctx.route });
      if (recordingSpan !== undefined) {
        recordingSpan.updateName(`${ctx.method} ${ctx.route}`);
        recordingSpan.setAttribute('http.route', ctx.route);
      }
    }
    rules.limiter?.check(ctx, 'before-auth');
    if (rules.auth) await rules.auth.authenticate(ctx);
    rules.limiter?.check(ctx, 'after-auth');
    await validateRequest(ctx, rules);
    await forward(ctx, this.forwardDeps, traceContext, rules.validateResponses);
  }

  /**
   * Load shedding (`ingress.maxConcurrentRequests`): counts the request in until its response closes,
   * or refuses it at once when the limit is reached — before any work is spent on it.
   */
  private admit(ctx: IngressContext, limit: number): void {
    if (this.inFlight >= limit) {
      throw new MeshError(
        'MESH_OVERLOADED',
        `${limit} requests are already in the works (ingress.maxConcurrentRequests)`,
        {
          headers: { 'retry-after': '1', 'x-mesh-error': 'overloaded' },
        },
      );
    }
    this.inFlight += 1;
    ctx.res.once('close', () => (this.inFlight -= 1));
  }

  private reject(ctx: IngressContext, err: unknown): void {
    const error = toMeshError(err);
    if (error.code === 'MESH_INTERNAL') {
      this.options.logger.error({ err, requestId: ctx.requestId }, 'ingress request failed');
    }
    const reason = REJECTION_REASONS[error.code];
    if (reason) this.options.metrics.ingressRejections.inc({ route: ctx.route, reason });
    sendProblem(ctx.res, error, ctx.path, ctx.requestId);
  }
}
