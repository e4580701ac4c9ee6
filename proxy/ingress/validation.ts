import type { IncomingMessage } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import { MeshError, type FieldError } from '../../services/runtime/errors.js';
import { hasBody, isGrpc } from '../../services/runtime/http.js';
import type { IngressContext } from './context.js';
import { toFieldErrors, type BodySpec, type CompiledApi, type RequestParts } from './openapi/compile.js';
import { cookieValue, headerValue, parseCookies, pathValue, queryValue } from './openapi/params.js';

/** Finds the operation of the request in the document, and sets the `route` label to its template. */
export function matchRoute(ctx: IngressContext, api: CompiledApi | undefined): void {
  if (!api) return;
  let rest: string | undefined;
  for (const base of api.document.basePaths) {
    if (base === '' || ctx.path === base || ctx.path.startsWith(`${base}/`)) {
      rest = ctx.path.slice(base.length) || '/';
      break;
    }
  }
  const match = rest === undefined ? undefined : api.router.match(rest);
  if (!match) {
    ctx.route = 'unmatched';
    ctx.miss = { kind: 'not_found' };
    return;
  }
  ctx.route = match.template;
  const operation =
    match.value.get(ctx.method) ?? (ctx.method === 'HEAD' ? match.value.get('GET') : undefined);
  if (!operation) {
    ctx.miss = { kind: 'method', allow: [...match.value.keys()] };
    return;
  }
  ctx.operation = operation;
  ctx.pathParams = match.params;
}

function tooLarge(limit: number): MeshError {
  return new MeshError('MESH_PAYLOAD_TOO_LARGE', `request body exceeds ${limit} bytes`, {
    headers: { connection: 'close' },
  });
}

/**
 * Passes the body through, failing the stream with a 413 MeshError past `limit` bytes. A body of
 * declared length is the listener's to frame; a gRPC call's is a stream of messages with no total
 * to bound (message sizes are the gRPC server's business), so neither is counted.
 */
function limited(req: IncomingMessage, limit: number): Readable {
  const declared = req.headers['content-length'];
  if (declared !== undefined && req.headers['transfer-encoding'] === undefined) return req;
  if (isGrpc(req)) return req;
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > limit) callback(tooLarge(limit));
      else callback(null, chunk);
    },
  });
  // Joined by hand, not with stream.pipeline: that makes an AbortController per request, and a
  // DOMException when it ends — a tenth of an HTTP/2 request's CPU. Past the limit the rest of the
  // body is read and dropped, so the connection stays up to carry the 413 (which closes it).
  req.on('error', (err) => counter.destroy(err));
  counter.once('error', () => {
    req.unpipe(counter);
    req.resume();
  });
  return req.pipe(counter);
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

function mediaTypeOf(header: string | undefined): string | undefined {
  const type = header?.split(';')[0]?.trim().toLowerCase();
  return type ? type : undefined;
}

function matchMedia(spec: BodySpec, type: string | undefined) {
  if (type === undefined) return spec.media.find((m) => m.range === '*/*');
  return (
    spec.media.find((m) => m.range === type) ??
    spec.media.find((m) => m.range === `${type.split('/')[0]}/*`) ??
    spec.media.find((m) => m.range === '*/*')
  );
}

export interface ValidationRules {
  readonly api: CompiledApi | undefined;
  readonly strict: boolean;
  readonly maxBodyBytes: number;
}

/**
 * The validation step: body size (413), strict routing (404/405), content type (415), then the
 * operation's one validator over parameters and JSON body (400 listing every error). Sets
 * `ctx.body` to what the forward step sends: the validated buffer, or the size-limited stream.
 */
export async function validateRequest(ctx: IngressContext, rules: ValidationRules): Promise<void> {
  const { req } = ctx;
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > rules.maxBodyBytes) throw tooLarge(rules.maxBodyBytes);
  if (ctx.miss && rules.strict) {
    if (ctx.miss.kind === 'not_found') {
      throw new MeshError('MESH_NOT_FOUND', `no operation matches ${ctx.path}`);
    }
    throw new MeshError('MESH_METHOD_NOT_ALLOWED', `${ctx.method} is not allowed on ${ctx.route}`, {
      headers: { allow: ctx.miss.allow.join(', ') },
    });
  }
  const bodyPresent = hasBody(req);
  const operation = ctx.operation;
  if (!operation) {
    ctx.body = bodyPresent ? limited(req, rules.maxBodyBytes) : null;
    return;
  }

  const errors: FieldError[] = [];
  const parts: RequestParts = { path: {}, query: {}, header: {}, cookie: {} };
  let query: URLSearchParams | undefined;
  let cookies: Map<string, string> | undefined;
  for (const spec of operation.parameters) {
    let value: unknown;
    try {
      switch (spec.in) {
        case 'path':
          value = pathValue(spec, ctx.pathParams[spec.name] ?? '');
          break;
        case 'query':
          query ??= new URLSearchParams(ctx.query);
          value = queryValue(spec, query);
          break;
        case 'header':
          value = headerValue(spec, req.headers[spec.name.toLowerCase()]);
          break;
        case 'cookie':
          cookies ??= parseCookies(req.headers.cookie);
          value = cookieValue(spec, cookies);
          break;
      }
    } catch {
      errors.push({ in: spec.in, path: `/${spec.name}`, message: 'malformed percent-encoding' });
      continue;
    }
    if (value !== undefined) parts[spec.in][spec.name] = value;
  }

  ctx.body = null;
  if (operation.body) {
    if (!bodyPresent) {
      if (operation.body.required) errors.push({ in: 'body', path: '', message: 'request body is required' });
    } else {
      const type = mediaTypeOf(req.headers['content-type']);
      const media = matchMedia(operation.body, type);
      if (!media) {
        throw new MeshError(
          'MESH_UNSUPPORTED_MEDIA_TYPE',
          `content type ${type ?? '(none)'} is not accepted; use ${operation.body.media.map((m) => m.range).join(', ')}`,
        );
      }
      parts.mediaType = media.range;
      if (media.json) {
        const raw = await readBody(req, rules.maxBodyBytes);
        ctx.body = raw;
        try {
          parts.body = JSON.parse(raw.toString('utf8')) as unknown;
        } catch (err) {
          errors.push({ in: 'body', path: '', message: `invalid JSON: ${(err as Error).message}` });
        }
      } else {
        ctx.body = limited(req, rules.maxBodyBytes);
      }
    }
  } else if (bodyPresent) {
    ctx.body = limited(req, rules.maxBodyBytes);
  }

  if (!operation.validate(parts)) errors.push(...toFieldErrors(operation.validate.errors));
  if (errors.length > 0) {
    const name = operation.operationId ?? `${operation.method} ${operation.template}`;
    throw new MeshError('MESH_BAD_REQUEST', `request does not match operation ${name}`, { errors });
  }
}
