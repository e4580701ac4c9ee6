/**
 * Per path-prefix ingress policies (`ingress.routes`): IP allow/deny, CORS, fault injection,
 * mirroring and header rules run in one `pre` step ahead of the pipeline; the authentication of a
 * prefix (JWT, API key, basic, none) replaces the pipeline's auth step. Everything is compiled once
 * per config (start-up, reload): without routes `buildRoutePolicies` returns nothing and the
 * pipeline runs exactly as before.
 */
import type { ServerResponse } from 'node:http';
import type { Config } from '../../services/runtime/config.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { compileHeaderRules, type HeaderBag, type HeaderEdit } from '../shared/header-rules.js';
import { AddressFilter, ApiKeyChecker, BasicAuthChecker } from './access-control.js';
import { AuditLog, type AuditOptions } from './audit-log.js';
import type { IngressContext } from './context.js';
import { CorsPolicy } from './cors.js';
import { FaultInjector } from './fault-injection.js';
import { Mirror } from './mirror.js';

type RouteConfig = Config['ingress']['routes'][number];

/** A step of a route: true when it answered the request itself. */
type Step = (ctx: IngressContext) => boolean | Promise<boolean>;

export interface AuthStep {
  authenticate(ctx: IngressContext): Promise<void> | void;
}

interface CompiledRoute {
  readonly prefix: string;
  readonly steps: readonly Step[];
  readonly auth: AuthStep | undefined;
  readonly mode: 'jwt' | 'apiKey' | 'basic' | 'none' | undefined;
  /** Request header rules and Host rewrite: applied after authentication, as Envoy's router does. */
  readonly editRequest: ((ctx: IngressContext) => void) | undefined;
}

export interface RoutePolicies {
  /** Runs before route matching; true when the request has been answered. Undefined: no step. */
  readonly pre: ((ctx: IngressContext) => Promise<boolean>) | undefined;
  /** The auth step: per prefix, falling back to `jwt`. */
  readonly auth: AuthStep | undefined;
  readonly routeCount: number;
  close(): Promise<void>;
}

/** Rewrites the response headers once, when they are written (by forward() or sendProblem()). */
function editResponseHeaders(res: ServerResponse, edit: HeaderEdit): void {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the response as `this`
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, statusCode: number, ...rest: unknown[]) {
    const message = typeof rest[0] === 'string' ? rest[0] : undefined;
    const given = (message === undefined ? rest[0] : rest[1]) as HeaderBag | undefined;
    const merged: HeaderBag = { ...(this.getHeaders() as HeaderBag) };
    if (given !== undefined && !Array.isArray(given)) {
      for (const name of Object.keys(given)) merged[name.toLowerCase()] = given[name];
    }
    edit(merged);
    for (const name of this.getHeaderNames()) this.removeHeader(name);
    const clean: Record<string, string | string[] | number> = {};
    for (const name of Object.keys(merged)) {
      const value = merged[name];
      if (value !== undefined) clean[name] = value;
    }
    const args = message === undefined ? [statusCode, clean] : [statusCode, message, clean];
    return Reflect.apply(writeHead, this, args) as ServerResponse;
  };
}

async function compileRoute(
  route: RouteConfig,
  resolvePath: (file: string) => string,
  metrics: MeshMetrics,
  closers: (() => Promise<void>)[],
): Promise<CompiledRoute> {
  const prefix = route.prefix.length > 1 ? route.prefix.replace(/\/+$/, '') : route.prefix;
  const steps: Step[] = [];
  if (route.allow !== undefined || route.deny !== undefined) {
    const filter = new AddressFilter(route.allow, route.deny);
    steps.push((ctx) => {
      filter.check(ctx);
      return false;
    });
  }
  if (route.cors !== undefined) {
    const cors = new CorsPolicy(route.cors);
    steps.push((ctx) => cors.handle(ctx));
  }
  let editRequest: ((ctx: IngressContext) => void) | undefined;
  const headers = compileHeaderRules(route.headers);
  if (headers !== undefined) {
    const { request, response, host } = headers;
    if (request !== undefined || host !== undefined) {
      editRequest = (ctx) => {
        if (request !== undefined) request(ctx.req.headers);
        if (host !== undefined) ctx.req.headers.host = host;
      };
    }
    if (response !== undefined) {
      steps.push((ctx) => {
        editResponseHeaders(ctx.res, response);
        return false;
      });
    }
  }
  if (route.mirror !== undefined && route.mirror.percent > 0) {
    const mirror = new Mirror(route.mirror, prefix, metrics);
    closers.push(() => mirror.close());
    steps.push((ctx) => {
      mirror.select(ctx);
      return false;
    });
  }
  // Last: its delay is the only step that waits, so every other step runs in the request event itself
  // (the mirror's body tee must be in place before the parser pushes the first body chunk).
  if (route.fault !== undefined) {
    const fault = new FaultInjector(route.fault, prefix, metrics);
    if (fault.active) steps.push((ctx) => fault.apply(ctx));
  }
  let auth: AuthStep | undefined;
  if (route.auth === 'apiKey') {
    if (route.apiKey === undefined) throw new Error('auth apiKey needs apiKey');
    auth = await ApiKeyChecker.create(route.apiKey, resolvePath);
  } else if (route.auth === 'basic') {
    if (route.basicAuth === undefined) throw new Error('auth basic needs basicAuth');
    auth = await BasicAuthChecker.create(route.basicAuth, resolvePath);
  }
  return { prefix, steps, auth, mode: route.auth, editRequest };
}

function matches(prefix: string, path: string): boolean {
  return prefix === '/' || path === prefix || path.startsWith(`${prefix}/`);
}

/**
 * Compiles `ingress.routes`; `jwt` is the token verifier of `ingress.jwt`. Returns undefined when
 * there are no routes. Throws (with a `/ingress/routes/<i>` pointer in the message) on bad config.
 */
export async function buildRoutePolicies(
  routes: readonly RouteConfig[],
  jwt: AuthStep | undefined,
  resolvePath: (file: string) => string,
  metrics: MeshMetrics,
  audit?: AuditOptions,
): Promise<RoutePolicies | undefined> {
  if (routes.length === 0 && audit === undefined) return undefined;
  const closers: (() => Promise<void>)[] = [];
  const compiled: CompiledRoute[] = [];
  for (const [index, route] of routes.entries()) {
    try {
      compiled.push(await compileRoute(route, resolvePath, metrics, closers));
    } catch (err) {
      await Promise.all(closers.map((close) => close()));
      throw new RoutePolicyError(`/ingress/routes/${index}`, (err as Error).message);
    }
  }
  compiled.sort((a, b) => b.prefix.length - a.prefix.length);
  const find = (path: string) => compiled.find((route) => matches(route.prefix, path));

  const withSteps = compiled.some((route) => route.steps.length > 0);
  const auditLog = audit === undefined ? undefined : new AuditLog(audit);
  if (auditLog !== undefined) {
    closers.push(() => {
      auditLog.close();
      return Promise.resolve();
    });
  }
  const routeSteps = async (ctx: IngressContext): Promise<boolean> => {
    const route = find(ctx.path);
    if (route === undefined) return false;
    for (const step of route.steps) {
      const answered = step(ctx);
      // Synchronous steps are not awaited, so they all run before the first body chunk is parsed.
      if (answered === true || (answered !== false && (await answered))) return true;
    }
    return false;
  };
  const pre =
    auditLog === undefined
      ? withSteps
        ? routeSteps
        : undefined
      : async (ctx: IngressContext): Promise<boolean> => {
          auditLog.record(ctx);
          return withSteps ? routeSteps(ctx) : false;
        };

  const withAuthModes = compiled.some((route) => route.mode !== undefined);
  const withRequestEdits = compiled.some((route) => route.editRequest !== undefined);
  const auth: AuthStep | undefined =
    withAuthModes || withRequestEdits
      ? {
          authenticate: async (ctx) => {
            const route = find(ctx.path);
            const mode = route?.mode ?? (jwt === undefined ? 'none' : 'jwt');
            if (mode === 'jwt') {
              if (jwt === undefined) throw new Error('auth jwt needs ingress.jwt');
              await jwt.authenticate(ctx);
            } else if (mode !== 'none') await route!.auth!.authenticate(ctx);
            route?.editRequest?.(ctx);
          },
        }
      : jwt;
  if (withAuthModes && jwt === undefined && compiled.some((route) => route.mode === 'jwt')) {
    await Promise.all(closers.map((close) => close()));
    throw new RoutePolicyError('/ingress/routes', 'a route has auth "jwt" but ingress.jwt is not set');
  }
  return {
    pre,
    auth,
    routeCount: compiled.length,
    close: async () => {
      await Promise.all(closers.map((close) => close()));
    },
  };
}

export class RoutePolicyError extends Error {
  override readonly name = 'RoutePolicyError';
  constructor(
    readonly pointer: string,
    message: string,
  ) {
    super(message);
  }
}
