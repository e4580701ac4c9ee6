/**
 * OAuth2 client credentials for calls to a service: one token fetch for any number of concurrent
 * calls (single flight), cached until `refreshBeforeMs` before it expires, dropped when the upstream
 * answers 401 with it.
 */
import { request } from 'undici';
import { MeshError } from '../../services/runtime/errors.js';

export interface OAuth2Policy {
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly scope?: string | undefined;
  readonly audience?: string | undefined;
  readonly authMethod: 'client_secret_basic' | 'client_secret_post';
  readonly refreshBeforeMs: number;
  /** When set and the app sent `Authorization`, the token goes in this header instead. */
  readonly scopeTokenHeader?: string | undefined;
}

/** Lifetime assumed when the token response has no `expires_in`. */
const DEFAULT_LIFETIME_MS = 300_000;
const FETCH_TIMEOUT_MS = 10_000;

export class TokenSource {
  private token: { value: string; refreshAt: number; expiresAt: number } | undefined;
  private inFlight: Promise<string> | undefined;
  /** Token endpoint requests made so far. */
  fetches = 0;

  constructor(
    private readonly policy: OAuth2Policy,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * A token with more than `refreshBeforeMs` left, fetching one (once for all callers) when needed.
   * When that fetch fails, the cached token is used until it expires.
   */
  async get(): Promise<string> {
    const token = this.token;
    if (token && this.now() < token.refreshAt) return token.value;
    this.inFlight ??= this.fetch().finally(() => (this.inFlight = undefined));
    try {
      return await this.inFlight;
    } catch (err) {
      const current = this.token;
      if (current && this.now() < current.expiresAt) return current.value;
      throw err;
    }
  }

  /** The upstream refused `value`: the next get() fetches a new token (unless one came already). */
  invalidate(value: string): void {
    if (this.token?.value === value) this.token = undefined;
  }

  private async fetch(): Promise<string> {
    const { policy } = this;
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (policy.scope) form.set('scope', policy.scope);
    if (policy.audience) form.set('audience', policy.audience);
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    if (policy.authMethod === 'client_secret_basic') {
      const encode = (text: string) => encodeURIComponent(text);
      const basic = Buffer.from(`${encode(policy.clientId)}:${encode(policy.clientSecret)}`).toString(
        'base64',
      );
      headers.authorization = `Basic ${basic}`;
    } else {
      form.set('client_id', policy.clientId);
      form.set('client_secret', policy.clientSecret);
    }
    this.fetches += 1;
    const startedAt = this.now();
    let body: { access_token?: unknown; expires_in?: unknown; error?: unknown };
    let status: number;
    try {
      const response = await request(policy.tokenUrl, {
        method: 'POST',
        headers,
        body: form.toString(),
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
      status = response.statusCode;
      body = (await response.body.json()) as typeof body;
    } catch (err) {
      // Unreachable, reset, timed out or not JSON: the server is down, which may pass (503).
      throw tokenError(`token endpoint ${policy.tokenUrl} failed: ${(err as Error).message}`, err, true);
    }
    if (status !== 200 || typeof body.access_token !== 'string') {
      // 4xx: the client is refused (a configuration error, 502); 5xx: the server is failing (503).
      throw tokenError(
        `token endpoint ${policy.tokenUrl} answered ${status} ${JSON.stringify(body.error ?? '')}`,
        undefined,
        status >= 500 || status === 429,
      );
    }
    const lifetimeMs =
      typeof body.expires_in === 'number' && body.expires_in > 0
        ? body.expires_in * 1000
        : DEFAULT_LIFETIME_MS;
    // Renew refreshBeforeMs ahead, but never sooner than half-way through a short-lived token.
    const keepMs = Math.max(lifetimeMs - this.policy.refreshBeforeMs, lifetimeMs / 2);
    this.token = {
      value: body.access_token,
      refreshAt: startedAt + keepMs,
      expiresAt: startedAt + lifetimeMs,
    };
    return body.access_token;
  }
}

function tokenError(detail: string, cause: unknown, unavailable: boolean): MeshError {
  if (unavailable) {
    return new MeshError('MESH_TOKEN_UNAVAILABLE', detail, {
      cause,
      headers: { 'x-mesh-error': 'token-unavailable', 'retry-after': '1' },
    });
  }
  return new MeshError('MESH_UPSTREAM_FAILED', detail, {
    cause,
    headers: { 'x-mesh-error': 'token-unavailable' },
  });
}
