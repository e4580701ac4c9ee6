import { isAbsolute, resolve } from 'node:path';
import type { Config } from '../../services/runtime/config.js';

type IngressConfig = Config['ingress'];
import { Authenticator } from './auth.js';
import type { IngressContext } from './context.js';
import { compileOpenApi, type CompiledApi } from './openapi/compile.js';
import { loadOpenApi } from './openapi/document.js';
import { RateLimiter } from './rate-limit.js';
import type { MeshMetrics } from '../../services/runtime/metrics.js';
import { buildRoutePolicies, RoutePolicyError, type AuthStep, type RoutePolicies } from './route-policies.js';

/**
 * Everything of the ingress config that may change while it runs (SIGHUP): the compiled OpenAPI
 * document, the token verifier, the rate limiter and the limits. Built completely before it is
 * swapped in, so a request sees either the old rules or the new ones, never a mix.
 */
export interface IngressRules {
  readonly api: CompiledApi | undefined;
  readonly strict: boolean;
  readonly validateResponses: boolean;
  readonly maxBodyBytes: number;
  /** Load shedding: requests in the works at once beyond which a new one gets 503 `MESH_OVERLOADED`. */
  readonly maxConcurrentRequests?: number | undefined;
  /** JWT, or per `ingress.routes` prefix JWT / API key / basic / none. */
  readonly auth: AuthStep | undefined;
  readonly limiter: RateLimiter;
  /** `ingress.routes` steps ahead of the pipeline (IP, CORS, faults, headers, mirror); absent: none. */
  readonly pre?: ((ctx: IngressContext) => Promise<boolean>) | undefined;
  readonly policies?: RoutePolicies | undefined;
}

/** The ingress keys that only take effect on a restart (they shape the listener and the pool). */
export const RESTART_ONLY_KEYS = [
  'enabled',
  'host',
  'port',
  'http2',
  'tls',
  'target',
  'targetProtocol',
  'timeoutMs',
] as const;

export class RulesError extends Error {
  override readonly name = 'RulesError';
  constructor(
    readonly pointer: string,
    message: string,
  ) {
    super(message);
  }
}

/** Builds the rules of a config; relative file paths are resolved against `baseDir`. */
export async function buildRules(
  config: IngressConfig,
  baseDir: string,
  metrics?: MeshMetrics,
): Promise<IngressRules> {
  const resolvePath = (file: string) => (isAbsolute(file) ? file : resolve(baseDir, file));
  let api: CompiledApi | undefined;
  if (config.openapi !== undefined) {
    try {
      api = compileOpenApi(await loadOpenApi(resolvePath(config.openapi)), {
        responses: config.validateResponses,
      });
    } catch (err) {
      throw new RulesError('/ingress/openapi', (err as Error).message);
    }
  }
  let auth: Authenticator | undefined;
  if (config.jwt !== undefined) {
    try {
      auth = await Authenticator.create(config.jwt, resolvePath);
    } catch (err) {
      throw new RulesError('/ingress/jwt', (err as Error).message);
    }
  }
  let policies: RoutePolicies | undefined;
  if (config.routes.length > 0 || config.auditLog !== undefined) {
    if (metrics === undefined) throw new RulesError('/ingress/routes', 'route policies need metrics');
    const audit =
      config.auditLog === undefined
        ? undefined
        : {
            ...config.auditLog,
            // stdout/stderr as they are; a file path like the other paths.
            destination: ['stdout', 'stderr'].includes(config.auditLog.destination)
              ? config.auditLog.destination
              : resolvePath(config.auditLog.destination),
          };
    try {
      policies = await buildRoutePolicies(config.routes, auth, resolvePath, metrics, audit);
    } catch (err) {
      if (err instanceof RoutePolicyError) throw new RulesError(err.pointer, err.message);
      throw err;
    }
  }
  return {
    api,
    strict: config.openapiStrict,
    validateResponses: config.validateResponses,
    maxBodyBytes: config.maxBodyBytes,
    maxConcurrentRequests: config.maxConcurrentRequests,
    auth: policies === undefined ? auth : policies.auth,
    limiter: new RateLimiter(config.rateLimits),
    pre: policies?.pre,
    policies,
  };
}
