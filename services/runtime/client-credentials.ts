/**
 * OAuth2 client-credentials tokens, for egress calls to a service and for Kafka's OAUTHBEARER alike:
 * one fetch for any number of concurrent callers (single flight), cached until `refreshBeforeMs`
 * before it expires (never later than half-way through a short-lived token), and, when a renewal
 * fails, the cached token used until it really expires. Errors name the token URL, never the secret.
 */
import { request } from 'undici';

export interface ClientCredentialsOptions {
  readonly tokenUrl: string;
  readonly clientId: string;
  /** Read at every fetch, so a secret mounted from a file can rotate. */
  readonly clientSecret: () => string;
  readonly scope?: string | undefined;
  readonly audience?: string | undefined;
  readonly authMethod: 'client_secret_basic' | 'client_secret_post';
  readonly refreshBeforeMs: number;
}

/** The token endpoint failed; `serverFailing` is false when it refused the client (a 4xx). */
export class TokenEndpointError extends Error {
  constructor(
    message: string,
    readonly serverFailing: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TokenEndpointError';
  }
}

/** Lifetime assumed when the token response has no `expires_in`. */
const DEFAULT_LIFETIME_MS = 300_000;
const FETCH_TIMEOUT_MS = 10_000;

export class ClientCredentialsTokens {
  private token: { value: string; refreshAt: number; expiresAt: number } | undefined;
  private inFlight: Promise<string> | undefined;
  /** Token endpoint requests made so far. */
  fetches = 0;

  constructor(
    private readonly options: ClientCredentialsOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** A token with more than `refreshBeforeMs` left, fetching one (once for all callers) when needed. */
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

  /** The token was refused where it was used: the next get() fetches a new one (unless one came already). */
  invalidate(value: string): void {
    if (this.token?.value === value) this.token = undefined;
  }

  private async fetch(): Promise<string> {
    const { options } = this;
    const secret = options.clientSecret();
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (options.scope) form.set('scope', options.scope);
    if (options.audience) form.set('audience', options.audience);
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    if (options.authMethod === 'client_secret_basic') {
      const encode = (text: string) => encodeURIComponent(text);
      headers.authorization = `Basic ${Buffer.from(`${encode(options.clientId)}:${encode(secret)}`).toString('base64')}`;
    } else {
      form.set('client_id', options.clientId);
      form.set('client_secret', secret);
    }
    this.fetches += 1;
    const startedAt = this.now();
    let body: { access_token?: unknown; expires_in?: unknown; error?: unknown };
    let status: number;
    try {
      const response = await request(options.tokenUrl, {
        method: 'POST',
        headers,
        body: form.toString(),
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
      status = response.statusCode;
      body = (await response.body.json()) as typeof body;
    } catch (err) {
      // Unreachable, reset, timed out or not JSON: the server is down, which may pass.
      throw new TokenEndpointError(
        `token endpoint ${options.tokenUrl} failed: ${(err as Error).message}`,
        true,
        { cause: err },
      );
    }
    if (status !== 200 || typeof body.access_token !== 'string') {
      // 4xx: the client is refused (a configuration error); 5xx and 429: the server is failing.
      throw new TokenEndpointError(
        `token endpoint ${options.tokenUrl} answered ${status} ${JSON.stringify(body.error ?? '')}`,
        status >= 500 || status === 429,
      );
    }
    const lifetimeMs =
      typeof body.expires_in === 'number' && body.expires_in > 0
        ? body.expires_in * 1000
        : DEFAULT_LIFETIME_MS;
    // Renew refreshBeforeMs ahead, but never sooner than half-way through a short-lived token.
    const keepMs = Math.max(lifetimeMs - options.refreshBeforeMs, lifetimeMs / 2);
    this.token = {
      value: body.access_token,
      refreshAt: startedAt + keepMs,
      expiresAt: startedAt + lifetimeMs,
    };
    return body.access_token;
  }
}
