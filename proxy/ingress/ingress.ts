import { connect } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { context, propagation, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { Pool, errors as undiciErrors } from 'undici';
import type { Component, Readiness } from '../../services/runtime/component.js';
import { MeshError } from '../../services/runtime/errors.js';
import {
  annotateResponse,
  ensureRequestId,
  HttpListener,
  sendProblem,
  type ListenerTls,
} from '../../services/runtime/http.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { addForwardingHeaders, withoutHopByHop } from '../shared/headers.js';

export interface IngressOptions {
  readonly host: string;
  readonly port: number;
  readonly tls?: ListenerTls | undefined;
  /** The app: `http://127.0.0.1:8080`. */
  readonly target: string;
  readonly timeoutMs: number;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  readonly tracer: Tracer;
  /** How often the app's port is probed for readiness. */
  readonly appProbeIntervalMs?: number;
}

/** Methods whose requests carry no body unless they say so with framing headers. */
function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/**
 * The ingress listener: other services call the app through it. This first cut forwards every
 * request to the app with keep-alive pooling, streaming both bodies, and answers problem+json
 * when the app is down (502), too slow (504) or the sidecar is draining (503).
 */
export class IngressComponent implements Component {
  readonly name = 'ingress';
  private readonly listener: HttpListener;
  private readonly pool: Pool;
  private readonly targetUrl: URL;
  private appReachable: boolean | undefined;
  private probeTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: IngressOptions) {
    this.targetUrl = new URL(options.target);
    this.pool = new Pool(this.targetUrl.origin, {
      connections: 128,
      keepAliveTimeout: 30_000,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    });
    this.listener = new HttpListener({
      name: 'ingress',
      host: options.host,
      port: options.port,
      tls: options.tls,
      handler: (req, res) => void this.forward(req, res),
      metrics: options.metrics,
      logger: options.logger,
    });
  }

  get url(): string {
    return this.listener.url;
  }

  async start(): Promise<void> {
    await this.listener.listen();
    await this.probeApp();
    this.probeTimer = setInterval(() => void this.probeApp(), this.options.appProbeIntervalMs ?? 2_000);
    this.probeTimer.unref();
  }

  readiness(): Readiness {
    if (!this.listener.isListening) return { ready: false, reason: 'ingress listener not bound' };
    if (this.appReachable !== true) {
      return { ready: false, reason: `app at ${this.targetUrl.origin} is not accepting connections` };
    }
    return { ready: true };
  }

  async drain(): Promise<void> {
    clearInterval(this.probeTimer);
    await this.listener.drain();
    await this.pool.close();
  }

  async stop(): Promise<void> {
    clearInterval(this.probeTimer);
    await this.listener.stop();
    await this.pool.destroy();
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

  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = ensureRequestId(req, res);
    annotateResponse(res, { route: 'forward' });
    const parent = propagation.extract(context.active(), req.headers);
    const span = this.options.tracer.startSpan(
      `${req.method ?? 'GET'} ingress`,
      {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': req.method ?? '', 'url.path': req.url ?? '' },
      },
      parent,
    );
    annotateResponse(res, { traceId: span.spanContext().traceId });
    res.once('close', () => {
      span.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    });

    if (this.listener.isDraining) {
      sendProblem(
        res,
        new MeshError('MESH_DRAINING', 'sidecar is shutting down', { headers: { 'retry-after': '1' } }),
      );
      req.resume();
      return;
    }

    const headers = withoutHopByHop(req.headers);
    addForwardingHeaders(headers, {
      clientAddress: req.socket.remoteAddress,
      protocol: this.listener.url.startsWith('https') ? 'https' : 'http',
      host: req.headers.host,
    });
    headers['x-request-id'] = requestId;
    propagation.inject(trace.setSpan(parent, span), headers);

    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new MeshError('MESH_TIMEOUT')), this.options.timeoutMs);
    req.once('aborted', () => abort.abort());
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    try {
      const upstream = await this.pool.request({
        path: req.url ?? '/',
        method: req.method as 'GET',
        headers: headers as Record<string, string>,
        body: hasBody(req) ? req : null,
        signal: abort.signal,
      });
      res.writeHead(upstream.statusCode, withoutHopByHop(upstream.headers));
      await pipeline(upstream.body, res);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const timedOut =
        abort.signal.reason instanceof MeshError || err instanceof undiciErrors.HeadersTimeoutError;
      const failure = timedOut
        ? new MeshError('MESH_TIMEOUT', `app did not answer within ${this.options.timeoutMs} ms`, {
            headers: { 'x-mesh-error': 'timeout' },
          })
        : new MeshError(
            'MESH_UPSTREAM_FAILED',
            `app at ${this.targetUrl.origin} failed: ${(err as Error).message}`,
            {
              cause: err,
              headers: { 'x-mesh-error': 'upstream-reset' },
            },
          );
      this.options.logger.warn({ requestId, err: (err as Error).message }, 'ingress forward failed');
      sendProblem(res, failure, req.url);
    } finally {
      clearTimeout(timer);
    }
  }
}
