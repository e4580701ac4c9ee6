/**
 * OAuth2 client credentials for calls to a service: one token fetch for any number of concurrent
 * calls (single flight), cached until `refreshBeforeMs` before it expires, dropped when the upstream
 * answers 401 with it.
 */
import { ClientCredentialsTokens, TokenEndpointError } from '../../services/runtime/client-credentials.js';
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

/** The egress face of the shared token cache: failures become the sidecar's stable errors. */
export class TokenSource {
  private readonly tokens: ClientCredentialsTokens;

  constructor(policy: OAuth2Policy, now: () => number = Date.now) {
    this.tokens = new ClientCredentialsTokens({ ...policy, clientSecret: () => policy.clientSecret }, now);
  }

  /** Token endpoint requests made so far. */
  get fetches(): number {
    return this.tokens.fetches;
  }

  /**
   * A token with more than `refreshBeforeMs` left, fetching one (once for all callers) when needed.
   * When that fetch fails, the cached token is used until it expires.
   */
  async get(): Promise<string> {
    try {
      return await this.tokens.get();
    } catch (err) {
      if (err instanceof TokenEndpointError) throw tokenError(err.message, err, err.serverFailing);
      throw err;
    }
  }

  /** The upstream refused `value`: the next get() fetches a new token (unless one came already). */
  invalidate(value: string): void {
    this.tokens.invalidate(value);
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
