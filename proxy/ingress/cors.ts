/**
 * CORS for ingress routes: answers preflights (OPTIONS with Access-Control-Request-Method) from an
 * allowed origin itself, and marks other responses to an allowed origin. Requests without `Origin`
 * or from another origin pass untouched (the browser enforces the rest).
 */
import { REQUEST_ID_HEADER } from '../../services/runtime/http.js';
import type { IngressContext } from './context.js';

export interface CorsOptions {
  readonly allowOrigins: readonly string[];
  readonly allowMethods: readonly string[];
  readonly allowHeaders?: readonly string[] | undefined;
  readonly exposeHeaders: readonly string[];
  readonly allowCredentials: boolean;
  readonly maxAgeSeconds: number;
}

export class CorsPolicy {
  private readonly anyOrigin: boolean;
  private readonly origins: ReadonlySet<string>;
  private readonly methods: string;
  private readonly headers: string | undefined;
  private readonly expose: string | undefined;

  constructor(private readonly options: CorsOptions) {
    this.anyOrigin = options.allowOrigins.includes('*');
    this.origins = new Set(options.allowOrigins.map((origin) => origin.toLowerCase()));
    this.methods = options.allowMethods.map((m) => m.toUpperCase()).join(', ');
    this.headers = options.allowHeaders?.join(', ');
    this.expose = options.exposeHeaders.length > 0 ? options.exposeHeaders.join(', ') : undefined;
  }

  /** True when the request was a preflight and has been answered. */
  handle(ctx: IngressContext): boolean {
    const origin = ctx.req.headers.origin;
    if (origin === undefined) return false;
    if (!this.anyOrigin && !this.origins.has(origin.toLowerCase())) return false;
    const { res } = ctx;
    const echo = !this.anyOrigin || this.options.allowCredentials;
    res.setHeader('access-control-allow-origin', echo ? origin : '*');
    if (echo) res.setHeader('vary', 'Origin');
    if (this.options.allowCredentials) res.setHeader('access-control-allow-credentials', 'true');
    const requestedMethod = ctx.req.headers['access-control-request-method'];
    if (ctx.method !== 'OPTIONS' || requestedMethod === undefined) {
      if (this.expose !== undefined) res.setHeader('access-control-expose-headers', this.expose);
      return false;
    }
    res.setHeader('access-control-allow-methods', this.methods);
    const requestedHeaders = ctx.req.headers['access-control-request-headers'];
    const allowHeaders = this.headers ?? requestedHeaders;
    if (allowHeaders !== undefined && allowHeaders !== '') {
      res.setHeader('access-control-allow-headers', allowHeaders);
    }
    res.setHeader('access-control-max-age', String(this.options.maxAgeSeconds));
    res.statusCode = 204;
    res.setHeader(REQUEST_ID_HEADER, ctx.requestId);
    res.setHeader('content-length', '0');
    ctx.req.resume();
    res.end();
    return true;
  }
}
