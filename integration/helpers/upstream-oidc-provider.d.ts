/**
 * The little of oidc-provider (9.x, no bundled types) that the egress OAuth2 tests use: a real
 * authorization server issuing client-credentials tokens.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface ProviderClient {
    client_id: string;
    client_secret: string;
    grant_types: string[];
    redirect_uris: string[];
    response_types: string[];
  }

  export interface ProviderConfiguration {
    clients?: ProviderClient[];
    features?: Record<string, { enabled: boolean }>;
    ttl?: Record<string, number>;
  }

  export default class Provider {
    constructor(issuer: string, configuration?: ProviderConfiguration);
    callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  }
}
