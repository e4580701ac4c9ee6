import { EventEmitter } from 'node:events';
import type { OutgoingHttpHeaders } from 'node:http';
import { propagation, type Context } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { errors as undiciErrors, type Pool } from 'undici';
import { MeshError } from '../../services/runtime/errors.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { addForwardingHeaders, withoutHopByHop } from '../shared/headers.js';
import { relay } from '../shared/relay.js';
import type { IngressContext } from './context.js';
import { isJsonMediaType, responseValidator, toFieldErrors } from './openapi/compile.js';

/** Responses larger than this are relayed without being validated. */
const MAX_VALIDATED_RESPONSE_BYTES = 1 << 20;

export interface ForwardDeps {
  readonly pool: Pool;
  readonly origin: string;
  readonly timeoutMs: number;
  readonly protocol: 'http' | 'https';
  readonly logger: Logger;
  readonly metrics: MeshMetrics;
}

/**
 * The last step: sends the request to the app over the keep-alive pool, streaming both bodies,
 * with hop-by-hop headers removed, forwarding headers and `traceparent` added. Maps failures to
 * 504 (timeout) and 502 (app down or reset). Optionally checks the response against the document.
 */
export async function forward(
  ctx: IngressContext,
  deps: ForwardDeps,
  traceContext: Context,
  validateResponse: boolean,
): Promise<void> {
  const { req, res } = ctx;
  const headers: OutgoingHttpHeaders = withoutHopByHop(req.headers);
  addForwardingHeaders(headers, {
    clientAddress: req.socket.remoteAddress,
    protocol: deps.protocol,
    host: req.headers.host,
  });
  headers['x-request-id'] = ctx.requestId;
  if (Buffer.isBuffer(ctx.body)) headers['content-length'] = String(ctx.body.length);
  propagation.inject(traceContext, headers);

  // The pool's headersTimeout/bodyTimeout (= ingress.timeoutMs) bound the app's answer, so no timer
  // per request; a client that goes away cancels the upstream request through an EventEmitter
  // signal, which undici accepts and which costs far less than an AbortController per request.
  const cancel = new EventEmitter();
  res.once('close', () => {
    if (!res.writableFinished) cancel.emit('abort');
  });
  try {
    const upstream = await deps.pool.request({
      path: req.url ?? '/',
      method: ctx.method,
      headers: headers as Record<string, string>,
      body: ctx.body,
      signal: cancel,
    });
    res.writeHead(upstream.statusCode, withoutHopByHop(upstream.headers));
    const contentType = upstream.headers['content-type'];
    const validator =
      validateResponse &&
      ctx.operation &&
      typeof contentType === 'string' &&
      isJsonMediaType(contentType.split(';')[0].trim().toLowerCase())
        ? responseValidator(ctx.operation, upstream.statusCode)
        : undefined;
    let chunks: Buffer[] | undefined = validator ? [] : undefined;
    let size = 0;
    if (chunks) {
      upstream.body.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_VALIDATED_RESPONSE_BYTES) chunks = undefined;
        else chunks?.push(chunk);
      });
    }
    await relay(upstream.body, res);
    if (validator && chunks) {
      let body: unknown;
      let problems;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
        problems = validator(body)
          ? []
          : toFieldErrors(
              (validator.errors ?? []).map((e) => ({ ...e, instancePath: `/body${e.instancePath}` })),
            );
      } catch (err) {
        problems = [{ in: 'body', path: '', message: `invalid JSON: ${(err as Error).message}` }];
      }
      if (problems.length > 0) {
        deps.metrics.ingressResponseValidationFailures.inc({
          route: ctx.route,
          method: ctx.method,
          status: String(upstream.statusCode),
        });
        deps.logger.warn(
          { requestId: ctx.requestId, route: ctx.route, status: upstream.statusCode, errors: problems },
          'app response does not match the OpenAPI document',
        );
      }
    }
  } catch (err) {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof undiciErrors.HeadersTimeoutError) {
      throw new MeshError('MESH_TIMEOUT', `app did not answer within ${deps.timeoutMs} ms`, {
        headers: { 'x-mesh-error': 'timeout' },
      });
    }
    if (err instanceof MeshError) throw err;
    // A body stream that failed its size limit surfaces as the cause of undici's error.
    if ((err as Error).cause instanceof MeshError) throw (err as Error).cause as MeshError;
    deps.logger.warn({ requestId: ctx.requestId, err: (err as Error).message }, 'ingress forward failed');
    throw new MeshError('MESH_UPSTREAM_FAILED', `app at ${deps.origin} failed: ${(err as Error).message}`, {
      cause: err,
      headers: { 'x-mesh-error': 'upstream-reset' },
    });
  }
}
