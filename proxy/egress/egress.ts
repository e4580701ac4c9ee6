/**
 * The egress listener (127.0.0.1:15001): the app's outgoing calls. A plain node:http listener routes
 * each request to a service (router.ts) and hands it to that service's dispatch chain (service.ts);
 * this file only turns HTTP in and out of that chain.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Component, ComponentStatus, Readiness } from '../../services/runtime/component.js';
import type { Config } from '../../services/runtime/config.js';
import { MeshError } from '../../services/runtime/errors.js';
import {
  annotateResponse,
  hasBody,
  REQUEST_ID_HEADER,
  requestIdOf,
  HttpListener,
  sendProblem,
  traceIdOf,
  responseCompleted,
} from '../../services/runtime/http.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { addForwardingHeaders, withoutHopByHop } from '../shared/headers.js';
import type { Resolve } from './discovery.js';
import { CallSignal } from '../shared/signal.js';
import { joinIfUpgraded, upgradeOf } from '../shared/tunnel.js';
import type { UpstreamBody } from '../shared/upstream.js';
import { takeCallControls } from './call-controls.js';
import { AttemptFailure } from './dispatch.js';
import {
  servicePolicyFromConfig,
  zeroConfigPolicy,
  ZERO_CONFIG_SERVICE,
  type ServicePolicy,
} from './policy.js';
import { Router } from './router.js';
import { buildServiceIdRouter } from './service-id.js';
import { UpstreamService } from './service.js';

type EgressSection = Config['egress'];

export interface EgressOptions {
  readonly config: EgressSection;
  /** Zero-config mode's `UPSTREAM_URL`: the catch-all service for requests no service or route claims. */
  readonly upstreamUrl?: string | undefined;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  /** Absent when tracing is off: no spans, and trace headers reach the upstream unchanged. */
  readonly tracer: Tracer | undefined;
  /** Randomness of jitter and least_request; tests pin it. */
  readonly random?: (() => number) | undefined;
  /** Clock of breakers and outlier detection; tests move it. */
  readonly now?: (() => number) | undefined;
  /** Resolver of DNS discovery; the system resolver when absent. */
  readonly resolve?: Resolve | undefined;
}

/** Whether the egress listener has anything to do (see the schema's `egress` description). */
export function egressWanted(config: EgressSection, upstreamUrl: string | undefined): boolean {
  return config.enabled && (Object.keys(config.services).length > 0 || upstreamUrl !== undefined);
}

/** Client-gone reason for the call's signal, so the chain stops without answering anyone. */
class ClientGone extends Error {
  override readonly name = 'ClientGone';
}

export class EgressComponent implements Component {
  readonly name = 'egress';
  private readonly listener: HttpListener;
  private readonly services = new Map<string, UpstreamService>();
  private readonly router: Router;
  private readonly maxRetryBodyBytes: number;
  private readonly protocol: 'http' | 'https';

  constructor(private readonly options: EgressOptions) {
    const { config, metrics, logger, tracer, random, now, resolve } = options;
    const policies: ServicePolicy[] = Object.entries(config.services).flatMap(([name, service]) =>
      service === undefined ? [] : [servicePolicyFromConfig(name, service)],
    );
    if (options.upstreamUrl !== undefined && !config.services[ZERO_CONFIG_SERVICE]) {
      policies.push(zeroConfigPolicy(options.upstreamUrl));
    }
    for (const policy of policies) {
      this.services.set(
        policy.name,
        new UpstreamService({ policy, metrics, tracer, random, now, resolve, logger }),
      );
    }
    this.router = new Router(
      policies,
      config.routes,
      options.upstreamUrl === undefined ? undefined : ZERO_CONFIG_SERVICE,
      buildServiceIdRouter(config.serviceIds, policies),
    );
    this.maxRetryBodyBytes = config.maxRetryBodyBytes;
    this.protocol = config.tls ? 'https' : 'http';
    this.listener = new HttpListener({
      name: 'egress',
      host: config.host,
      port: config.port,
      tls: config.tls,
      handler: (req, res) => void this.handle(req, res),
      acceptUpgrades: true,
      http2: config.http2,
      metrics,
      logger,
    });
  }

  get url(): string {
    return this.listener.url;
  }

  /** The service by name (tests look at endpoints and counters). */
  service(name: string): UpstreamService | undefined {
    return this.services.get(name);
  }

  async start(): Promise<void> {
    for (const route of this.options.config.routes) {
      if (!this.services.has(route.service)) {
        throw new Error(`egress route ${route.prefix} names unknown service "${route.service}"`);
      }
    }
    for (const [name, service] of Object.entries(this.options.config.services)) {
      if (service?.split !== undefined && (service.endpoints.length > 0 || service.dns !== undefined)) {
        throw new Error(`egress service "${name}" has a split: its endpoints and dns go in the split groups`);
      }
    }
    await Promise.all([...this.services.values()].map((service) => service.start()));
    await this.listener.listen();
  }

  readiness(): Readiness {
    return this.listener.isListening
      ? { ready: true }
      : { ready: false, reason: 'egress listener not bound' };
  }

  /**
   * Listener and services as the admin status page shows them: endpoints (ejected and unhealthy ones marked),
   * breaker state and retry budget use of each service.
   */
  status(): ComponentStatus {
    const services = [...this.services.values()].map((service) => {
      const measured = service.policy.loadBalancer === 'peak_ewma';
      const groups = service.groups.map((group) => {
        const endpoints = group.endpoints.all.map((endpoint) => ({
          origin: endpoint.origin,
          ejected: group.outliers?.isEjected(endpoint) ?? false,
          healthy: group.health?.isHealthy(endpoint) ?? true,
          active: endpoint.active,
          // peak_ewma's latency estimate (ms, rounded to µs); null for balancers that do not measure it.
          latencyMs: measured ? Math.round(endpoint.latency.current() * 1000) / 1000 : null,
        }));
        return {
          name: group.name === '' ? null : group.name,
          weight: group.weight,
          endpoints,
          ejected: endpoints.filter((endpoint) => endpoint.ejected).length,
          unhealthy: endpoints.filter((endpoint) => !endpoint.healthy).length,
        };
      });
      return {
        name: service.name,
        loadBalancer: service.policy.loadBalancer,
        endpoints: groups.reduce((sum, group) => sum + group.endpoints.length, 0),
        ejected: groups.reduce((sum, group) => sum + group.ejected, 0),
        // null: the service has no active health checks.
        unhealthy: service.policy.healthCheck
          ? groups.reduce((sum, group) => sum + group.unhealthy, 0)
          : null,
        groups,
        breaker: service.breaker?.status() ?? null,
        retryBudget: service.retryBudget?.usage() ?? null,
        oauth2: service.tokens !== undefined,
      };
    });
    return { listener: this.listener.status(), services };
  }

  async drain(): Promise<void> {
    await this.listener.drain();
    await Promise.all([...this.services.values()].map((service) => service.close()));
  }

  async stop(): Promise<void> {
    await this.listener.stop();
    await Promise.all([...this.services.values()].map((service) => service.destroy()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { tracer, logger } = this.options;
    // Echoed with the response head (see requestIdOf).
    const requestId = requestIdOf(req);
    const method = req.method ?? 'GET';
    const target = this.router.route(req.headers.host, req.url ?? '/', req.headers, method);

    // Tracing off: no span, and the app's trace headers travel on in the copied headers.
    const parent = tracer === undefined ? ROOT_CONTEXT : propagation.extract(context.active(), req.headers);
    const span = tracer?.startSpan(`${method} egress`, { kind: SpanKind.SERVER }, parent);
    const recording = span?.isRecording() === true;
    if (recording) {
      span.setAttributes({ 'http.request.method': method, 'url.path': req.url ?? '/' });
      if (target.service !== undefined) span.setAttribute('mesh.service', target.service);
    }
    annotateResponse(res, {
      route: target.service === undefined ? 'unknown' : target.route,
      traceId: span === undefined ? traceIdOf(req.headers.traceparent) : span.spanContext().traceId,
    });
    // The request's one `close` listener: ends the span and, when the app went away before the
    // response ended, aborts the call (its signal stays linked while the body streams) and drops
    // the upstream body.
    const gone = new CallSignal();
    let upstreamBody: UpstreamBody | undefined;
    res.on('close', () => {
      const finished = responseCompleted(res);
      if (recording) {
        span.setAttribute('http.response.status_code', res.statusCode);
        if (res.statusCode >= 500 || !finished) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      }
      if (finished) return;
      gone.abort(new ClientGone('the app closed the connection'));
      upstreamBody?.discard();
    });

    if (target.service === undefined) {
      req.resume();
      sendProblem(
        res,
        new MeshError('MESH_NOT_FOUND', `no egress service or route for host "${target.host}"`),
        req.url,
        requestId,
      );
      return;
    }
    if (this.listener.isDraining) {
      req.resume();
      sendProblem(
        res,
        new MeshError('MESH_DRAINING', 'sidecar is shutting down', { headers: { 'retry-after': '1' } }),
        req.url,
        requestId,
      );
      return;
    }
    const service = this.services.get(target.service)!;

    // The upstream sees its own authority (undici sets Host from the endpoint), the app's in x-forwarded-host.
    const headers = withoutHopByHop(req.headers, 'host') as Record<string, string | string[]>;
    addForwardingHeaders(headers, {
      clientAddress: req.socket.remoteAddress,
      protocol: this.protocol,
      host: req.headers.host,
    });
    headers['x-request-id'] = requestId;
    const hashHeader = service.policy.hashHeader;
    const hashValue = hashHeader === undefined ? undefined : req.headers[hashHeader];

    try {
      const controls = takeCallControls(headers);
      const body = await this.readBody(req);
      const answer = await service.send({
        service: service.name,
        method,
        path: target.path,
        headers,
        body,
        signal: gone,
        context: span === undefined ? parent : trace.setSpan(parent, span),
        hashKey: Array.isArray(hashValue) ? hashValue.join(',') : hashValue,
        attempt: 1,
        backoffMs: 0,
        tried: new Set(),
        upgrade: upgradeOf(req),
        controls,
      });
      if (joinIfUpgraded(res, answer, requestId)) return;
      const responseHeaders = withoutHopByHop(answer.headers);
      responseHeaders[REQUEST_ID_HEADER] ??= requestId;
      res.writeHead(answer.statusCode, responseHeaders);
      upstreamBody = answer.body;
      // A response closed early discards the body: the `close` listener above does it.
      if (res.destroyed) answer.body.discard();
      else answer.body.pipeTo(res);
    } catch (err) {
      if (gone.aborted) return;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const failure = this.toMeshError(service, err);
      if (failure.status >= 500) {
        logger.warn({ requestId, service: service.name, err: (err as Error).message }, 'egress call failed');
      }
      sendProblem(res, failure, req.url, requestId);
    }
  }

  /**
   * Keeps a body of up to `maxRetryBodyBytes` in memory so it can be sent again; a larger one is
   * streamed (what was read, then the rest) and the call is not retried.
   */
  private async readBody(req: IncomingMessage): Promise<Buffer | Readable | null> {
    // No body: nothing to read. node:http dumps the (empty) request once the response finishes;
    // resuming it here ran a chain of some ten nextTicks per call (resume, end, auto-destroy).
    if (!hasBody(req)) return null;
    const chunks: Buffer[] = [];
    let size = 0;
    const iterator = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    for (;;) {
      const step: IteratorResult<Buffer> = await iterator.next();
      if (step.done) return Buffer.concat(chunks, size);
      chunks.push(step.value);
      size += step.value.length;
      if (size > this.maxRetryBodyBytes) {
        return Readable.from(
          (async function* () {
            yield* chunks;
            for (;;) {
              const next = await iterator.next();
              if (next.done) return;
              yield next.value;
            }
          })(),
          { objectMode: false },
        );
      }
    }
  }

  private toMeshError(service: UpstreamService, err: unknown): MeshError {
    if (err instanceof MeshError) return err;
    if (err instanceof AttemptFailure) {
      const message = `upstream ${service.name} failed (${err.kind}): ${err.message}`;
      if (err.kind === 'timeout' && service.policy.whenExhausted === 'by-cause') {
        return new MeshError('MESH_TIMEOUT', message, { cause: err, headers: { 'x-mesh-error': 'timeout' } });
      }
      return new MeshError('MESH_UPSTREAM_FAILED', message, {
        cause: err,
        headers: { 'x-mesh-error': err.kind === 'timeout' ? 'timeout' : 'upstream-reset' },
      });
    }
    return new MeshError('MESH_INTERNAL', 'egress failed', { cause: err });
  }
}
