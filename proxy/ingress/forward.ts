import type { OutgoingHttpHeaders } from 'node:http';
import { propagation, type Context } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { errors as undiciErrors } from 'undici';
import { MeshError } from '../../services/runtime/errors.js';
import { grpcTimeoutMs, isGrpc, REQUEST_ID_HEADER } from '../../services/runtime/http.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { addForwardingHeaders, withoutHopByHop } from '../shared/headers.js';
import type { UpstreamDispatcher } from '../shared/h2-upstream.js';
import { joinIfUpgraded, upgradeOf } from '../shared/tunnel.js';
import { sendUpstream, type UpstreamResponse } from '../shared/upstream.js';
import type { IngressContext } from './context.js';
import { grpcRequestBody, grpcWebMode, relayAsGrpcWeb, toGrpcRequest } from './grpc-web.js';
import { isJsonMediaType, responseValidator, toFieldErrors } from './openapi/compile.js';

/** Responses larger than this are relayed without being validated. */
const MAX_VALIDATED_RESPONSE_BYTES = 1 << 20;

export interface ForwardDeps {
  readonly pool: UpstreamDispatcher;
  readonly origin: string;
  readonly timeoutMs: number;
  readonly protocol: 'http' | 'https';
  readonly logger: Logger;
  readonly metrics: MeshMetrics;
  /** The app speaks gRPC over HTTP/2: gRPC-Web calls are translated (grpc-web.ts). */
  readonly grpcWeb: boolean;
}

/**
 * The last step: sends the request to the app over the keep-alive pool, streaming both bodies,
 * with hop-by-hop headers removed, forwarding headers and `traceparent` added. Maps failures to
 * 504 (timeout) and 502 (app down or reset). Optionally checks the response against the document.
 */
export async function forward(
  ctx: IngressContext,
  deps: ForwardDeps,
  /** Undefined when tracing is off: the caller's trace headers are forwarded as they came. */
  traceContext: Context | undefined,
  validateResponse: boolean,
): Promise<void> {
  const { req, res } = ctx;
  const headers: OutgoingHttpHeaders = withoutHopByHop(req.headers);
  addForwardingHeaders(headers, {
    clientAddress: ctx.clientAddress,
    protocol: deps.protocol,
    host: req.headers.host,
  });
  headers['x-request-id'] = ctx.requestId;
  if (Buffer.isBuffer(ctx.body)) headers['content-length'] = String(ctx.body.length);
  const web = deps.grpcWeb ? grpcWebMode(req.headers['content-type']) : undefined;
  if (web !== undefined) toGrpcRequest(headers, web);
  // A gRPC call's deadline bounds its wait for the app instead of ingress.timeoutMs, as on the
  // egress: a call allowed 30 s is not cut at 15, one allowed 1 s ends (DEADLINE_EXCEEDED) at 1.
  const deadlineMs = isGrpc(req) ? grpcTimeoutMs(req.headers['grpc-timeout']) : undefined;
  if (traceContext !== undefined) propagation.inject(traceContext, headers);

  // The pool's headersTimeout/bodyTimeout (= ingress.timeoutMs; a gRPC deadline's, above, instead)
  // bound the app's answer, so no timer per request. A client that goes away aborts the upstream
  // request through `ctx.gone`.
  const upgrade = upgradeOf(req);
  let upstream: UpstreamResponse;
  try {
    upstream = await sendUpstream(
      deps.pool,
      {
        path: req.url ?? '/',
        method: ctx.method,
        headers: headers as Record<string, string>,
        body: web === undefined ? ctx.body : grpcRequestBody(ctx.body, web),
        upgrade: upgrade ?? null,
        ...(deadlineMs === undefined ? {} : { headersTimeout: deadlineMs, bodyTimeout: deadlineMs }),
      },
      ctx.gone,
    );
  } catch (err) {
    // The client went away: nobody to answer.
    if (ctx.gone.aborted) return;
    if (err instanceof undiciErrors.HeadersTimeoutError) {
      const limit =
        deadlineMs === undefined ? `${deps.timeoutMs} ms` : `the call's grpc-timeout (${deadlineMs} ms)`;
      throw new MeshError('MESH_TIMEOUT', `app did not answer within ${limit}`, {
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
  if (joinIfUpgraded(res, upstream, ctx.requestId)) return;
  const responseHeaders = withoutHopByHop(upstream.headers);
  responseHeaders[REQUEST_ID_HEADER] ??= ctx.requestId;
  if (web !== undefined) {
    relayAsGrpcWeb(res, upstream.statusCode, responseHeaders, upstream.body, web);
    return;
  }
  res.writeHead(upstream.statusCode, responseHeaders);
  const contentType = upstream.headers['content-type'];
  const validator =
    validateResponse &&
    ctx.operation &&
    typeof contentType === 'string' &&
    isJsonMediaType(contentType.split(';')[0].trim().toLowerCase())
      ? responseValidator(ctx.operation, upstream.statusCode)
      : undefined;
  if (validator === undefined) {
    upstream.body.pipeTo(res);
    return;
  }
  let chunks: Buffer[] | undefined = [];
  let size = 0;
  upstream.body.pipeTo(res, (chunk) => {
    size += chunk.length;
    if (size > MAX_VALIDATED_RESPONSE_BYTES) chunks = undefined;
    else chunks?.push(chunk);
  });
  res.once('finish', () => {
    if (chunks !== undefined) checkResponse(ctx, deps, upstream.statusCode, validator, Buffer.concat(chunks));
  });
}

/** Logs and counts a response that does not match its operation in the document. */
function checkResponse(
  ctx: IngressContext,
  deps: ForwardDeps,
  status: number,
  validator: NonNullable<ReturnType<typeof responseValidator>>,
  raw: Buffer,
): void {
  let problems;
  try {
    const body = JSON.parse(raw.toString('utf8')) as unknown;
    problems = validator(body)
      ? []
      : toFieldErrors(
          (validator.errors ?? []).map((e) => ({ ...e, instancePath: `/body${e.instancePath}` })),
        );
  } catch (err) {
    problems = [{ in: 'body', path: '', message: `invalid JSON: ${(err as Error).message}` }];
  }
  if (problems.length === 0) return;
  deps.metrics.ingressResponseValidationFailures.inc({
    route: ctx.route,
    method: ctx.method,
    status: String(status),
  });
  deps.logger.warn(
    { requestId: ctx.requestId, route: ctx.route, status, errors: problems },
    'app response does not match the OpenAPI document',
  );
}
