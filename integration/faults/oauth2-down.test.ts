/**
 * The OAuth2 token server goes down under a real sidecar process: the cached token is used until it
 * expires, then calls get a clear 503 `token-unavailable` (with Retry-After) at once, and once the
 * server is back a new token is fetched and calls succeed. A token server answering 5xx is 503 too;
 * one refusing the client (401) stays 502, a configuration error.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { TestUpstream } from '../helpers/upstream.js';
import { CleanupStack, waitFor } from '../helpers/wait.js';

const LIFETIME_S = 4;

/** A client-credentials token endpoint issuing `token-1`, `token-2`, ... that live LIFETIME_S. */
class TokenServer {
  requests = 0;
  issued = 0;
  /** What POST /token answers: a token, or this status. */
  answer: 'token' | number = 'token';
  private server: http.Server | undefined;
  port = 0;

  async start(): Promise<this> {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        this.requests += 1;
        res.setHeader('content-type', 'application/json');
        if (this.answer !== 'token') {
          res.statusCode = this.answer;
          res.end(JSON.stringify({ error: this.answer === 401 ? 'invalid_client' : 'server_error' }));
          return;
        }
        this.issued += 1;
        res.end(
          JSON.stringify({
            access_token: `token-${this.issued}`,
            token_type: 'Bearer',
            expires_in: LIFETIME_S,
          }),
        );
      });
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/token`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('fault: OAuth2 token server down', function () {
  this.timeout(60_000);
  const cleanup = new CleanupStack();
  afterEach(() => cleanup.run());

  async function setUp(answer: TokenServer['answer'] = 'token') {
    const auth = await new TokenServer().start();
    auth.answer = answer;
    cleanup.defer(() => auth.stop());
    const upstream = await new TestUpstream({ name: 'api' }).start();
    cleanup.defer(() => upstream.stop());
    const sidecar: SidecarProcess = await startSidecarProcess(
      {
        admin: { host: '127.0.0.1', port: 0 },
        ingress: { enabled: false },
        bridge: { enabled: false },
        egress: {
          port: 0,
          services: {
            api: {
              endpoints: [upstream.url],
              retry: { attempts: 1 },
              oauth2: {
                tokenUrl: auth.url,
                clientId: 'app',
                clientSecret: 'app-secret',
                refreshBeforeMs: 30_000,
              },
            },
          },
        },
      },
      { startTimeoutMs: 30_000 },
    );
    cleanup.defer(() => sidecar.cleanup());
    const call = async () => {
      const res = await request(`${sidecar.urls.egress}/data`, {
        headers: { host: 'api' },
        headersTimeout: 20_000,
        bodyTimeout: 20_000,
      });
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
    };
    return { auth, upstream, sidecar, call };
  }

  const bearer = (upstream: TestUpstream, index: number) =>
    String(upstream.requests[index].headers.authorization).replace(/^Bearer /, '');

  it('keeps the cached token until it expires, then answers 503 token-unavailable, then recovers', async () => {
    const { auth, upstream, sidecar, call } = await setUp();
    assert.equal((await call()).status, 200);
    const fetchedAt = Date.now();
    assert.equal(auth.requests, 1);
    assert.equal(bearer(upstream, 0), 'token-1');

    await auth.stop(); // closed: connections refused from now on
    const accounting = { sentWhileDown: 0, ok: 0, unavailable: 0, other: [] as string[], lastOkAfterMs: 0 };
    let refusal: Awaited<ReturnType<typeof call>> | undefined;
    await waitFor(
      async () => {
        const res = await call();
        accounting.sentWhileDown += 1;
        if (res.status === 200) {
          accounting.ok += 1;
          accounting.lastOkAfterMs = Date.now() - fetchedAt;
          return false;
        }
        if (res.status === 503) {
          accounting.unavailable += 1;
          refusal = res;
          return true;
        }
        accounting.other.push(`${res.status} ${res.text}`);
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'the cached token to expire' },
    );
    assert.deepEqual(accounting.other, [], 'only 200s and then a 503');
    // Every call while the server was down, before expiry, went out with the cached token.
    const okTokens = upstream.requests.map((_, i) => bearer(upstream, i));
    assert.deepEqual([...new Set(okTokens)], ['token-1']);
    assert.equal(upstream.count(), 1 + accounting.ok);
    // Past the renewal point (half the lifetime) the failed refresh fell back on the cached token.
    assert.ok(
      accounting.lastOkAfterMs > (LIFETIME_S * 1000) / 2,
      `the cached token served calls past its renewal point (last 200 after ${accounting.lastOkAfterMs} ms)`,
    );
    assert.ok(refusal);
    assert.equal(refusal.headers['x-mesh-error'], 'token-unavailable');
    assert.match(String(refusal.headers['content-type']), /^application\/problem\+json/);
    assert.ok(refusal.headers['retry-after'], 'Retry-After');
    const problem = JSON.parse(refusal.text) as { code: string; detail: string };
    assert.equal(problem.code, 'MESH_TOKEN_UNAVAILABLE');
    assert.match(problem.detail, /token endpoint/);

    // Still down: every call is a quick 503, never sent upstream.
    const again = await call();
    assert.equal(again.status, 503);
    assert.equal(upstream.count(), 1 + accounting.ok);

    // Back on the same port: a new token, calls succeed.
    await auth.start();
    cleanup.defer(() => auth.stop());
    let recovered = 0;
    await waitFor(async () => (await call()).status === 200 && (recovered += 1) > 0, {
      timeoutMs: 15_000,
      intervalMs: 100,
      what: 'calls to succeed once the token server is back',
    });
    const last = bearer(upstream, upstream.count() - 1);
    assert.equal(last, 'token-2');
    assert.equal(auth.issued, 2);
    const health = await request(`${sidecar.urls.admin}/healthz`);
    assert.equal(health.statusCode, 200);
    await health.body.dump();
    console.log(
      `      oauth2-down: before outage 1 ok; while down sent=${accounting.sentWhileDown} ok(cached token-1)=${accounting.ok} ` +
        `503=${accounting.unavailable + 1} other=${accounting.other.length}; last cached-token 200 at +${accounting.lastOkAfterMs} ms ` +
        `(lifetime ${LIFETIME_S} s); after restart ok with ${last}; token fetches answered=${auth.requests}`,
    );
  });

  it('answers 503 when the token server fails (5xx) and 502 when it refuses the client (401)', async () => {
    const failing = await setUp(500);
    const res = await failing.call();
    assert.equal(res.status, 503);
    assert.equal(res.headers['x-mesh-error'], 'token-unavailable');
    assert.ok(res.headers['retry-after']);
    assert.equal((JSON.parse(res.text) as { code: string }).code, 'MESH_TOKEN_UNAVAILABLE');
    assert.equal(failing.upstream.count(), 0);

    failing.auth.answer = 401;
    const refused = await failing.call();
    assert.equal(refused.status, 502);
    assert.equal(refused.headers['x-mesh-error'], 'token-unavailable');
    assert.equal((JSON.parse(refused.text) as { code: string }).code, 'MESH_UPSTREAM_FAILED');
    assert.equal(failing.upstream.count(), 0);
    console.log(
      `      oauth2-down: token server 500 -> ${res.status}, 401 -> ${refused.status}; upstream calls=${failing.upstream.count()}`,
    );
  });
});
