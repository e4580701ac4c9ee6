/**
 * OAuth2 client credentials against a real authorization server (oidc-provider 9, which runs on
 * Node 20 with a warning that it wants Node 22) started in the test.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import { request } from 'undici';
import { startTestEgress } from './helpers/upstream-egress.js';
import { ok, TestUpstream } from './helpers/upstream.js';
import { CleanupStack } from './helpers/wait.js';

interface AuthServer {
  readonly tokenUrl: string;
  /** POSTs to the token endpoint so far. */
  tokenRequests(): number;
  /** Whether the server says `token` is an active access token of client `app`. */
  isActive(token: string): Promise<boolean>;
}

const CLIENT = { client_id: 'app', client_secret: 'app-secret' };

async function startAuthServer(cleanup: CleanupStack, ttlSeconds: number): Promise<AuthServer> {
  const provider = new Provider('http://127.0.0.1', {
    clients: [{ ...CLIENT, grant_types: ['client_credentials'], redirect_uris: [], response_types: [] }],
    features: {
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      devInteractions: { enabled: false },
    },
    ttl: { ClientCredentials: ttlSeconds },
  });
  let tokenRequests = 0;
  const callback = provider.callback();
  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/token') tokenRequests += 1;
    void callback(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.defer(() => {
    server.closeAllConnections();
    server.close();
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const basic = `Basic ${Buffer.from(`${CLIENT.client_id}:${CLIENT.client_secret}`).toString('base64')}`;
  return {
    tokenUrl: `${base}/token`,
    tokenRequests: () => tokenRequests,
    async isActive(token) {
      const res = await request(`${base}/token/introspection`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic },
        body: new URLSearchParams({ token }).toString(),
      });
      const body = (await res.body.json()) as { active: boolean; client_id?: string };
      return body.active && body.client_id === CLIENT.client_id;
    },
  };
}

const bearer = (upstream: TestUpstream, index: number) =>
  String(upstream.requests[index].headers.authorization).replace(/^Bearer /, '');

describe('egress OAuth2 client credentials', function () {
  this.timeout(30_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  async function setUp(ttlSeconds: number, now?: () => number) {
    const auth = await startAuthServer(cleanup, ttlSeconds);
    const upstream = await new TestUpstream({ name: 'api' }).start();
    cleanup.defer(() => upstream.stop());
    const egress = await startTestEgress(
      cleanup,
      {
        services: {
          api: {
            endpoints: [upstream.url],
            oauth2: {
              tokenUrl: auth.tokenUrl,
              clientId: CLIENT.client_id,
              clientSecret: CLIENT.client_secret,
              refreshBeforeMs: 30_000,
            },
          },
        },
      },
      { now },
    );
    return { auth, upstream, egress };
  }

  it('fetches one token for 100 concurrent calls and sends it as a Bearer token', async () => {
    const { auth, upstream, egress } = await setUp(300);
    const results = await Promise.all(Array.from({ length: 100 }, () => egress.call('api', '/data')));
    assert.ok(results.every((r) => r.status === 200));
    assert.equal(auth.tokenRequests(), 1);
    const tokens = new Set(upstream.requests.map((_, i) => bearer(upstream, i)));
    assert.equal(tokens.size, 1);
    assert.ok(await auth.isActive([...tokens][0]), 'the authorization server issued it');
  });

  it('refreshes the token before it expires', async () => {
    let now = 1_000_000;
    const { auth, upstream, egress } = await setUp(120, () => now);
    assert.equal((await egress.call('api')).status, 200);
    now += 60_000; // 60 s left: still more than the 30 s margin
    assert.equal((await egress.call('api')).status, 200);
    assert.equal(auth.tokenRequests(), 1);
    now += 31_000; // 29 s left: renewed ahead of expiry
    assert.equal((await egress.call('api')).status, 200);
    assert.equal(auth.tokenRequests(), 2);
    assert.notEqual(bearer(upstream, 2), bearer(upstream, 0));
    assert.ok(await auth.isActive(bearer(upstream, 2)));
  });

  it('fetches a new token once when the upstream answers 401', async () => {
    const { auth, upstream, egress } = await setUp(300);
    upstream.script({ kind: 'ok', status: 401 }, ok());
    const res = await egress.call('api', '/data', { method: 'POST', body: '{}' });
    assert.equal(res.status, 200);
    assert.equal(auth.tokenRequests(), 2);
    assert.equal(upstream.count(), 2);
    assert.notEqual(bearer(upstream, 1), bearer(upstream, 0));
    assert.equal(upstream.requests[1].body, '{}');

    // A second 401 in a row is relayed, not looped on.
    upstream.script({ kind: 'ok', status: 401 }, { kind: 'ok', status: 401 });
    assert.equal((await egress.call('api')).status, 401);
    assert.equal(upstream.count(), 4);
  });

  it('answers 502 token-unavailable when the client is refused', async () => {
    const auth = await startAuthServer(cleanup, 300);
    const upstream = await new TestUpstream().start();
    cleanup.defer(() => upstream.stop());
    const egress = await startTestEgress(cleanup, {
      services: {
        api: {
          endpoints: [upstream.url],
          oauth2: { tokenUrl: auth.tokenUrl, clientId: 'app', clientSecret: 'wrong' },
        },
      },
    });
    const res = await egress.call('api');
    assert.equal(res.status, 502);
    assert.equal(res.headers['x-mesh-error'], 'token-unavailable');
    assert.equal(upstream.count(), 0);
  });
});
