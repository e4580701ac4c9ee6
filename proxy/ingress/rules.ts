import { isAbsolute, resolve } from 'node:path';
import type { Config } from '../../services/runtime/config.js';

type IngressConfig = Config['ingress'];
import { Authenticator } from './auth.js';
import { compileOpenApi, type CompiledApi } from './openapi/compile.js';
import { loadOpenApi } from './openapi/document.js';
import { RateLimiter } from './rate-limit.js';

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
  readonly auth: Authenticator | undefined;
  readonly limiter: RateLimiter;
}

/** The ingress keys that only take effect on a restart (they shape the listener and the pool). */
export const RESTART_ONLY_KEYS = ['enabled', 'host', 'port', 'tls', 'target', 'timeoutMs'] as const;

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
export async function buildRules(config: IngressConfig, baseDir: string): Promise<IngressRules> {
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
  return {
    api,
    strict: config.openapiStrict,
    validateResponses: config.validateResponses,
    maxBodyBytes: config.maxBodyBytes,
    auth,
    limiter: new RateLimiter(config.rateLimits),
  };
}
