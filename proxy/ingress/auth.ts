import { readFile } from 'node:fs/promises';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import type { Config } from '../../services/runtime/config.js';

type IngressConfig = Config['ingress'];
import { MeshError } from '../../services/runtime/errors.js';
import type { SecurityNeed } from './openapi/compile.js';
import type { IngressContext } from './context.js';

type JwtConfig = NonNullable<IngressConfig['jwt']>;

const REALM = 'mesh-sidecar';

function challenge(error: string, description: string, scope?: string): string {
  const quoted = (value: string) => value.replace(/["\\]/g, '');
  return [
    `Bearer realm="${REALM}"`,
    `error="${error}"`,
    `error_description="${quoted(description)}"`,
    ...(scope === undefined ? [] : [`scope="${quoted(scope)}"`]),
  ].join(', ');
}

function unauthorized(description: string): MeshError {
  return new MeshError('MESH_UNAUTHORIZED', description, {
    headers: { 'www-authenticate': challenge('invalid_token', description) },
  });
}

/** Scopes of a token: the space-separated `scope` claim (RFC 8693) or an `scp` array (Azure AD, Okta). */
export function tokenScopes(claims: JWTPayload): Set<string> {
  const scopes = new Set<string>();
  if (typeof claims.scope === 'string') for (const s of claims.scope.split(' ')) if (s) scopes.add(s);
  if (Array.isArray(claims.scp)) for (const s of claims.scp) if (typeof s === 'string') scopes.add(s);
  if (typeof claims.scp === 'string') for (const s of claims.scp.split(' ')) if (s) scopes.add(s);
  return scopes;
}

/**
 * Verifies bearer tokens (JWS) with jose: signature against a JWKS (remote with caching, refetch on
 * an unknown `kid` at most once per cooldown, or a local key set), `iss`, `aud`, `exp`/`nbf` with
 * clock skew; then the scopes the operation needs. Built once per config, swapped on reload.
 */
export class Authenticator {
  private constructor(
    private readonly config: JwtConfig,
    private readonly keys: JWTVerifyGetKey,
    private readonly scopeOverrides: ReadonlyMap<string, readonly string[]>,
  ) {}

  static async create(config: JwtConfig, resolvePath: (file: string) => string): Promise<Authenticator> {
    if ((config.jwksUrl === undefined) === (config.keysFile === undefined)) {
      throw new Error('set exactly one of jwksUrl and keysFile');
    }
    let keys: JWTVerifyGetKey;
    if (config.jwksUrl !== undefined) {
      keys = createRemoteJWKSet(new URL(config.jwksUrl), {
        cooldownDuration: config.jwksCooldownMs,
        cacheMaxAge: config.jwksCacheMaxAgeMs,
        timeoutDuration: 5_000,
      });
    } else {
      const file = resolvePath(config.keysFile!);
      let set: JSONWebKeySet;
      try {
        set = JSON.parse(await readFile(file, 'utf8')) as JSONWebKeySet;
      } catch (err) {
        throw new Error(`cannot read keys file ${file}: ${(err as Error).message}`);
      }
      keys = createLocalJWKSet(set);
    }
    const overrides = new Map<string, readonly string[]>();
    for (const [key, scopes] of Object.entries(config.scopes)) if (scopes) overrides.set(key, scopes);
    return new Authenticator(config, keys, overrides);
  }

  private skips(path: string): boolean {
    return this.config.skipPaths.some((entry) =>
      entry.endsWith('*') ? path.startsWith(entry.slice(0, -1)) : path === entry,
    );
  }

  /** What the operation needs: config `scopes` first, then the OpenAPI `security`, else a token. */
  private need(ctx: IngressContext): SecurityNeed {
    const override =
      this.scopeOverrides.get(`${ctx.method} ${ctx.route}`) ?? this.scopeOverrides.get(ctx.route);
    if (override) return { kind: 'required', alternatives: [override] };
    return ctx.operation?.security ?? { kind: 'required', alternatives: [[]] };
  }

  /** The auth step: throws 401/403 MeshErrors; sets `ctx.claims` and the forwarded claim headers. */
  async authenticate(ctx: IngressContext): Promise<void> {
    // Callers must never be able to set the headers the app trusts as verified claims.
    for (const header of Object.values(this.config.forwardClaims))
      if (header) delete ctx.req.headers[header.toLowerCase()];
    if (this.skips(ctx.path)) return;
    const need = this.need(ctx);
    if (need.kind === 'none') return;
    const authorization = ctx.req.headers.authorization;
    const match =
      authorization === undefined ? null : /^Bearer[ ]+([A-Za-z0-9._~+/-]+=*)\s*$/i.exec(authorization);
    if (!match) {
      if (need.kind === 'optional' && authorization === undefined) return;
      throw unauthorized(
        authorization === undefined ? 'missing bearer token' : 'malformed Authorization header',
      );
    }
    const claims = await this.verify(match[1]);
    if (need.kind === 'required') {
      const scopes = tokenScopes(claims);
      const satisfied = need.alternatives.some((alternative) => alternative.every((s) => scopes.has(s)));
      if (!satisfied) {
        const wanted = need.alternatives[0].join(' ');
        throw new MeshError('MESH_FORBIDDEN', `token lacks the scope this operation needs: ${wanted}`, {
          headers: { 'www-authenticate': challenge('insufficient_scope', 'insufficient scope', wanted) },
        });
      }
    }
    ctx.claims = claims;
    for (const [claim, header] of Object.entries(this.config.forwardClaims)) {
      const value = claims[claim];
      if (header === undefined || value === undefined) continue;
      ctx.req.headers[header.toLowerCase()] = typeof value === 'string' ? value : JSON.stringify(value);
    }
  }

  private async verify(token: string): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(token, this.keys, {
        issuer: this.config.issuer,
        audience: this.config.audience,
        clockTolerance: this.config.clockSkewSec,
        algorithms: this.config.algorithms ? [...this.config.algorithms] : undefined,
      });
      return payload;
    } catch (err) {
      if (err instanceof joseErrors.JWKSTimeout || !(err instanceof joseErrors.JOSEError)) {
        throw new MeshError('MESH_NOT_READY', 'the token issuer keys could not be fetched', {
          cause: err,
          headers: { 'retry-after': '1' },
        });
      }
      throw unauthorized(describeJoseError(err));
    }
  }
}

function describeJoseError(err: InstanceType<typeof joseErrors.JOSEError>): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed)
    return `token claim "${err.claim}" is invalid: ${err.reason}`;
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'no key of the issuer matches the token';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'token signature is invalid';
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid)
    return 'token is malformed';
  return `token rejected: ${err.code}`;
}
